"""Boxes outlive the server: after SIGTERM or SIGKILL of ``boxrun serve`` the next server
on the state dir adopts the boxes still running (status, processes, files, limits,
metrics, network), finalises the execs that ran, stops the boxes whose sandbox died
meanwhile and deletes what no box owns. ``--stop-boxes`` keeps the old way.

Namespace backend: the tests read its records (``boxes/.ctl``) to find a box's host
processes.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from jupyter_ext.core.manager import EXEC_ORPHANED

from ..security.conftest import exec_events, host_pids_of, run_exec
from ..servers import ServerProcess

TICK = "while :; do date +%s%N >> /root/tick; sleep 0.2; done"


@pytest.fixture
def keeping(tmp_path: Path, images_dir: Path) -> Iterator[ServerProcess]:
    """A server whose boxes outlive it; afterwards, a last one stops them all."""
    srv = ServerProcess(tmp_path / "state", images_dir, env={"BOXRUN_STOP_BOXES": "0"})
    yield srv
    srv.kill()
    srv.start("--stop-boxes").stop()


def make_box(http: httpx.Client, **fields: object) -> dict:
    resp = http.post("/v1/boxes", json={"image": "debian", "cpu": 1, "memory_mb": 192,
                                        **fields})
    assert resp.status_code == 201, resp.text
    return resp.json()


def output(http: httpx.Client, box: dict, script: str) -> str:
    """The stdout of ``sh -c script`` (which must succeed)."""
    ex, events = run_exec(http, box["id"], script)
    assert ex["exit_code"] == 0, (ex, events)
    return "".join(d["data"] for name, d in events if name == "log" and d["stream"] == "stdout")


def first_pid(server: ServerProcess, box: dict) -> int:
    """Host pid of the box's first process, from the namespace backend's record."""
    record = server.state_dir / "boxes" / ".ctl" / f"{box['boxlite_id']}.json"
    return json.loads(record.read_text())["pid"]


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def memory_limit(box: dict) -> int | None:
    """The box's cgroup memory limit, as the kernel has it (None without a cgroup)."""
    handle = box["boxlite_id"]
    for path in (f"/sys/fs/cgroup/memory/boxrun/{handle}/memory.limit_in_bytes",
                 f"/sys/fs/cgroup/boxrun/{handle}/memory.max"):
        if os.path.exists(path):
            return int(Path(path).read_text())
    return None


def ticks(http: httpx.Client, box: dict) -> int:
    return int(output(http, box, "wc -l < /root/tick"))


def check_adopted(server: ServerProcess, box: dict, pid: int, long_exec: str) -> None:
    """The box runs on as it was, and the exec that ran across the restart ended."""
    with server.http() as http:
        got = http.get(f"/v1/boxes/{box['id']}").json()
        assert got["status"] == "running" and got["error_code"] is None, got
        assert first_pid(server, box) == pid and running(pid)
        before = ticks(http, box)
        time.sleep(1)
        assert ticks(http, box) >= before + 3  # the background process still ticks
        assert output(http, box, "cat /root/kept") == "kept\n"
        metrics = http.get(f"/v1/boxes/{box['id']}/metrics")
        assert metrics.status_code == 200, metrics.text
        limits = http.get("/v1/info").json()["limits"]
        if limits.startswith("cgroup"):
            assert metrics.json()["memory_limit_bytes"] == 192 << 20
            assert memory_limit(box) == 192 << 20
            assert metrics.json()["pids"] >= 3 and metrics.json()["memory_bytes"] > 0
        assert http.get("/v1/info").json()["reserved_memory_mb"] == 192
        ex = http.get(f"/v1/boxes/{box['id']}/exec/{long_exec}").json()
        assert ex["status"] == "failed" and ex["exit_code"] is None, ex
        assert ex["error_message"] == EXEC_ORPHANED
        name, exit_event = exec_events(http, box["id"], long_exec)[-1]
        assert name == "exit" and json.loads(exit_event["data"])["error"] == EXEC_ORPHANED


