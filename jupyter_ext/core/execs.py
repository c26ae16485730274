"""One running exec: pumps its output into events, batches them into the store."""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import json
import logging
from collections.abc import AsyncIterator

from ..backends.base import Process
from ..store.db import Store
from .events import EventBus
from .models import Event, Exec, now

log = logging.getLogger(__name__)

#: Flush stored events once this many are pending, or this many bytes, or after a delay.
FLUSH_EVENTS = 256
FLUSH_BYTES = 1 << 20
FLUSH_DELAY = 0.05
#: After the command exits, output still arriving within this gap is kept (a background
#: process that inherited the pipes must not keep the exec open forever).
DRAIN_GAP = 0.2


class ExecRun:
    """Drives one exec from start to its final row and ``exit`` event.

    Events are published live at once and stored in batches; ``pending`` holds the
    ones not stored yet so that a subscriber's replay misses nothing.
    """

    def __init__(self, store: Store, bus: EventBus, ex: Exec, process: Process) -> None:
        self.store = store
        self.bus = bus
        self.exec = ex
        self.process = process
        self.pending: list[Event] = []
        self._pending_bytes = 0
        self._seq = 0
        self._flush_lock = asyncio.Lock()
        self._flush_timer: asyncio.TimerHandle | None = None
        self._stop_reason: tuple[str, str] | None = None
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Run in a background task."""
        self.task = asyncio.create_task(self._run(), name=f"exec {self.exec.id}")

    def stop(self, status: str, reason: str) -> None:
        """Kill the command and end the exec with ``status`` and ``reason``."""
        if self._stop_reason is None:
            self._stop_reason = (status, reason)
        self.process.kill()

    async def _run(self) -> None:
        exit_code: int | None = None
        try:
            timeout = self.exec.timeout_ms / 1000 if self.exec.timeout_ms else None
            pumps = [
                asyncio.create_task(self._pump("stdout", self.process.stdout)),
                asyncio.create_task(self._pump("stderr", self.process.stderr)),
            ]
            try:
                exit_code = await asyncio.wait_for(self.process.wait(), timeout)
            except asyncio.TimeoutError:
                self.stop("failed", f"timed out after {self.exec.timeout_ms} ms and was killed")
                exit_code = await self.process.wait()
            await asyncio.gather(*pumps)
        except asyncio.CancelledError:
            self.stop("failed", "the server shut down while the command ran")
            await asyncio.shield(self._finish(None))
            raise
        except Exception as exc:  # noqa: BLE001 - any failure still finalises the exec
            log.exception("exec %s failed", self.exec.id)
            self.stop("failed", f"runtime error: {exc}")
        await asyncio.shield(self._finish(exit_code))

    async def _pump(self, stream: str, chunks: AsyncIterator[bytes]) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        waiter = asyncio.ensure_future(self.process.wait())
        try:
            while True:
                nxt = asyncio.ensure_future(anext(chunks, b""))
                if not waiter.done():
                    await asyncio.wait({nxt, waiter}, return_when=asyncio.FIRST_COMPLETED)
                if not nxt.done():
                    done, _ = await asyncio.wait({nxt}, timeout=DRAIN_GAP)
                    if not done:
                        nxt.cancel()
                        break
                chunk = nxt.result()
                if not chunk:
                    break
                await self._emit(stream, decoder.decode(chunk))
            await self._emit(stream, decoder.decode(b"", final=True))
        finally:
            waiter.cancel()
            with contextlib.suppress(Exception):
                await chunks.aclose()  # type: ignore[attr-defined]

    async def _emit(self, stream: str, text: str) -> None:
        if not text:
            return
        event = Event(self._seq, "log", stream, text)
        self._seq += 1
        self.pending.append(event)
        self._pending_bytes += len(text)
        self.bus.publish(self.exec.id, event)
        if len(self.pending) >= FLUSH_EVENTS or self._pending_bytes >= FLUSH_BYTES:
            await self.flush()
        elif self._flush_timer is None:
            loop = asyncio.get_running_loop()
            self._flush_timer = loop.call_later(FLUSH_DELAY, self._flush_later)

    def _flush_later(self) -> None:
        self._flush_timer = None
        asyncio.ensure_future(self.flush())

    async def flush(self) -> None:
        """Store the pending events in one transaction."""
        async with self._flush_lock:
            if self._flush_timer is not None:
                self._flush_timer.cancel()
                self._flush_timer = None
            batch = list(self.pending)
            if batch:
                await self.store.add_events(self.exec.id, batch)
                del self.pending[: len(batch)]
                self._pending_bytes -= sum(len(e.data) for e in batch)

    async def _finish(self, exit_code: int | None) -> None:
        status, reason = self._stop_reason or (
            ("succeeded", None) if exit_code == 0 else ("failed", None)
        )
        ex = self.exec
        ex.status, ex.exit_code, ex.error_message = status, exit_code, reason
        ex.finished_at = now()
        payload: dict[str, object] = {"exit_code": exit_code}
        if reason:
            payload["error"] = reason
        await self.flush()
        await finalize(self.store, self.bus, ex, self._seq, payload)


async def finalize(store: Store, bus: EventBus, ex: Exec, seq: int, payload: dict) -> None:
    """Store ``ex`` as finished with its ``exit`` event numbered ``seq``, then publish it."""
    event = Event(seq, "exit", None, json.dumps(payload))
    await store.add_events(ex.id, [event])
    await store.put_exec(ex)
    bus.publish(ex.id, event)
