"""A command running in a namespace box, seen through its ``nsenter`` process."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

from ..base import Process

CHUNK = 65536


async def read_some(fd: int) -> bytes:
    """Read what the pipe ``fd`` holds once it is readable (b"" at EOF)."""
    loop = asyncio.get_running_loop()
    readable = loop.create_future()
    os.set_blocking(fd, False)
    loop.add_reader(fd, lambda: readable.done() or readable.set_result(None))
    try:
        await readable
    finally:
        loop.remove_reader(fd)
    return os.read(fd, CHUNK)


def alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie has already left its namespaces)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


async def collect(stream: AsyncIterator[bytes]) -> bytes:
    """All chunks of ``stream``."""
    return b"".join([chunk async for chunk in stream])


async def _chunks(stream: asyncio.StreamReader) -> AsyncIterator[bytes]:
    while chunk := await stream.read(CHUNK):
        yield chunk


class NsProcess(Process):
    """Wraps ``nsenter``: its process group holds the command and its children."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None and proc.stderr is not None
        self._proc = proc
        self.stdout = _chunks(proc.stdout)
        self.stderr = _chunks(proc.stderr)

    @property
    def pid(self) -> int:
        """Host pid of ``nsenter``."""
        return self._proc.pid

    async def write_stdin(self, data: bytes) -> None:
        """Send ``data`` to the command's stdin."""
        if self._proc.stdin is None:
            raise RuntimeError("the command was started without stdin")
        self._proc.stdin.write(data)
        await self._proc.stdin.drain()

    async def close_stdin(self) -> None:
        """Close the command's stdin."""
        if self._proc.stdin is not None and not self._proc.stdin.is_closing():
            self._proc.stdin.close()
            try:
                await self._proc.stdin.wait_closed()
            except (BrokenPipeError, ConnectionResetError):
                pass

    async def wait(self) -> int:
        """The command's exit code; 128+N when signal N killed it."""
        code = await self._proc.wait()
        return 128 - code if code < 0 else code

    def kill(self) -> None:
        """SIGKILL the process group (``nsenter`` and the command it forked)."""
        if self._proc.returncode is None:
            try:
                os.killpg(self._proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
