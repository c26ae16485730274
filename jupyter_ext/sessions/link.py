"""The connection to a session's interpreter: requests in, reports out (docs/sessions.md)."""

from __future__ import annotations

import abc
import asyncio
import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

from ..backends.base import Process
from ..core.boxlog import BoxLog
from ..core.lines import LineSplitter, Overlong
from .agent import message

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

    async def _log_stderr(self) -> None:
        stderr = BoxLog(log, f"{self.name} stderr")
        async for chunk in self.process.stderr:
            stderr.write(chunk)
        stderr.close()

    async def reports(self) -> AsyncIterator[dict[str, Any]]:
        lines = LineSplitter(self.max_message)
        async for chunk in self.process.stdout:
            for line in lines.feed(chunk):
                if (report := self._report(line)) is not None:
                    yield report
        self._junk.close()
        with contextlib.suppress(asyncio.CancelledError):
            await self._stderr

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
