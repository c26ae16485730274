"""Non-blocking descriptor I/O on the event loop (pipes, sockets, ptys)."""

from __future__ import annotations

import asyncio
import os

CHUNK = 65536


async def fd_ready(fd: int, writing: bool = False) -> None:
    """Wait until ``fd`` is readable (``writing``: writable). One waiter per descriptor
    and direction: the event loop keeps one callback each."""
    loop = asyncio.get_running_loop()
    ready = loop.create_future()
    watch, unwatch = ((loop.add_writer, loop.remove_writer) if writing
                      else (loop.add_reader, loop.remove_reader))
    watch(fd, lambda: ready.done() or ready.set_result(None))
    try:
        await ready
    finally:
        unwatch(fd)


async def read_some(fd: int) -> bytes:
    """Read what the pipe ``fd`` holds once it is readable (b"" at EOF)."""
    os.set_blocking(fd, False)
    while True:
        try:
            return os.read(fd, CHUNK)
        except BlockingIOError:
            await fd_ready(fd)


async def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to the non-blocking ``fd``, waiting while it is full."""
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            await fd_ready(fd, writing=True)
