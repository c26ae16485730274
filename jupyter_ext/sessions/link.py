"""The connection to a session's interpreter: requests in, reports out (docs/sessions.md)."""

from __future__ import annotations

import abc
import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from ..backends.base import Process
from ..core.boxlog import BoxLog
from ..core.errors import BoxRunError
from ..core.lines import LineSplitter, Overlong
from .agent import message
from .commands import RELAY_REFUSED

log = logging.getLogger(__name__)

#: Default of ``BoxRunServer.max_message_bytes``: the longest report line kept.
DEFAULT_MAX_MESSAGE = 8 << 20
_FIELD = re.compile(rb'"(msg_type|parent_msg_id)": "([A-Za-z0-9_.:-]{1,100})"')


class Link(abc.ABC):
    """An interpreter in a box, spoken to with the agent's protocol.

    Requests are ``{"op": "send", "channel", "msg_type", "msg_id", "content",
    "metadata", "buffers"}``, ``{"op": "interrupt"}`` and ``{"op": "restart"}``; reports
    are ``{"type": "message", …}`` (one Jupyter message), ``{"type": "ready",
    "kernel_info"}`` (after start and restart) and ``{"type": "dead", "reason"}``.
    """

    @abc.abstractmethod
    def reports(self) -> AsyncIterator[dict[str, Any]]:
        """The interpreter's reports, ending when it has ended."""

    @abc.abstractmethod
    async def request(self, req: dict[str, Any]) -> None:
        """Hand a request to the interpreter."""

    @abc.abstractmethod
    async def wait(self) -> int:
        """Wait for the interpreter's process to end; its exit code."""

    @abc.abstractmethod
    def kill(self) -> None:
        """Kill the interpreter. Idempotent."""

    def detach(self) -> bool:
        """Let go of the interpreter, leaving it running for a later attach (:meth:`reports`
        then ends); whether it can (else nothing is done)."""
        return False

    async def hold(self) -> None:
        """Have nothing of the server's in the box (a relay's stdio are the host's, which
        a memory snapshot cannot hold) until :meth:`release`; the interpreter runs on."""

    def release(self, restored: bool = False) -> None:
        """Attach again after :meth:`hold`; ``restored``: the interpreter was restored
        from a snapshot meanwhile (what it said before is not to be asked for again)."""


class AgentLink(Link):
    """The agent (``agent.py``) as a process in the box: JSON lines on its stdin/stdout;
    its stderr goes to the server's log through a :class:`BoxLog`. A report line over
    ``max_message`` bytes is skipped (in linear time, without keeping it) and reported as
    a ``stream`` message on stderr saying so."""

    def __init__(self, process: Process, name: str, max_message: int = DEFAULT_MAX_MESSAGE
                 ) -> None:
        self.process = process
        self.name = name
        self.max_message = max_message
        self._junk = BoxLog(log, f"{name} (not a report)", level=logging.WARNING)
        self._stderr = asyncio.create_task(self._log_stderr())
        #: The number of the next line from a listening agent, once its ``resumed``
        #: report said where they start (``agent_listen.py``); its lines are counted.
        self.next_line: int | None = None

    async def _log_stderr(self) -> None:
        stderr = BoxLog(log, f"{self.name} stderr")
        async for chunk in self.process.stderr:
            stderr.write(chunk)
        stderr.close()

    async def reports(self) -> AsyncIterator[dict[str, Any]]:
        lines = LineSplitter(self.max_message)
        async for chunk in self.process.stdout:
            for line in lines.feed(chunk):
                report = self._report(line)
                self._count(report)
                if report is not None:
                    yield report
        self._junk.close()
        with contextlib.suppress(asyncio.CancelledError):
            await self._stderr

    def _count(self, report: dict[str, Any] | None) -> None:
        """Number a line of a listening agent (its ``resumed`` and greeting are not)."""
        report = report or {}
        if report.get("type") == "resumed":
            start = report.get("next")
            valid = isinstance(start, int) and not isinstance(start, bool) and start >= 0
            self.next_line = start if valid else None
        elif self.next_line is not None and not (
                report.get("type") == "ready" and report.get("attached") is True):
            self.next_line += 1

    def _report(self, line: bytes | Overlong) -> dict[str, Any] | None:
        if isinstance(line, Overlong):
            return self._dropped(line)
        try:
            report = json.loads(line)
        except ValueError:
            report = None
        if not isinstance(report, dict):
            self._junk.write(line + b"\n")
            return None
        return report

    def _dropped(self, line: Overlong) -> dict[str, Any]:
        """The error output standing for a message over the limit (attributed to the
        request its first bytes name)."""
        fields = {k.decode(): v.decode() for k, v in _FIELD.findall(line.head)}
        kind = fields.get("msg_type", "message")
        text = (f"[BoxRun dropped a {kind} message of {line.size} bytes from the box: over "
                f"the limit of {self.max_message} bytes (BoxRunServer.max_message_bytes)]\n")
        log.warning("session %s: dropped a %s message of %d bytes (limit %d)",
                    self.name, kind, line.size, self.max_message)
        return message("iopub", "stream", {"name": "stderr", "text": text},
                       fields.get("parent_msg_id") or None)

    async def request(self, req: dict[str, Any]) -> None:
        await self.process.write_stdin(json.dumps(req).encode() + b"\n")

    async def wait(self) -> int:
        return await self.process.wait()

    def kill(self) -> None:
        self.process.kill()


