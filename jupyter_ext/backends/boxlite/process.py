"""A command running in a micro-VM: a BoxLite ``Execution`` as a backend ``Process``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import boxlite

from ..base import Process

log = logging.getLogger(__name__)


async def _encoded(chunks: Any) -> AsyncIterator[bytes]:
    """BoxLite streams text; the contract streams bytes."""
    async for chunk in chunks:
        yield chunk.encode() if isinstance(chunk, str) else bytes(chunk)


class VmProcess(Process):
    """Streams, stdin, exit code and kill of one ``Execution``.

    stdin is always taken from the execution and, unless asked for, closed at once,
    so a command reading it sees EOF as it would with ``/dev/null``.
    """

    def __init__(self, execution: boxlite.Execution, stdin: Any) -> None:
        self._execution = execution
        self._stdin = stdin
        self.stdout = _encoded(execution.stdout())
        self.stderr = _encoded(execution.stderr())
        self._result: asyncio.Future[Any] | None = None
        self._kill: asyncio.Future[Any] | None = None

    @classmethod
    async def start(cls, execution: boxlite.Execution, stdin: bool) -> VmProcess:
        """Wrap ``execution``; close its stdin now unless ``stdin``."""
        writer = execution.stdin()
        if not stdin:
            await writer.close()
        return cls(execution, writer)

    async def write_stdin(self, data: bytes) -> None:
        """Send ``data`` to the command; BrokenPipeError once it is gone."""
        try:
            await self._stdin.send_input(data)
        except boxlite.BoxliteError as err:
            raise BrokenPipeError(str(err)) from err

    async def close_stdin(self) -> None:
        """Signal EOF on the command's stdin."""
        await self._stdin.close()

    async def wait(self) -> int:
        """The exit code; BoxLite's ``-N`` for signal N becomes ``128+N``."""
        if self._result is None:
            self._result = asyncio.ensure_future(self._execution.wait())
        code = (await asyncio.shield(self._result)).exit_code
        return 128 - code if code < 0 else code

    def kill(self) -> None:
        """Ask BoxLite to kill the command (once)."""
        if self._kill is None and not (self._result and self._result.done()):
            self._kill = asyncio.ensure_future(self._execution.kill())
            self._kill.add_done_callback(self._killed)

    @staticmethod
    def _killed(future: asyncio.Future[Any]) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            if future.exception() is not None:
                log.debug("killing a command failed: %s", future.exception())
