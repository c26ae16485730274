"""The security suite: a real ``boxrun serve`` per backend and what a box attacks with;
servers with small limits, SSE and the database.

Each test runs against every backend in :data:`~tests.servers.BACKENDS` that this host
can run (the ``server_backend`` fixture of ``tests/conftest.py``).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import connect_sse

from ..servers import ServerProcess

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def hostile_server(server_backend: str, tmp_path_factory: pytest.TempPathFactory,
                   images_dir: Path) -> Iterator[ServerProcess]:
    """A server on ``server_backend``, its state dir 0700 as the CLI makes it."""
    state = tmp_path_factory.mktemp(f"hostile-{server_backend}") / "state"
    state.mkdir(mode=0o700)
    server = ServerProcess(state, images_dir, backend=server_backend).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def hostile_http(hostile_server: ServerProcess) -> Iterator[httpx.Client]:
    """A client of :func:`hostile_server`."""
    with hostile_server.http() as client:
        yield client


def _build(tmp: Path, *args: str) -> Path:
    out = tmp / args[-1]
    subprocess.run(["gcc", *args[:-1], "-o", str(out)], check=True)
    return out


@pytest.fixture(scope="session")
def hostile_binary(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """``hostile.c``, static, for any image."""
    tmp = tmp_path_factory.mktemp("hostile-bin")
    return _build(tmp, "-static", "-O1", str(HERE / "hostile.c"), "hostile").read_bytes()


class Boxes:
    """Boxes of one test, removed afterwards; commands run to the end."""

    def __init__(self, http: httpx.Client, server: ServerProcess) -> None:
        self.http = http
        self.server = server
        self.made: list[str] = []
        self.backend = http.get("/v1/info").json()["backend"]

    def skip_unless(self, backend: str, why: str) -> None:
        """Skip the test on every backend but ``backend``, saying ``why``."""
        if self.backend != backend:
            pytest.skip(f"{self.backend}: {why}")

    def skip_on(self, backend: str, why: str) -> None:
        """Skip the test on ``backend``, saying ``why``."""
        if self.backend == backend:
            pytest.skip(f"{backend}: {why}")

    def create(self, image: str = "debian", **fields: Any) -> dict:
        resp = self.http.post("/v1/boxes", json={"image": image, "cpu": 1, "memory_mb": 512,
                                                 "disk_size_gb": 1, **fields})
        assert resp.status_code == 201, resp.text
        self.made.append(resp.json()["id"])
        return resp.json()

    def start(self, box: dict, *cmd: str, env: dict[str, str] | None = None) -> str:
        resp = self.http.post(f"/v1/boxes/{box['id']}/exec", json={"cmd": list(cmd), "env": env})
        assert resp.status_code == 201, resp.text
        return resp.json()["id"]

    def finish(self, box: dict, exec_id: str) -> tuple[int | None, str, str]:
        """An exec's exit code, stdout and stderr, once it ends."""
        out: dict[str, list[str]] = {"stdout": [], "stderr": []}
        code = None
        url = f"/v1/boxes/{box['id']}/exec/{exec_id}/events"
        with connect_sse(self.http, "GET", url) as events:
            for event in events.iter_sse():
                if not event.data:
                    continue
                data = json.loads(event.data)
                if event.event == "exit":
                    code = json.loads(data["data"])["exit_code"]
                elif data["stream"] in out:
                    out[data["stream"]].append(data["data"])
        return code, "".join(out["stdout"]), "".join(out["stderr"])

    def run(self, box: dict, *cmd: str, env: dict[str, str] | None = None
            ) -> tuple[int | None, str, str]:
        return self.finish(box, self.start(box, *cmd, env=env))

    def upload(self, box: dict, dest: str, data: bytes) -> None:
        resp = self.http.post(f"/v1/boxes/{box['id']}/files/upload",
                              files={"file": ("f", data)}, data={"dest": dest})
        assert resp.status_code == 200, resp.text

    def install(self, box: dict, data: bytes, dest: str = "/root/hostile") -> str:
        """Put an executable into the box."""
        self.upload(box, dest, data)
        assert self.run(box, "chmod", "755", dest)[0] == 0
        return dest

    def remove_all(self) -> None:
        for box_id in self.made:
            self.http.delete(f"/v1/boxes/{box_id}", params={"force": "true"})


@pytest.fixture
def boxes(hostile_http: httpx.Client, hostile_server: ServerProcess) -> Iterator[Boxes]:
    made = Boxes(hostile_http, hostile_server)
    yield made
    made.remove_all()


