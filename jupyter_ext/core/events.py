"""An in-memory publish/subscribe bus for live events, and replay-then-live streams."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Generic, Protocol, TypeVar

T = TypeVar("T")

#: Bytes of queued items (as published with their size) past which a subscriber lags.
MAX_QUEUED_BYTES = 64 << 20


class Subscription(Generic[T]):
    """A subscriber's bounded queue of live items.

    A subscriber that falls ``maxsize`` items or ``maxbytes`` bytes behind is marked
    ``lagged`` and gets no more items: it re-reads what it missed from the store and
    subscribes again, so a slow client never makes the server hold unbounded output in
    memory. One item is always taken into an empty queue, whatever its size.
    """

    def __init__(self, bus: EventBus, key: Any, maxsize: int,
                 maxbytes: int = MAX_QUEUED_BYTES) -> None:
        self._bus = bus
        self.key = key
        self.queue: asyncio.Queue[tuple[T, int]] = asyncio.Queue(maxsize)
        self.maxbytes = maxbytes
        self.queued_bytes = 0
        self.lagged = False

    def offer(self, item: T, size: int = 0) -> None:
        """Queue ``item`` (``size`` bytes), or mark the subscription lagged when full."""
        if self.lagged:
            return
        if self.queued_bytes and self.queued_bytes + size > self.maxbytes:
            self.lagged = True
            return
        try:
            self.queue.put_nowait((item, size))
        except asyncio.QueueFull:
            self.lagged = True
            return
        self.queued_bytes += size

    async def get(self, timeout: float) -> T | None:
        """The next item, or ``None`` after ``timeout`` seconds or once lagged and drained."""
        if self.lagged and self.queue.empty():
            return None
        try:
            item, size = await asyncio.wait_for(self.queue.get(), timeout)
        except asyncio.TimeoutError:
            return None
        self.queued_bytes -= size
        return item

    def close(self) -> None:
        """Stop receiving items."""
        self._bus.unsubscribe(self)

    def __enter__(self) -> Subscription[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventBus:
    """Fan-out of items published under a key to that key's subscribers."""

    def __init__(self) -> None:
        self._subs: dict[Any, set[Subscription[Any]]] = defaultdict(set)

    def subscribe(self, key: Any, maxsize: int = 1024) -> Subscription[Any]:
        """Receive every item published under ``key`` from now on."""
        sub: Subscription[Any] = Subscription(self, key, maxsize)
        self._subs[key].add(sub)
        return sub

    def unsubscribe(self, sub: Subscription[Any]) -> None:
        """Forget a subscription."""
        subs = self._subs.get(sub.key)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.key]

    def publish(self, key: Any, item: Any, size: int = 0) -> None:
        """Hand ``item`` (``size`` bytes) to every current subscriber of ``key``; never
        blocks."""
        for sub in tuple(self._subs.get(key, ())):
            sub.offer(item, size)


class Sequenced(Protocol):
    """A stored, numbered event (of an exec or a session)."""

    seq: int


E = TypeVar("E", bound=Sequenced)


async def replay(
    bus: EventBus,
    key: Any,
    stored: Callable[[int], Awaitable[Sequence[E]]],
    pending: Callable[[], Sequence[E]],
    after: int,
    keepalive: float,
    last: Callable[[E], bool],
    ended: Callable[[], Awaitable[bool]] | None = None,
) -> AsyncIterator[E | None]:
    """Every event of ``key`` with ``seq > after``: ``stored(after)`` pages from the store,
    then ``pending()`` (published, not stored yet), then live from ``bus``; each once and
    in order, ending with the event ``last`` accepts. ``None`` stands for a keep-alive.
    A lagging subscriber re-reads the store and subscribes again.

    ``ended()`` says whether the stream's last event is stored already (a finished exec
    or session): then the stream ends with the store, at once when ``after`` is at or
    past that event, instead of waiting for live events that never come."""
    while True:
        with bus.subscribe(key) as sub:
            unstored = list(pending())  # before reading the store: a flush moves them there
            finished = ended is not None and await ended()  # before reading the store too
            while batch := await stored(after):
                for event in batch:
                    yield event
                    after = event.seq
                    if last(event):
                        return
            if finished:
                return
            for event in unstored:
                if event.seq > after:
                    yield event
                    after = event.seq
            while (event := await sub.get(keepalive)) is not None or not sub.lagged:
                if event is None:
                    yield None
                elif event.seq > after:
                    yield event
                    after = event.seq
                    if last(event):
                        return
