"""``%%boxrun`` from a plain ``python3`` kernel: the cell's Python runs in a box, with state
kept per box, its outputs and errors shown here."""

from __future__ import annotations

import time

from boxrun_kernel.outputs import MIME_TYPE

from .conftest import Driver, text


def errors(messages: list[dict]) -> list[dict]:
    return [m["content"] for m in messages if m["msg_type"] == "error"]


def test_state_outputs_and_errors_per_box(kernel: Driver) -> None:
    kernel.run("%boxrun create python --name cells --cpu 1 --memory 512")
    kernel.run("%boxrun create python --name second --cpu 1 --memory 512")
    assert not errors(kernel.run("%%boxrun cells\nimport socket\nx = 20"))
    out = kernel.run("%%boxrun cells\nprint(socket.gethostname(), x * 2)\nx + 1")
    assert text(out) == "cells 40\n21\n"
    assert text(kernel.run("print('x' in globals())")) == "False\n"  # not here
    shown = kernel.run("%%boxrun cells\nfrom IPython.display import HTML, display\n"
                       "display(HTML('<b>bold</b>'))")
    assert [m["content"]["data"][MIME_TYPE]["data"]["text/html"] for m in shown
            if m["msg_type"] == "display_data"] == ["<b>bold</b>"]  # for the lab extension
    failed = kernel.run("%%boxrun cells\n1 / 0")
    assert kernel.reply["status"] == "error"
    assert "ZeroDivisionError" in "".join(errors(failed)[0]["traceback"])
    # the other box has state of its own; without a name the current box runs the cell
    assert "NameError" in str(errors(kernel.run("%%boxrun second\nx")))
    kernel.run("%boxrun use cells")
    assert text(kernel.run("%%boxrun\nx")) == "20\n"


def test_interrupt_keeps_state(kernel: Driver) -> None:
    kernel.run("%%boxrun cells\nkept = 'yes'")
    started = time.monotonic()
    msg_id = kernel.kc.execute("%%boxrun cells\nimport time\nwhile True:\n    time.sleep(0.05)")
    time.sleep(2)
    kernel.km.interrupt_kernel()
    out = kernel.collect(msg_id)
    assert time.monotonic() - started < 30
    assert "KeyboardInterrupt" in "".join(errors(out)[0]["traceback"])
    assert text(kernel.run("%%boxrun cells\nkept")) == "'yes'\n"


def test_boxes_that_cannot_run_cells(kernel: Driver) -> None:
    kernel.run("%boxrun create python --name other --cpu 1 --memory 512")
    kernel.run("%%boxrun other\nx = 1")
    kernel.run("%boxrun stop other")
    stopped = text(kernel.run("%%boxrun other\n1"), "stderr")
    assert stopped == "BoxRun: box other is stopped: start it with %boxrun start other\n"
    assert "no box with id or name 'ghost'" in text(kernel.run("%%boxrun ghost\n1"), "stderr")
    assert "one box name at most" in text(kernel.run("%%boxrun a b\n1"), "stderr")
    kernel.run("%boxrun start other")
    assert "NameError" in str(errors(kernel.run("%%boxrun other\nx")))  # a fresh interpreter
    for name in ("cells", "second", "other"):
        kernel.run(f"%boxrun rm --force {name}")
