"""A notebook kept in a private folder (a 0700 home, as most are) is mounted all the
same: the kernel reads and writes the files next to it (issue 11, point 9)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from jupyter_client.manager import start_new_kernel

TIMEOUT = 120


@pytest.fixture
def private_notebook_dir() -> Iterator[Path]:
    """``<0700 folder>/project``: box root, a uid of its own, could not pass the parent."""
    home = Path(tempfile.mkdtemp(prefix="boxrun-home-"))
    assert home.stat().st_mode & 0o777 == 0o700
    folder = home / "project"
    folder.mkdir(mode=0o700)
    (folder / "data.csv").write_text("a,b\n1,2\n")
    yield folder
    shutil.rmtree(home)


def execute(kc, code: str) -> tuple[str, str]:
    """The reply's status and what the cell printed."""
    out: list[str] = []

    def hook(msg):
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            out.append(f"{msg['content']['ename']}: {msg['content']['evalue']}")

    reply = kc.execute_interactive(code, timeout=TIMEOUT, output_hook=hook)
    return reply["content"]["status"], "".join(out)


@pytest.mark.parametrize("mount", ["ro", "rw"])
def test_notebook_folder_under_a_private_one(kernel_env, private_notebook_dir, mount):
    if os.geteuid() != 0:
        pytest.skip("sharing a folder box root cannot pass needs idmapped mounts (root)")
    km, kc = start_new_kernel(kernel_name="boxrun", env=kernel_env,
                              cwd=str(private_notebook_dir), startup_timeout=TIMEOUT,
                              extra_arguments=[f"--BoxRunKernel.mount={mount}"])
    try:
        status, out = execute(kc, "print(open('data.csv').read().splitlines()[1])")
        assert (status, out) == ("ok", "1,2\n"), out
        status, out = execute(kc, "open('result.csv', 'w').write('3,4\\n')")
        written = private_notebook_dir / "result.csv"
        if mount == "rw":
            assert status == "ok", out
            assert written.read_text() == "3,4\n"
            assert written.stat().st_uid == os.geteuid()  # the user's file, not the box's
        else:
            assert status == "error" and "Read-only file system" in out
            assert not written.exists()
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
