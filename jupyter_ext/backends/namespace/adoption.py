"""What lets a namespace box outlive the server that started it, and the next server
take it over.

A running box is its process tree (bwrap and the box's ``boxrun-init``, in a session of
their own, not the server's children once it is gone) and its holder (``boxrun-init
hold``, see ``init/boxrun-init.c``), a host process that keeps a copy of the server's end
of ``boxrun-init``'s control socket, so the box serves on while no server runs, and
hands it to the next server. The holder also keeps slirp4netns's exit pipe open: the
box's network lives as long as the box. ``boxes/.ctl/`` (the server's user only) holds, per running box,
``<handle>.json`` (the host pid of the box's first process and its start time, so a
reused pid is never taken for the box) and ``<handle>.sock`` (its holder's socket).
Nothing here enters the box or takes a descriptor from it: the control socket comes
from the holder, a process of the server's own.
"""

from __future__ import annotations

import array
import asyncio
import json
import os
import socket
import struct
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ...core.hostcmd import HOST_ENV
from .fdio import fd_ready
from .init import binary

#: Seconds a new server waits for a holder to hand over a control socket.
FETCH_TIMEOUT = 5.0
MAX_RECORD = 256


class Child(subprocess.Popen):  # type: ignore[type-arg]
    """A host process of a box (bwrap, its holder, slirp4netns), in a session of its
    own: it outlives the server on purpose, so forgetting it while it runs is no leak
    (``Popen`` would warn)."""

    def __del__(self) -> None:
        if self.returncode is not None:
            super().__del__()


@dataclass(frozen=True)
class Record:
    """The box's first process: host ``pid`` and ``started`` (clock ticks after boot)."""

    pid: int
    started: int


def start_time(pid: int) -> int | None:
    """When process ``pid`` started (``/proc/PID/stat`` field 22); None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rpartition(")")[2].split()[19])


class Records:
    """The records and holder sockets of a state dir's running boxes, in ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def make(self) -> None:
        """Create the folder, the server's user's alone."""
        self.folder.mkdir(mode=0o700, exist_ok=True)
        self.folder.chmod(0o700)

    def handles(self) -> set[str]:
        """Handles that have a record or a socket here."""
        return {path.name.rpartition(".")[0] for path in self.folder.iterdir()}

    def save(self, handle: str, pid: int) -> Record:
        """Record that box ``handle``'s first process is ``pid`` (atomically)."""
        started = start_time(pid)
        if started is None:
            raise OSError(f"the box's first process {pid} is gone")
        record = Record(pid, started)
        partial = self.folder / f".{handle}.json"
        partial.write_text(json.dumps({"pid": pid, "started": started}))
        partial.replace(self.folder / f"{handle}.json")
        return record

    def load(self, handle: str) -> Record | None:
        """Box ``handle``'s record; None if there is none (or it is not one)."""
        try:
            with open(self.folder / f"{handle}.json", "rb") as f:
                data = json.loads(f.read(MAX_RECORD))
            pid, started = data["pid"], data["started"]
        except (OSError, ValueError, TypeError, KeyError):
            return None
        if type(pid) is not int or type(started) is not int or pid <= 1:
            return None
        return Record(pid, started)

    def forget(self, handle: str) -> None:
        """Delete box ``handle``'s record and socket."""
        for name in (f"{handle}.json", f"{handle}.sock"):
            (self.folder / name).unlink(missing_ok=True)

    @contextmanager
    def _socket_path(self, handle: str) -> Iterator[str]:
        """A short path to ``<handle>.sock`` (socket paths are limited to 107 bytes)."""
        fd = os.open(self.folder, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            yield f"/proc/self/fd/{fd}/{handle}.sock"
        finally:
            os.close(fd)

    def start_holder(self, handle: str, ctl: socket.socket, exit_fd: int | None) -> Child:
        """Start box ``handle``'s holder of ``ctl`` (keeping ``exit_fd`` open too)."""
        (self.folder / f"{handle}.sock").unlink(missing_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            with self._socket_path(handle) as path:
                listener.bind(path)
            listener.listen(4)
            fds = (ctl.fileno(), listener.fileno(), *([] if exit_fd is None else [exit_fd]))
            return Child(
                [str(binary()), "hold", *map(str, fds[:2])],
                env=HOST_ENV, pass_fds=fds, start_new_session=True, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        finally:
            listener.close()

    async def fetch(self, handle: str) -> socket.socket:
        """Box ``handle``'s control socket, from its holder; OSError if it is not there."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            sock.setblocking(False)
            with self._socket_path(handle) as path:
                await asyncio.get_running_loop().sock_connect(sock, path)
            creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
            if struct.unpack("3i", creds)[1] != os.geteuid():
                raise OSError(f"the holder of box {handle} is not the server's user's")
            return await asyncio.wait_for(_receive_socket(sock), FETCH_TIMEOUT)
        except asyncio.TimeoutError:
            raise OSError(f"the holder of box {handle} did not answer") from None
        finally:
            sock.close()


async def _receive_socket(sock: socket.socket) -> socket.socket:
    """The one SOCK_SEQPACKET Unix socket sent on ``sock``."""
    size = socket.CMSG_SPACE(4 * array.array("i").itemsize)
    while True:
        try:
            _, ancillary, flags, _ = sock.recvmsg(1, size)
            break
        except BlockingIOError:
            await fd_ready(sock.fileno())
    fds = array.array("i")
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[:len(data) - len(data) % fds.itemsize])
    if len(fds) == 1 and not flags & socket.MSG_CTRUNC:
        try:
            ctl = socket.socket(fileno=fds[0])
        except OSError:
            os.close(fds[0])
        else:
            if ctl.family == socket.AF_UNIX and ctl.type == socket.SOCK_SEQPACKET:
                return ctl
            ctl.close()
    else:
        for fd in fds:
            os.close(fd)
    raise OSError("the holder sent no control socket")


def open_process(record: Record) -> int | None:
    """A pidfd of the process ``record`` names if it still runs; None if it is gone."""
    if start_time(record.pid) != record.started:
        return None
    try:
        pidfd = os.pidfd_open(record.pid)
    except ProcessLookupError:
        return None
    if start_time(record.pid) != record.started:  # the pid was reused in between
        os.close(pidfd)
        return None
    return pidfd
