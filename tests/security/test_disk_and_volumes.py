"""What a caller can make the host mount or allocate: an oversized disk and volumes
outside the allowlist are refused with 422 and leave nothing behind (issue 11, points 3
and 4), against a real server on each backend."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ..servers import ServerProcess


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder in the system temp dir (an allowed root) that box root can reach."""
    folder = Path(tempfile.mkdtemp(prefix="boxrun-volume-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder)


def refused(reply: httpx.Response, *words: str) -> str:
    """The message of a 422 VALIDATION_ERROR that says ``words``."""
    assert reply.status_code == 422, reply.text
    error = reply.json()
    assert error["code"] == "VALIDATION_ERROR", error
    for word in words:
        assert word in error["message"], error
    return error["message"]


def box_folders(state_dir: Path) -> list[str]:
    """What the backends keep in the state dir (each backend's folder of boxes)."""
    return sorted(f"{folder.name}/{entry}" for folder in state_dir.iterdir() if folder.is_dir()
                  for entry in os.listdir(folder))


def test_oversized_disk_and_foreign_volumes_are_refused(
        new_server: ServerProcess, shared_dir: Path) -> None:
    new_server.start()
    assert new_server.proc is not None
    before = box_folders(new_server.state_dir)
    (shared_dir / "etc").symlink_to("/etc")
    attacks = ["/", "/etc", "/proc", f"/proc/{new_server.proc.pid}", "/sys/kernel", "/dev",
               "/run", str(new_server.state_dir), "/usr", str(new_server.images_dir),
               str(shared_dir / "etc"), f"{shared_dir}/../../etc",
               *(str(path) for path in new_server.state_dir.iterdir() if path.is_dir())]
    with new_server.http() as http:
        info = http.get("/v1/info").json()
        ceiling = info["max_disk_gb"]
        assert 0 < ceiling == shutil.disk_usage(new_server.state_dir).total >> 30
        assert os.path.realpath(tempfile.gettempdir()) in info["volume_roots"]
        for size in (ceiling + 1, 100_000):
            for path in ("/v1/boxes", "/v1/run"):
                body = {"image": "debian", "disk_size_gb": size, "cmd": ["true"]}
                refused(http.post(path, json=body), f"at most {ceiling}")
        for host_path in attacks:
            volume = {"host_path": host_path, "guest_path": "/mnt/host"}
            for path in ("/v1/boxes", "/v1/run"):
                body = {"image": "debian", "volumes": [volume], "cmd": ["cat", "/mnt/host/passwd"]}
                refused(http.post(path, json=body), "allowed roots", info["volume_roots"][0])
        assert http.get("/v1/boxes").json() == []
        assert box_folders(new_server.state_dir) == before, "a refused create left something in the state dir"

        (shared_dir / "hello.txt").write_text("from the host\n")
        volume = {"host_path": str(shared_dir), "guest_path": "/mnt/host", "readonly": True}
        run = http.post("/v1/run", json={"image": "debian", "volumes": [volume],
                                         "cmd": ["cat", "/mnt/host/hello.txt"]}).json()
        assert run["stdout"] == "from the host\n", run


def test_disk_ceiling_is_configurable(tmp_path: Path, images_dir: Path) -> None:
    server = ServerProcess(tmp_path / "state", images_dir, env={"BOXRUN_MAX_DISK_GB": "2"})
    server.start()
    try:
        with server.http() as http:
            assert http.get("/v1/info").json()["max_disk_gb"] == 2
            refused(http.post("/v1/boxes", json={"image": "debian", "disk_size_gb": 3}),
                    "at most 2")
            box = http.post("/v1/boxes", json={"image": "debian", "disk_size_gb": 2,
                                               "memory_mb": 128})
            assert box.status_code == 201, box.text
            assert box.json()["disk_size_gb"] == 2
            http.delete(f"/v1/boxes/{box.json()['id']}?force=true")
            # a create naming no disk gets the contract's 8 GiB cut to the ceiling
            box = http.post("/v1/boxes", json={"image": "debian", "memory_mb": 128})
            assert box.status_code == 201, box.text
            assert box.json()["disk_size_gb"] == 2
            http.delete(f"/v1/boxes/{box.json()['id']}?force=true")
    finally:
        server.stop()
