"""Lines of a byte stream a box writes, split in linear time with a bounded length."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass


@dataclass
class Overlong:
    """A line longer than the limit: its first bytes and its whole length, not the rest."""

    head: bytes
    size: int


class LineSplitter:
    """Splits chunks into lines (without their ``\\n``). Each byte is looked at once and
    appended to a buffer at most once, so a huge line costs linear time and its bytes;
    a line over ``limit`` bytes is not kept but comes out as an :class:`Overlong` with
    its first ``head`` bytes."""

    def __init__(self, limit: int, head: int = 4096) -> None:
        self.limit = limit
        self.head = head
        self._buf = bytearray()
        self._over: Overlong | None = None

    def feed(self, chunk: bytes) -> Iterator[bytes | Overlong]:
        """The lines that ``chunk`` completes."""
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            self._add(chunk[start:end])
            yield self._take()
            start = end + 1
        self._add(chunk[start:])

    def end(self) -> Iterator[bytes | Overlong]:
        """The last line, when the stream ended without a newline."""
        if self._buf or self._over is not None:
            yield self._take()

    def _add(self, piece: bytes) -> None:
        if self._over is not None:
            self._over.size += len(piece)
            return
        self._buf += piece
        if len(self._buf) > self.limit:
            self._over = Overlong(bytes(self._buf[: self.head]), len(self._buf))
            self._buf = bytearray()

    def _take(self) -> bytes | Overlong:
        line: bytes | Overlong = self._over or bytes(self._buf)
        self._buf, self._over = bytearray(), None
        return line
