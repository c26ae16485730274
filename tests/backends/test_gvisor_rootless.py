"""gVisor under a server that is not root: ``boxrun serve --backend auto`` run as
``nobody`` probes ``runsc --rootless``, takes gVisor, says in ``/v1/info`` what is lost
without root, and its boxes work (exec, files, metrics, a layer kept from stop to
start), their host processes all ``nobody``'s."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from jupyter_ext.backends.gvisor import probe as gvisor_probe

from ..conftest import BuiltImages
from ..servers import ServerProcess

USER = "nobody"


def _nobody() -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam(USER)
    except KeyError:
        return None


pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or _nobody() is None or shutil.which("setpriv") is None
    or gvisor_probe.host_problem() is not None,
    reason="needs root (to become nobody), a nobody user, setpriv and runsc")


class NobodyServer(ServerProcess):
    """``boxrun serve`` as ``nobody`` (no groups, no capabilities)."""

    def command(self, *extra: str) -> list[str]:
        return ["setpriv", f"--reuid={USER}", f"--regid={_nobody().pw_gid}",  # type: ignore[union-attr]
                "--clear-groups", "--inh-caps=-all", *super().command(*extra)]


@pytest.fixture
def world(built_images: BuiltImages) -> Iterator[Path]:
    """A folder nobody may use: a readable copy of the ``debian`` image, and a state
    folder of nobody's."""
    root = Path(tempfile.mkdtemp(prefix="boxrun-rootless-"))
    try:
        root.chmod(0o755)
        shutil.copytree(built_images.store.root / "debian", root / "images" / "debian")
        subprocess.run(["chmod", "-R", "a+rX", str(root / "images")], check=True)
        (root / "home").mkdir()
        user = _nobody()
        assert user is not None
        os.chown(root / "home", user.pw_uid, user.pw_gid)
        yield root
    finally:
        subprocess.run(["rm", "-rf", str(root)], check=False)


def _sandbox_uids(marker: str) -> set[int]:
    uids = set()
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker.encode() in (entry / "cmdline").read_bytes():
                uids.add(entry.stat().st_uid)
        except OSError:
            continue
    return uids


def finished(http: httpx.Client, box: str, script: str) -> dict:
    """``sh -c script`` in ``box``, once it ended."""
    reply = http.post(f"/v1/boxes/{box}/exec", json={"cmd": ["sh", "-c", script]})
    assert reply.status_code == 201, reply.text
    deadline = time.monotonic() + 60
    while (ex := http.get(f"/v1/boxes/{box}/exec/{reply.json()['id']}").json())["status"] \
            == "running" and time.monotonic() < deadline:
        time.sleep(0.1)
    return ex


def test_rootless_gvisor_serves_boxes_and_says_what_is_lost(world: Path) -> None:
    server = NobodyServer(world / "home" / "state", world / "images", backend="auto")
    server.start(timeout=60)
    try:
        with server.http() as http:
            info = http.get("/v1/info").json()
            assert (info["backend"], info["isolation"]) == ("gvisor", "gvisor"), info
            assert "gVisor user-space kernel, not a micro-VM" in info["backend_reason"]
            lost = " ".join(info["limitations"])
            for words in ("runsc --rootless", "checkpoint and restore",
                          "cpu, memory_mb and the process count are not enforced",
                          "disk_size_gb is not enforced: the server is not root"):
                assert words in lost, info["limitations"]
            box = http.post("/v1/boxes", json={"image": "debian", "cpu": 1, "memory_mb": 256})
            assert box.status_code == 201, box.text
            bid = box.json()["id"]
            ex = finished(http, bid, "id -u; echo kept > /root/f")
            assert (ex["status"], ex["exit_code"]) == ("succeeded", 0), ex
            assert _sandbox_uids(str(server.state_dir)) == {_nobody().pw_uid}  # type: ignore[union-attr]
            # cpu is the sandbox's own (not its enclosing cgroup's, all the host's here)
            idle = http.get(f"/v1/boxes/{bid}/metrics").json()
            assert idle["cpu_percent"] is not None and idle["cpu_percent"] < 15, idle
            finished(http, bid, "nohup sh -c 'while :; do :; done' >/dev/null 2>&1 &")
            time.sleep(1)
            busy = http.get(f"/v1/boxes/{bid}/metrics").json()
            assert busy["cpu_percent"] > 20 and busy["pids"], busy
            http.post(f"/v1/boxes/{bid}:stop").raise_for_status()
            http.post(f"/v1/boxes/{bid}:start").raise_for_status()
            out = http.post("/v1/run", json={"image": "debian", "cmd": ["uname", "-r"]}).json()
            assert out["exit_code"] == 0 and out["stdout"] != os.uname().release + "\n"
            down = http.post(f"/v1/boxes/{bid}/files/download", json={"path": "/root/f"})
            assert down.status_code == 200 and down.content == b"kept\n"
            http.delete(f"/v1/boxes/{bid}", params={"force": "true"}).raise_for_status()
            assert not list((server.state_dir / "gvisor").glob("gv-*"))
    finally:
        server.stop()
    assert not _sandbox_uids(str(server.state_dir)), "a sandbox outlived the server"
