"""Box lifecycle events (created, started, stopped, removed, failed) and boot timings."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from .errors import BoxRunError
from .events import EventBus, replay
from .models import Box, now

#: EventBus key of lifecycle events.
KEY = "lifecycle"
#: Events kept for clients that reconnect with ``Last-Event-ID``.
HISTORY = 1024


@dataclass(frozen=True)
class LifecycleEvent:
    """One transition of one box; ``seq`` (its SSE ``id``) grows by one per event,
    server-wide."""

    seq: int
    type: str
    box: dict[str, Any]
    at: str
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The SSE ``data`` payload."""
        return {"type": self.type, "box": self.box, "at": self.at, **self.extra}


class Lifecycle:
    """Publishes lifecycle events on the bus and remembers how long boxes took to boot."""

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus
        self.history: deque[LifecycleEvent] = deque(maxlen=HISTORY)
        self.timings: dict[str, dict[str, float]] = {}
        self._seq = 0

    def publish(self, kind: str, box: Box | dict[str, Any], **extra: Any) -> None:
        """Announce that ``box`` (a box, or what is left of a removed one) was ``kind``
        (its state now is the payload, with ``extra`` such as the snapshot concerned)."""
        self._seq += 1
        event = LifecycleEvent(self._seq, kind, box.to_json() if isinstance(box, Box) else box,
                               now(), extra)
        self.history.append(event)
        self.bus.publish(KEY, event)
        if kind == "removed" and isinstance(box, Box):
            self.timings.pop(box.id, None)

    def failed(self, box: Box, exc: BaseException) -> None:
        """Announce that creating or starting ``box`` failed with ``exc``."""
        if isinstance(exc, BoxRunError):
            box.error_code, box.error_message = exc.code, exc.message
        elif isinstance(exc, Exception):
            box.error_code, box.error_message = "RUNTIME_ERROR", str(exc)
        self.publish("failed", box)

    @contextmanager
    def timed(self, box_id: str, key: str) -> Iterator[None]:
        """Record how many milliseconds the block took as ``timings[box_id][key]``."""
        start = time.perf_counter()
        yield
        self.timings.setdefault(box_id, {})[key] = round((time.perf_counter() - start) * 1000, 1)

    def events(self, after: int | None, keepalive: float) -> AsyncIterator[LifecycleEvent | None]:
        """Events with ``seq > after`` (``None``: from now on), each once and in order, from
        the history kept, then live; ``None`` stands for a keep-alive. Never ends."""
        return replay(self.bus, KEY, _nothing_stored, lambda: list(self.history),
                      self._seq if after is None else after, keepalive, lambda _: False)


async def _nothing_stored(after: int) -> list[LifecycleEvent]:
    """Lifecycle events live only in the history."""
    return []
