"""Warm kernels on gVisor: the first BoxRun kernel on an image starts cold and leaves a
template behind; the next ones are restored from it, in their notebook's folder (below
/root), and run like fresh kernels; below /tmp a kernel starts cold (issue 12, Speed;
issue 13, warm kernels)."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.manager import start_new_kernel

from boxrun_kernel.boxspec import box_name, kernel_id

from ..servers import ServerProcess
from .test_notebook_folder import TIMEOUT, execute

pytestmark = pytest.mark.skipif(shutil.which("runsc", path="/usr/sbin:/usr/bin") is None
                                or os.geteuid() != 0, reason="needs runsc and root")

#: True in a box restored from a template: the template's kernel moved its IOPub pipe to
#: an ipc socket before its checkpoint (a cold kernel keeps it on TCP).
WARM = "import glob; print(bool(glob.glob('/dev/shm/.boxrun/iopub-pipe-*.sock')))"


def templates(state: Path) -> list[Path]:
    return [p for p in (state / "gvisor" / ".warm").glob("[!.]*") if (p / "image").is_dir()]


@pytest.fixture
def in_root() -> Iterator[Path]:
    """A folder below /root (the server's home: a volume root), where the notebooks of
    Jupyter run as root are."""
    path = Path(tempfile.mkdtemp(prefix="boxrun-warm-", dir="/root"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def test_second_kernel_starts_warm(tmp_path, images_dir, in_root, notebook_dir):
    project = in_root / "project"
    project.mkdir()
    server = ServerProcess(tmp_path / "state", images_dir,
                           env={"BOXRUN_BACKEND": "gvisor", "HOME": "/root"})
    server.start()
    env = {**os.environ, "BOXRUN_SOCKET": server.socket}
    for folder in (project, in_root, notebook_dir):
        (folder / "data.txt").write_text("next to the notebook")
    kernels = []
    try:
        def start(folder: Path = project) -> tuple[Any, float]:
            started = time.monotonic()
            km, kc = start_new_kernel(kernel_name="boxrun", env=env, cwd=str(folder),
                                      startup_timeout=TIMEOUT)
            kernels.append((km, kc))
            status, out = execute(kc, "print(open('data.txt').read())")
            assert (status, out) == ("ok", "next to the notebook\n"), out
            return kc, time.monotonic() - started

        cold, cold_seconds = start()
        assert execute(cold, WARM)[1] == "False\n"
        deadline = time.monotonic() + 300
        while not templates(server.state_dir) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert templates(server.state_dir), "no warm template was built"

        warm, warm_seconds = start()
        assert execute(warm, WARM)[1] == "True\n"
        reply = warm.execute_interactive("import os; os.getcwd()", timeout=TIMEOUT)
        assert reply["content"]["execution_count"] == 3  # counts as in a fresh kernel
        assert execute(warm, "x = 41\nprint(x + 1)") == ("ok", "42\n")
        assert execute(cold, "print(globals().get('x'))") == ("ok", "None\n")
        print(f"kernel start to first result: cold {cold_seconds:.2f} s, "
              f"warm {warm_seconds:.2f} s")
        assert warm_seconds < cold_seconds

        # the template's processes were never below /root: the box sees the folder added
        # at the restore, and may not write it (mounted read-only, the kernel's default)
        root_kc, _ = start(in_root)
        assert execute(root_kc, WARM)[1] == "True\n"
        code = ("import os; print(os.getcwd(), _dh)\n"
                "try:\n    open('out.txt', 'w')\nexcept OSError as e:\n    print(e.strerror)")
        assert execute(root_kc, code) == ("ok", f"{in_root} ['{in_root}']\n"
                                                "Read-only file system\n")
        assert not (in_root / "out.txt").exists()
        # the agent moved too: the interpreter restarted starts in the folder, in the
        # session's environment (HOSTNAME: the box's name, which the template lacked)
        box = box_name("jupyter-{kernel_id}", kernel_id(kernels[-1][0].connection_file))
        with server.http() as http:
            sessions = http.get(f"/v1/boxes/{box}/sessions").json()
            live = [s for s in sessions if s["status"] != "dead"]
            assert len(live) == 1, sessions
            restarted = http.post(f"/v1/boxes/{box}/sessions/{live[0]['id']}:restart")
            assert restarted.status_code == 200, restarted.text
        code = "import os; print(os.getcwd(), os.environ.get('HOSTNAME'))"
        assert execute(root_kc, code) == ("ok", f"{in_root} {box}\n")
        assert execute(root_kc, "print(open('data.txt').read())") == ("ok", "next to the notebook\n")

        # below /tmp: gVisor's own tmpfs, which a restore brings back as it was saved
        in_tmp, _ = start(notebook_dir)  # works, cold
        assert execute(in_tmp, WARM)[1] == "False\n"
    finally:
        for km, kc in kernels:
            kc.stop_channels()
            km.shutdown_kernel(now=True)
        server.stop()


def test_next_kernel_takes_the_spare_box(tmp_path, images_dir, in_root):
    """Once a template exists, a box restored from it waits: the next kernel's box is that
    box, its notebook folder mounted into it at the kernel's start."""
    server = ServerProcess(tmp_path / "state", images_dir,
                           env={"BOXRUN_BACKEND": "gvisor", "HOME": "/root"})
    server.start()
    env = {**os.environ, "BOXRUN_SOCKET": server.socket}
    (in_root / "data.txt").write_text("next to the notebook")
    kernels = []
    try:
        def start() -> Any:
            km, kc = start_new_kernel(kernel_name="boxrun", env=env, cwd=str(in_root),
                                      startup_timeout=TIMEOUT)
            kernels.append((km, kc))
            return kc

        start()
        deadline = time.monotonic() + 300
        while "spare box of" not in server.log.read_text() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert "spare box of" in server.log.read_text(), "no spare box was made"
        kc = start()
        assert "warm interpreter (a spare box)" in server.log.read_text()
        assert execute(kc, WARM)[1] == "True\n"
        code = "import os; print(os.getcwd(), open('data.txt').read(), os.environ['HOSTNAME'])"
        box = box_name("jupyter-{kernel_id}", kernel_id(kernels[-1][0].connection_file))
        assert execute(kc, code) == ("ok", f"{in_root} next to the notebook {box}\n")
        assert execute(kc, "x = 41\nprint(x + 1)") == ("ok", "42\n")
    finally:
        for km, kc in kernels:
            kc.stop_channels()
            km.shutdown_kernel(now=True)
        server.stop()
