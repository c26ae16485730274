"""Server-Sent Events framing shared by the exec and session event streams."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from tornado.iostream import StreamClosedError

from .base import BoxRunHandler


class EventStreamHandler(BoxRunHandler):
    """A handler streaming numbered events as SSE, resumable by ``Last-Event-ID``."""

    def last_event_id(self) -> int:
        """The ``Last-Event-ID`` header as a seq, -1 when absent."""
        last = self.request.headers.get("Last-Event-ID", "")
        return int(last) if last.strip().lstrip("-").isdigit() else -1

    async def stream(self, events: AsyncIterator[Any]) -> None:
        """Send ``events`` (``seq``, ``event``, ``json_text()``; ``None`` is a keep-alive)
        until they end or the client goes; an error before the first is a JSON reply.
        With nothing to send (a finished stream resumed at its end) the reply is
        ``204 No Content``, which stops a browser's ``EventSource`` from reconnecting."""
        try:
            first = await anext(events)
        except StopAsyncIteration:
            self.set_status(204)
            self.finish()
            return
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")
        try:
            await self._send(first)
            async for event in events:
                await self._send(event)
        except StreamClosedError:
            return
        finally:
            await events.aclose()  # type: ignore[attr-defined]
        self.finish()

    async def _send(self, event: Any) -> None:
        if event is None:
            self.write(": keep-alive\n\n")
        else:
            self.write(f"id: {event.seq}\nevent: {event.event}\ndata: {event.json_text()}\n\n")
        await self.flush()
