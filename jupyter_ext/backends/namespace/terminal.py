"""Interactive terminals of namespace boxes: a host pty around an ``nsenter`` session."""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import signal
import struct
import termios
from collections.abc import Mapping, Sequence
from pathlib import Path

from ...core.errors import BoxRunError
from ..base import Terminal
from .process import CHUNK

#: Makes the command a session leader with the pty (its stdin) as controlling terminal.
SESSION = ["setsid", "--ctty"]
#: Seconds the terminal stays open after the command ended, for output still held by
#: processes that left its session (it is then hung up).
LINGER = 1.0


def set_size(fd: int, cols: int, rows: int) -> None:
    """Set the size of the terminal ``fd``; its foreground process group gets SIGWINCH."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def kill_session(sid: int) -> None:
    """SIGKILL every process of the session ``sid`` (host pids, any pid namespace)."""
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
            if entry.name.isdigit() and int(fields[3]) == sid:
                os.kill(int(entry.name), signal.SIGKILL)
        except (OSError, IndexError, ValueError):
            continue  # not a process, or already gone


class NsTerminal(Terminal):
    """The master side of a host pty whose slave is the session's controlling terminal.

    The session's leader is ``nsenter`` (host pid = session id); the command runs in the
    box as its child. Closing the master hangs the terminal up.
    """

    def __init__(self, proc: asyncio.subprocess.Process, master: int) -> None:
        self._proc = proc
        self._master = master
        self._pending = b""
        self._waiters: set[asyncio.Future[None]] = set()
        os.set_blocking(master, False)
        self._ended = asyncio.ensure_future(self._reap())

    async def _reap(self) -> int:
        code = await self._proc.wait()
        kill_session(self._proc.pid)  # jobs the shell left behind
        asyncio.get_running_loop().call_later(LINGER, self._close)
        return 128 - code if code < 0 else code

    async def handshake(self, workdir: str) -> None:
        """Wait for the NUL the exec wrapper writes once in ``workdir``; keep what
        follows. RUNTIME_ERROR with what came before if the command was not reached."""
        seen = b""
        while chunk := await self.read():
            seen += chunk
            if b"\0" in seen:
                self._pending = seen.partition(b"\0")[2]
                return
        await self.wait()
        err = seen.decode(errors="replace").replace("\r\n", "\n").strip()
        raise BoxRunError("RUNTIME_ERROR", err or f"no such directory in the box: {workdir}")

    async def read(self) -> bytes:
        """The next output chunk; b"" once no process holds the terminal any more."""
        if self._pending:
            data, self._pending = self._pending, b""
            return data
        while self._master >= 0:
            try:
                return os.read(self._master, CHUNK)
            except BlockingIOError:
                await self._ready(writing=False)
            except OSError as exc:
                if exc.errno != errno.EIO:
                    raise
                self._close()  # EIO: every process holding the terminal has ended
        return b""

    async def write(self, data: bytes) -> None:
        """Type ``data``, waiting while the terminal's input buffer is full."""
        view = memoryview(data)
        while view and self._master >= 0:
            try:
                view = view[os.write(self._master, view):]
            except BlockingIOError:
                await self._ready(writing=True)
            except OSError as exc:
                if exc.errno != errno.EIO:
                    raise
                return

    async def resize(self, cols: int, rows: int) -> None:
        """Set the terminal's size."""
        if self._master >= 0:
            set_size(self._master, cols, rows)

    async def wait(self) -> int:
        """The command's exit code; 128+N when signal N killed it."""
        return await asyncio.shield(self._ended)

    def kill(self) -> None:
        """Kill the whole session and hang the terminal up."""
        if self._proc.returncode is None:
            kill_session(self._proc.pid)
        self._close()

    async def _ready(self, writing: bool) -> None:
        """Wait until the terminal is readable (writable), or closed."""
        loop = asyncio.get_running_loop()
        watch, unwatch = (
            (loop.add_writer, loop.remove_writer) if writing else (loop.add_reader, loop.remove_reader))
        waiter = loop.create_future()
        self._waiters.add(waiter)
        watch(self._master, lambda: waiter.done() or waiter.set_result(None))
        try:
            await waiter
        finally:
            self._waiters.discard(waiter)
            if self._master >= 0:
                unwatch(self._master)

    def _close(self) -> None:
        if self._master < 0:
            return
        loop = asyncio.get_running_loop()
        loop.remove_reader(self._master)
        loop.remove_writer(self._master)
        os.close(self._master)
        self._master = -1
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)


async def open_terminal(
    command: Sequence[str], env: Mapping[str, str], workdir: str, cols: int, rows: int
) -> NsTerminal:
    """Start ``command`` (an exec command line) in a new session on a new pty."""
    master, slave = os.openpty()
    try:
        set_size(slave, cols, rows)
        proc = await asyncio.create_subprocess_exec(
            *SESSION, *command, env=dict(env), stdin=slave, stdout=slave, stderr=slave)
    except BaseException:
        os.close(master)
        raise
    finally:
        os.close(slave)
    terminal = NsTerminal(proc, master)
    try:
        await terminal.handshake(workdir)
    except BaseException:
        terminal.kill()
        raise
    return terminal
