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
    """Splits chunks into lines (without their ``\\n``). Each byte is looked at once and a
    line is joined once, so a huge line costs linear time; a line over ``limit`` bytes is
    not kept but comes out as an :class:`Overlong` with its first ``head`` bytes."""

    def __init__(self, limit: int, head: int = 4096) -> None:
        self.limit = limit
        self.head = head
        self._parts: list[bytes] = []
        self._size = 0
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
        if self._size or self._over is not None:
            yield self._take()

    def _add(self, piece: bytes) -> None:
        if self._over is not None:
            self._over.size += len(piece)
            return
        self._parts.append(piece)
        self._size += len(piece)
        if self._size > self.limit:
            head = bytearray()
            for part in self._parts:
                if len(head) >= self.head:
                    break
                head += part[: self.head - len(head)]
            self._over = Overlong(bytes(head), self._size)
            self._parts = []

    def _take(self) -> bytes | Overlong:
        line: bytes | Overlong = self._over or b"".join(self._parts)
        self._parts, self._size, self._over = [], 0, None
        return line
