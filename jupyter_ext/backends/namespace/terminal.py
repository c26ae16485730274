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

from ...core.errors import BoxRunError
from ..base import Terminal
from .fdio import CHUNK
from .launcher import Job, Launcher

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


class NsTerminal(Terminal):
    """The master side of a pty whose slave is the command's controlling terminal.

    The box's init started the command as the leader of a new session of the box;
    closing the master hangs the terminal up.
    """

    def __init__(self, job: Job, master: int) -> None:
        self._job = job
        self._master = master
        self._waiters: set[asyncio.Future[None]] = set()
        os.set_blocking(master, False)
        self._ended = asyncio.ensure_future(self._reap())

    async def _reap(self) -> int:
        code = await self._job.wait()
        self._job.signal(signal.SIGKILL)  # jobs the shell left behind
        asyncio.get_running_loop().call_later(LINGER, self._close)
        return code

    async def read(self) -> bytes:
        """The next output chunk; b"" once no process holds the terminal any more."""
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
        self._job.signal(signal.SIGKILL)
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
    launcher: Launcher, pty: tuple[int, int], cmd: Sequence[str], env: Mapping[str, str],
    workdir: str, cols: int, rows: int,
) -> NsTerminal:
    """Have the box's init start ``cmd`` in a new session on ``pty``, which it takes over."""
    master, slave = pty
    try:
        set_size(slave, cols, rows)
        job = await launcher.spawn(cmd, env, workdir, [slave], tty=True)
    except BaseException:
        os.close(master)
        raise
    finally:
        os.close(slave)
    return NsTerminal(job, master)
