"""The SessionManager: starts sessions in boxes, relays to them, ends them with their box."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import aclosing
from importlib import resources
from typing import Any

from ..core.errors import BoxRunError
from ..core.events import replay
from ..core.manager import BoxManager
from ..core.models import Box, new_id
from ..core.quota import OutputQuota
from ..store.sessions import SessionStore
from .link import DEFAULT_MAX_MESSAGE, AgentLink, Link
from .models import Session, SessionEvent
from .relay import SessionRun, finish
from .shell import ShellLink

#: Where the agent's files go in a box.
AGENT_DIR = "/root/.boxrun"
AGENT_FILES = ("agent.py", "agent_python.py", "agent_widgets.py")
#: Exit status of the probe → the session kind.
#: (find_spec, not import: importing ipykernel costs half a second)
PROBE = ('command -v python3 >/dev/null 2>&1 || exit 3; python3 -c "import importlib.util'
         ' as u, sys; sys.exit(0 if u.find_spec(\'ipykernel\') else 4)" 2>/dev/null || exit 4')
PROBED = {0: "ipykernel", 4: "python", 3: "shell"}


class SessionManager:
    """Owns the sessions of one server; the session handlers' only entry point."""

    def __init__(self, boxes: BoxManager, store: SessionStore,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE) -> None:
        self.boxes = boxes
        self.store = store
        #: The longest message from an interpreter relayed; longer ones are dropped.
        self.max_message_bytes = max_message_bytes
        self.runs: dict[str, SessionRun] = {}
        boxes.stop_hooks.append(self._box_stopping)

    async def open(self) -> None:
        """Sessions recorded live lost their interpreter with the last server: dead."""
        for session in await self.store.list(live=True):
            seq = await self.store.next_seq(session.id)
            await finish(self.store, self.boxes.bus, session, seq, "the server restarted")

    async def close(self) -> None:
        """End every session."""
        await self._end(list(self.runs.values()), "the server shut down")

    async def _end(self, runs: list[SessionRun], reason: str) -> None:
        for run in runs:
            run.stop(reason)
        await asyncio.gather(*(asyncio.shield(r.task) for r in runs), return_exceptions=True)

    async def _box_stopping(self, box: Box, why: str) -> None:
        await self._end([r for r in self.runs.values() if r.session.box_id == box.id], why)

    # --- sessions -------------------------------------------------------------------

    async def create(self, box_ref: str, kind: str, cwd: str | None, env: dict[str, str]
                     ) -> Session:
        """Start a session; returns once its interpreter is ready (``idle``)."""
        box = self.boxes.get_box(box_ref)
        if kind == "auto":
            kind = await self._probe(box)
        session = Session(new_id("sess"), box.id, kind, "starting", cwd or box.workdir)
        await self.store.put(session)
        try:
            link = await self._link(box, session, env)
        except BaseException as exc:
            await finish(self.store, self.boxes.bus, session, 0, f"it did not start: {exc}")
            raise
        run = SessionRun(self.store, self.boxes.bus, session, link,
                         lambda: self.boxes.backend.metrics(box.boxlite_id or ""),
                         OutputQuota(self.boxes.max_output_bytes))
        self.runs[session.id] = run
        run.task.add_done_callback(lambda _: self.runs.pop(session.id, None))
        await run.wait_ready()
        await self.store.put(session)
        return session

    async def _probe(self, box: Box) -> str:
        process = await self.boxes.spawn(box.id, ["sh", "-c", PROBE], {}, None)
        await process.close_stdin()
        return PROBED.get(await process.wait(), "shell")

    async def _link(self, box: Box, session: Session, env: dict[str, str]) -> Link:
        if session.kind == "shell":
            return await ShellLink.start(self.boxes, box.id, session, env)
        for name in AGENT_FILES:
            source = resources.files(__package__).joinpath(name).read_bytes()
            await self.boxes.upload(box.id, f"{AGENT_DIR}/{name}", _once(source))
        cmd = ["python3", "-u", f"{AGENT_DIR}/agent.py", session.kind]
        return AgentLink(await self.boxes.spawn(box.id, cmd, env, session.cwd), session.id,
                         self.max_message_bytes)

    async def list(self, box_ref: str) -> list[Session]:
        """The sessions of a box, newest first."""
        box = self.boxes.get_box(box_ref)
        return [self._live(s) for s in await self.store.list(box.id)]

    async def get(self, box_ref: str, session_id: str) -> Session:
        """One session of a box; SESSION_NOT_FOUND otherwise."""
        box = self.boxes.get_box(box_ref)
        run = self.runs.get(session_id)
        if run is not None and run.session.box_id == box.id:
            return run.session
        session = await self.store.get(box.id, session_id)
        if session is None:
            raise BoxRunError("SESSION_NOT_FOUND", f"no session '{session_id}' in box {box.id}")
        return session

    def _live(self, session: Session) -> Session:
        run = self.runs.get(session.id)
        return run.session if run is not None else session

    async def _run(self, box_ref: str, session_id: str) -> SessionRun:
        session = await self.get(box_ref, session_id)
        run = self.runs.get(session.id)
        if run is None or session.status == "dead":
            raise BoxRunError("SESSION_DEAD", f"session {session.id} is dead: "
                                              f"{session.error_message}")
        return run

    async def send(self, box_ref: str, session_id: str, req: dict[str, Any]) -> str:
        """Send a Jupyter message to the interpreter; its msg_id."""
        run = await self._run(box_ref, session_id)
        req["msg_id"] = req.get("msg_id") or new_id("msg")
        await run.request(req)
        return req["msg_id"]

    async def interrupt(self, box_ref: str, session_id: str) -> Session:
        """Interrupt the code running (SIGINT to the interpreter)."""
        run = await self._run(box_ref, session_id)
        await run.request({"op": "interrupt"})
        return run.session

    async def restart(self, box_ref: str, session_id: str) -> Session:
        """Replace the interpreter with a fresh one; returns once it is ready."""
        run = await self._run(box_ref, session_id)
        await run.restart()
        return run.session

    async def delete(self, box_ref: str, session_id: str) -> None:
        """End a session and forget it with its events."""
        session = await self.get(box_ref, session_id)
        run = self.runs.get(session.id)
        if run is not None:
            await self._end([run], "the session was deleted")
        await self.store.delete(session.id)

    async def events(self, box_ref: str, session_id: str, after: int = -1
                     ) -> AsyncIterator[SessionEvent | None]:
        """Every event of a session with ``seq > after``, stored then live, ending with
        ``dead`` (at once when the session is dead and ``after`` is at or past it);
        ``None`` stands for a keep-alive (like exec events)."""
        await self.get(box_ref, session_id)

        def pending() -> list[SessionEvent]:
            run = self.runs.get(session_id)
            return run.log.pending if run else []

        async def ended() -> bool:  # its run is gone once its dead event is stored
            return session_id not in self.runs and (
                await self.get(box_ref, session_id)).status == "dead"

        stream = replay(self.boxes.bus, session_id,
                        lambda seq: self.store.events(session_id, seq), pending, after,
                        self.boxes.keepalive, lambda e: e.event == "session" and e.msg_type == "dead",
                        ended)
        async with aclosing(stream):
            async for event in stream:
                yield event


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data
