"""The SessionManager: starts sessions in boxes, relays to them, ends them with their box."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from ..core.boxlog import escape
from ..core.errors import BoxRunError, validation
from ..core.events import replay
from ..core.manager import BoxManager
from ..core.models import Box, Snapshot, new_id
from ..core.quota import OutputQuota
from ..store.sessions import SessionStore
from .commands import (
    CLAIM_GONE,
    CLAIM_TAKEN,
    agent_command,
    claim_command,
    relay_command,
    socket_path,
)
from .install import install_agent
from .link import DEFAULT_MAX_MESSAGE, Link, ListeningLink
from .models import Session, SessionEvent
from .relay import SessionRun, finish
from .shell import ShellLink

log = logging.getLogger(__name__)

#: The kinds whose interpreter outlives its link (an agent listening in the box).
LISTENING = ("ipykernel", "python")
#: Seconds a session's interpreter has to get ready for a snapshot of its box.
PREPARE_TIMEOUT = 30.0
#: Bytes of what the agent's start command prints that are kept (for an error).
START_OUTPUT = 4096
#: How far event numbers jump when a new server re-attaches a session: past those the last
#: server published but did not store (a batch not yet flushed, output past the quota),
#: which its clients may have seen.
RESTART_GAP = 1_000_000
#: Seconds the agent's start command has to say it listens.
START_TIMEOUT = 60.0
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
        """Re-attach the sessions recorded live whose interpreter may still run (an agent
        listening in a running box); the others lost it with the last server: dead."""
        for session in await self.store.list(live=True):
            box = self.boxes.boxes.get(session.box_id)
            if box is not None and box.status == "running" and session.kind in LISTENING:
                seq, stored, truncated = await self.store.tally(session.id)
                quota = OutputQuota(self.boxes.max_output_bytes)
                quota.stored, quota.exceeded = stored, truncated
                link = self._listening(box, socket_path(session.id), session.id, True)
                self._start_run(box, session, link, quota, seq + RESTART_GAP, attached=True)
                log.info("session %s: re-attaching to its interpreter", session.id)
                continue
            seq = await self.store.next_seq(session.id)
            await finish(self.store, self.boxes.bus, session, seq, "the server restarted")

    async def close(self) -> None:
        """Let go of every session: interpreters that can run on without the server are
        left running (the session stays live, for the next server); the others end."""
        runs = list(self.runs.values())
        ending = [r for r in runs if not r.detach()]
        await self._end(ending, "the server shut down")
        await asyncio.gather(*(asyncio.shield(r.task) for r in runs), return_exceptions=True)

    @contextlib.asynccontextmanager
    async def snapshot_ready(self, box: Box) -> AsyncIterator[None]:
        """While a snapshot of ``box`` is taken: its live interpreters have run what the
        backend needs of them (:meth:`~jupyter_ext.backends.base.Backend.snapshot_prepare`),
        silently, and none has a relay in the box (one dying with a checkpoint would be
        retried against a box not running yet); they re-attach after."""
        runs = self._live_runs(box)
        for run in runs:
            if (code := self.boxes.backend.snapshot_prepare(run.session.kind)) is not None:
                await self._run_silently(run, code)
        async with self._held(runs):
            yield

    @contextlib.asynccontextmanager
    async def restore_ready(self, box: Box) -> AsyncIterator[None]:
        """While ``box`` is restored from a memory snapshot: its live sessions have no
        relay (one attaching to the stopped box would find no interpreter); they
        re-attach to their restored interpreters after."""
        async with self._held(self._live_runs(box), restored=True):
            yield

    def _live_runs(self, box: Box) -> list[SessionRun]:
        return [r for r in self.runs.values()
                if r.session.box_id == box.id and r.session.status != "dead"]

    @staticmethod
    @contextlib.asynccontextmanager
    async def _held(runs: list[SessionRun], restored: bool = False) -> AsyncIterator[None]:
        try:
            for run in runs:
                await run.link.hold()
            yield
        finally:
            for run in runs:
                run.link.release(restored)

    async def _run_silently(self, run: SessionRun, code: str) -> None:
        """Run ``code`` in the session's interpreter, not counted nor in its history;
        RUNTIME_ERROR if it fails or takes more than :data:`PREPARE_TIMEOUT` s."""
        msg_id = new_id("msg")
        with self.boxes.bus.subscribe(run.session.id) as sub:
            await run.request({"op": "send", "channel": "shell", "msg_type": "execute_request",
                               "msg_id": msg_id, "metadata": {}, "buffers": [], "content": {
                                   "code": code, "silent": True, "store_history": False,
                                   "user_expressions": {}, "allow_stdin": False,
                                   "stop_on_error": False}})
            deadline = asyncio.get_running_loop().time() + PREPARE_TIMEOUT
            while (left := deadline - asyncio.get_running_loop().time()) > 0:
                event = await sub.get(left)
                if event is None or event.msg_type != "execute_reply":
                    continue
                record = event.to_json()
                if record.get("parent_msg_id") == msg_id:
                    if record["content"].get("status") != "ok":
                        raise BoxRunError("RUNTIME_ERROR", "preparing session "
                                          f"{run.session.id} for a snapshot failed: "
                                          f"{record['content'].get('evalue', '')}"[:500])
                    return
        raise BoxRunError("RUNTIME_ERROR", f"session {run.session.id} did not get ready for "
                          "a snapshot in time")

    async def _end(self, runs: list[SessionRun], reason: str) -> None:
        for run in runs:
            run.stop(reason)
        await asyncio.gather(*(asyncio.shield(r.task) for r in runs), return_exceptions=True)

    async def _box_stopping(self, box: Box, why: str) -> None:
        """End the box's sessions, those not attached (yet) included."""
        await self._end([r for r in self.runs.values() if r.session.box_id == box.id], why)
        for session in await self.store.list(box.id, live=True):
            if session.id not in self.runs:
                await finish(self.store, self.boxes.bus, session,
                             await self.store.next_seq(session.id), why)

    # --- sessions -------------------------------------------------------------------

    async def create(self, box_ref: str, kind: str, cwd: str | None, env: dict[str, str]
                     ) -> Session:
        """Start a session; returns once its interpreter is ready (``idle``)."""
        box = self.boxes.get_box(box_ref)
        sid = new_id("sess")
        # a fresh box on a backend with warm interpreters gets one restored, listening
        warm = await self.boxes.warm_session(box.id, kind, socket_path(sid), cwd, env)
        if warm is not None:
            return await self.attach(box.id, warm, socket_path(sid), cwd, sid)
        if kind == "auto":
            kind = await self._probe(box)
        session = Session(sid, box.id, kind, "starting", cwd or box.workdir)
        await self.store.put(session)
        try:
            link = await self._link(box, session, env)
        except BaseException as exc:
            await finish(self.store, self.boxes.bus, session, 0, f"it did not start: {exc}")
            raise
        return await self._ready(self._start_run(box, session, link))

    async def attach(self, box_ref: str, kind: str, path: str, cwd: str | None = None,
                     session_id: str | None = None) -> Session:
        """A new session (``session_id``, else a new id) on an interpreter of ``kind``
        already listening on ``path`` in the box (started by
        :func:`.commands.agent_command`, e.g. before a snapshot); returns once it is ready."""
        box = self.boxes.get_box(box_ref)
        if kind not in LISTENING:
            raise BoxRunError("VALIDATION_ERROR", f"'kind' must be one of {', '.join(LISTENING)}")
        session = Session(session_id or new_id("sess"), box.id, kind, "starting",
                          cwd or box.workdir)
        await self.store.put(session)
        return await self._ready(self._start_run(box, session,
                                                 self._listening(box, path, session.id)))

    async def attach_to(self, box_ref: str, source_id: str) -> Session:
        """A new session on the interpreter of session ``source_id`` that box ``box_ref``
        carries: the box is a fork of a memory snapshot of the box that session was of, and
        the interpreter was running when the snapshot was taken. Each such interpreter takes
        one session. SESSION_NOT_FOUND or VALIDATION_ERROR, in words, otherwise."""
        box = self.boxes.get_box(box_ref)
        if box.status != "running":
            raise BoxRunError("BOX_NOT_RUNNING", f"box {box.id} is not running")
        origin = self._origin(box)
        source = await self.store.get(origin.box_id, source_id)
        if source is None:
            raise BoxRunError("SESSION_NOT_FOUND", (
                f"box {box.id} carries no interpreter of session '{source_id}': only sessions "
                f"of box {origin.box_id}, whose snapshot {origin.name} it is a fork of, can be "
                "attached")[:500])
        if source.kind not in LISTENING:
            raise validation(f"session {source.id} is a {source.kind} session: only "
                             f"{' and '.join(LISTENING)} interpreters can be attached")
        session_id = new_id("sess")
        claim = await self.boxes.spawn(
            box.id, claim_command(socket_path(source.id), socket_path(session_id)), {}, None)
        await claim.close_stdin()
        try:
            code = await asyncio.wait_for(claim.wait(), START_TIMEOUT)
        except asyncio.TimeoutError:
            claim.kill()
            raise BoxRunError("RUNTIME_ERROR", "attaching took over "
                                               f"{START_TIMEOUT:.0f} s in the box") from None
        if code == CLAIM_GONE:
            raise BoxRunError("SESSION_NOT_FOUND", f"box {box.id} carries no interpreter of "
                              f"session {source.id}: it was not running when snapshot "
                              f"{origin.name} was taken")
        if code == CLAIM_TAKEN:
            raise validation(f"the interpreter of session {source.id} in box {box.id} has a "
                             "session already: it takes one")
        if code != 0:
            raise BoxRunError("RUNTIME_ERROR", f"attaching failed in the box (exit status {code})")
        return await self.attach(box.id, source.kind, socket_path(session_id), source.cwd,
                                 session_id)

    def _origin(self, box: Box) -> Snapshot:
        """The memory snapshot ``box`` is a fork of; VALIDATION_ERROR if it is none."""
        snaps = self.boxes.snapshots
        snap = snaps.snaps.get(box.snapshot or "") if snaps is not None else None
        if snap is None:
            raise validation(f"box {box.id} is not a fork of a snapshot (or its snapshot was "
                             "removed): it carries no interpreter of another session")
        if not snap.memory:
            raise validation(f"box {box.id} is a fork of snapshot {snap.name}, of its disk "
                             "only: no interpreter went on in it; start a new session")
        return snap

    def _start_run(self, box: Box, session: Session, link: Link,
                   quota: OutputQuota | None = None, seq: int = 0, attached: bool = False
                   ) -> SessionRun:
        run = SessionRun(self.store, self.boxes.bus, session, link,
                         lambda: self.boxes.backend.metrics(box.boxlite_id or ""),
                         quota or OutputQuota(self.boxes.max_output_bytes), seq, attached)
        self.runs[session.id] = run
        run.task.add_done_callback(lambda _: self.runs.pop(session.id, None))
        return run

    async def _ready(self, run: SessionRun) -> Session:
        await run.wait_ready()
        await self.store.put(run.session)
        return run.session

    async def _probe(self, box: Box) -> str:
        process = await self.boxes.spawn(box.id, ["sh", "-c", PROBE], {}, None)
        await process.close_stdin()
        return PROBED.get(await process.wait(), "shell")

    async def _link(self, box: Box, session: Session, env: dict[str, str]) -> Link:
        if session.kind == "shell":
            return await ShellLink.start(self.boxes, box.id, session, env)
        await install_agent(self.boxes.backend, box.boxlite_id or "")
        path = socket_path(session.id)
        await self._start_agent(box, session, env, path)
        return self._listening(box, path, session.id)

    async def _start_agent(self, box: Box, session: Session, env: dict[str, str], path: str
                           ) -> None:
        """Run the agent's start command; RUNTIME_ERROR, with its stderr, unless it says it
        listens."""
        starter = await self.boxes.spawn(box.id, agent_command(session.kind, path), env,
                                         session.cwd)
        await starter.close_stdin()
        try:
            out, err = await asyncio.wait_for(
                asyncio.gather(_head(starter.stdout), _head(starter.stderr)), START_TIMEOUT)
        except asyncio.TimeoutError:
            starter.kill()
            raise BoxRunError("RUNTIME_ERROR", "the session's agent did not start within "
                                               f"{START_TIMEOUT:.0f} s") from None
        code = await starter.wait()
        try:
            listening = json.loads(out)
        except ValueError:
            listening = None
        if code != 0 or not isinstance(listening, dict) or listening.get("type") != "listening":
            text = escape(err.decode(errors="replace").strip()[-500:]) or f"exit status {code}"
            raise BoxRunError("RUNTIME_ERROR", f"the session's agent did not start: {text}")

    def _listening(self, box: Box, path: str, name: str, reattaching: bool = False
                   ) -> ListeningLink:
        """The link to an agent listening on ``path`` in ``box``, through relay execs."""
        return ListeningLink(lambda: self.boxes.spawn(box.id, relay_command(path), {}, None),
                             name, self.max_message_bytes, reattaching)

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


async def _head(chunks: AsyncIterator[bytes]) -> bytes:
    """The first :data:`START_OUTPUT` bytes of a stream, read to its end."""
    kept = b""
    async for chunk in chunks:
        kept = (kept + chunk)[:START_OUTPUT]
    return kept
