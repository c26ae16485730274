"""The server process: state dir ownership, permissions, SIGKILL and reconciliation."""

from __future__ import annotations

import json
import stat
import subprocess
import time

from ..servers import ServerProcess


def test_state_dir_permissions_and_second_server(new_server: ServerProcess, tmp_path) -> None:
    new_server.start()
    assert stat.S_IMODE(new_server.state_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((new_server.state_dir / "boxrun.sock").stat().st_mode) == 0o600
    second = ServerProcess(new_server.state_dir, new_server.images_dir, backend=new_server.backend)
    proc = subprocess.run(second.command(), env=second.env, capture_output=True, text=True, timeout=30)
    assert proc.returncode != 0
    assert f"pid {new_server.proc.pid}" in proc.stderr, proc.stderr
    with new_server.http() as http:  # the owner is untouched
        assert http.get("/v1/info").status_code == 200


def test_generated_token_and_no_auth_warning(new_server: ServerProcess) -> None:
    with subprocess.Popen(new_server.command(), env=new_server.env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as proc:
        try:
            lines = [proc.stdout.readline() for _ in range(3)]
            token = next(line.split("token: ")[1].strip() for line in lines if "token: " in line)
            with new_server.tcp(auth=("", token)) as tcp:
                assert tcp.get("/v1/info").status_code == 200
            with new_server.tcp() as anon:
                assert anon.get("/v1/info").status_code == 401
        finally:
            proc.terminate()
    with subprocess.Popen(new_server.command("--no-auth"), env=new_server.env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as proc:
        try:
            output = "".join(proc.stdout.readline() for _ in range(2))
            assert "NO authentication" in output
            with new_server.tcp() as anon:
                assert anon.get("/v1/info").status_code == 200
        finally:
            proc.terminate()


def test_sigkill_mid_exec_then_restart(new_server: ServerProcess) -> None:
    new_server.start()
    with new_server.http() as http:
        box = http.post("/v1/boxes", json={"image": "debian", "cpu": 1, "memory_mb": 64}).json()
        bid = box["id"]
        http.post(f"/v1/boxes/{bid}/exec", json={"cmd": ["sh", "-c", "echo keep > /root/kept"]})
        time.sleep(0.5)
        script = "i=0; while true; do echo line$i; i=$((i+1)); sleep 0.01; done"
        ex = http.post(f"/v1/boxes/{bid}/exec", json={"cmd": ["sh", "-c", script]}).json()
        time.sleep(1.0)
    new_server.kill()
    new_server.start()
    with new_server.http() as http:  # the box outlived the server (tests/api/test_adopt.py)
        assert http.get(f"/v1/boxes/{bid}").json()["status"] == "running"
        done = http.get(f"/v1/boxes/{bid}/exec/{ex['id']}").json()
        assert done["status"] == "failed" and "restarted" in done["error_message"]
        body = http.get(f"/v1/boxes/{bid}/exec/{ex['id']}/events").text
        blocks = [b for b in body.strip().split("\n\n") if not b.startswith(":")]
        seqs = [json.loads(b.split("data: ", 1)[1])["seq"] for b in blocks]
        assert seqs == list(range(len(seqs))) and len(seqs) > 2
        assert blocks[-1].startswith(f"id: {seqs[-1]}\nevent: exit")
        assert http.get("/v1/info").json()["used_cpu"] == 1
        check = http.post(f"/v1/boxes/{bid}/exec", json={"cmd": ["cat", "/root/kept"]}).json()
        events = http.get(f"/v1/boxes/{bid}/exec/{check['id']}/events").text
        assert "keep" in events
        assert http.delete(f"/v1/boxes/{bid}", params={"force": "true"}).status_code == 200
