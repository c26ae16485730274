"""``%%boxrun``: a cell's Python run in a box, one interpreter session per box."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import sys
from collections.abc import Callable
from typing import Any

from IPython.display import clear_output, publish_display_data

from ..client import BoxUnavailable
from ..outputs import confine
from ..session import BoxSession, Request, open_session, running_box
from .runner import runner

log = logging.getLogger("boxrun.magics")


class BoxCellError(Exception):
    """The cell failed in the box; IPython shows the box's own traceback."""

    def __init__(self, content: dict[str, Any]) -> None:
        super().__init__(f"{content.get('ename', 'Error')}: {content.get('evalue', '')}")
        self.traceback = content.get("traceback") or [str(self)]

    def _render_traceback_(self) -> list[str]:
        return self.traceback


class CellSessions:
    """The interpreters of ``%%boxrun`` cells, by box name; their output is shown in this
    kernel, by the thread running the cell, as it comes."""

    def __init__(self) -> None:
        self.sessions: dict[str, BoxSession] = {}
        self.outbox: queue.Queue[Callable[[], None]] = queue.Queue()
        self.error: dict[str, Any] = {}

    def run(self, name: str, code: str) -> None:
        """Run ``code`` in box ``name``; :class:`BoxCellError` if it fails there."""
        run = runner()
        future = run.submit(self._execute(name, code))
        while not (future.done() and self.outbox.empty()):
            try:
                self.outbox.get(timeout=0.05)()
            except queue.Empty:
                pass
            except KeyboardInterrupt:  # interrupt the box's interpreter, keep its answer
                run.submit(self._interrupt(name))
        reply = future.result()
        if reply.get("status") == "error":
            raise BoxCellError(self.error or reply)

    async def _execute(self, name: str, code: str) -> dict[str, Any]:
        session = await self._session(name)
        self.error = {}
        content = {"code": code, "silent": False, "store_history": True,
                   "user_expressions": {}, "allow_stdin": True, "stop_on_error": True}
        try:
            return await session.request("shell", "execute_request", content) or {}
        except BoxUnavailable:
            self.sessions.pop(name, None)  # the next cell starts a new interpreter
            raise

    async def _session(self, name: str) -> BoxSession:
        session = self.sessions.get(name)
        if session is not None and not session.dead:
            return session
        client = runner().server.client
        session = await open_session(client, await running_box(client, name), None,
                                     self._relay, self._ask_input, log)
        self.sessions[name] = session
        return session

    async def _interrupt(self, name: str) -> None:
        session = self.sessions.get(name)
        if session is not None:
            await session.client.interrupt(session.box["id"], session.sid)

    def _relay(self, msg_type: str, content: dict[str, Any], metadata: dict[str, Any],
               buffers: list[bytes], parent: dict[str, Any]) -> None:
        if msg_type == "error":
            self.error = content  # raised as the cell's error once the reply is in
        else:
            self.outbox.put(lambda: show(msg_type, content, metadata))

    async def _ask_input(self, content: dict[str, Any], req: Request) -> str:
        answer: concurrent.futures.Future[str] = concurrent.futures.Future()

        def ask() -> None:
            try:
                answer.set_result(input(content.get("prompt", "")))
            except Exception as exc:  # no stdin in this frontend: the box's input() fails
                answer.set_exception(exc)
        self.outbox.put(ask)
        return await asyncio.wrap_future(answer)

    def close(self, name: str | None = None) -> None:
        """End the interpreter of box ``name`` (every one when None)."""
        for key in [name] if name else list(self.sessions):
            session = self.sessions.pop(key, None)
            if session is not None:
                runner().run(session.close())


def show(msg_type: str, content: dict[str, Any], metadata: dict[str, Any]) -> None:
    """Show an iopub message of the box in this kernel's output (its active output under
    the BoxRun MIME type, see :mod:`..outputs`)."""
    if msg_type == "stream":
        stream = sys.stderr if content.get("name") == "stderr" else sys.stdout
        stream.write(content.get("text", ""))
        stream.flush()
    elif msg_type in ("display_data", "update_display_data", "execute_result"):
        publish_display_data(confine(content.get("data", {})), content.get("metadata") or metadata,
                             transient=content.get("transient"),
                             update=msg_type == "update_display_data")
    elif msg_type == "clear_output":
        clear_output(wait=content.get("wait", False))
