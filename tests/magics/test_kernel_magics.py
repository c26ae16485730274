"""``%boxrun`` inside the BoxRun kernel: run on the host, never sent into the box; ``use``
moving the kernel's interpreter; ``%%boxrun NAME``; the monitor's comms kept on the host."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from jupyter_client.manager import start_new_kernel

from ..servers import ServerProcess
from .conftest import VIEW, Driver, Row, status, text


@pytest.fixture(scope="module")
def boxrun(magics_server: ServerProcess, work_dir: Path) -> Iterator[Driver]:
    """A BoxRun kernel using the magics' server."""
    env = {**os.environ, "BOXRUN_SOCKET": magics_server.socket}
    env.pop("BOXRUN_URL", None)
    km, kc = start_new_kernel(kernel_name="boxrun", env=env, cwd=str(work_dir),
                              startup_timeout=120)
    driver = Driver(km, kc)
    yield driver
    kc.stop_channels()
    km.shutdown_kernel()  # graceful: the kernel removes its own box


def own_box(kernel: Driver) -> str:
    return text(kernel.run("import socket; print(socket.gethostname(), end='')"), "stdout")


def test_magics_run_on_the_host(boxrun: Driver, magics_server: ServerProcess) -> None:
    boxrun.run("x = 41")
    before = boxrun.reply["execution_count"]
    page = text(boxrun.run("%boxrun?"), "stdout")
    assert "%%boxrun" in page and "monitor" in page
    name = own_box(boxrun)
    listed = boxrun.run("%boxrun ls")
    assert boxrun.reply["status"] == "ok" and f"* {name}" in text(listed)
    # the box counted the cell (its magic line a comment there) and kept its state
    assert boxrun.reply["execution_count"] == before + 3
    assert text(boxrun.run("print(x + 1)"), "stdout") == "42\n"
    # magics first, then the cell's code in the box
    out = boxrun.run("%boxrun exec -- echo from-exec\nprint(x)")
    assert text(out, "stdout") == "from-exec\n41\n"
    info = boxrun.run("%boxrun info")
    assert any(VIEW in m["content"].get("data", {}) for m in info
               if m["msg_type"] == "display_data")
    mixed = boxrun.run("print('never')\n%boxrun ls")
    assert boxrun.reply["status"] == "error" and boxrun.reply["ename"] == "UsageError"
    assert "move line 2" in boxrun.reply["evalue"] and "never" not in text(mixed)
    assert "usage" in text(boxrun.run("%boxrun create"), "stderr")
    assert status(magics_server, name) == "running"


def test_interrupt_stops_a_magic(boxrun: Driver) -> None:
    msg_id = boxrun.kc.execute("%boxrun exec -- sleep 60")
    time.sleep(2)  # the exec is running in the box
    started = time.monotonic()
    boxrun.km.interrupt_kernel()
    out = boxrun.collect(msg_id, timeout=30)
    assert time.monotonic() - started < 10 and "canceled" in text(out, "stderr")
    assert text(boxrun.run("print('still here')"), "stdout") == "still here\n"


def test_stop_start_use_and_cell_magic(boxrun: Driver, magics_server: ServerProcess) -> None:
    name = own_box(boxrun)
    boxrun.run("%boxrun stop")
    assert boxrun.reply["status"] == "ok" and status(magics_server, name) == "stopped"
    boxrun.run("1 + 1")
    assert boxrun.reply["ename"] == "BoxUnavailable" and "%boxrun start" in boxrun.reply["evalue"]
    boxrun.run("%boxrun start")
    assert text(boxrun.run("print(6 * 7)"), "stdout") == "42\n"  # a new interpreter there

    created = text(boxrun.run("%boxrun create python --name roomy --cpu 1 --memory 256"))
    assert "box roomy" in created and status(magics_server, "roomy") == "running"
    assert text(boxrun.run("%%boxrun roomy\ny = 5\nprint(y)"), "stdout") == "5\n"
    assert own_box(boxrun) == name  # %%boxrun NAME left the kernel where it was
    moved = boxrun.run("%boxrun use roomy\nimport socket; print(socket.gethostname())")
    assert text(moved, "stdout").endswith("roomy\n")
    boxrun.run(f"%boxrun use {name}")
    assert own_box(boxrun) == name
    boxrun.run("%boxrun rm --force roomy")
    assert status(magics_server, "roomy") is None


def test_monitor_comms_stay_on_the_host(boxrun: Driver, magics_server: ServerProcess) -> None:
    shown = boxrun.run("%boxrun monitor")
    assert any(VIEW in m["content"].get("data", {}) for m in shown
               if m["msg_type"] == "display_data")
    with magics_server.http() as http:
        assert http.post("/v1/boxes", json={"image": "debian", "name": "seen-by-kernel", "cpu": 1,
                                            "memory_mb": 128}).status_code == 201
    row = Row(boxrun, "seen-by-kernel")
    row.wait_status("running")
    row.click("stop")  # a comm message for a host widget: handled here, not in the box
    boxrun.wait(lambda: status(magics_server, "seen-by-kernel") == "stopped", what="the stop")
    row.wait_status("stopped")
    boxrun.kc.comm_info()
    reply = boxrun.kc.get_shell_msg(timeout=30)
    assert row.ids()["badge"] in reply["content"]["comms"]
    with magics_server.http() as http:
        assert http.delete("/v1/boxes/seen-by-kernel").status_code == 200


def test_host_widgets_come_back_after_a_reload(boxrun: Driver) -> None:
    """A reloaded page's widget manager asks its control comm for every widget's state:
    one answer holds the box's widgets and the host's (asked per comm instead, one widget
    closed meanwhile left the page waiting for all of them, and it showed none)."""
    boxrun.run("%boxrun monitor\nimport ipywidgets\nslider = ipywidgets.IntSlider(7)")
    assert boxrun.reply["status"] == "ok", boxrun.reply
    kc, session = boxrun.kc, boxrun.kc.session
    opened = {"comm_id": "reload1", "target_name": "jupyter.widget.control", "data": {}}
    kc.shell_channel.send(session.msg("comm_open", opened, metadata={"version": "1.0.0"}))
    kc.shell_channel.send(session.msg("comm_msg", {"comm_id": "reload1",
                                                   "data": {"method": "request_states"}}))
    states = boxrun.wait(lambda: boxrun.answers.get("reload1"), what="the answer")["states"]
    header = next(i for i, s in boxrun.models.items()
                  if s.get("_model_name") == "HTMLModel" and "BoxRun</b> at" in s.get("value", ""))
    assert states[header]["model_name"] == "HTMLModel"
    assert "BoxRun</b> at" in states[header]["state"]["value"]
    sliders = [s["state"]["value"] for s in states.values() if s["model_name"] == "IntSliderModel"]
    assert sliders == [7]
    assert "reload1" not in boxrun.closed
    # A manager that asks each comm (ipywidgets 7's way) still gets the host's answers.
    kc.comm_info(target_name="jupyter.widget")
    assert header in kc.get_shell_msg(timeout=30)["content"]["comms"]
    boxrun.updates.clear()
    boxrun.send_comm(header, {"method": "request_state"})
    boxrun.wait(lambda: any(cid == header and "BoxRun</b> at" in state.get("value", "")
                            for cid, state in boxrun.updates), what="the header's state")
    streams = text(boxrun.run("print('after')"), "stderr")
    assert "No such comm" not in streams
