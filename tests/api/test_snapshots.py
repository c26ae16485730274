"""Snapshots of live boxes through a real ``boxrun serve`` on each backend (disk-only on
namespace, with memory on gVisor): restore, forks, errors, quota, a server restart,
remove."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from jupyter_ext.sessions.install import agent_dir

from ..servers import ServerProcess
from .test_http import error
from .test_metrics_limits import run
from .test_sessions import Session, start

#: A background counter in a shell's memory, appending each value to /root/log.
COUNTER = ("i=0; while :; do i=$((i+1)); echo $i >> /root/log; sleep 0.05; done"
           " </dev/null >/dev/null 2>&1 &")


@pytest.fixture
def memory(server_backend: str) -> bool:
    """Whether the backend's snapshots save memory (gVisor) or the disk only."""
    return server_backend == "gvisor"


@pytest.fixture
def http(new_server: ServerProcess):
    new_server.env["BOXRUN_MAX_SNAPSHOT_BYTES"] = str(512 << 20)
    with new_server.start().http() as client:
        yield client
        remove_all(client)


def remove_all(http: httpx.Client) -> None:
    """Remove every box (a gVisor sandbox outlives a killed server)."""
    for box in http.get("/v1/boxes").json():
        http.delete(f"/v1/boxes/{box['id']}", params={"force": "true"})


def make_box(http: httpx.Client, **extra) -> dict:
    resp = http.post("/v1/boxes", json={"image": "debian", "cpu": 1, "memory_mb": 256,
                                        "disk_size_gb": 1, **extra})
    assert resp.status_code == 201, resp.text
    return resp.json()


def snap(http: httpx.Client, box: dict, name: str) -> dict:
    resp = http.post(f"/v1/boxes/{box['id']}/snapshots", json={"name": name})
    assert resp.status_code == 201, resp.text
    return resp.json()


def sh(http: httpx.Client, box: dict, script: str) -> str:
    code, out = run(http, box, "sh", "-c", script)
    assert code == 0, out
    return out


def counts(http: httpx.Client, box: dict) -> list[int]:
    return [int(n) for n in sh(http, box, "cat /root/log").split()]


def test_restore_fork_and_errors(http: httpx.Client, memory: bool) -> None:
    box = make_box(http)
    sh(http, box, "echo before > /root/kept")
    t0 = time.monotonic()
    first = snap(http, box, "first")
    took = time.monotonic() - t0
    assert first["id"].startswith("snap_") and first["name"] == "first"
    assert first["box_id"] == box["id"] and first["memory"] is memory
    assert 0 < first["size_bytes"] < 512 << 20
    print(f"snapshot of an idle box: {took:.2f} s, {first['size_bytes']} bytes")
    # the box goes on; what is written after the snapshot is gone after restore
    sh(http, box, "echo after > /root/later; echo changed > /root/kept")
    t0 = time.monotonic()
    resp = http.post(f"/v1/boxes/{box['id']}/snapshots/first:restore")
    print(f"restore: {time.monotonic() - t0:.2f} s")
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "running"
    assert sh(http, box, "cat /root/kept; ls /root; stat -c %s /root/kept") == "before\nkept\n7\n"

    # lookups by id and name, errors in the API's format
    listed = http.get(f"/v1/boxes/{box['id']}/snapshots").json()
    assert [s["id"] for s in listed] == [first["id"]]
    assert http.get(f"/v1/boxes/{box['id']}/snapshots/{first['id']}").json() == first
    assert http.get(f"/v1/boxes/{box['id']}/snapshots/first").json() == first
    error(http.get(f"/v1/boxes/{box['id']}/snapshots/nope"), 404, "SNAPSHOT_NOT_FOUND")
    error(http.post(f"/v1/boxes/{box['id']}/snapshots/nope:restore"), 404, "SNAPSHOT_NOT_FOUND")
    error(http.delete(f"/v1/boxes/{box['id']}/snapshots/nope"), 404, "SNAPSHOT_NOT_FOUND")
    error(http.get("/v1/boxes/nobox/snapshots"), 404, "BOX_NOT_FOUND")
    error(http.post(f"/v1/boxes/{box['id']}/snapshots", json={"name": "../x"}), 422,
          "VALIDATION_ERROR")
    error(http.post(f"/v1/boxes/{box['id']}/snapshots", json={"name": "first"}), 409,
          "NAME_ALREADY_EXISTS")
    error(http.post("/v1/boxes", json={"snapshot": "snap_nope"}), 404, "SNAPSHOT_NOT_FOUND")

    # a fork and its source diverge
    fork = make_box(http, snapshot=first["id"], name="forked")
    assert fork["image"] == box["image"] and fork["status"] == "running"
    sh(http, fork, "echo fork > /root/kept")
    sh(http, box, "echo source > /root/kept")
    assert sh(http, fork, "cat /root/kept") == "fork\n"
    assert sh(http, box, "cat /root/kept") == "source\n"
    if not memory:  # the fork's files are its box root's (ids shifted to its range)
        assert sh(http, fork, "touch /root/new; stat -c %u /root/new /root/kept") == "0\n0\n"


