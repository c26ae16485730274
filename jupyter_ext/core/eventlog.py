"""Numbered events published live at once and stored in batches (execs, sessions)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, Protocol, TypeVar

from .events import EventBus


class Numbered(Protocol):
    """An event with its sequence number."""

    seq: int


E = TypeVar("E", bound=Numbered)

#: Store pending events once this many are waiting, or this many bytes, or after a delay.
FLUSH_EVENTS = 256
FLUSH_BYTES = 1 << 20
FLUSH_DELAY = 0.05


class EventLog(Generic[E]):
    """The events of one exec or session.

    Each event gets the next ``seq``, goes to live subscribers at once and into
    ``pending`` until a batch stores it in one transaction, so a replay (store, then
    ``pending``, then live) misses nothing and repeats nothing. An event
    given to :meth:`publish` (output past the quota) reaches live subscribers only.
    """

    def __init__(self, key: str, bus: EventBus,
                 store: Callable[[str, list[E]], Awaitable[None]], seq: int = 0) -> None:
        self.key = key
        self.bus = bus
        self.store = store
        self.seq = seq
        self.pending: list[E] = []
        self._sizes: list[int] = []
        self._lock = asyncio.Lock()
        self._timer: asyncio.TimerHandle | None = None

    def number(self, make: Callable[[int], E]) -> E:
        """The event ``make(seq)`` with the next ``seq``."""
        event = make(self.seq)
        self.seq += 1
        return event

    def publish(self, event: E, size: int = 0) -> None:
        """Hand a numbered event (``size`` bytes of data) to live subscribers only; it is
        never stored."""
        self.bus.publish(self.key, event, size)

    async def append(self, make: Callable[[int], E], size: int = 0) -> E:
        """Number, publish and queue the event ``make(seq)`` (``size`` bytes of data)."""
        return await self.add(self.number(make), size)

    async def add(self, event: E, size: int = 0) -> E:
        """Publish and queue a numbered event (``size`` bytes of data)."""
        self.pending.append(event)
        self._sizes.append(size)
        self.bus.publish(self.key, event, size)
        if len(self.pending) >= FLUSH_EVENTS or sum(self._sizes) >= FLUSH_BYTES:
            await self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(FLUSH_DELAY, self._flush_later)
        return event

    async def commit(self, make: Callable[[int], E], size: int = 0) -> E:
        """Number the event ``make(seq)``, store it (after those pending) and only then
        publish it: what a later server numbers on from must be stored before anyone
        sees it."""
        event = self.number(make)
        await self._store_pending(event)
        self.bus.publish(self.key, event, size)
        return event

    def _flush_later(self) -> None:
        self._timer = None
        asyncio.ensure_future(self.flush())

    async def flush(self) -> None:
        """Store the pending events in one transaction."""
        await self._store_pending()

    async def _store_pending(self, *unpublished: E) -> None:
        """Store the pending events, then ``unpublished`` ones, in one transaction."""
        async with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            batch = list(self.pending)
            if batch or unpublished:
                await self.store(self.key, [*batch, *unpublished])
                del self.pending[: len(batch)], self._sizes[: len(batch)]
