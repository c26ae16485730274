"""What a box used while one cell ran: wall time, cpu time and peak memory."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ..core.errors import BoxRunError

#: Reads the box's usage now (``cpu_seconds`` since it started, ``memory_bytes``...).
Read = Callable[[], Awaitable[dict[str, Any]]]
#: Seconds between memory readings while a cell runs.
INTERVAL = 0.5


class CellUsage:
    """Meters one ``execute_request``: cpu time is the difference of the box's cpu counter
    at both ends; peak memory the most of the readings at both ends and every
    :data:`INTERVAL` s between. Null where the backend does not say."""

    def __init__(self, read: Read) -> None:
        self.started = time.monotonic()
        self.cpu_at_start: float | None = None
        self.peak: int | None = None
        self._read = read
        self._task = asyncio.create_task(self._watch())

    async def _reading(self) -> dict[str, Any]:
        try:
            usage = await self._read()
        except BoxRunError:  # the box stopped: what was read stands
            return {}
        memory = usage.get("memory_bytes")
        if memory is not None:
            self.peak = max(self.peak or 0, memory)
        return usage

    async def _watch(self) -> None:
        self.cpu_at_start = (await self._reading()).get("cpu_seconds")
        while True:
            await asyncio.sleep(INTERVAL)
            await self._reading()

    async def stop(self) -> dict[str, Any]:
        """The last reading; ``{"wall_time_s", "cpu_time_s", "peak_memory_bytes"}``."""
        wall = time.monotonic() - self.started
        self.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        cpu = (await self._reading()).get("cpu_seconds")
        known = cpu is not None and self.cpu_at_start is not None
        return {"wall_time_s": round(wall, 3),
                "cpu_time_s": round(cpu - self.cpu_at_start, 3) if known else None,
                "peak_memory_bytes": self.peak}

    def cancel(self) -> None:
        """Stop reading (the interpreter went away)."""
        self._task.cancel()
