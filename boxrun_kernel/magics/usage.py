"""The box's usage as Jupyter asks for it: ``usage_reply`` content and per-cell usage."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from ..client import BoxRunClient, BoxUnavailable
from .api import Server


async def usage_reply(client: BoxRunClient, box: dict[str, Any]) -> dict[str, Any]:
    """``usage_reply`` content for ``box``, in the keys jupyter-resource-usage's Kernel Usage
    panel reads (``kernel_cpu`` %, ``kernel_memory`` bytes, ``host_virtual_memory``...),
    from the box's metrics (the box is the kernel's "host"); the sample itself as ``box``."""
    sample = await client.call("GET", f"/v1/boxes/{box['id']}/metrics")
    used = sample.get("memory_bytes") or 0
    total = sample.get("memory_limit_bytes") or box["memory_mb"] * 2**20
    return {"hostname": box["name"], "kernel_cpu": sample.get("cpu_percent") or 0.0,
            "kernel_memory": used, "host_cpu_percent": sample.get("cpu_percent") or 0.0,
            "cpu_count": sample.get("cpu_limit") or box["cpu"],
            "host_virtual_memory": {"total": total, "used": used, "available": total - used,
                                    "percent": round(100 * used / total, 1) if total else 0.0},
            "box": sample}


class CellMeter:
    """Wall time, peak memory and cpu time of a box while a cell runs, from the box's
    metrics stream sampled every ``interval`` s (a cell shorter than that gets no sample:
    its peak memory is null and its cpu time 0). Start it on the loop that owns ``client``."""

    def __init__(self, client: BoxRunClient, box_id: str, interval: float = 0.5) -> None:
        self.started = time.monotonic()
        self.peak: int | None = None
        self.cpu_s = 0.0
        self._last: float | None = None
        self._task = asyncio.ensure_future(self._follow(Server(client), box_id, interval))

    async def _follow(self, server: Server, box_id: str, interval: float) -> None:
        path = f"/v1/boxes/{box_id}/metrics/events"
        with contextlib.suppress(BoxUnavailable):  # the box stopped: what was seen stands
            async for _, sample, _ in server.events(path, interval=interval):
                now = time.monotonic()
                self.peak = max(self.peak or 0, sample.get("memory_bytes") or 0)
                if self._last is not None:  # cpu_percent covers the time since the last one
                    self.cpu_s += (sample.get("cpu_percent") or 0.0) / 100 * (now - self._last)
                self._last = now

    async def stop(self) -> dict[str, Any]:
        """Stop sampling; ``{"wall_time_s", "peak_memory_bytes", "cpu_time_s"}``."""
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        return {"wall_time_s": round(time.monotonic() - self.started, 3),
                "peak_memory_bytes": self.peak, "cpu_time_s": round(self.cpu_s, 3)}
