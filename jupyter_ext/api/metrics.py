"""Handlers of box metrics and of the metrics and lifecycle SSE streams."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from jupyter_server.auth.decorator import authorized
from tornado import web
from tornado.iostream import StreamClosedError

from ..core.errors import validation
from ..core.lifecycle import LifecycleEvent
from ..core.metrics import require_running
from .base import BoxRunHandler

T = TypeVar("T")

#: Shortest ``?interval=`` of a metrics stream, in seconds.
MIN_INTERVAL = 0.2


class BoxMetricsHandler(BoxRunHandler):
    """``GET /v1/boxes/{id}/metrics``: one sample; BOX_NOT_RUNNING unless it runs."""

    @web.authenticated
    @authorized
    async def get(self, box_id: str) -> None:
        self.reply(await self.manager.metrics.sample(self.manager.get_box(box_id)))


class EventStreamHandler(BoxRunHandler):
    """Sends a stream's items as SSE, each framed as ``(id, event, data)`` by ``frame``;
    ``None`` items are keep-alives."""

    async def stream(
        self, items: AsyncIterator[T | None], frame: Callable[[T], tuple[int | None, str, Any]]
    ) -> None:
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")
        try:
            self.write(": stream open\n\n")  # so clients see the headers at once
            await self.flush()
            async for item in items:
                if item is None:
                    self.write(": keep-alive\n\n")
                else:
                    seq, event, data = frame(item)
                    head = "" if seq is None else f"id: {seq}\n"
                    self.write(f"{head}event: {event}\ndata: {json.dumps(data)}\n\n")
                await self.flush()
        except StreamClosedError:
            return
        finally:
            await items.aclose()  # type: ignore[attr-defined]  # ends shared sampling
        self.finish()

    def interval(self) -> float:
        """``?interval=`` in seconds (default 1, at least :data:`MIN_INTERVAL`)."""
        raw = self.get_query_argument("interval", "1")
        try:
            value = float(raw)
        except ValueError:
            value = -1.0
        if not MIN_INTERVAL <= value <= 3600:
            raise validation(f"'interval' must be {MIN_INTERVAL} to 3600 seconds", 400)
        return value


def _sample(sample: dict[str, Any]) -> tuple[None, str, Any]:
    return None, "metrics", sample


def _lifecycle(event: LifecycleEvent) -> tuple[int, str, Any]:
    return event.seq, event.type, event.to_json()


class MetricsEventsHandler(EventStreamHandler):
    """``GET /v1/metrics/events?interval=S``: a ``metrics`` event per running box per tick."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        await self.stream(self.manager.metrics.stream(self.interval()), _sample)


class BoxMetricsEventsHandler(EventStreamHandler):
    """``GET /v1/boxes/{id}/metrics/events?interval=S``: the box's samples until it stops."""

    @web.authenticated
    @authorized
    async def get(self, box_id: str) -> None:
        box = require_running(self.manager.get_box(box_id))
        await self.stream(self.manager.metrics.stream(self.interval(), box), _sample)


class LifecycleEventsHandler(EventStreamHandler):
    """``GET /v1/events``: box lifecycle events from now on (or after ``Last-Event-ID``)."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        last = self.request.headers.get("Last-Event-ID", "").strip()
        after = int(last) if last.isdigit() else None
        await self.stream(self.manager.lifecycle.events(after, self.manager.keepalive), _lifecycle)
