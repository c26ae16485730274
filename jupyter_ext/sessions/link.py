"""The connection to a session's interpreter: requests in, reports out (docs/sessions.md)."""

from __future__ import annotations

import abc
import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from ..backends.base import Process

log = logging.getLogger(__name__)


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
    its stderr goes to the server's log."""

    def __init__(self, process: Process, name: str) -> None:
        self.process = process
        self.name = name
        self._stderr = asyncio.create_task(self._log_stderr())

    async def _log_stderr(self) -> None:
        async for chunk in self.process.stderr:
            for line in chunk.decode(errors="replace").splitlines():
                log.info("session %s: %s", self.name, line)

    async def reports(self) -> AsyncIterator[dict[str, Any]]:
        buf = b""
        async for chunk in self.process.stdout:
            *lines, buf = (buf + chunk).split(b"\n")
            for line in lines:
                try:
                    yield json.loads(line)
                except ValueError:
                    log.warning("session %s: not a report: %r", self.name, line[:200])
        with contextlib.suppress(asyncio.CancelledError):
            await self._stderr

    async def request(self, req: dict[str, Any]) -> None:
        await self.process.write_stdin(json.dumps(req).encode() + b"\n")

    async def wait(self) -> int:
        return await self.process.wait()

    def kill(self) -> None:
        self.process.kill()
