"""The server's side of ``boxrun-init`` (``init/boxrun-init.c``), the box's first process.

Every command of a box (exec, terminal, session, file transfer) is started by
``boxrun-init`` inside the box, with box credentials, from a request on the box's
control socket; the server only hands over descriptors (pipes, a terminal) and never
enters the box's namespaces. What comes back on a command's socket is the box's word:
it is parsed strictly and bounded.
"""

from __future__ import annotations

import array
import asyncio
import os
import signal
import socket
from collections.abc import Mapping, Sequence

from ...core.boxlog import escape
from ...core.errors import BoxRunError
from .fdio import fd_ready

#: The largest request boxrun-init takes (argv and environment together).
MAX_REQUEST = 1 << 17  # within a socket buffer of default size
#: The longest message boxrun-init sends about one command.
MAX_REPLY = 512


def _field(value: str, what: str) -> bytes:
    data = value.encode()
    if b"\0" in data:
        raise BoxRunError("VALIDATION_ERROR", f"{what} contains a NUL character")
    return data


def encode_request(cmd: Sequence[str], env: Mapping[str, str], workdir: str, tty: bool) -> bytes:
    """The request's fields, NUL-terminated (see ``boxrun-init.c``)."""
    if not cmd:
        raise BoxRunError("VALIDATION_ERROR", "cmd is empty")
    for key in env:
        if not key or "=" in key:
            raise BoxRunError("VALIDATION_ERROR", f"invalid environment variable name {key!r}")
    fields = [b"exec", b"1" if tty else b"0", _field(workdir, "workdir"), str(len(cmd)).encode(),
              *(_field(arg, "cmd") for arg in cmd),
              *(_field(f"{key}={value}", "env") for key, value in env.items())]
    data = b"\0".join(fields) + b"\0"
    if len(data) > MAX_REQUEST:
        raise BoxRunError("VALIDATION_ERROR", f"cmd and env together exceed {MAX_REQUEST} bytes")
    return data


def _printable(data: bytes) -> str:
    """A box's text, safe to show: decoded, bounded, escaped as in the server log."""
    return escape(data[:MAX_REPLY].decode(errors="replace"))


class Job:
    """One command started by ``boxrun-init``, seen through its socket."""

    def __init__(self, sock: socket.socket, pid: int) -> None:
        self._sock = sock
        #: The command's pid in the box (the box's word).
        self.pid = pid
        self._code: int | None = None
        self._ended = asyncio.ensure_future(self._watch())

    async def _watch(self) -> int:
        loop = asyncio.get_running_loop()
        try:
            while data := await loop.sock_recv(self._sock, MAX_REPLY):
                if data[:1] == b"X" and data[1:].isdigit() and len(data) < 8:
                    return int(data[1:])
            return 128 + signal.SIGKILL  # the box ended under it
        except OSError:
            return 128 + signal.SIGKILL
        finally:
            self._sock.close()

    async def wait(self) -> int:
        """The command's exit code; 128+N when signal N killed it."""
        return await asyncio.shield(self._ended)

    def signal(self, sig: int) -> None:
        """Send ``sig`` to every process of the command's session."""
        if self._ended.done():
            return
        try:
            self._sock.send(b"K%d" % sig, socket.MSG_DONTWAIT)
        except OSError:  # a full or broken socket: closing it kills the session
            self._sock.close()


class Launcher:
    """The control socket of one box's ``boxrun-init``."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self._sock = sock
        #: One sender at a time: a second waiter on the same descriptor would replace
        #: the first one's callback in the event loop.
        self._sending = asyncio.Lock()

    @staticmethod
    def pair() -> tuple[socket.socket, socket.socket]:
        """A control socket pair: (server's end, end for ``boxrun-init``)."""
        return socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)

    def close(self) -> None:
        """Close this end (``boxrun-init`` exits once no copy is left, its holder's
        included: see :mod:`.adoption`)."""
        self._sock.close()

    async def _send(self, request: bytes, fds: array.array[int]) -> None:
        while True:
            try:
                self._sock.sendmsg([request], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
                return
            except BlockingIOError:
                await fd_ready(self._sock.fileno(), writing=True)
            except OSError as exc:
                raise BoxRunError("RUNTIME_ERROR",
                                  f"the box's init is gone ({exc.strerror})") from exc

    async def spawn(
        self, cmd: Sequence[str], env: Mapping[str, str], workdir: str, stdio: Sequence[int],
        tty: bool = False,
    ) -> Job:
        """Start ``cmd`` in the box on ``stdio`` (stdin, stdout, stderr; or a terminal's
        slave with ``tty``). RUNTIME_ERROR if it cannot be started there."""
        request = encode_request(cmd, env, workdir, tty)
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        mine.setblocking(False)
        fds = array.array("i", [theirs.fileno(), *stdio])
        try:
            async with self._sending:
                await self._send(request, fds)
        except BaseException:
            mine.close()
            raise
        finally:
            theirs.close()
        try:
            first = await asyncio.get_running_loop().sock_recv(mine, MAX_REPLY)
        except OSError:
            first = b""
        if first[:1] == b"S" and first[1:].isdigit() and len(first) < 12:
            return Job(mine, int(first[1:]))
        mine.close()
        if first[:1] == b"E":
            raise BoxRunError("RUNTIME_ERROR", _printable(first[1:]))
        raise BoxRunError("RUNTIME_ERROR", "the box's init did not start the command"
                          + (f" (it said {_printable(first)!r})" if first else ""))


def close_all(fds: Sequence[int]) -> None:
    """Close every descriptor of ``fds``."""
    for fd in fds:
        os.close(fd)
