"""A command running in a namespace box: pipes to its stdio and its ``boxrun-init`` job."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator

from ..base import Process
from .fdio import read_some, write_all
from .launcher import Job


async def _chunks(fd: int) -> AsyncIterator[bytes]:
    """The chunks of the pipe ``fd`` until EOF; closes it."""
    try:
        while chunk := await read_some(fd):
            yield chunk
    finally:
        os.close(fd)


class NsProcess(Process):
    """A command started by the box's init on pipes the server holds the other ends of."""

    def __init__(self, job: Job, stdin: int | None, stdout: int, stderr: int) -> None:
        self._job = job
        self._stdin = stdin
        self._writing = asyncio.Lock()  # one writer at a time (see fdio.fd_ready)
        self.stdout = _chunks(stdout)
        self.stderr = _chunks(stderr)

    async def write_stdin(self, data: bytes) -> None:
        """Send ``data`` to the command's stdin, waiting while the pipe is full."""
        async with self._writing:
            if self._stdin is None:
                raise RuntimeError("the command was started without stdin")
            await write_all(self._stdin, data)

    async def close_stdin(self) -> None:
        """Close the command's stdin."""
        if self._stdin is not None:
            os.close(self._stdin)
            self._stdin = None

    async def wait(self) -> int:
        """The command's exit code; 128+N when signal N killed it."""
        return await self._job.wait()

    def kill(self) -> None:
        """SIGKILL the command's session in the box."""
        self._job.signal(signal.SIGKILL)