def host_pids_of(marker: str) -> list[int]:
    """Host pids of the processes whose command line holds ``marker``."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if marker.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                    pids.append(int(entry))
            except OSError:
                continue
    return pids


#: The stored-output cap most tests give their server (``--max-output-bytes``).
SMALL_CAP = 1 << 20


@pytest.fixture
def capped(new_server: ServerProcess) -> ServerProcess:
    """A server of its own storing at most :data:`SMALL_CAP` bytes per exec and session."""
    return new_server.start("--max-output-bytes", str(SMALL_CAP))


@pytest.fixture
def http(capped: ServerProcess) -> Iterator[httpx.Client]:
    with capped.http() as client:
        yield client


def make_box(http: httpx.Client, image: str = "debian", memory_mb: int = 512) -> str:
    """A running box's id."""
    resp = http.post("/v1/boxes", json={"image": image, "cpu": 1, "memory_mb": memory_mb})
    assert resp.status_code == 201, resp.text
    return resp.json()["id"]


def sse(resp: httpx.Response, keepalives: bool = False) -> Iterator[tuple[str, dict]]:
    """``(event, data)`` of each frame of an SSE reply, as they arrive (and ``None`` for
    each keep-alive if asked)."""
    name = ""
    for line in resp.iter_lines():
        if line.startswith(":") and keepalives:
            yield None  # type: ignore[misc]
        elif line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            yield name, json.loads(line[6:])


def exec_events(http: httpx.Client, box: str, exec_id: str, after: int = -1) -> list[tuple[str, dict]]:
    """Every event of an exec after ``after`` (it must be finished or finish)."""
    with http.stream("GET", f"/v1/boxes/{box}/exec/{exec_id}/events",
                     headers={"Last-Event-ID": str(after)}) as resp:
        assert resp.status_code == 200, resp.read()
        return list(sse(resp))


def run_exec(http: httpx.Client, box: str, script: str, **extra) -> tuple[dict, list[tuple[str, dict]]]:
    """Run ``sh -c script`` to its end without following it: the finished exec and its
    stored events."""
    resp = http.post(f"/v1/boxes/{box}/exec", json={"cmd": ["sh", "-c", script], **extra})
    assert resp.status_code == 201, resp.text
    path = f"/v1/boxes/{box}/exec/{resp.json()['id']}"
    deadline = time.monotonic() + 120
    while (ex := http.get(path).json())["status"] == "running" and time.monotonic() < deadline:
        time.sleep(0.1)
    return ex, exec_events(http, box, ex["id"])


def db_bytes(server: ServerProcess) -> int:
    """The size of the database file."""
    return (Path(server.state_dir) / "boxrun.db").stat().st_size


def wal_bytes(server: ServerProcess) -> int:
    """The size of the database's write-ahead log: SQLite's working space, copied into
    the database and reused at each checkpoint (every 1000 pages), so bounded whatever
    is written."""
    return (Path(server.state_dir) / "boxrun.db-wal").stat().st_size


class Session:
    """A session under test: sends cells, follows its events from a cursor."""

    def __init__(self, http: httpx.Client, box: str, kind: str) -> None:
        resp = http.post(f"/v1/boxes/{box}/sessions", json={"kind": kind})
        assert resp.status_code == 201, resp.text
        self.http, self.id = http, resp.json()["id"]
        self.path = f"/v1/boxes/{box}/sessions/{self.id}"
        self.seen = -1

    def events(self, until: Callable[[dict], bool], after: int | None = None,
               timeout: float = 120) -> list[dict]:
        """Events after the cursor up to the first ``until`` accepts (moves the cursor)."""
        headers = {"Last-Event-ID": str(self.seen if after is None else after)}
        got: list[dict] = []
        with self.http.stream("GET", self.path + "/events", headers=headers,
                              timeout=timeout) as resp:
            assert resp.status_code == 200, resp.read()
            for _, event in sse(resp):
                got.append(event)
                self.seen = max(self.seen, event["seq"])
                if until(event):
                    break
        return got

    def execute(self, code: str) -> list[dict]:
        """Run a cell; its events up to both its reply and its idle status (they come on
        different sockets, in either order)."""
        resp = self.http.post(self.path + "/messages", json={
            "channel": "shell", "msg_type": "execute_request", "content": {"code": code}})
        assert resp.status_code == 202, resp.text
        self.last = msg_id = resp.json()["msg_id"]
        return [e for e in self.events(cell_done(msg_id)) if e["parent_msg_id"] == msg_id]


def cell_done(msg_id: str) -> Callable[[dict], bool]:
    """Whether the events so far hold both the reply to ``msg_id`` and its idle status."""
    seen: set[str] = set()

    def done(event: dict) -> bool:
        if event["parent_msg_id"] == msg_id and event["msg_type"] == "execute_reply":
            seen.add("reply")
        if (event["parent_msg_id"] == msg_id and event["msg_type"] == "status"
                and event["content"]["execution_state"] == "idle"):
            seen.add("idle")
        return len(seen) == 2
    return done
