"""Restarting Jupyter leaves its boxes running for the next Jupyter server to adopt;
``c.BoxRunServer.stop_boxes_on_exit`` stops them instead."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from ..security.conftest import run_exec
from ..servers import free_port
from .test_extension import BASE, TOKEN


@dataclass
class Running:
    """A ``jupyter server`` process and a client of its BoxRun API."""

    proc: subprocess.Popen
    api: httpx.Client

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(60)
        self.api.close()


def start_jupyter(tmp_path: Path, images_dir: Path, *args: str) -> Running:
    """``jupyter server`` on ``tmp_path/state``, once its BoxRun API answers."""
    port = free_port()
    env = {**os.environ, "BOXRUN_STATE_DIR": str(tmp_path / "state"),
           "BOXRUN_IMAGES_DIR": str(images_dir), "BOXRUN_BACKEND": "namespace",
           "BOXRUN_STOP_BOXES": "0"}
    cmd = [sys.executable, "-m", "jupyter_server", f"--port={port}", "--no-browser",
           f"--ServerApp.token={TOKEN}", f"--ServerApp.base_url={BASE}", "--allow-root",
           f"--ServerApp.root_dir={tmp_path}", *args]
    log = tmp_path / "jupyter.log"
    with log.open("a") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    server = Running(proc, httpx.Client(base_url=f"http://127.0.0.1:{port}{BASE}boxrun",
                                        headers={"Authorization": f"token {TOKEN}"},
                                        timeout=60))
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, log.read_text()
        try:
            if server.api.get("/v1/info").status_code == 200:
                return server
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)


def test_jupyter_restart_keeps_boxes_unless_told(tmp_path: Path, images_dir: Path) -> None:
    first = start_jupyter(tmp_path, images_dir)
    box = first.api.post("/v1/boxes", json={"image": "debian", "cpu": 1, "memory_mb": 64})
    assert box.status_code == 201, box.text
    bid = box.json()["id"]
    assert run_exec(first.api, bid, "echo kept > /root/kept")[0]["exit_code"] == 0
    first.stop()
    second = start_jupyter(tmp_path, images_dir, "--BoxRunServer.stop_boxes_on_exit=True")
    try:
        assert second.api.get(f"/v1/boxes/{bid}").json()["status"] == "running"
        ex, events = run_exec(second.api, bid, "cat /root/kept")
        assert ex["exit_code"] == 0 and "kept\n" in [d["data"] for _, d in events]
    finally:
        second.stop()
    third = start_jupyter(tmp_path, images_dir)
    try:
        got = third.api.get(f"/v1/boxes/{bid}").json()
        assert got["status"] == "stopped" and got["error_code"] is None, got
        third.api.delete(f"/v1/boxes/{bid}")
    finally:
        third.stop()