def start_across(server: ServerProcess, box: dict) -> str:
    """An exec that runs when the server goes away."""
    with server.http() as http:
        resp = http.post(f"/v1/boxes/{box['id']}/exec",
                         json={"cmd": ["sh", "-c", "echo started; sleep 600"]})
        assert resp.status_code == 201, resp.text
        time.sleep(0.5)
        return resp.json()["id"]


def test_boxes_outlive_sigterm_and_sigkill(keeping: ServerProcess) -> None:
    keeping.start()
    with keeping.http() as http:
        box = make_box(http, network=True)
        output(http, box, f"echo kept > /root/kept; ({TICK}) > /dev/null 2>&1 &")
    pid = first_pid(keeping, box)
    slirp = [p for p in host_pids_of("slirp4netns") if f"/proc/{pid}/ns/net".encode()
             in Path(f"/proc/{p}/cmdline").read_bytes()]
    assert len(slirp) == 1
    for sig in (signal.SIGTERM, signal.SIGKILL):
        long_exec = start_across(keeping, box)
        keeping.kill(sig)
        assert running(pid) and running(slirp[0])
        keeping.start()
        check_adopted(keeping, box, pid, long_exec)
        with keeping.http() as http:
            assert "tap0" in output(http, box, "cat /proc/net/dev")
        assert running(slirp[0])
    with keeping.http() as http:
        assert http.post(f"/v1/boxes/{box['id']}:stop").json()["status"] == "stopped"
    deadline = time.monotonic() + 10
    while (running(pid) or running(slirp[0])) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not running(pid) and not running(slirp[0])
    assert not (keeping.state_dir / "boxes" / ".ctl" / f"{box['boxlite_id']}.json").exists()


def test_stop_boxes_keeps_the_old_way(keeping: ServerProcess) -> None:
    keeping.start("--stop-boxes")
    with keeping.http() as http:
        box = make_box(http)
    pid = first_pid(keeping, box)
    keeping.stop()
    assert not running(pid)
    keeping.start()
    with keeping.http() as http:
        got = http.get(f"/v1/boxes/{box['id']}").json()
        assert got["status"] == "stopped" and got["error_code"] is None, got


def test_start_stops_dead_boxes_and_deletes_orphans(keeping: ServerProcess) -> None:
    keeping.start()
    with keeping.http() as http:
        alive, dead, orphan = make_box(http), make_box(http), make_box(http)
    keeping.kill()
    pids = {b["id"]: first_pid(keeping, b) for b in (alive, dead, orphan)}
    os.kill(pids[dead["id"]], signal.SIGKILL)  # its sandbox dies while no server runs
    with sqlite3.connect(keeping.state_dir / "boxrun.db") as db:  # no row owns it
        db.execute("DELETE FROM boxes WHERE id = ?", (orphan["id"],))
    stray = keeping.state_dir / "boxes" / "ns-0123456789abcdef"
    (stray / "upper").mkdir(parents=True)
    keeping.start()
    with keeping.http() as http:
        assert http.get(f"/v1/boxes/{alive['id']}").json()["status"] == "running"
        got = http.get(f"/v1/boxes/{dead['id']}").json()
        assert got["status"] == "stopped" and got["error_code"] == "BOX_DIED", got
        assert "gone when the server started" in got["error_message"]
        assert http.get(f"/v1/boxes/{orphan['id']}").status_code == 404
        assert http.get("/v1/info").json()["reserved_memory_mb"] == 192
        assert http.post(f"/v1/boxes/{dead['id']}:start").json()["status"] == "running"
    assert not running(pids[orphan["id"]]) and running(pids[alive["id"]])
    boxes = {p.name for p in (keeping.state_dir / "boxes").glob("ns-*")}
    assert boxes == {alive["boxlite_id"], dead["boxlite_id"]}
    records = {p.name for p in (keeping.state_dir / "boxes" / ".ctl").glob("*.json")}
    assert records == {f"{alive['boxlite_id']}.json", f"{dead['boxlite_id']}.json"}
