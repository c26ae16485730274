"""Raw HTTP against a real server: error format, auth, SSE framing, dashboard."""

from __future__ import annotations

import json
import re
import secrets
import threading
import time

import httpx
import pytest

from ..servers import ServerProcess

BOX_KEYS = {"id", "name", "status", "image", "cpu", "memory_mb", "disk_size_gb", "network",
            "workdir", "env", "volumes", "boxlite_id", "error_code", "error_message",
            "created_at", "started_at", "stopped_at", "snapshot"}
EXEC_KEYS = {"id", "box_id", "status", "cmd", "env", "workdir", "timeout_ms", "exit_code",
             "error_message", "created_at", "finished_at"}
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def error(resp: httpx.Response, status: int, code: str) -> str:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert set(body) == {"code", "message"} and body["code"] == code and body["message"]
    return body["message"]


@pytest.fixture
def http(server: ServerProcess):
    with server.http() as client:
        yield client


@pytest.fixture
def box(http: httpx.Client):
    resp = http.post("/v1/boxes", json={"image": "debian", "cpu": 1, "memory_mb": 64})
    assert resp.status_code == 201, resp.text
    yield resp.json()
    http.delete(f"/v1/boxes/{resp.json()['id']}", params={"force": "true"})


def sse(text: str) -> list[dict]:
    """Parse an SSE body into ``{"id", "event", "data"}`` records."""
    records = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
        if fields:
            records.append({**fields, "data": json.loads(fields["data"])})
    return records


def test_validation_errors(http: httpx.Client, box: dict) -> None:
    error(http.post("/v1/boxes", content=b"{not json"), 422, "VALIDATION_ERROR")
    error(http.post("/v1/boxes", json=[1, 2]), 422, "VALIDATION_ERROR")
    error(http.post("/v1/boxes", json={}), 422, "VALIDATION_ERROR")
    error(http.post("/v1/boxes", json={"image": "debian", "cpu": "2"}), 422, "VALIDATION_ERROR")
    error(http.post("/v1/boxes", json={"image": "debian", "memory_mb": -1}), 422, "VALIDATION_ERROR")
    error(http.post("/v1/boxes", json={"image": "debian", "network": "yes"}), 422, "VALIDATION_ERROR")
    error(http.post("/v1/boxes", json={"image": "debian", "name": "a/b:c"}), 422, "VALIDATION_ERROR")
    error(http.post("/v1/boxes", json={"image": "debian", "env": {"A": 1}}), 422, "VALIDATION_ERROR")
    error(http.post("/v1/boxes", json={"image": "debian", "volumes": [{"host_path": "/tmp"}]}),
          422, "VALIDATION_ERROR")
    bid = box["id"]
    error(http.post(f"/v1/boxes/{bid}:explode"), 400, "VALIDATION_ERROR")
    error(http.post(f"/v1/boxes/{bid}/exec", json={"cmd": "ls"}), 422, "VALIDATION_ERROR")
    error(http.post(f"/v1/boxes/{bid}/exec", json={"cmd": ["ls"], "timeout_ms": 0}), 422, "VALIDATION_ERROR")
    error(http.post(f"/v1/boxes/{bid}/exec", json={"cmd": ["ls"], "workdir": "tmp"}), 422, "VALIDATION_ERROR")
    error(http.post(f"/v1/boxes/{bid}/files/upload", data={"dest": "/root/x"}), 400, "VALIDATION_ERROR")
    error(http.post(f"/v1/boxes/{bid}/files/upload", files={"file": ("x", b"1")}), 400, "VALIDATION_ERROR")
    error(http.get("/v1/nothing"), 404, "NOT_FOUND")
    error(http.get("/v1/boxes", params={"status": "exploded"}), 400, "VALIDATION_ERROR")
    # nothing was lost or created by the bad requests
    assert [b["id"] for b in http.get("/v1/boxes").json()] .count(bid) == 1


