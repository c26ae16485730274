"""A box that gets its own init OOM-killed: the API says so within 2 s, and what ran in
it ends saying why (issue 11, point 6)."""

from __future__ import annotations

import json
import time

import httpx

from ..servers import ServerProcess

#: Box root makes its init the OOM killer's first choice, then fills the box's memory
#: with tmpfs pages that no process holds, so nothing else is a better victim.
OOM_INIT = "echo 1000 > /proc/1/oom_score_adj && head -c 256M /dev/zero > /dev/shm/fill"


def wait(get, done, timeout: float) -> dict:
    """``get()`` polled until ``done(value)`` or ``timeout`` seconds; the last value."""
    deadline = time.monotonic() + timeout
    while not done(value := get()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return value


def lifecycle_types(http: httpx.Client, box_id: str, want: str, timeout: float) -> list[str]:
    """The lifecycle event types of ``box_id`` replayed from the start, until ``want``."""
    types: list[str] = []
    deadline = time.monotonic() + timeout
    with http.stream("GET", "/v1/events", headers={"Last-Event-ID": "0"}) as stream:
        for line in stream.iter_lines():
            if line.startswith("data: "):
                event = json.loads(line[6:])
                if event["box"]["id"] == box_id:
                    types.append(event["type"])
            if want in types or time.monotonic() > deadline:
                break
    return types


def test_box_whose_init_is_oom_killed_is_stopped_with_an_error(new_server: ServerProcess) -> None:
    new_server.start()
    with new_server.http() as http:
        box = http.post("/v1/boxes", json={"image": "debian", "cpu": 1, "memory_mb": 64}).json()
        bid = box["id"]
        assert box["status"] == "running", box
        session = http.post(f"/v1/boxes/{bid}/sessions", json={"kind": "shell"}).json()
        assert session["status"] == "idle", session
        sleeper = http.post(f"/v1/boxes/{bid}/exec", json={"cmd": ["sleep", "600"]}).json()
        attack = http.post(f"/v1/boxes/{bid}/exec", json={"cmd": ["sh", "-c", OOM_INIT]}).json()

        ended = wait(lambda: http.get(f"/v1/boxes/{bid}/exec/{attack['id']}").json(),
                     lambda e: e["status"] != "running", 20)
        assert ended["status"] != "running", "filling the box's memory did not end"
        died_at = time.monotonic()
        dead = wait(lambda: http.get(f"/v1/boxes/{bid}").json(),
                    lambda b: b["status"] != "running", 2)
        took = time.monotonic() - died_at
        assert dead["status"] == "stopped", f"the API still says {dead['status']} {took:.1f} s " \
                                            f"after the box's init was killed: {dead}"
        assert dead["error_code"] == "BOX_DIED" and dead["error_message"], dead
        assert dead["stopped_at"] is not None

        # Ended: by the box's death, or killed with it a moment before the server heard.
        slept = http.get(f"/v1/boxes/{bid}/exec/{sleeper['id']}").json()
        assert slept["status"] == "failed", slept
        assert "died" in (slept["error_message"] or "") or slept["exit_code"] == 137, slept
        gone = http.get(f"/v1/boxes/{bid}/sessions/{session['id']}").json()
        assert gone["status"] == "dead" and gone["error_message"], gone
        assert "died" in lifecycle_types(http, bid, "died", 5)
        assert http.get("/v1/info").json()["used_memory_mb"] == 0

        refused = http.post(f"/v1/boxes/{bid}/exec", json={"cmd": ["true"]})
        assert refused.status_code == 400 and refused.json()["code"] == "BOX_NOT_RUNNING"
        again = http.post(f"/v1/boxes/{bid}:start").json()
        assert again["status"] == "running" and again["error_code"] is None, again
        http.delete(f"/v1/boxes/{bid}?force=true")
