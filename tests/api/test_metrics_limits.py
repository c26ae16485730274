"""Limits, metrics and the metrics and lifecycle streams, against a real server and boxes."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from httpx_sse import EventSource, ServerSentEvent, connect_sse

from ..servers import ServerProcess

HOG = """
import sys
chunks = []
for i in range(32):
    chunks.append(b"x" * (64 << 20))
    print((i + 1) * 64, flush=True)
"""

FORK_BOMB = """
import os, time
children, error = [], None
while len(children) < 3000:
    try:
        pid = os.fork()
    except OSError as exc:
        error = exc.errno
        break
    if pid == 0:
        os.execv("/bin/sleep", ["sleep", "30"])
    children.append(pid)
print(len(children), error, flush=True)
time.sleep(1)
for pid in children:
    os.kill(pid, 9)
    os.waitpid(pid, 0)
"""


@pytest.fixture
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    with server.http() as client:
        yield client


@pytest.fixture
def make_box(http: httpx.Client) -> Iterator[Callable[..., dict]]:
    """Creates boxes (``python`` image, 1 cpu unless given); removes them afterwards."""
    made: list[str] = []

    def make(**body: Any) -> dict:
        resp = http.post("/v1/boxes", json={"image": "python", "cpu": 1, "memory_mb": 256, **body})
        assert resp.status_code == 201, resp.text
        made.append(resp.json()["id"])
        return resp.json()

    yield make
    for box_id in made:
        http.delete(f"/v1/boxes/{box_id}", params={"force": "true"})


def start(http: httpx.Client, box: dict, *cmd: str) -> str:
    resp = http.post(f"/v1/boxes/{box['id']}/exec", json={"cmd": list(cmd)})
    assert resp.status_code == 201, resp.text
    return resp.json()["id"]


def events_of(source: EventSource) -> Iterator[ServerSentEvent]:
    """The stream's events; httpx-sse also yields keep-alives (no data) after an ``id:``."""
    return (event for event in source.iter_sse() if event.data)


def finish(http: httpx.Client, box: dict, exec_id: str) -> tuple[int | None, str]:
    """Wait for an exec; its exit code and stdout."""
    out, code = [], None
    with connect_sse(http, "GET", f"/v1/boxes/{box['id']}/exec/{exec_id}/events") as events:
        for event in events_of(events):
            data = json.loads(event.data)
            if event.event == "exit":
                code = json.loads(data["data"])["exit_code"]
            elif data["stream"] == "stdout":
                out.append(data["data"])
    return code, "".join(out)


def run(http: httpx.Client, box: dict, *cmd: str) -> tuple[int | None, str]:
    return finish(http, box, start(http, box, *cmd))


def metrics(http: httpx.Client, box: dict) -> dict:
    resp = http.get(f"/v1/boxes/{box['id']}/metrics")
    assert resp.status_code == 200, resp.text
    return resp.json()


def assert_responsive(http: httpx.Client, other: dict) -> None:
    t0 = time.monotonic()
    assert http.get("/v1/info").status_code == 200
    assert run(http, other, "echo", "alive") == (0, "alive\n")
    assert time.monotonic() - t0 < 5, "the server or the other box was slow"


def test_info_says_how_limits_apply(http: httpx.Client) -> None:
    info = http.get("/v1/info").json()
    assert info["limits"] in ("cgroup v1", "cgroup v2", "rlimits", "none")
    disk = [text for text in info["limitations"] if "disk_size_gb" in text]  # if unenforced
    assert all(text.startswith("disk_size_gb is not enforced: ") for text in disk)


def test_memory_hog_is_contained(http: httpx.Client, make_box: Callable[..., dict]) -> None:
    if http.get("/v1/info").json()["limits"] not in ("cgroup v1", "cgroup v2"):
        pytest.skip("needs cgroups")
    hog, other = make_box(memory_mb=256), make_box()
    exec_id = start(http, hog, "python3", "-c", HOG)
    assert_responsive(http, other)
    code, out = finish(http, hog, exec_id)
    reached = int(out.split()[-1]) if out.split() else 0
    assert code != 0 and reached <= 256, (code, out)  # stopped at the box's limit
    assert_responsive(http, other)
    if http.get("/v1/info").json()["isolation"] == "gvisor":
        # the host kills the whole Sentry (a documented limitation): the box is stopped
        # with BOX_DIED, and starts again
        deadline = time.monotonic() + 30
        while (box := http.get(f"/v1/boxes/{hog['id']}").json())["status"] == "running":
            assert time.monotonic() < deadline, box
            time.sleep(0.2)
        assert box["status"] == "stopped" and box["error_code"] == "BOX_DIED", box
        assert http.post(f"/v1/boxes/{hog['id']}:start").status_code == 200
    else:
        assert code == 137, (code, out)  # only the process is OOM-killed
    assert run(http, hog, "echo", "still here") == (0, "still here\n")


def test_fork_bomb_is_bounded(http: httpx.Client, make_box: Callable[..., dict]) -> None:
    if http.get("/v1/info").json()["limits"] == "none":
        pytest.skip("no limits on this host")
    bomb, other = make_box(memory_mb=1024), make_box()
    exec_id = start(http, bomb, "python3", "-c", FORK_BOMB)
    time.sleep(1)
    assert_responsive(http, other)
    peak = metrics(http, bomb)["pids"]
    code, out = finish(http, bomb, exec_id)
    forked, errno = out.split()
    assert code == 0 and errno == "11" and 100 < int(forked) < 1024, out  # EAGAIN
    assert peak is None or peak <= 1024
    assert_responsive(http, other)


