"""Interactive terminals of micro-VMs: a BoxLite ``Execution`` started with ``tty=True``
(the guest agent's pseudo-terminal) as a backend ``Terminal``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import boxlite

from ..base import Terminal
from .process import VmProcess

log = logging.getLogger(__name__)

#: Output chunks held for a reader that is behind; past it the guest waits.
BACKLOG = 64


class VmTerminal(Terminal):
    """The guest's pty: what it shows comes on the execution's stdout (and stderr, which
    BoxLite may keep apart), keystrokes go to its stdin, ``resize_tty`` sets its size.

    Exit codes and kill are those of :class:`VmProcess`.
    """

    def __init__(self, execution: boxlite.Execution, process: VmProcess) -> None:
        self._execution = execution
        self._process = process
        self._output: asyncio.Queue[bytes | None] = asyncio.Queue(BACKLOG)
        self._pumps = [asyncio.ensure_future(self._pump(s)) for s in (process.stdout, process.stderr)]
        self._open = len(self._pumps)

    @classmethod
    async def start(cls, execution: boxlite.Execution, cols: int, rows: int) -> VmTerminal:
        """Wrap ``execution`` (started with ``tty=True``) and give its terminal its size."""
        terminal = cls(execution, await VmProcess.start(execution, stdin=True))
        await terminal.resize(cols, rows)
        return terminal

    async def _pump(self, chunks: AsyncIterator[bytes]) -> None:
        """Queue a stream's chunks, then ``None`` for its end."""
        try:
            async for chunk in chunks:
                if chunk:
                    await self._output.put(chunk)
        except boxlite.BoxliteError as err:
            log.debug("a terminal stream failed: %s", err)
        await self._output.put(None)

    async def read(self) -> bytes:
        """The next output chunk; b"" once both streams have ended (or it was killed)."""
        while self._open > 0:
            chunk = await self._output.get()
            if chunk is not None:
                return chunk
            self._open -= 1
        return b""

    async def write(self, data: bytes) -> None:
        """Type ``data``; dropped once the command has ended."""
        with contextlib.suppress(BrokenPipeError):
            await self._process.write_stdin(data)

    async def resize(self, cols: int, rows: int) -> None:
        """Set the size of the guest's pty (BoxLite takes rows first); a terminal whose
        command has ended keeps its size."""
        try:
            await self._execution.resize_tty(rows, cols)
        except boxlite.BoxliteError as err:
            log.debug("resizing a terminal failed: %s", err)

    async def wait(self) -> int:
        """The command's exit code; 128+N when signal N killed it."""
        return await self._process.wait()

    def kill(self) -> None:
        """Kill the command (its pty is then hung up, and its session with it)."""
        self._process.kill()
        for pump in self._pumps:
            pump.cancel()
        self._open = 0
        with contextlib.suppress(asyncio.QueueFull):
            self._output.put_nowait(None)  # wakes a reader waiting for output
