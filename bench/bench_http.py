"""Server subprocesses (BoxRun, bare tornado) and the HTTP client calls the benchmark times."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
BOX_SPEC = {"image": "debian", "cpu": 1, "memory_mb": 64}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Service:
    """A server subprocess answering on a Unix socket and on a loopback TCP port."""

    def __init__(self, argv: list[str], sock: Path, port: int, token: str, log: Path,
                 env: dict[str, str] | None = None, is_boxrun: bool = False) -> None:
        self.argv, self.sock, self.port, self.token, self.log = argv, sock, port, token, log
        self.is_boxrun = is_boxrun
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def boxrun(cls, state_dir: Path, images_dir: Path, token: str) -> Service:
        port = free_port()
        argv = [sys.executable, "-m", "jupyter_ext.standalone", "serve", "--state-dir",
                str(state_dir), "--port", str(port)]
        env = {"BOXRUN_IMAGES_DIR": str(images_dir), "BOXRUN_MAX_CPU": "1000",
               "BOXRUN_MAX_MEMORY_MB": "1000000", "BOXRUN_TOKEN": token}
        return cls(argv, state_dir / "boxrun.sock", port, token,
                   state_dir.parent / "boxrun-server.log", env, is_boxrun=True)

    @classmethod
    def bare_tornado(cls, workdir: Path, list_body: bytes, token: str) -> Service:
        body_file = workdir / "list-body.json"
        body_file.write_bytes(list_body)
        port, sock = free_port(), workdir / "bare.sock"
        argv = [sys.executable, str(HERE / "bare_tornado.py"), "--sock", str(sock), "--port",
                str(port), "--list-body", str(body_file), "--token", token]
        return cls(argv, sock, port, token, workdir / "bare-tornado.log")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def tcp_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, timeout: float = 60) -> httpx.Client:
        """An HTTP client over the Unix socket."""
        return httpx.Client(transport=httpx.HTTPTransport(uds=str(self.sock)),
                            base_url="http://localhost", timeout=timeout)

    def start(self, timeout: float = 60) -> Service:
        """Start the process and wait until ``GET /v1/info`` answers on the socket."""
        self.sock.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(self.argv, env=self.env, stdout=out,
                                         stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.argv[:3]} exited {self.proc.returncode}: "
                                   f"{self.log.read_text()[-2000:]}")
            try:
                with self.client(timeout=5) as c:
                    if c.get("/v1/info").status_code == 200:
                        return self
            except (httpx.TransportError, FileNotFoundError):
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server did not come up: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 20 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def create_box(client: httpx.Client) -> str:
    resp = client.post("/v1/boxes", json=BOX_SPEC)
    if resp.status_code != 201:
        raise RuntimeError(f"box create failed: {resp.status_code} {resp.text[:500]}")
    return resp.json()["id"]


def remove_box(client: httpx.Client, box_id: str) -> None:
    client.delete(f"/v1/boxes/{box_id}", params={"force": "true"})


@dataclass
class SseResult:
    """What a raw read of an exec's event stream saw."""

    wire_bytes: int
    counted: int  # occurrences of the counted byte
    exit_data: dict | None  # the exit event's decoded ``data``; None if cut by the deadline


def read_events(client: httpx.Client, path: str, count: bytes = b"",
                deadline: float | None = None) -> SseResult:
    """Read an SSE stream raw to its end (or ``deadline``), counting ``count`` bytes."""
    wire = counted = 0
    tail = b""
    with client.stream("GET", path) as resp:
        if resp.status_code != 200:
            resp.read()
            raise RuntimeError(f"events: {resp.status_code} {resp.text[:500]}")
        for chunk in resp.iter_raw():
            wire += len(chunk)
            if count:
                counted += chunk.count(count)
            tail = (tail + chunk)[-4096:]
            if deadline is not None and time.monotonic() > deadline:
                return SseResult(wire, counted, None)
    marker = tail.rfind(b"event: exit\ndata: ")
    if marker < 0:
        raise RuntimeError(f"stream ended without an exit event: {tail[-300:]!r}")
    line = tail[marker:].split(b"\n")[1].removeprefix(b"data: ")
    return SseResult(wire, counted, json.loads(json.loads(line)["data"]))


def start_exec(client: httpx.Client, box_id: str, cmd: list[str]) -> str:
    resp = client.post(f"/v1/boxes/{box_id}/exec", json={"cmd": cmd})
    if resp.status_code != 201:
        raise RuntimeError(f"exec failed: {resp.status_code} {resp.text[:500]}")
    return resp.json()["id"]


def run_exec(client: httpx.Client, box_id: str, cmd: list[str], count: bytes = b"",
             deadline: float | None = None) -> SseResult:
    """POST an exec and read its SSE stream to the exit event; fail on a non-zero exit."""
    exec_id = start_exec(client, box_id, cmd)
    result = read_events(client, f"/v1/boxes/{box_id}/exec/{exec_id}/events", count, deadline)
    if result.exit_data is None:
        client.post(f"/v1/boxes/{box_id}/exec/{exec_id}:cancel")
    elif result.exit_data.get("exit_code") != 0:
        raise RuntimeError(f"{cmd} ended {result.exit_data}")
    return result
