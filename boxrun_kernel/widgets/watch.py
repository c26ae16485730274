"""Follows the server's lifecycle and metrics streams in the background for a widget."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from ..magics.runner import runner

Handler = Callable[[str, dict[str, Any]], None]
#: Pause before reopening a stream that failed (the server restarting, say).
RETRY = 2.0


class Watcher:
    """Calls ``on_lifecycle`` and ``on_metrics`` per event until :meth:`stop`; reopens a
    broken stream (``on_open`` runs at each opening of the lifecycle one, so a widget can
    reload what it may have missed), and tells ``on_error`` why it broke, in words."""

    def __init__(self, on_lifecycle: Handler, on_metrics: Handler,
                 on_error: Callable[[str], None], on_open: Callable[[], Awaitable[None]],
                 interval: float) -> None:
        self.on_error = on_error
        run = runner()
        self.futures = [
            run.submit(self._follow("/v1/events", on_lifecycle, on_open)),
            run.submit(self._follow("/v1/metrics/events", on_metrics, None, interval=interval)),
        ]

    async def _follow(self, path: str, handle: Handler,
                      on_open: Callable[[], Awaitable[None]] | None, **params: Any) -> None:
        last_id = ""
        server = runner().server
        while True:
            try:
                async for event, data, event_id in server.events(path, last_id, on_open,
                                                                 **params):
                    last_id = event_id or last_id
                    handle(event, data)
            except Exception as exc:  # the server's words, or a bug: shown, then retried
                self.on_error(f"{path}: {exc}")
            await asyncio.sleep(RETRY)

    @property
    def running(self) -> bool:
        return not all(future.done() for future in self.futures)

    def stop(self) -> None:
        """End the background work (idempotent)."""
        for future in self.futures:
            future.cancel()