def test_objects_and_listing(http: httpx.Client, box: dict, server_backend: str) -> None:
    assert set(box) == BOX_KEYS and RFC3339.match(box["created_at"])
    assert box["env"] is None and box["volumes"] is None and box["network"] is False
    second = http.post("/v1/boxes", json={"image": "debian", "cpu": 1, "memory_mb": 64}).json()
    try:
        ids = [b["id"] for b in http.get("/v1/boxes", params={"status": "all"}).json()]
        assert ids.index(second["id"]) < ids.index(box["id"]), "not newest first"
        ex = http.post(f"/v1/boxes/{box['id']}/exec", json={"cmd": ["true"]})
        assert ex.status_code == 201 and set(ex.json()) == EXEC_KEYS
        assert ex.json()["status"] == "running" and ex.json()["id"].startswith("exec_")
        listed = http.get(f"/v1/boxes/{box['id']}/execs").json()
        assert [e["id"] for e in listed] == [ex.json()["id"]]
        info = http.get("/v1/info").json()
        assert info["max_cpu"] > 0 and info["max_memory_mb"] > 0
        assert info["backend"] == server_backend and info["used_cpu"] >= 2
    finally:
        http.delete(f"/v1/boxes/{second['id']}", params={"force": "true"})


def test_sse_replay_resume_and_keepalive(http: httpx.Client, box: dict) -> None:
    bid = box["id"]
    # Two pipes give no order to writes microseconds apart (a reader woken late finds
    # both ready): each line here comes well after the one before.
    script = "echo a; sleep 1.5; echo b >&2; sleep 0.3; echo c"
    ex = http.post(f"/v1/boxes/{bid}/exec", json={"cmd": ["sh", "-c", script]}).json()
    url = f"/v1/boxes/{bid}/exec/{ex['id']}/events"
    with http.stream("GET", url) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        live = "".join(resp.iter_text())
    assert ": keep-alive" in live, "no keep-alive while the exec was silent"
    events = sse(live)
    assert [e["id"] for e in events] == [str(i) for i in range(len(events))]
    assert [e["data"]["seq"] for e in events] == list(range(len(events)))
    assert [(e["event"], e["data"]["stream"], e["data"]["data"]) for e in events[:3]] == [
        ("log", "stdout", "a\n"), ("log", "stderr", "b\n"), ("log", "stdout", "c\n")]
    assert events[-1]["event"] == "exit" and events[-1]["data"]["stream"] is None
    assert json.loads(events[-1]["data"]["data"]) == {"exit_code": 0}
    assert sse(http.get(url).text) == events, "a late subscriber saw something else"
    resumed = sse(http.get(url, headers={"Last-Event-ID": "0"}).text)
    assert resumed == events[1:]
    finished = http.get(f"/v1/boxes/{bid}/exec/{ex['id']}").json()
    assert finished["status"] == "succeeded" and RFC3339.match(finished["finished_at"])
    error(http.post(f"/v1/boxes/{bid}/exec/{ex['id']}:cancel"), 400, "EXEC_ALREADY_FINISHED")
    error(http.get(f"/v1/boxes/{bid}/exec/exec_nothing/events"), 404, "EXEC_NOT_FOUND")


def test_cancel_and_timeout(http: httpx.Client, box: dict) -> None:
    bid = box["id"]
    ex = http.post(f"/v1/boxes/{bid}/exec", json={"cmd": ["sleep", "60"]}).json()
    resp = http.post(f"/v1/boxes/{bid}/exec/{ex['id']}:cancel")
    assert resp.status_code == 200 and resp.json()["status"] == "canceled"
    error(http.post(f"/v1/boxes/{bid}/exec/{ex['id']}:bogus"), 400, "VALIDATION_ERROR")
    t0 = time.monotonic()
    ex = http.post(f"/v1/boxes/{bid}/exec", json={"cmd": ["sleep", "60"], "timeout_ms": 300}).json()
    events = sse(http.get(f"/v1/boxes/{bid}/exec/{ex['id']}/events").text)
    assert time.monotonic() - t0 < 10
    assert "timed out" in json.loads(events[-1]["data"]["data"])["error"]
    done = http.get(f"/v1/boxes/{bid}/exec/{ex['id']}").json()
    assert done["status"] == "failed" and "timed out" in done["error_message"]


