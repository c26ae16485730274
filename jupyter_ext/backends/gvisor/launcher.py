"""The server's side of ``boxrun-gvinit`` (``init/boxrun-gvinit.c``), a gVisor box's
first process.

Every command of a box is one connection to the Unix socket the box's init listens on
(made through ``runsc --host-uds=create`` in the box's host control folder): a request,
then frames both ways (see the C source). No descriptor crosses: gVisor cannot pass
host descriptors into the sandbox. What comes back is the box's word, parsed strictly:
a frame of an unknown type or over its size ends that command only, and at most
``HELD`` chunks per stream wait for a reader before the server stops reading (the box's
relay then stops too).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import stat
import struct
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path

from ...core.boxlog import escape
from ...core.errors import BoxRunError
from ..namespace.launcher import MAX_REQUEST, encode_request

log = logging.getLogger(__name__)

HEADER = struct.Struct(">BI")
#: The largest data frame either side sends.
CHUNK = 65536
#: The longest "started", "error" or exit frame a box may send.
MAX_REPLY = 4096
#: Chunks of one stream held for a slow reader.
HELD = 8
#: What a command killed, or lost with its box, exits with.
KILLED = 128 + signal.SIGKILL
#: In the box's control folder: the init's socket, and the file it makes once listening.
SOCKET, READY = "sock", "ready"
#: Every command's reader, until its connection closes (also after its caller let go).
_PUMPS: set[asyncio.Task[None]] = set()


def _printable(data: bytes) -> str:
    return escape(data[:MAX_REPLY].decode(errors="replace"))


class Stream:
    """One output stream of a command: chunks in arrival order, ended once."""

    def __init__(self) -> None:
        self._chunks: deque[bytes] = deque()
        self._ended = False
        self._data = asyncio.Event()
        self._space = asyncio.Event()

    async def put(self, chunk: bytes) -> None:
        """Add ``chunk``, waiting while ``HELD`` chunks are unread; dropped once ended."""
        while len(self._chunks) >= HELD and not self._ended:
            self._space.clear()
            await self._space.wait()
        if not self._ended:
            self._chunks.append(chunk)
            self._data.set()

    @property
    def ended(self) -> bool:
        """Whether the stream has ended (chunks may still be held)."""
        return self._ended

    def end(self) -> None:
        """No more chunks: the reader gets those held, then the end."""
        self._ended = True
        self._data.set()
        self._space.set()

    async def get(self) -> bytes:
        """The next chunk; b"" at the end."""
        while not self._chunks:
            if self._ended:
                return b""
            self._data.clear()
            await self._data.wait()
        self._space.set()
        return self._chunks.popleft()

    async def chunks(self) -> AsyncIterator[bytes]:
        """Every chunk to the end."""
        while chunk := await self.get():
            yield chunk


def _open_socket(ctl: Path) -> int:
    """An ``O_PATH`` descriptor of ``ctl/sock``, not followed if it is a link."""
    folder = os.open(ctl, os.O_PATH | os.O_DIRECTORY)
    try:
        fd = os.open(SOCKET, os.O_PATH | os.O_NOFOLLOW, dir_fd=folder)
    except FileNotFoundError as exc:
        raise ConnectionRefusedError("the box's init does not listen") from exc
    finally:
        os.close(folder)
    if not stat.S_ISSOCK(os.fstat(fd).st_mode):
        os.close(fd)
        raise ConnectionRefusedError("the box's control socket is not a socket")
    return fd


async def connect(ctl: Path) -> socket.socket:
    """A connection to the init listening in ``ctl`` (the box's host control folder).

    Box root may put anything at ``ctl/sock``: it is opened without following links,
    must be a socket, and is connected through its descriptor, never through a path
    the box chose. ConnectionRefusedError when no init listens there.
    """
    fd = _open_socket(ctl)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, f"/proc/self/fd/{fd}")
    except BaseException:
        sock.close()
        raise
    finally:
        os.close(fd)
    return sock


def _frame(kind: bytes, payload: bytes = b"") -> bytes:
    return HEADER.pack(kind[0], len(payload)) + payload


class Command:
    """One command started by the box's init, seen through its connection: ``stdout``
    and ``stderr`` (a terminal's output is ``stdout``), stdin, signals, its exit code.

    A frame the box should not send ends the command (the connection is dropped, which
    kills its session) and is logged; the command then counts as killed.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 pid: int, tty: bool) -> None:
        self._reader = reader
        self._writer = writer
        #: The command's pid in the box (the box's word).
        self.pid = pid
        self.stdout = Stream()
        self.stderr = Stream()
        if tty:
            self.stderr.end()
        self._code: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pump = asyncio.ensure_future(self._read())
        _PUMPS.add(self._pump)
        self._pump.add_done_callback(_PUMPS.discard)

    @classmethod
    async def start(cls, ctl: Path, cmd: Sequence[str], env: Mapping[str, str], workdir: str,
                    stdin: bool = False, size: tuple[int, int] | None = None) -> Command:
        """Start ``cmd`` in the box whose control folder is ``ctl``, its stdin closed
        unless ``stdin``; on a new terminal of ``size`` (cols, rows) if given.
        RUNTIME_ERROR if it cannot be started."""
        request = encode_request(cmd, env, workdir, size is not None)
        assert len(request) <= MAX_REQUEST
        try:
            sock = await connect(ctl)
        except OSError as exc:
            raise BoxRunError("RUNTIME_ERROR", f"the box's init is gone ({exc})") from exc
        reader, writer = await asyncio.open_unix_connection(sock=sock, limit=2 * CHUNK)
        try:
            writer.write(_frame(b"R", request))
            if size is not None:
                writer.write(_frame(b"W", _size(*size)))
            elif not stdin:
                writer.write(_frame(b"0"))
            kind, first = await _read_frame(reader, MAX_REPLY)
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            writer.transport.abort()
            raise BoxRunError("RUNTIME_ERROR", "the box's init did not start the command"
                              f" ({exc})") from exc
        except BaseException:
            writer.transport.abort()
            raise
        if kind == b"S" and first.isdigit() and len(first) < 12:
            return cls(reader, writer, int(first), size is not None)
        writer.transport.abort()
        if kind == b"E":
            raise BoxRunError("RUNTIME_ERROR", _printable(first))
        raise BoxRunError("RUNTIME_ERROR", "the box's init did not start the command"
                          f" (it said {_printable(kind + first)!r})")

    async def _read(self) -> None:
        streams = {b"1": self.stdout, b"2": self.stderr}
        try:
            while True:
                kind, data = await _read_frame(self._reader, CHUNK)
                stream = streams.get(kind)
                if stream is not None and not stream.ended:
                    if data:
                        await stream.put(data)
                    else:
                        stream.end()
                elif kind == b"X" and data.isdigit() and len(data) < 8 and not self._code.done():
                    self._code.set_result(int(data))
                else:
                    raise ValueError(f"unexpected frame {_printable(kind + data[:40])!r}")
        except (OSError, asyncio.IncompleteReadError):
            pass  # the box closed the connection: done, or its sandbox ended
        except ValueError as exc:
            log.warning("box command %d: %s; it is killed", self.pid, exc)
        finally:
            self._end()

    def _end(self) -> None:
        self._writer.transport.abort()
        self.stdout.end()
        self.stderr.end()
        if not self._code.done():
            self._code.set_result(KILLED)

    async def wait(self) -> int:
        """The command's exit code; 128+N when signal N killed it."""
        return await asyncio.shield(self._code)

    async def write(self, data: bytes) -> None:
        """Send ``data`` to the command's stdin (a terminal: type it), waiting while
        the box is not taking it. BrokenPipeError once the connection is gone."""
        for start in range(0, len(data), CHUNK):
            await self._send(_frame(b"0", data[start:start + CHUNK]))

    async def close_stdin(self) -> None:
        """Close the command's stdin (nothing to do once it has ended)."""
        try:
            await self._send(_frame(b"0"))
        except ConnectionError:
            pass

    async def resize(self, cols: int, rows: int) -> None:
        """Set the size of the command's terminal (nothing to do once it has ended)."""
        try:
            await self._send(_frame(b"W", _size(cols, rows)))
        except ConnectionError:
            pass

    def signal(self, sig: int) -> None:
        """Send ``sig`` to every process of the command's session."""
        if not self._writer.is_closing():
            self._writer.write(_frame(b"K", bytes([sig])))

    def kill(self) -> None:
        """Kill the command's session: drop the connection (the box's relay then
        SIGKILLs the session even if it is not reading). Idempotent."""
        if not self._code.done():
            self.close()

    def close(self) -> None:
        """Drop the connection, even after the command ended (its session is killed)."""
        self._pump.cancel()
        self._end()

    async def _send(self, frame: bytes) -> None:
        if self._writer.is_closing():
            raise BrokenPipeError("the command has ended")
        self._writer.write(frame)
        await self._writer.drain()


def _size(cols: int, rows: int) -> bytes:
    return struct.pack(">HH", min(max(cols, 1), 0xFFFF), min(max(rows, 1), 0xFFFF))


async def _read_frame(reader: asyncio.StreamReader, limit: int) -> tuple[bytes, bytes]:
    """The next frame's type and payload; ValueError if it is longer than ``limit``."""
    kind, length = HEADER.unpack(await reader.readexactly(HEADER.size))
    if length > limit:
        raise ValueError(f"a frame of {length} bytes")
    return bytes([kind]), await reader.readexactly(length)
