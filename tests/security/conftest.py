"""The hostile-box suite: a real ``boxrun serve`` per backend, and what a box attacks with.

Each test module runs against every backend in :data:`BACKENDS` that this host can run
(a second backend joins the suite by being added there).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import connect_sse

from ..servers import ServerProcess

BACKENDS = ["namespace", "gvisor"]
HERE = Path(__file__).parent


@pytest.fixture(scope="module", params=BACKENDS)
def hostile_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                   images_dir: Path) -> Iterator[ServerProcess]:
    """A server on ``request.param``'s backend, its state dir 0700 as the CLI makes it."""
    root = tmp_path_factory.mktemp(f"hostile-{request.param}")
    state = root / "state"
    state.mkdir(mode=0o700)
    server = ServerProcess(state, images_dir, env={"BOXRUN_BACKEND": request.param}).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def http(hostile_server: ServerProcess) -> Iterator[httpx.Client]:
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
def boxes(http: httpx.Client, hostile_server: ServerProcess) -> Iterator[Boxes]:
    made = Boxes(http, hostile_server)
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
