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
from .eventlog import EventLog
from .events import EventBus
from .models import Event, Exec, now
from .quota import OutputQuota, utf8_head, utf8_size

log = logging.getLogger(__name__)

#: After the command exits, output still arriving within this gap is kept (a background
#: process that inherited the pipes must not keep the exec open forever).
DRAIN_GAP = 0.2


class ExecRun:
    """Drives one exec from start to its final row and ``exit`` event.

    Its events are numbered, published and stored by an :class:`EventLog`. Output past
    ``quota`` is published live but not stored, after one stored ``truncated`` event;
    with ``stop_at_limit`` the command is killed there instead of running on.
    """

    def __init__(self, store: Store, bus: EventBus, ex: Exec, process: Process,
                 quota: OutputQuota, stop_at_limit: bool = False) -> None:
        self.store = store
        self.bus = bus
        self.exec = ex
        self.process = process
        self.quota = quota
        self.stop_at_limit = stop_at_limit
        self.log: EventLog[Event] = EventLog(ex.id, bus, store.add_events)
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
        if self.quota.exceeded:
            self.log.publish(self.log.number(lambda seq: Event(seq, "log", stream, text)),
                             len(text))
            return
        size = utf8_size(text)
        allowed = self.quota.take(size)
        head = text if allowed == size else utf8_head(text, allowed)
        if head:
            await self.log.append(lambda seq: Event(seq, "log", stream, head), allowed)
        if allowed == size:
            return
        notice = json.dumps(self.quota.notice())
        await self.log.append(lambda seq: Event(seq, "truncated", None, notice))
        if self.stop_at_limit:
            self.stop("failed", f"its output passed the limit of {self.quota.limit} bytes "
                                "and it was stopped")
        rest = text[len(head):]
        self.log.publish(self.log.number(lambda seq: Event(seq, "log", stream, rest)), len(rest))

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
        await self.log.flush()
        await finalize(self.store, self.bus, ex, self.log.seq, payload)


async def finalize(store: Store, bus: EventBus, ex: Exec, seq: int, payload: dict) -> None:
    """Store ``ex`` as finished with its ``exit`` event numbered ``seq``, then publish it."""
    event = Event(seq, "exit", None, json.dumps(payload))
    await store.add_events(ex.id, [event])
    await store.put_exec(ex)
    bus.publish(ex.id, event)
