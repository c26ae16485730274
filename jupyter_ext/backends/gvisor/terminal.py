"""Interactive terminals of gVisor boxes: a pty of the Sentry, opened by the box's init."""

from __future__ import annotations

import asyncio
import signal

from ..base import Terminal
from ..namespace.terminal import LINGER
from .launcher import Command


class GvTerminal(Terminal):
    """A command on a terminal the box's init opened, leading a new session of the box;
    its output and typing cross the command's connection. Once the command ends, its
    session is killed and the output still held comes for ``LINGER`` seconds."""

    def __init__(self, command: Command) -> None:
        self._command = command
        self._ended = asyncio.ensure_future(self._reap())

    async def _reap(self) -> int:
        code = await self._command.wait()
        self._command.signal(signal.SIGKILL)  # jobs the shell left behind
        asyncio.get_running_loop().call_later(LINGER, self._command.close)
        return code

    async def read(self) -> bytes:
        """The next output chunk; b"" once the terminal is closed."""
        return await self._command.stdout.get()

    async def write(self, data: bytes) -> None:
        """Type ``data``; dropped once the command has ended."""
        try:
            await self._command.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    async def resize(self, cols: int, rows: int) -> None:
        """Set the terminal's size; its foreground process group gets SIGWINCH."""
        await self._command.resize(cols, rows)

    async def wait(self) -> int:
        """The command's exit code; 128+N when signal N killed it."""
        return await asyncio.shield(self._ended)

    def kill(self) -> None:
        """Kill the whole session and close the terminal."""
        self._command.close()