#: Relays in a row that may end without a report before the interpreter counts as lost.
RETRIES = 3
#: Seconds between the starts of two relays at least: a box that ends its relays at once
#: costs the server one exec a second, not a loop.
RELAY_INTERVAL = 1.0
#: Seconds a new relay has to bring the agent's first line (``resumed``); else it is
#: killed and counts as one that brought nothing.
ANSWER_WAIT = 15.0
#: Seconds a request waits for a relay to be attached.
ATTACH_WAIT = 30.0
#: Seconds the agent has to end the interpreter after ``close`` before the relay is killed.
CLOSE_WAIT = 3.0
CLOSE = {"op": "close"}


class ListeningLink(Link):
    """An agent listening on a socket in the box (``agent_listen.py``), reached through
    relay execs (``relay()`` starts one, see :func:`.commands.relay_command`). When a
    relay ends while the agent still listens (the server restarted, the relay was killed)
    another attaches, asking the agent again for the lines the last relay may have lost
    (``resume``); the interpreter is gone when nothing listens on the socket, when it
    reported ``dead``, or after :data:`RETRIES` relays in a row brought nothing. The
    interpreter's stderr (``log`` reports) goes to the server's log through a BoxLog."""

    def __init__(self, relay: Callable[[], Awaitable[Process]], name: str,
                 max_message: int = DEFAULT_MAX_MESSAGE, reattaching: bool = False) -> None:
        self._relay = relay
        self._since = time.monotonic() if reattaching else None
        self.name = name
        self.max_message = max_message
        self._link: AgentLink | None = None
        self._attached = asyncio.Event()
        self._closing = False
        self._detached = False
        self._code = 0
        self._closer: asyncio.Task[None] | None = None
        self._go = asyncio.Event()  # cleared while held: no relay attaches
        self._go.set()
        #: The number of the next line from the agent (None: only what it kept for no client).
        self._next: int | None = None
        self._stderr = BoxLog(log, f"{name} stderr")
        #: Seconds the last re-attach took: from the relay's end (or the link's making,
        #: ``reattaching`` at a server's start) to the first report of the next relay.
        self.reattach_seconds: float | None = None

    async def reports(self) -> AsyncIterator[dict[str, Any]]:
        fruitless, ended = 0, self._since
        try:
            while True:
                await self._go.wait()  # set again by release and detach
                if self._detached:
                    return
                begun = time.monotonic()
                try:
                    self._link = AgentLink(await self._relay(), self.name, self.max_message)
                except BoxRunError as exc:  # the box is not running (any more)
                    fruitless += 1
                    if self._closing or fruitless >= RETRIES:
                        yield {"type": "dead", "reason": str(exc)}
                        return
                    # a box whose sandbox just ended: the manager, stopping it, is about
                    # to end the session with the reason (out of memory, ...)
                    await asyncio.sleep(RELAY_INTERVAL)
                    continue
                with contextlib.suppress(OSError):  # else its reports end at once
                    await self._link.request({"op": "resume", "next": self._next})
                if self._detached:  # while the relay started
                    self._link.kill()
                elif self._closing:
                    self._closer = asyncio.ensure_future(self._close(self._link))
                self._attached.set()
                heard = dead = False
                async for report in _answered(self._link, self.name):
                    if report.get("type") == "resumed":
                        continue
                    if report.get("type") == "log":
                        self._stderr.write(str(report.get("text")).encode())
                        continue
                    if not heard and ended is not None:
                        self.reattach_seconds = time.monotonic() - ended
                        log.info("session %s re-attached in %.3f s", self.name,
                                 self.reattach_seconds)
                    heard, dead = True, dead or report.get("type") == "dead"
                    yield report
                self._attached.clear()
                if self._link.next_line is not None:
                    self._next = self._link.next_line
                self._code = await self._link.wait()
                if dead or self._detached or self._closing:
                    return
                if self._code == RELAY_REFUSED:
                    yield {"type": "dead", "reason": "the interpreter is gone (nothing "
                                                     "listens on its socket in the box)"}
                    return
                fruitless = 0 if heard else fruitless + 1
                if fruitless >= RETRIES:
                    yield {"type": "dead", "reason": f"the interpreter did not answer "
                                                     f"{RETRIES} relays in a row"}
                    return
                ended = time.monotonic()
                log.info("session %s: its relay ended (%d); attaching again", self.name,
                         self._code)
                await asyncio.sleep(max(0.1 * fruitless, begun + RELAY_INTERVAL - ended))
        finally:
            self._attached.clear()
            self._stderr.close()
            if self._closer is not None:
                self._closer.cancel()

    async def request(self, req: dict[str, Any]) -> None:
        for _ in range(2):  # a relay that ended under a write took none of it: again
            try:
                await asyncio.wait_for(self._attached.wait(), ATTACH_WAIT)
            except asyncio.TimeoutError:
                raise BoxRunError("RUNTIME_ERROR", "the session's interpreter is not attached"
                                  f" (no relay to it for {ATTACH_WAIT:.0f} s)") from None
            assert self._link is not None
            try:
                await self._link.request(req)
                return
            except OSError:
                self._attached.clear()
        raise BoxRunError("RUNTIME_ERROR", "the relay to the session's interpreter failed")

    async def _close(self, link: AgentLink) -> None:
        with contextlib.suppress(OSError, RuntimeError):
            await link.request(CLOSE)
        await asyncio.sleep(CLOSE_WAIT)
        link.kill()

    async def wait(self) -> int:
        return self._code

    async def hold(self) -> None:
        self._go.clear()
        link = self._link
        if link is not None and self._attached.is_set():
            link.kill()
            await link.wait()

    def release(self, restored: bool = False) -> None:
        if restored:  # the agent's line numbers went back with it
            self._next = None
        self._go.set()

    def kill(self) -> None:
        if self._closing:
            return
        self._closing = True
        if self._link is not None and self._attached.is_set():
            self._closer = asyncio.ensure_future(self._close(self._link))

    def detach(self) -> bool:
        self._detached = True
        self._go.set()
        if self._link is not None:
            self._link.kill()
        return True


async def _answered(link: AgentLink, name: str) -> AsyncIterator[dict[str, Any]]:
    """The reports of a relay's ``link``; none, and the relay killed, if the first does
    not come within :data:`ANSWER_WAIT` s."""
    reports = link.reports()
    try:
        first = await asyncio.wait_for(reports.__anext__(), ANSWER_WAIT)
    except StopAsyncIteration:
        return
    except asyncio.TimeoutError:
        log.warning("session %s: its relay brought nothing in %.0f s; killed", name, ANSWER_WAIT)
        link.kill()
        return
    yield first
    async for report in reports:
        yield report