def test_exec_env_workdir_and_download_headers(http: httpx.Client, box: dict) -> None:
    bid = box["id"]
    body = {"cmd": ["sh", "-c", "echo $A $HOME; pwd"], "env": {"A": "x y"}, "workdir": "/tmp"}
    ex = http.post(f"/v1/boxes/{bid}/exec", json=body).json()
    events = sse(http.get(f"/v1/boxes/{bid}/exec/{ex['id']}/events").text)
    assert "".join(e["data"]["data"] for e in events[:-1]) == "x y /root\n/tmp\n"
    resp = http.post(f"/v1/boxes/{bid}/files/download", json={"path": "/etc/os-release"})
    assert resp.status_code == 200 and b"bookworm" in resp.content
    assert resp.headers["content-type"] == "application/octet-stream"
    assert "os-release" in resp.headers["content-disposition"]
    error(http.post(f"/v1/boxes/{bid}/files/download", json={}), 422, "VALIDATION_ERROR")


def test_tcp_auth(server: ServerProcess) -> None:
    with server.tcp() as anon:
        for method, path in [("GET", "/v1/info"), ("GET", "/v1/boxes"), ("POST", "/v1/boxes"),
                             ("POST", "/v1/gc"), ("POST", "/v1/run"), ("GET", "/ui"),
                             ("DELETE", "/v1/boxes/x"), ("GET", "/v1/images")]:
            error(anon.request(method, path), 401, "UNAUTHORIZED")
        error(anon.get("/v1/info", headers={"Authorization": "token wrong"}), 401, "UNAUTHORIZED")
        for header in (f"token {server.token}", f"Bearer {server.token}"):
            assert anon.get("/v1/info", headers={"Authorization": header}).status_code == 200
    with server.tcp(auth=("anyone", server.token)) as basic:
        assert basic.get("/v1/info").status_code == 200
        page = basic.get("/ui")
        assert page.status_code == 200 and "<title>BoxRun</title>" in page.text
        root = basic.get("/", follow_redirects=False)
        assert root.status_code in (301, 302) and root.headers["location"].startswith("/ui")


def test_a_box_removed_while_being_created_is_gone_for_good(http: httpx.Client) -> None:
    """A kernel shut down while its box is being created removes it by name: the removal
    waits for the creation, and nothing of the box is left (its name is free again)."""
    base = http.get("/v1/info").json()["used_memory_mb"]
    name = f"racing-{secrets.token_hex(4)}"
    created: list[httpx.Response] = []
    spec = {"name": name, "image": "debian", "cpu": 1, "memory_mb": 64}
    post = threading.Thread(target=lambda: created.append(http.post("/v1/boxes", json=spec)))
    post.start()
    while (seen := http.get(f"/v1/boxes/{name}")).status_code == 404 and post.is_alive():
        time.sleep(0.001)
    assert seen.status_code == 200 and seen.json()["status"] == "creating", seen.text
    removed = http.delete(f"/v1/boxes/{name}", params={"force": "true"})
    post.join()
    assert created[0].status_code == 201 and removed.status_code == 200, removed.text
    error(http.get(f"/v1/boxes/{name}"), 404, "BOX_NOT_FOUND")
    assert http.get("/v1/info").json()["used_memory_mb"] == base
    again = http.post("/v1/boxes", json=spec)
    assert again.status_code == 201, again.text
    assert http.delete(f"/v1/boxes/{name}", params={"force": "true"}).status_code == 200