def test_lifecycle_events(http: httpx.Client) -> None:
    box = make_box(http)
    first = snap(http, box, "one")
    assert http.post(f"/v1/boxes/{box['id']}/snapshots/one:restore").status_code == 200
    assert http.delete(f"/v1/boxes/{box['id']}/snapshots/one").json() == {"ok": True}
    with http.stream("GET", "/v1/events", headers={"Last-Event-ID": "0"}) as resp:
        kinds = []
        for line in resp.iter_lines():
            if line.startswith("data: "):
                data = json.loads(line[6:])
                if data["box"]["id"] == box["id"]:
                    kinds.append((data["type"], data.get("snapshot", {}).get("id")))
                if data["type"] == "snapshot_deleted":
                    break
    assert kinds[-3:] == [("snapshotted", first["id"]), ("restored", first["id"]),
                          ("snapshot_deleted", first["id"])]


def test_quota_restart_and_remove(new_server: ServerProcess, http: httpx.Client) -> None:
    box = make_box(http)
    kept = snap(http, box, "kept")
    # 300 MB of data the disk keeps: a second snapshot passes the 512 MiB quota
    sh(http, box, "head -c 300000000 /dev/urandom > /root/big; sync")
    big = snap(http, box, "big")
    resp = http.post(f"/v1/boxes/{box['id']}/snapshots", json={"name": "too-much"})
    assert "max_snapshot_bytes" in error(resp, 422, "RESOURCE_EXCEEDED")
    assert [s["name"] for s in http.get(f"/v1/boxes/{box['id']}/snapshots").json()] == [
        "kept", "big"]
    assert http.delete(f"/v1/boxes/{box['id']}/snapshots/big").status_code == 200
    snaps_dir = new_server.state_dir / "snapshots"
    assert not (snaps_dir / big["id"]).exists()

    # snapshots survive a server restart
    new_server.stop()
    new_server.start()
    assert http.get(f"/v1/boxes/{box['id']}/snapshots/kept").json() == kept
    fork = make_box(http, snapshot=kept["id"])
    assert sh(http, fork, "cat /root/big 2>/dev/null | wc -c") == "0\n"

    # remove takes them with the box, unless asked to keep them
    other = snap(http, fork, "of-fork")
    assert http.delete(f"/v1/boxes/{fork['id']}", params={"force": "true",
                                                          "keep_snapshots": "true"}).json()
    assert http.get(f"/v1/boxes/{fork['id']}/snapshots").json() == [other]
    assert http.delete(f"/v1/boxes/{box['id']}", params={"force": "true"}).status_code == 200
    error(http.get(f"/v1/boxes/{box['id']}/snapshots"), 404, "BOX_NOT_FOUND")
    assert sorted(p.name for p in snaps_dir.iterdir()) == [other["id"]]


def test_memory_goes_on(http: httpx.Client, memory: bool) -> None:
    if not memory:
        pytest.skip("memory snapshots: gVisor only")
    box = make_box(http)
    sh(http, box, COUNTER)
    time.sleep(0.5)
    first = snap(http, box, "counting")
    time.sleep(0.5)
    assert http.post(f"/v1/boxes/{box['id']}/snapshots/counting:restore").status_code == 200
    time.sleep(0.5)
    after = counts(http, box)
    # the counter went on from where the snapshot had it: no gap, no restart at 1
    assert after == list(range(1, len(after) + 1)) and len(after) > 1
    fork = make_box(http, snapshot=first["id"])
    time.sleep(0.5)
    forked = counts(http, fork)
    assert forked == list(range(1, len(forked) + 1)) and forked[-1] > 1


