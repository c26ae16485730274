"""Interactive terminals of namespace boxes: a pty of the box's own ``/dev/pts``."""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import signal
import stat
import struct
import termios
from collections.abc import Mapping, Sequence
from contextlib import suppress
from pathlib import Path

from ...core.errors import BoxRunError
from ..base import Terminal
from .process import CHUNK

#: Runs a command in the box as the leader of a new session whose controlling terminal
#: is its stdin, so that shells see only the box's process groups (without ``setsid``
#: in the box, it runs without a controlling terminal: no job control).
SESSION_SCRIPT = 'command -v setsid >/dev/null 2>&1 && exec setsid -c "$@"; exec "$@"'
#: Seconds the terminal stays open after the command ended, for output still held by
#: processes that left its session (it is then hung up).
LINGER = 1.0
PTMX = os.makedev(5, 2)
TIOCSPTLCK = 0x40045431  # unlock the slave (not in termios)
TIOCGPTPEER = 0x5441  # open the slave of a master without a path lookup (Linux 4.13)


def set_size(fd: int, cols: int, rows: int) -> None:
    """Set the size of the terminal ``fd``; its foreground process group gets SIGWINCH."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def open_pty(root: str, owner: int | None) -> tuple[int, int]:
    """A new pty (master, slave) of the devpts instance at ``root``/dev/pts, its slave
    owned by host uid ``owner`` (box root; ``None``: the server's user, as opened) if
    the server may. Never follows a link the box made."""
    fd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    try:
        for name in ("dev", "pts"):
            parent, fd = fd, os.open(name, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(parent)
        flags = os.O_RDWR | os.O_NOCTTY | os.O_NOFOLLOW | os.O_NONBLOCK
        master = os.open("ptmx", flags, dir_fd=fd)
    finally:
        os.close(fd)
    try:
        info = os.fstat(master)
        if not stat.S_ISCHR(info.st_mode) or info.st_rdev != PTMX:
            raise BoxRunError("RUNTIME_ERROR", "the box's /dev/pts/ptmx is not a pty multiplexer")
        fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
        slave = fcntl.ioctl(master, TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY)
    except BaseException:
        os.close(master)
        raise
    try:
        if owner is not None:
            os.fchown(slave, owner, -1)
    except PermissionError:
        pass  # a server that may not chown keeps it: box root sees "nobody"
    return master, slave


def in_session(cmd: Sequence[str]) -> list[str]:
    """``cmd`` as the leader of a new session of the box (see :data:`SESSION_SCRIPT`)."""
    return ["/bin/sh", "-c", SESSION_SCRIPT, "session", *cmd]


def kill_sessions(sids: set[int]) -> None:
    """SIGKILL every process of the sessions ``sids`` (host pids, any pid namespace)."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            if int(fields[3]) in sids:
                os.kill(int(pid), signal.SIGKILL)
        except OSError:
            continue  # already gone


class NsTerminal(Terminal):
    """The master side of a pty whose slave is the command's controlling terminal.

    ``nsenter`` leads a new host session; its child, the command, leads a session of
    its own in the box (the ids of both sessions are these host pids). Closing the
    master hangs the terminal up.
    """

    def __init__(self, proc: asyncio.subprocess.Process, master: int) -> None:
        self._proc = proc
        self._master = master
        self._sessions = {proc.pid}
        self._pending = b""
        self._waiters: set[asyncio.Future[None]] = set()
        os.set_blocking(master, False)
        self._ended = asyncio.ensure_future(self._reap())

    async def _reap(self) -> int:
        code = await self._proc.wait()
        kill_sessions(self._sessions)  # jobs the shell left behind
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
                children = Path(f"/proc/{self._proc.pid}/task/{self._proc.pid}/children")
                with suppress(OSError):  # unless the command has already ended
                    self._sessions.update(int(pid) for pid in children.read_text().split())
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
            kill_sessions(self._sessions)
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
    pty: tuple[int, int], command: Sequence[str], env: Mapping[str, str], workdir: str,
    cols: int, rows: int,
) -> NsTerminal:
    """Start ``command`` (an exec command line) in a new session on ``pty``, which it
    takes over."""
    master, slave = pty
    try:
        set_size(slave, cols, rows)
        proc = await asyncio.create_subprocess_exec(
            *command, env=dict(env), stdin=slave, stdout=slave, stderr=slave,
            start_new_session=True)
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
