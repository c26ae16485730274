"""The ``boxrun`` command line: image management and failing fast on unbuilt images."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from ..servers import ServerProcess


def boxrun(*args: str, images: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BOXRUN_IMAGES_DIR": str(images)}
    return subprocess.run([sys.executable, "-m", "jupyter_ext.standalone", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_image_ls_and_rm(images_dir: Path, tmp_path: Path) -> None:
    listed = boxrun("image", "ls", images=images_dir)
    assert listed.returncode == 0
    rows = {line.split()[0]: line for line in listed.stdout.splitlines()[1:]}
    assert "local/debian" in rows["debian"] and "local/python" in rows["python"]
    empty = boxrun("image", "ls", images=tmp_path / "none")
    assert "not built (boxrun image build python)" in empty.stdout
    missing = boxrun("image", "rm", "python", images=tmp_path / "none")
    assert missing.returncode == 1 and "not built" in missing.stderr
    unknown = boxrun("image", "build", "nosuchrecipe", images=tmp_path / "none")
    assert unknown.returncode == 1 and "debian" in unknown.stderr
    again = boxrun("image", "build", "--if-missing", "debian", images=images_dir)
    assert again.returncode == 0 and "already built" in again.stdout


def test_unbuilt_image_fails_at_once_with_the_command(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "state", tmp_path / "no-images").start()
    try:
        with server.http() as http:
            started = time.monotonic()
            resp = http.post("/v1/boxes", json={"image": "python"})
            assert time.monotonic() - started < 5
            assert resp.status_code == 400 and resp.json()["code"] == "IMAGE_PULL_FAILED"
            assert "boxrun image build python" in resp.json()["message"]
            resp = http.post("/v1/boxes", json={"image": "node:22-slim"})
            assert resp.json()["code"] == "IMAGE_PULL_FAILED"
            assert "registry" in resp.json()["message"]
            assert http.get("/v1/boxes").json() == [] and http.get("/v1/images").json() == []
    finally:
        server.stop()


def test_images_endpoint(server: ServerProcess) -> None:
    with server.http() as http:
        images = {i["name"]: i for i in http.get("/v1/images").json()}
    assert images["python"]["ref"] == "local/python" and images["python"]["size_bytes"] > 0
    assert (Path(images["debian"]["oci_layout"]) / "index.json").is_file()
