"""Boxes that outlive the server, attacked across restarts (namespace backend): a new
server adopts a running box without entering it or taking anything from it, and a
box's processes, however detached, end when it is stopped."""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..servers import ServerProcess
from .conftest import Boxes, host_pids_of


@pytest.fixture
def keeping(tmp_path: Path, images_dir: Path) -> Iterator[ServerProcess]:
    """A namespace server whose boxes outlive it; afterwards a last one stops them."""
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    srv = ServerProcess(state, images_dir, env={"BOXRUN_STOP_BOXES": "0",
                                                "BOXRUN_BACKEND": "namespace"})
    yield srv
    srv.kill()
    srv.start("--stop-boxes").stop()


def test_adoption_never_enters_the_box(keeping: ServerProcess, hostile_binary: bytes) -> None:
    """A detached /proc scanner with ptrace in the box while the server is SIGKILLed,
    SIGTERMed and restarted, adopting the box each time, then runs execs and uploads in
    it: it must never see a process with host credentials, and it dies with the box."""
    keeping.start()
    stop_file = f"/root/stop-{uuid.uuid4().hex}"
    with keeping.http() as http:
        boxes = Boxes(http, keeping)
        box = boxes.create("debian")
        hostile = boxes.install(box, hostile_binary)
        assert boxes.run(box, "sh", "-c", f"setsid {hostile} scan {stop_file} "
                         "> /root/scan.out 2>&1 < /dev/null &")[0] == 0
    for sig in (signal.SIGKILL, signal.SIGTERM):
        keeping.kill(sig)
        keeping.start()
        with keeping.http() as http:
            boxes = Boxes(http, keeping)
            assert http.get(f"/v1/boxes/{box['id']}").json()["status"] == "running"
            for index in range(20):
                assert boxes.run(box, "true")[0] == 0
                if index % 5 == 0:
                    boxes.upload(box, f"/root/upload-{index}", b"data")
    assert host_pids_of(stop_file)  # the scanner outlived both servers
    with keeping.http() as http:
        boxes = Boxes(http, keeping)
        boxes.upload(box, stop_file, b"")
        deadline = time.monotonic() + 30
        while "seen" not in (out := boxes.run(box, "cat", "/root/scan.out")[1]):
            assert time.monotonic() < deadline, out
            time.sleep(0.2)
        assert out.splitlines()[-1] == "seen 0 seized 0", out
        assert boxes.run(box, "sh", "-c", f"setsid sh -c 'sleep 600; :' {stop_file} "
                         "< /dev/null > /dev/null 2>&1 &")[0] == 0
        assert host_pids_of(stop_file)
        assert http.post(f"/v1/boxes/{box['id']}:stop").status_code == 200
    assert not host_pids_of(stop_file)
