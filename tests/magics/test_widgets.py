"""The monitor widget through its comm messages: boxes changed by another client, button
clicks and the create form acting on the server, and its background work stopping."""

from __future__ import annotations

import tempfile
from pathlib import Path

import httpx
import pytest

from ..servers import ServerProcess
from .conftest import VIEW, Driver, Row, status, text


@pytest.fixture(scope="module")
def http(magics_server: ServerProcess) -> httpx.Client:
    with magics_server.http() as client:
        yield client


@pytest.fixture(scope="module")
def monitor(kernel: Driver) -> Driver:
    shown = kernel.run("%boxrun monitor")
    data = next(m for m in shown if m["msg_type"] == "display_data")["content"]["data"]
    assert VIEW in data and data["text/plain"].startswith("BoxRun at ")
    return kernel


def test_follows_another_client(monitor: Driver, http: httpx.Client) -> None:
    spec = {"image": "debian", "name": "watched", "cpu": 1, "memory_mb": 128}
    assert http.post("/v1/boxes", json=spec).status_code == 201
    row = Row(monitor, "watched")
    row.wait_status("running")
    assert "namespace sandbox" in str(monitor.models) and "128 MiB reserved" in str(
        monitor.models)
    assert "configured: backend = namespace" in str(monitor.models)  # why this backend
    http.post("/v1/boxes/watched:stop").raise_for_status()
    row.wait_status("stopped")
    start = row.ids()["buttons"]["start"]
    monitor.wait(lambda: monitor.models[start]["disabled"] is False, what="start enabled")
    http.post("/v1/boxes/watched:start").raise_for_status()
    row.wait_status("running")
    # live metrics: the cpu bar's caption and a sparkline of at least two samples
    monitor.wait(lambda: "cpu " in monitor.models[row.ids()["cpu"]]["value"]
                 and "%</span>" in monitor.models[row.ids()["cpu"]]["value"]
                 and "polyline" in monitor.models[row.ids()["spark"]]["value"],
                 what="metrics of box watched")
    row_id = row.ids()["row"]
    http.delete("/v1/boxes/watched", params={"force": "true"}).raise_for_status()
    monitor.wait(lambda: row_id in monitor.closed, what="the row of a removed box closed")


def test_row_says_why_a_box_is_down(monitor: Driver, http: httpx.Client) -> None:
    folder = Path(tempfile.mkdtemp(prefix="boxrun-widget-"))
    folder.chmod(0o755)
    spec = {"image": "debian", "name": "broken", "cpu": 1, "memory_mb": 128,
            "volumes": [{"host_path": str(folder), "guest_path": "/mnt/gone"}]}
    http.post("/v1/boxes", json=spec).raise_for_status()
    row = Row(monitor, "broken")
    row.wait_status("running")
    http.post("/v1/boxes/broken:stop").raise_for_status()
    folder.rmdir()
    assert http.post("/v1/boxes/broken:start").status_code == 400  # its volume is gone
    def child(model: str, index: int) -> str:
        return monitor.models[model]["children"][index].removeprefix("IPY_MODEL_")

    about = child(child(child(row.ids()["row"], 1), 0), 0)  # details, first line, text
    monitor.wait(lambda: "volume host_path does not exist" in monitor.models[about]["value"],
                 what="the box's error in its row")
    assert "RUNTIME_ERROR" in monitor.models[about]["value"]
    http.delete("/v1/boxes/broken", params={"force": "true"}).raise_for_status()


def test_buttons_stop_start_and_remove(monitor: Driver, http: httpx.Client,
                                       magics_server: ServerProcess) -> None:
    spec = {"image": "debian", "name": "clicked", "cpu": 1, "memory_mb": 128}
    http.post("/v1/boxes", json=spec).raise_for_status()
    row = Row(monitor, "clicked")
    row.wait_status("running")
    assert "use here" not in row.ids()["buttons"]  # a plain kernel: nothing to use
    row.click("stop")
    monitor.wait(lambda: status(magics_server, "clicked") == "stopped", what="the stop")
    row.wait_status("stopped")
    row.click("start")
    row.wait_status("running")
    row.click("remove")
    confirm = row.ids()["confirm"]
    layout = monitor.models[confirm]["layout"].removeprefix("IPY_MODEL_")
    monitor.wait(lambda: monitor.models[layout].get("display") == "flex", what="the question")
    assert status(magics_server, "clicked") == "running"  # nothing removed before the answer
    yes = monitor.models[confirm]["children"][1].removeprefix("IPY_MODEL_")
    monitor.send_comm(yes, {"method": "custom", "content": {"event": "click"}})
    monitor.wait(lambda: status(magics_server, "clicked") is None, what="the removal")


def test_create_form_and_errors(monitor: Driver, magics_server: ServerProcess) -> None:
    models = monitor.models
    image = monitor.wait(lambda: next((i for i, s in models.items()
                                       if s.get("_model_name") == "DropdownModel"
                                       and "debian (local/debian)" in s["_options_labels"]),
                                      None), what="the image picker")
    name = next(i for i, s in models.items() if s.get("placeholder") == "(generated)")
    create = next(i for i, s in models.items() if s.get("description") == "create")
    bar = next(i for i, s in models.items() if s.get("_model_name") == "IntProgressModel")
    labels = models[image]["_options_labels"]
    monitor.send_comm(image, {"method": "update",
                              "state": {"index": labels.index("debian (local/debian)")}})
    monitor.send_comm(name, {"method": "update", "state": {"value": "formed"}})
    monitor.send_comm(create, {"method": "custom", "content": {"event": "click"}})
    monitor.wait(lambda: models[bar].get("bar_style") == "success", what="the create")
    assert models[bar]["value"] == 100 and status(magics_server, "formed") == "running"
    Row(monitor, "formed").wait_status("running")
    monitor.send_comm(create, {"method": "custom", "content": {"event": "click"}})
    monitor.wait(lambda: any("already exists" in str(s.get("value", "")) for s in models.values()),
                 what="the server's error in the widget")
    assert models[bar]["bar_style"] == "danger"
    with magics_server.http() as http:
        http.delete("/v1/boxes/formed", params={"force": "true"}).raise_for_status()


def test_background_work_stops_when_closed(kernel: Driver) -> None:
    out = kernel.run("from boxrun_kernel.widgets import BoxMonitor\n"
                     "import time\n"
                     "a, b = BoxMonitor(), BoxMonitor()\n"
                     "time.sleep(0.5); print(a.watcher.running, b.watcher.running)\n"
                     "a.close()\n"
                     "time.sleep(0.5); print(a.watcher.running)\n")
    assert text(out) == "True True\nFalse\n"
    # b closed by the frontend
    b_id = kernel.wait(lambda: text(kernel.run("print(b.model_id)")).strip())
    kernel.kc.shell_channel.send(kernel.kc.session.msg("comm_close", {"comm_id": b_id,
                                                                      "data": {}}))
    kernel.wait(lambda: text(kernel.run("print(b.watcher.running)")) == "False\n",
                what="b's background work to stop")
