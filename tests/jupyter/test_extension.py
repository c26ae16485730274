"""The extension inside a real ``jupyter server`` process: routes, auth, socket, dashboard."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from boxrun_sdk import BoxRunClient

from jupyter_ext.api.routes import ROUTES

from ..servers import free_port

TOKEN = "jupyter-test-token"
BASE = "/base/"


class Jupyter:
    def __init__(self, proc: subprocess.Popen, port: int, state_dir: Path, log: Path) -> None:
        self.proc, self.port, self.state_dir, self.log = proc, port, state_dir, log

    def client(self, **kw) -> httpx.Client:
        return httpx.Client(base_url=f"http://127.0.0.1:{self.port}{BASE}", timeout=60, **kw)

    def authed(self) -> httpx.Client:
        return self.client(headers={"Authorization": f"token {TOKEN}"})


@pytest.fixture
def jupyter(tmp_path: Path, images_dir: Path) -> Iterator[Jupyter]:
    port = free_port()
    state = tmp_path / "state"
    log = tmp_path / "jupyter.log"
    env = {**os.environ, "BOXRUN_STATE_DIR": str(state), "BOXRUN_IMAGES_DIR": str(images_dir),
           "BOXRUN_BACKEND": "namespace"}
    cmd = [sys.executable, "-m", "jupyter_server", f"--port={port}", "--no-browser",
           f"--ServerApp.token={TOKEN}", f"--ServerApp.base_url={BASE}", "--allow-root",
           f"--ServerApp.root_dir={tmp_path}"]
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    server = Jupyter(proc, port, state, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                with server.authed() as c:
                    if c.get("boxrun/v1/info").status_code == 200:
                        break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield server
    finally:
        proc.terminate()
        proc.wait(30)


def concrete(pattern: str) -> str:
    """A request path matching a route pattern."""
    path = pattern.replace("([^/:]+)", "x").replace("([A-Za-z_]+)", "stop")
    return re.sub(r"\.\*$", "anything", path).lstrip("/")


def test_every_route_refuses_anonymous_callers(jupyter: Jupyter) -> None:
    with jupyter.client() as anon:
        for pattern, handler in ROUTES:
            path = "boxrun" + "/" + concrete(pattern)
            verbs = [m.upper() for m in ("get", "post", "delete") if m in vars(handler)]
            for method in verbs or ["GET", "POST"]:
                resp = anon.request(method, path, follow_redirects=False)
                assert resp.status_code in (401, 403), (method, path, resp.status_code)
                if resp.headers.get("content-type", "").startswith("application/json"):
                    assert resp.json()["code"] in ("UNAUTHORIZED", "FORBIDDEN")


def test_api_behind_jupyter_token_and_xsrf(jupyter: Jupyter) -> None:
    with jupyter.authed() as c:
        info = c.get("boxrun/v1/info").json()
        assert info["backend"] == "namespace"
        created = c.post("boxrun/v1/boxes", json={"image": "debian", "cpu": 1, "memory_mb": 64})
        assert created.status_code == 201, created.text
        bid = created.json()["id"]
        assert c.post(f"boxrun/v1/boxes/{bid}:stop").json()["status"] == "stopped"
        bad = c.post("boxrun/v1/boxes", content=b"nope")
        assert bad.status_code == 422 and bad.json()["code"] == "VALIDATION_ERROR"
        assert c.delete(f"boxrun/v1/boxes/{bid}").json() == {"ok": True}
        page = c.get("boxrun/ui")
        assert page.status_code == 200 and "<title>BoxRun</title>" in page.text
    with jupyter.client() as page:  # the dashboard hands its page the XSRF cookie it sends
        assert page.get("boxrun/ui", params={"token": TOKEN}).status_code == 200
        assert page.cookies.get("_xsrf")
    # A browser session: the token logs in, the cookie authenticates, XSRF guards POSTs.
    with jupyter.client() as browser:
        browser.get("login", params={"token": TOKEN})  # sets the login and _xsrf cookies
        browser.get(f"?token={TOKEN}")
        assert browser.get("boxrun/v1/boxes").status_code == 200
        assert browser.post("boxrun/v1/gc", json={}).status_code == 403
        xsrf = browser.cookies.get("_xsrf")
        assert xsrf
        ok = browser.post("boxrun/v1/gc", json={}, headers={"X-XSRFToken": xsrf})
        assert ok.status_code == 200 and ok.json() == {"removed": 0}


def test_the_servers_own_lines_are_in_jupyters_log(jupyter: Jupyter) -> None:
    """BoxRun's loggers hang under the extension's: their lines go out in Jupyter's log, in
    its format, at its level (not to an unconfigured root logger, where INFO is dropped)."""
    with jupyter.authed() as c:
        assert c.get("boxrun/v1/boxes/nope").json()["code"] == "BOX_NOT_FOUND"
    line = re.compile(r"^\[I [^\]]+\] GET /base/boxrun/v1/boxes/nope: BOX_NOT_FOUND", re.M)
    deadline = time.monotonic() + 10
    while not line.search(jupyter.log.read_text()):
        assert time.monotonic() < deadline, jupyter.log.read_text()
        time.sleep(0.1)


async def test_extension_serves_the_state_dir_socket(jupyter: Jupyter) -> None:
    sock = jupyter.state_dir / "boxrun.sock"
    assert oct(sock.stat().st_mode & 0o777) == "0o600"
    async with BoxRunClient("http+unix://" + str(sock)) as sdk:
        box = await sdk.create("debian", cpu=1, memory_mb=64)
        try:
            result = await box.exec(["echo", "from the socket"])
            assert result.status == "succeeded"
        finally:
            await box.remove(force=True)
    # the box made over the socket is the same server's: Jupyter sees the exec
    with jupyter.authed() as c:
        assert c.get("boxrun/v1/info").json()["boxes"]["running"] == 0


def test_second_jupyter_on_the_same_state_dir_names_the_owner(jupyter: Jupyter, tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "BOXRUN_STATE_DIR": str(jupyter.state_dir)}
    cmd = [sys.executable, "-m", "jupyter_server", f"--port={port}", "--no-browser",
           f"--ServerApp.token={TOKEN}", "--allow-root", f"--ServerApp.root_dir={tmp_path}"]
    log = tmp_path / "second.log"
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while f"pid {jupyter.proc.pid}" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}/", timeout=30,
                          headers={"Authorization": f"token {TOKEN}"}) as c:
            resp = c.get("boxrun/v1/boxes")
        assert resp.status_code == 503 and resp.json()["code"] == "STATE_DIR_BUSY"
        assert f"pid {jupyter.proc.pid}" in resp.json()["message"]
    finally:
        proc.terminate()
        proc.wait(30)
    with jupyter.authed() as c:  # the owner is untouched
        assert c.get("boxrun/v1/info").status_code == 200
