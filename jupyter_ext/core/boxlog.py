"""Text a box produced, written to a server log without letting the box control it."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable

from .lines import LineSplitter, Overlong

#: Control characters (C0, DEL, C1: terminal escapes start with ESC or CSI), invisible
#: and direction-changing format characters, line separators, and the backslash itself
#: (so that an escape in the log is never the box's own text).
_UNSAFE = re.compile("[\\\\\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]")


def escape(text: str) -> str:
    """``text`` with every unsafe character as a Python-style escape (``\\x1b``)."""
    return _UNSAFE.sub(lambda m: m[0].encode("unicode_escape").decode(), text)


class BoxLog:
    """Writes what a box wrote (its stderr, say) to ``logger``: one record per line, as
    ``box <box>: <line>``, escaped, cut after ``max_line`` bytes, at most ``rate`` records
    a second; the lines over the rate are counted and one ``suppressed N lines`` record
    says so once the second is over (when there is an event loop to wait on; else with
    the next line or on :meth:`close`)."""

    def __init__(self, logger: logging.Logger, box: str, rate: int = 20,
                 max_line: int = 1000, level: int = logging.INFO,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger
        self.box = box
        self.rate = rate
        self.level = level
        self.clock = clock
        self._lines = LineSplitter(max_line, head=max_line)
        self._window = float("-inf")
        self._count = 0
        self._suppressed = 0

    def write(self, data: bytes) -> None:
        """Log the lines ``data`` completes; a partial line waits for its end."""
        for line in self._lines.feed(data):
            self._line(line)

    def close(self) -> None:
        """Log the unterminated last line and what is still suppressed."""
        for line in self._lines.end():
            self._line(line)
        self._summary()

    def _line(self, line: bytes | Overlong) -> None:
        now = self.clock()
        if now - self._window >= 1:
            self._summary()
            self._window, self._count = now, 0
        if self._count >= self.rate:
            if not self._suppressed:
                self._summary_later(self._window + 1 - now)
            self._suppressed += 1
            return
        self._count += 1
        if isinstance(line, Overlong):
            text = f"{self._text(line.head)}… (cut: {line.size} bytes)"
        else:
            text = self._text(line)
        self.logger.log(self.level, "box %s: %s", self.box, text)

    @staticmethod
    def _text(data: bytes) -> str:
        return escape(data.removesuffix(b"\r").decode(errors="replace"))

    def _summary_later(self, delay: float) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        loop.call_later(delay, self._summary)

    def _summary(self) -> None:
        if self._suppressed:
            self.logger.log(self.level, "box %s: suppressed %d lines (more than %d a second)",
                            self.box, self._suppressed, self.rate)
            self._suppressed = 0
