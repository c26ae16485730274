"""What a box writes to its stderr reaches the server's log as inert text: one record per
line, control characters and terminal escapes escaped, long lines cut, rate-limited."""

from __future__ import annotations

import logging
import re
import time

import httpx
import pytest

from jupyter_ext.core.boxlog import BoxLog, escape

from ..servers import ServerProcess
from .conftest import Session, make_box


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="boxlog-test")
    return caplog


def test_escapes_cuts_and_splits(log: pytest.LogCaptureFixture) -> None:
    box = BoxLog(logging.getLogger("boxlog-test"), "b1", max_line=40)
    box.write(b"\x1b[2J\x1b]0;title\x07red\\x1b \xe2\x80\xae rtl\r\nsec")
    box.write(b"ond\n" + b"y" * 50 + b"\nlast")
    box.close()
    assert log.messages == [
        "box b1: \\x1b[2J\\x1b]0;title\\x07red\\\\x1b \\u202e rtl",
        "box b1: second",
        "box b1: " + "y" * 40 + "… (cut: 50 bytes)",
        "box b1: last",
    ]
    assert escape("tab\there\x85") == "tab\\there\\x85"


def test_at_most_rate_lines_a_second_then_a_summary(log: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    box = BoxLog(logging.getLogger("boxlog-test"), "b2", rate=5, clock=clock)
    box.write(b"".join(b"%d\n" % i for i in range(100)))
    assert len(log.messages) == 5
    clock.now = 1.5
    box.write(b"after\n")
    assert log.messages[5:] == ["box b2: suppressed 95 lines (more than 5 a second)", "box b2: after"]
    box.write(b"x\n" * 10)
    box.close()
    assert log.messages[-1] == "box b2: suppressed 6 lines (more than 5 a second)"


def test_a_box_writing_terminal_escapes_to_its_session_stderr(capped: ServerProcess,
                                                              http: httpx.Client) -> None:
    box = make_box(http, "python")
    session = Session(http, box, "python")
    started = time.monotonic()
    session.execute("import os\n"
                    "os.write(2, b'\\x1b]0;owned\\x07\\x1b[2J' + b'z' * 5000 + b'\\n')\n"
                    "for i in range(5000): os.write(2, b'flood %d\\n' % i)")
    deadline = time.monotonic() + 10
    while b"suppressed" not in capped.log.read_bytes() and time.monotonic() < deadline:
        time.sleep(0.2)
    took = time.monotonic() - started
    log = capped.log.read_bytes()
    assert b"\x1b" not in log and b"\x07" not in log
    assert b"\\x1b]0;owned\\x07\\x1b[2J" + b"z" * 10 in log
    assert re.search(rb"\(cut: 50\d\d bytes\)", log)
    floods = len(re.findall(rb"flood \d+\n", log))
    assert 0 < floods <= 20 * (took + 2), f"{floods} lines logged in {took:.1f} s"
    assert re.search(rb"suppressed \d+ lines", log)
