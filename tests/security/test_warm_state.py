"""A warm gVisor box (restored from its image's template) must not see the server's
state through a volume: the tmpfs that covers it in a cold box is the Sentry's own, and
a restore would not add it (issue 13, warm kernels)."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from jupyter_client.manager import start_new_kernel

from ..kernel.test_notebook_folder import TIMEOUT, execute
from ..kernel.test_warm_gvisor import templates
from ..servers import ServerProcess

pytestmark = pytest.mark.skipif(shutil.which("runsc", path="/usr/sbin:/usr/bin") is None
                                or os.geteuid() != 0, reason="needs runsc and root")


@pytest.fixture
def home() -> Iterator[Path]:
    """A folder below /root (the server's home, a volume root) holding the server's state,
    as ~/.boxrun is in the home Jupyter serves."""
    path = Path(tempfile.mkdtemp(prefix="boxrun-warm-state-", dir="/root"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def test_state_in_a_notebook_folder_stays_hidden(images_dir, home):
    server = ServerProcess(home / "state", images_dir,
                           env={"BOXRUN_BACKEND": "gvisor", "HOME": "/root"})
    server.start()
    env = {**os.environ, "BOXRUN_SOCKET": server.socket}
    first = home / "first"
    first.mkdir()
    kernels = []
    try:
        def start(folder: Path):
            km, kc = start_new_kernel(kernel_name="boxrun", env=env, cwd=str(folder),
                                      startup_timeout=TIMEOUT)
            kernels.append((km, kc))
            return kc

        start(first)  # cold: builds the image's template
        deadline = time.monotonic() + 300
        while not templates(server.state_dir) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert templates(server.state_dir), "no warm template was built"
        assert any(p.name == "boxrun.db" for p in server.state_dir.iterdir())

        attacker = start(home)  # the notebook's folder holds the state
        code = "import os; print(os.path.isdir('first'), sorted(os.listdir('state')))"
        assert execute(attacker, code) == ("ok", "True []\n")
    finally:
        for km, kc in kernels:
            kc.stop_channels()
            km.shutdown_kernel(now=True)
        server.stop()
