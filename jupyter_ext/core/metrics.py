"""Box metrics: a sample per running box, and one shared sampling loop per interval."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from .errors import BoxRunError
from .models import Box, now, parse_time

if TYPE_CHECKING:
    from .manager import BoxManager

#: Seconds between the two readings of a sample with no recent reading to compare to.
WINDOW = 0.2
#: Readings older than this are too old to give the current CPU use.
MAX_AGE = 10.0
_USAGE_KEYS = ("memory_bytes", "memory_limit_bytes", "pids", "net_rx_bytes", "net_tx_bytes")


def require_running(box: Box) -> Box:
    """``box``, or BOX_NOT_RUNNING."""
    if box.status != "running":
        raise BoxRunError("BOX_NOT_RUNNING", f"box {box.id} is not running")
    return box


class MetricsSampler:
    """Samples boxes through the backend; streams share one loop per interval, which
    runs only while someone listens and publishes each tick's samples on the bus."""

    def __init__(self, manager: BoxManager) -> None:
        self.manager = manager
        self._readings: dict[str, tuple[float, float]] = {}
        self._loops: dict[float, asyncio.Task[None]] = {}
        self._listeners: Counter[float] = Counter()

    async def sample(self, box: Box) -> dict[str, Any]:
        """The box's usage now; BOX_NOT_RUNNING unless it runs. ``cpu_percent`` is
        100 per busy core, since the previous reading (or over :data:`WINDOW` s)."""
        handle = require_running(box).boxlite_id or ""
        usage = await self.manager.backend.metrics(handle)
        at, cpu = time.monotonic(), usage.get("cpu_seconds")
        percent = None
        if cpu is not None:
            before = self._readings.get(box.id)
            if before is None or not WINDOW <= at - before[0] <= MAX_AGE:
                before = (at, cpu)
                await asyncio.sleep(WINDOW)
                usage = await self.manager.backend.metrics(handle)
                at, cpu = time.monotonic(), usage.get("cpu_seconds") or cpu
            self._readings[box.id] = (at, cpu)
            percent = round(100 * (cpu - before[1]) / (at - before[0]), 1)
        execs = await self.manager.store.execs(box.id)
        started = parse_time(box.started_at) if box.started_at else None
        return {
            "box_id": box.id,
            "status": box.status,
            "at": now(),
            "uptime_s": started and round((datetime.now(timezone.utc) - started).total_seconds(), 1),
            "cpu_percent": percent,
            "cpu_limit": box.cpu,
            **{key: usage.get(key) for key in _USAGE_KEYS},
            "execs": {
                "total": len(execs),
                "running": sum(e.status == "running" for e in execs),
                "failed": sum(e.status == "failed" for e in execs),
            },
            "timings": self.manager.lifecycle.timings.get(box.id, {}),
        }

    async def tick(self) -> list[dict[str, Any]]:
        """A sample of every running box (boxes that stop meanwhile are left out)."""
        boxes = self.manager.list_boxes("running")
        self._readings = {k: v for k, v in self._readings.items() if k in self.manager.boxes}
        samples = await asyncio.gather(*(self.sample(b) for b in boxes), return_exceptions=True)
        return [s for s in samples if isinstance(s, dict)]

    async def _loop(self, interval: float) -> None:
        while True:
            start = time.monotonic()
            self.manager.bus.publish(("metrics", interval), await self.tick())
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - start)))

    async def stream(self, interval: float, box: Box | None = None) -> AsyncIterator[dict[str, Any] | None]:
        """Samples every ``interval`` s of all running boxes, or of ``box`` until it stops;
        ``None`` stands for a keep-alive."""
        self._listeners[interval] += 1
        if interval not in self._loops:
            self._loops[interval] = asyncio.create_task(self._loop(interval))
        try:
            with self.manager.bus.subscribe(("metrics", interval), maxsize=16) as sub:
                while box is None or box.status == "running":
                    samples = await sub.get(self.manager.keepalive)
                    if samples is None:
                        if sub.lagged:
                            return
                        yield None
                    for sample in samples or ():
                        if box is None or sample["box_id"] == box.id:
                            yield sample
        finally:
            self._listeners[interval] -= 1
            if not self._listeners[interval]:
                del self._listeners[interval]
                self._loops.pop(interval).cancel()
