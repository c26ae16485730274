"""Volumes of gVisor boxes the Sentry does not know as mounts. A restored Sentry knows
only the mounts of the box it saved and sees later volumes through the root filesystem,
where it does not enforce read-only: a box resumed from a checkpoint must not write a
read-only volume, not even in its first moments. A spare box's volumes are mounted by a
host root process in the sandbox's gofer's mount namespace, at a path that runs through
the box's own files: a link there must not take the mount anywhere else, and nothing but
a gofer is entered."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from jupyter_ext.backends.base import Volume
from jupyter_ext.backends.gvisor import latemount
from jupyter_ext.backends.gvisor.checkpoint import checkpoint, create_from
from jupyter_ext.core.errors import BoxRunError

from ..backends import conftest as backend_fixtures
from ..backends import test_gvisor

# the gVisor backend's fixtures, and those of the backend tests
backend, gv_state = test_gvisor.backend, test_gvisor.gv_state
boot, run, spec = backend_fixtures.boot, backend_fixtures.run, backend_fixtures.spec
pytestmark = [test_gvisor.pytestmark,
              pytest.mark.skipif(os.geteuid() != 0, reason="late mounts need root")]


def host_mounts() -> str:
    return Path("/proc/self/mountinfo").read_text()


#: Appends to /opt/kept/w every 10 ms, logging each try to /root/log. Its file is open
#: for one write call at a time: a file open at the checkpoint at a path that a volume
#: covers in the fork is not there to reopen, and the restore fails (no such file).
WRITER = """\
import os, time
os.makedirs("/opt/kept", exist_ok=True)
log = open("/root/log", "a", buffering=1)
while True:
    try:
        fd = os.open("/opt/kept/w", os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, b"x")
        finally:
            os.close(fd)
        log.write("wrote\\n")
    except OSError:
        log.write("failed\\n")
    time.sleep(0.01)
"""


async def test_a_resumed_box_never_writes_a_read_only_volume(boot, spec, run, backend,
                                                              tmp_path):
    kept = tmp_path / "kept"
    kept.mkdir()
    source = await boot(spec("python"))
    # writes where the volume will be every 10 ms, from before the checkpoint on
    background = 'python3 -c "$0" </dev/null >/dev/null 2>&1 &'
    assert (await run(source, "sh", "-c", background, WRITER))[0] == 0
    await asyncio.sleep(0.5)
    saved = await checkpoint(backend, source, spec("python"), tmp_path / "ckpt",
                             leave_running=False)
    fork = await create_from(backend, spec("python", volumes=[
        Volume(str(kept), "/opt/kept", readonly=True)]), saved)
    await asyncio.sleep(2)
    lines = (await run(fork, "sh", "-c", "tail -n 400 /root/log"))[1].split()
    assert lines.count(b"failed") > 50 and lines[-1] == b"failed"  # it ran on, refused
    assert list(kept.iterdir()) == []


async def test_a_link_on_the_path_takes_no_mount_elsewhere(boot, spec, run, backend,
                                                            tmp_path):
    source = tmp_path / "volume"
    source.mkdir()
    (source / "planted").write_text("the volume's")
    box = spec()
    handle = await boot(box)
    links = ("ln -s /etc /root/abs && ln -s ../../../../../../etc /root/rel"
             " && mkdir /root/d && ln -s /etc/cron.d /root/d/last")
    assert (await run(handle, "sh", "-c", links))[0] == 0
    before = host_mounts()
    for guest in ("/root/abs/boxrun-x", "/root/rel/boxrun-x", "/root/d/last"):
        with pytest.raises(BoxRunError, match="Not a directory|Too many levels"):
            await backend.mount_late(handle, [Volume(str(source), guest)])
    assert host_mounts() == before
    assert not Path("/etc/boxrun-x").exists()
    # not below the links either: the box sees no volume anywhere
    code, out, _ = await run(handle, "sh", "-c", "cat /etc/boxrun-x/planted"
                             " /etc/cron.d/planted 2>&1; true")
    assert b"the volume's" not in out
    # and a clean path still works
    await backend.mount_late(handle, [Volume(str(source), "/root/clean")])
    assert (await run(handle, "cat", "/root/clean/planted"))[1] == b"the volume's"


def test_only_a_gofer_is_entered(tmp_path):
    source = tmp_path / "volume"
    source.mkdir()
    target = tmp_path / "target"
    done = subprocess.run([sys.executable, "-I", "-S", latemount.__file__, str(os.getpid()),
                           str(source), str(target), "rw"], capture_output=True, text=True)
    assert done.returncode == 1 and "not a gofer" in done.stderr
    assert not target.exists()
