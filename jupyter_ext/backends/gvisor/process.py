"""A command in a gVisor box: its stdio carried over its connection to the box's init."""

from __future__ import annotations

from ..base import Process
from .launcher import Command


class GvProcess(Process):
    """A command started by ``boxrun-gvinit``; ``kill`` drops its connection, which
    SIGKILLs its session in the box."""

    def __init__(self, command: Command) -> None:
        self._command = command
        self.stdout = command.stdout.chunks()
        self.stderr = command.stderr.chunks()

    async def write_stdin(self, data: bytes) -> None:
        """Send ``data`` to the command's stdin, waiting while the box is not taking it."""
        await self._command.write(data)

    async def close_stdin(self) -> None:
        """Close the command's stdin."""
        await self._command.close_stdin()

    async def wait(self) -> int:
        """The command's exit code; 128+N when signal N killed it (137: lost with its box)."""
        return await self._command.wait()

    def kill(self) -> None:
        """SIGKILL the command's session in the box."""
        self._command.kill()
