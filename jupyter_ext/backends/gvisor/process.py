"""A command in a gVisor box: one ``runsc exec`` process whose stdio pipes are the
command's own (runsc hands them into the sandbox)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

from ..base import Process

CHUNK = 65536
#: runsc's own failure (it lost the sandbox), and the code of a command SIGKILLed.
RUNSC_FAILED, KILLED = 128, 128 + 9


async def _chunks(stream: asyncio.StreamReader | None, first: bytes = b"") -> AsyncIterator[bytes]:
    if first:
        yield first
    if stream is None:
        return
    while chunk := await stream.read(CHUNK):
        yield chunk


class GvProcess(Process):
    """``runsc exec`` of one command; ``kill`` asks runsc to SIGKILL it in the sandbox.

    ``code`` overrides the exit code (a command that could not be found exits 127) and
    ``stderr_first`` is what was read from stderr before the command was known to run.
    ``sandbox_ended`` says whether the sandbox has ended: runsc then exits 128, and the
    command was killed with it (137, as SIGKILL).
    """

    def __init__(self, proc: asyncio.subprocess.Process,
                 killer: Callable[[], Awaitable[None]] | None,
                 code: int | None = None, stderr_first: bytes = b"",
                 sandbox_ended: Callable[[], Awaitable[bool]] | None = None) -> None:
        self._proc = proc
        self._killer = killer
        self._sandbox_ended = sandbox_ended
        self._code = code
        self._kill_task: asyncio.Task[None] | None = None
        self.stdout = _chunks(proc.stdout)
        self.stderr = _chunks(proc.stderr, stderr_first)

    async def write_stdin(self, data: bytes) -> None:
        """Send ``data`` to the command's stdin, waiting while the pipe is full."""
        if self._proc.stdin is None:
            raise RuntimeError("the command was started without stdin")
        self._proc.stdin.write(data)
        await self._proc.stdin.drain()

    async def close_stdin(self) -> None:
        """Close the command's stdin."""
        if self._proc.stdin is not None and not self._proc.stdin.is_closing():
            self._proc.stdin.close()

    async def wait(self) -> int:
        """The command's exit code; 128+N when signal N killed it (as runsc reports)."""
        code = await self._proc.wait()
        if self._code is not None:
            return self._code
        if code == RUNSC_FAILED and self._sandbox_ended and await self._sandbox_ended():
            return KILLED
        return code

    def kill(self) -> None:
        """SIGKILL the command in the sandbox (through ``runsc kill``)."""
        if self._killer is None or self._kill_task is not None or self._proc.returncode is not None:
            return
        self._kill_task = asyncio.get_running_loop().create_task(self._killer())
