"""Tokens are never on a command line nor in a log: ``boxrun serve`` and the Jupyter
extension, attacked with ``?token=`` requests as a browser's dashboard makes them."""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

import httpx

from ..jupyter.test_extension import TOKEN, Jupyter, jupyter  # noqa: F401 - the fixture
from ..servers import ServerProcess


def descendants(pid: int) -> list[int]:
    """``pid`` and every process it started, and they started (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        found.append(current := todo.pop())
        todo += children.get(current, [])
    return found


def read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError:  # the process ended meanwhile
        return b""


def wait_for(log: Path, text: str) -> str:
    """The log once it holds ``text`` (the server logs in its own time)."""
    deadline = time.monotonic() + 5
    while text not in (content := log.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return content


def test_serve_keeps_the_token_out_of_ps_children_and_logs(tmp_path: Path, images_dir: Path) -> None:
    token = secrets.token_urlsafe(18)
    server = ServerProcess(tmp_path / "state", images_dir, token=token).start()
    try:
        with server.tcp() as tcp:
            assert tcp.get(f"/v1/info?token={token}").status_code == 200
            assert tcp.get(f"/v1/boxes?token={token}&status=all").status_code == 200
            assert tcp.get(f"/v1/info?token={token[:-1]}").status_code == 401  # a near miss
            assert tcp.get(f"/v1/nothing?access_token={token}&token={token}").status_code == 404
            assert tcp.get(f"/?token={token}").status_code == 302
            box = tcp.post(f"/v1/boxes?token={token}",
                           json={"image": "debian", "cpu": 1, "memory_mb": 128}).json()
        with server.http() as http:  # the socket: ?token= means nothing there, still masked
            assert http.get(f"/v1/info?token={token}").status_code == 200
        assert box["status"] == "running", box
        assert server.proc is not None
        processes = descendants(server.proc.pid)
        assert len(processes) > 1, "the box's sandbox should be a child of the server"
        for pid in processes:
            assert token.encode() not in read(f"/proc/{pid}/cmdline"), pid
            if pid != server.proc.pid:  # its own first environment still holds it (mode 0400)
                assert token.encode() not in read(f"/proc/{pid}/environ"), pid
        log = wait_for(server.log, "GET /v1/info?token=[secret] (")
        assert "GET /?token=[secret]" in log and "access_token=[secret]&token=[secret]" in log
        assert token not in log and token[:-1] not in log
    finally:
        server.stop()


def test_token_file(tmp_path: Path, images_dir: Path) -> None:
    token = secrets.token_urlsafe(18)
    file = tmp_path / "token"
    file.write_text(token + "\n")
    file.chmod(0o600)
    server = ServerProcess(tmp_path / "state", images_dir, token="unused")
    server.start("--token-file", str(file))
    try:
        with server.tcp(auth=("", token)) as tcp:
            assert tcp.get("/v1/info").status_code == 200
        with server.tcp(auth=("", "unused")) as tcp:  # --token-file wins over $BOXRUN_TOKEN
            assert tcp.get("/v1/info").status_code == 401
        assert server.proc is not None
        assert token.encode() not in read(f"/proc/{server.proc.pid}/cmdline")
        assert token not in server.log.read_text()
    finally:
        server.stop()


def test_jupyter_masks_the_token_of_boxrun_routes(jupyter: Jupyter) -> None:  # noqa: F811
    secret = secrets.token_urlsafe(18)
    for path, status in ((f"info?token={TOKEN}", 200), (f"nothing?token={TOKEN}", 404),
                         (f"info?token={secret}", 401)):
        with jupyter.client() as client:  # each without the cookie of the one before
            assert client.get(f"boxrun/v1/{path}").status_code == status, path
    sock = jupyter.state_dir / "boxrun.sock"
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(sock)),
                      base_url="http://localhost") as http:
        assert http.get(f"/v1/boxes?token={secret}").status_code == 200
    log = wait_for(jupyter.log, "/v1/boxes?token=[secret]")
    assert "/v1/boxes?token=[secret]" in log, log[-2000:]
    assert TOKEN not in log and secret not in log, log[-2000:]
