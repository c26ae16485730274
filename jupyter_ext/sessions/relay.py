"""One live session: relays its interpreter's reports into stored and published events."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..core.errors import BoxRunError
from ..core.eventlog import EventLog
from ..core.events import EventBus
from ..core.models import now
from ..core.quota import OutputQuota
from ..store.sessions import SessionStore
from .agent import death_reason
from .link import Link
from .models import Session, SessionEvent, lifecycle
from .usage import CellUsage, Read

log = logging.getLogger(__name__)

#: Seconds an interpreter has to become ready after a start or restart.
READY_TIMEOUT = 90.0
#: Once a session's output is over its quota, small messages saying where requests are
#: (not what they printed) are still stored, up to this many bytes more.
CONTROL_BYTES = 1 << 20


class SessionRun:
    """Drives one session from start to ``dead``.

    Its events are numbered, published and stored by an :class:`EventLog`;
    ``session.status`` follows the interpreter's iopub ``status`` messages; each
    ``execute_reply`` carries the box's usage during the cell (``metadata.boxrun_usage``),
    from the box's readings through ``usage``. Messages past ``quota`` are published live
    but not stored, after one stored ``session`` event ``truncated`` (see
    :data:`CONTROL_BYTES`).
    """

    def __init__(self, store: SessionStore, bus: EventBus, session: Session, link: Link,
                 usage: Read, quota: OutputQuota, seq: int = 0, attached: bool = False
                 ) -> None:
        self.store = store
        self.bus = bus
        self.session = session
        self.link = link
        self.usage = usage
        self.quota = quota
        self._control = OutputQuota(CONTROL_BYTES)
        self._truncated = quota.exceeded
        self._cells: dict[str, CellUsage] = {}  # by execute_request msg_id
        self.log: EventLog[SessionEvent] = EventLog(session.id, bus, store.add_events, seq)
        self._ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._stop_reason: str | None = None
        self._dead_reason: str | None = None
        self._detaching = False
        #: Whether the interpreter was ready before (a session re-attached after a restart).
        self._started = attached
        if attached:
            self._ready.set_result(None)
        self.task = asyncio.create_task(self._run(), name=f"session {session.id}")

    async def wait_ready(self) -> None:
        """Wait until the interpreter is ready; RUNTIME_ERROR if it dies or takes too long."""
        done, _ = await asyncio.wait({self._ready, self.task}, timeout=READY_TIMEOUT,
                                     return_when=asyncio.FIRST_COMPLETED)
        if self._ready not in done:
            if not done:
                self.stop(f"the interpreter was not ready within {READY_TIMEOUT:.0f} s")
                await asyncio.shield(self.task)
            raise BoxRunError("RUNTIME_ERROR", f"the session's interpreter did not start: "
                                               f"{self.session.error_message}")

    async def request(self, req: dict[str, Any]) -> None:
        """Hand a request to the interpreter; SESSION_DEAD once it has ended."""
        if self.session.status == "dead":
            raise BoxRunError("SESSION_DEAD", f"session {self.session.id} is dead: "
                                              f"{self.session.error_message}")
        if req.get("op") == "send" and req.get("msg_type") == "execute_request":
            self._cells[req["msg_id"]] = CellUsage(self.usage)
        await self.link.request(req)

    async def restart(self) -> None:
        """A fresh interpreter in the same box; returns once it is ready."""
        self._ready = asyncio.get_running_loop().create_future()
        await self.request({"op": "restart"})
        self.session.status = "starting"
        await self.wait_ready()

    def stop(self, reason: str) -> None:
        """Kill the interpreter; the session ends ``dead`` with ``reason``."""
        self._stop_reason = self._stop_reason or reason
        self.link.kill()

    def detach(self) -> bool:
        """Let go of the interpreter, which runs on for a later server to re-attach; the
        session stays live. Whether its link can (else nothing is done)."""
        self._detaching = self._stop_reason is None and self.link.detach()
        return self._detaching

    async def _run(self) -> None:
        try:
            async for report in self.link.reports():
                await self._on(report)
            if self._detaching:
                for cell in self._cells.values():
                    cell.cancel()
                await self.log.flush()
                await self.store.put(self.session)
                return
            code = await self.link.wait()
            reason = self._stop_reason or self._dead_reason or death_reason(code)
        except asyncio.CancelledError:
            self.stop("the server shut down")
            await asyncio.shield(self._finish(self._stop_reason or ""))
            raise
        except Exception as exc:  # noqa: BLE001 - any failure still ends the session
            log.exception("session %s failed", self.session.id)
            self.stop(f"runtime error: {exc}")
            reason = self._stop_reason or str(exc)
        await asyncio.shield(self._finish(reason))

    async def _on(self, report: dict[str, Any]) -> None:
        kind = report.get("type")
        if kind == "message":
            if report["channel"] == "iopub" and report["msg_type"] == "status":
                self.session.status = report["content"].get("execution_state", "idle")
            if report["msg_type"] == "execute_reply":
                cell = self._cells.pop(report.get("parent_msg_id") or "", None)
                if cell is not None:
                    report["metadata"] = {**report.get("metadata", {}),
                                          "boxrun_usage": await cell.stop()}
            await self._relay({k: v for k, v in report.items() if k != "type"})
        elif kind == "ready":
            first, self._started = not self._started, True
            event = "ready" if first else "reattached" if report.get("attached") else "restarted"
            if event != "reattached":  # else the status goes on as the interpreter says
                self.session.status = "idle"
            log.info("session %s: %s (event %d)", self.session.id, event, self.log.seq)
            await self._emit(lifecycle(event, self.session,
                                       {"kernel_info": report.get("kernel_info")}))
            if not self._ready.done():
                self._ready.set_result(None)
        elif kind == "dead":
            self._dead_reason = report.get("reason")

    async def _emit(self, record: dict[str, Any]) -> None:
        """Store, then publish, an event of the server's own (a server after this one
        numbers on past the last stored event; see :data:`.manager.RESTART_GAP`)."""
        await self.log.commit(lambda seq: SessionEvent.of(seq, record))

    async def _relay(self, record: dict[str, Any]) -> None:
        """Store and publish a message from the box, within the quota; else publish it."""
        event = self.log.number(lambda seq: SessionEvent.of(seq, record))
        size = len(event.data)
        if self.quota.admit(size) or (_control(record) and self._control.admit(size)):
            await self.log.add(event, size)
            return
        self.log.publish(event, size)
        if not self._truncated:
            self._truncated = True
            await self._emit(truncated(record.get("parent_msg_id"), self.quota))

    async def _finish(self, reason: str) -> None:
        for cell in self._cells.values():
            cell.cancel()
        await self.log.flush()
        await finish(self.store, self.bus, self.session, self.log.seq, reason)


def _control(record: dict[str, Any]) -> bool:
    msg_type = str(record.get("msg_type"))
    return msg_type in ("status", "input_request") or msg_type.endswith("_reply")


def truncated(parent_msg_id: str | None, quota: OutputQuota) -> dict[str, Any]:
    """The record of the ``session`` event ``truncated``: what was stored of the output."""
    if not isinstance(parent_msg_id, str) or len(parent_msg_id) > 200:  # the box's word
        parent_msg_id = None
    return {"channel": "session", "msg_type": "truncated", "msg_id": None,
            "parent_msg_id": parent_msg_id, "content": quota.notice(), "metadata": {},
            "buffers": []}


async def finish(store: SessionStore, bus: EventBus, session: Session, seq: int, reason: str
                 ) -> None:
    """Store ``session`` as dead with ``reason`` and its ``dead`` event numbered ``seq``."""
    session.status, session.ended_at, session.error_message = "dead", now(), reason
    event = SessionEvent.of(seq, lifecycle("dead", session))
    await store.add_events(session.id, [event])
    await store.put(session)
    bus.publish(session.id, event)