def test_fork_attaches_to_its_interpreter(http: httpx.Client, memory: bool) -> None:
    """``POST …/sessions {"attach": SID}`` on a fork of a memory snapshot goes on with the
    interpreter of session SID that the fork carries: its variables are there."""
    box = make_box(http, image="python", memory_mb=512)
    source, _ = start(http, box, "ipykernel")
    assert outputs(source.execute("x = 41; print('set')")) == "set\n"
    first = snap(http, box, "live")
    later, _ = start(http, box, "python")  # not running when the snapshot was taken
    fork = make_box(http, snapshot=first["id"], name="attached-fork", image="python",
                    memory_mb=512)
    sessions = f"/v1/boxes/{fork['id']}/sessions"
    for body in ({"attach": 7}, {"attach": ""}, {"attach": "s" * 65},
                 {"attach": source.id, "kind": "python"}, {"attach": source.id, "env": {}}):
        error(http.post(sessions, json=body), 422, "VALIDATION_ERROR")
    # not a fork: the source box carries no other box's interpreter
    error(http.post(f"/v1/boxes/{box['id']}/sessions", json={"attach": source.id}), 422,
          "VALIDATION_ERROR")
    if not memory:
        message = error(http.post(sessions, json={"attach": source.id}), 422,
                        "VALIDATION_ERROR")
        assert "disk" in message, message
        return
    for sid in ("sess_nope", "../../../etc/passwd", "sess_%2F..", box["id"]):
        error(http.post(sessions, json={"attach": sid}), 404, "SESSION_NOT_FOUND")
    message = error(http.post(sessions, json={"attach": later.id}), 404, "SESSION_NOT_FOUND")
    assert "not running when snapshot live was taken" in message, message
    resp = http.post(sessions, json={"attach": source.id})
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["kind"] == "ipykernel" and body["box_id"] == fork["id"] and body["status"] == "idle"
    attached = Session(http, fork["id"], body)
    assert outputs(attached.execute("print(x + 1)")) == "42\n"
    # one session per interpreter; the source's own goes on, apart
    message = error(http.post(sessions, json={"attach": source.id}), 422, "VALIDATION_ERROR")
    assert "has a session already" in message, message
    assert outputs(source.execute("x = 0; print(x)")) == "0\n"
    assert outputs(attached.execute("print(x)")) == "41\n"
    # a fork of the fork carries it on in turn, under the attached session's id
    second = snap(http, fork, "live-again")
    refork = make_box(http, snapshot=second["id"], image="python", memory_mb=512)
    resp = http.post(f"/v1/boxes/{refork['id']}/sessions", json={"attach": body["id"]})
    assert resp.status_code == 201, resp.text
    assert outputs(Session(http, refork["id"], resp.json()).execute("print(x)")) == "41\n"
    assert refork["snapshot"] == second["id"] and box["snapshot"] is None
    # its sessions list shows it, and deleting it ends that interpreter
    assert [s["id"] for s in http.get(sessions).json()] == [body["id"]]
    assert http.delete(f"{sessions}/{body['id']}").status_code == 200


def outputs(events: list[dict]) -> str:
    """The stdout an execute request printed."""
    return "".join(e["content"]["text"] for e in events
                   if e["msg_type"] == "stream" and e["content"]["name"] == "stdout")


def test_live_python_session_goes_on_across_a_snapshot(http: httpx.Client) -> None:
    """A ``python`` session (no code to prepare) in a box being snapshotted: its relay is
    held off, then it re-attaches, its variables intact, on every backend."""
    box = make_box(http, image="python")
    session, _ = start(http, box, "python")
    session.execute("x = 41")
    snap(http, box, "live")
    events = session.execute("x + 1")
    assert [e["content"]["data"]["text/plain"] for e in events
            if e["msg_type"] == "execute_result"] == ["42"], events[-3:]
    http.delete(f"/v1/boxes/{box['id']}", params={"force": "true"})


def test_a_new_session_leaves_a_snapshotted_kernel_running(http: httpx.Client) -> None:
    """A session started in a box after a snapshot leaves the agent's files as they are:
    the live kernel maps one of them (its pid cache), and rewriting it killed the kernel
    of a gVisor box restored in place."""
    box = make_box(http, image="python", memory_mb=512)
    kernel, _ = start(http, box, "ipykernel")
    assert outputs(kernel.execute("x = 41; print('set')")) == "set\n"
    snap(http, box, "live")
    later, _ = start(http, box, "python")
    assert outputs(later.execute("import glob; print(glob.glob('/root/.boxrun/*'))")) == \
        f"['{agent_dir()}']\n"
    assert outputs(kernel.execute("print(x + 1)")) == "42\n"