def test_metrics_follow_the_work(http: httpx.Client, make_box: Callable[..., dict]) -> None:
    box = make_box(memory_mb=512)
    idle = metrics(http, box)
    assert idle["status"] == "running" and idle["box_id"] == box["id"]
    assert idle["cpu_limit"] == 1 and idle["uptime_s"] >= 0
    assert idle["cpu_percent"] is not None and idle["cpu_percent"] < 50
    assert idle["net_rx_bytes"] == 0 and idle["pids"] >= 1
    assert idle["timings"]["create_ms"] > 0 and idle["timings"]["boot_ms"] > 0
    spin = start(http, box, "sh", "-c", "timeout 3 sh -c 'while :; do :; done' & "
                                        "timeout 3 sh -c 'while :; do :; done'")
    time.sleep(1)
    busy = metrics(http, box)
    limits = http.get("/v1/info").json()["limits"]
    assert busy["cpu_percent"] > 10, busy  # ~100 on an idle host; others may load it
    if limits.startswith("cgroup"):  # two spinning loops, one cpu
        assert busy["cpu_percent"] < 130, busy
    assert finish(http, box, spin)[0] == 124
    hold = start(http, box, "python3", "-c", "x = b'x' * (100 << 20); import time; time.sleep(30)")
    time.sleep(2)
    full = metrics(http, box)
    assert full["memory_bytes"] - idle["memory_bytes"] > 80 << 20, (idle, full)
    if limits.startswith("cgroup"):
        assert full["memory_limit_bytes"] == 512 << 20
    assert full["execs"] == {"total": 2, "running": 1, "failed": 1}  # timeout exits 124
    http.post(f"/v1/boxes/{box['id']}/exec/{hold}:cancel")
    http.post(f"/v1/boxes/{box['id']}:stop")
    resp = http.get(f"/v1/boxes/{box['id']}/metrics")
    assert resp.status_code == 400 and resp.json()["code"] == "BOX_NOT_RUNNING"


def collect(client: httpx.Client, url: str, until: Callable[[list], bool],
            out: list, ready: threading.Event) -> None:
    """Append ``(id, event, data)`` of the SSE stream at ``url`` to ``out`` until ``until``."""
    with connect_sse(client, "GET", url) as events:
        ready.set()
        for event in events_of(events):
            out.append((event.id, event.event, json.loads(event.data)))
            if until(out):
                return


def test_lifecycle_stream_reports_each_transition_once(server: ServerProcess, http: httpx.Client) -> None:
    seen: list = []
    ready = threading.Event()
    mine: list[str] = []

    def done(events: list) -> bool:
        return any(e[1] == "removed" and e[2]["box"]["id"] in mine for e in events)

    with server.http() as listener:
        reader = threading.Thread(target=collect, args=(listener, "/v1/events", done, seen, ready))
        reader.start()
        assert ready.wait(10)
        box = http.post("/v1/boxes", json={"image": "debian", "cpu": 1, "memory_mb": 64}).json()
        mine.append(box["id"])
        for action in ("stop", "start", "stop"):
            assert http.post(f"/v1/boxes/{box['id']}:{action}").status_code == 200
        assert http.delete(f"/v1/boxes/{box['id']}").status_code in (200, 204)
        reader.join(20)
    events = [e for e in seen if e[2]["box"]["id"] == box["id"]]
    assert [e[1] for e in events] == ["created", "started", "stopped", "started", "stopped", "removed"]
    assert [e[2]["type"] for e in events] == [e[1] for e in events]
    assert [e[2]["box"]["status"] for e in events] == [
        "creating", "running", "stopped", "running", "stopped", "stopped"]
    ids = [int(e[0]) for e in seen]
    assert ids == sorted(set(ids)), "ids repeat or go backwards"
    resumed: list = []
    headers = {"Last-Event-ID": events[-3][0]}
    with connect_sse(http, "GET", "/v1/events", headers=headers) as stream:
        for event in events_of(stream):
            resumed.append((event.id, event.event, json.loads(event.data)))
            if event.id == events[-1][0]:
                break
    assert [e for e in resumed if e[2]["box"]["id"] == box["id"]] == events[-2:]


def test_metrics_streams_share_one_sampler(server: ServerProcess, http: httpx.Client,
                                           make_box: Callable[..., dict]) -> None:
    box = make_box()
    url = "/v1/metrics/events?interval=0.3"
    assert http.get("/v1/metrics/events?interval=0.1").status_code == 400
    streams: list[list] = [[], []]
    readers = []

    def enough(events: list) -> bool:
        return sum(e[2]["box_id"] == box["id"] for e in events) >= 4

    for out, path in zip(streams, (url, f"/v1/boxes/{box['id']}/metrics/events?interval=0.3"), strict=True):
        client = server.http()
        ready = threading.Event()
        reader = threading.Thread(target=collect, args=(client, path, enough, out, ready))
        reader.start()
        readers.append((reader, client))
        assert ready.wait(10)
    for reader, client in readers:
        reader.join(20)
        client.close()
    both = [[e[2] for e in out if e[2]["box_id"] == box["id"]] for out in streams]
    assert all(len(samples) >= 4 for samples in both)
    assert all(s["status"] == "running" and s["cpu_percent"] is not None for s in both[1])
    assert {s["at"] for s in both[0]} & {s["at"] for s in both[1]}, "sampled twice per tick"
    assert {e[1] for out in streams for e in out} == {"metrics"}
    gaps = [b["uptime_s"] - a["uptime_s"] for a, b in zip(both[1], both[1][1:], strict=False)]
    assert all(0.1 <= gap <= 1.0 for gap in gaps), gaps
