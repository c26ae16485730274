"""The gVisor backend on real ``runsc`` sandboxes: lifecycle, exec, files and limits."""

from __future__ import annotations

import asyncio
import os
import platform
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from jupyter_ext.backends.base import Volume
from jupyter_ext.backends.gvisor import GvisorBackend
from jupyter_ext.backends.gvisor.bundle import PROCS_MAX
from jupyter_ext.backends.select import select_backend
from jupyter_ext.core.errors import BoxRunError

from ..conftest import BuiltImages

pytestmark = pytest.mark.skipif(shutil.which("runsc", path="/usr/sbin:/usr/bin") is None
                                or os.geteuid() != 0, reason="needs runsc and root")


@pytest.fixture(scope="module")
def gv_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One state dir for the module, so each image is unpacked once."""
    path = tmp_path_factory.mktemp("gvisor") / "state"
    path.mkdir(mode=0o700)
    return path


@pytest.fixture
async def backend(built_images: BuiltImages, gv_state: Path) -> AsyncIterator[GvisorBackend]:
    """An open gVisor backend; its boxes are removed afterwards, and nothing is left."""
    backend = GvisorBackend(gv_state, built_images.store)
    exits: list[tuple[str, str]] = []
    backend.on_exit = lambda handle, reason: exits.append((handle, reason))
    backend.exits = exits  # type: ignore[attr-defined]
    await backend.open()
    yield backend
    await backend.close()
    for box in (gv_state / "gvisor").glob("gv-*"):
        await backend.remove(box.name)
    assert not list((gv_state / "gvisor").glob("gv-*"))
    assert not [p for p in (gv_state / "gvisor" / ".runsc").iterdir()]


async def test_lifecycle_and_writable_layer(boot, spec, run, backend, gv_state):
    box = spec()
    handle = await backend.create(box)
    assert await backend.running() == set()
    with pytest.raises(BoxRunError, match="not running"):
        await backend.exec(handle, ["true"], {}, "/")
    await backend.start(handle, box)
    assert await backend.running() == {handle}
    assert (await run(handle, "sh", "-c", "echo kept > /root/file; echo gone > /tmp/x"))[0] == 0
    await backend.stop(handle)
    await backend.stop(handle)  # idempotent
    assert await backend.running() == set()
    assert not any(os.path.ismount(p) for p in (gv_state / "gvisor" / handle).iterdir())
    await backend.start(handle, box)
    assert await run(handle, "cat", "/root/file") == (0, b"kept\n", b"")
    # a second box of the same image does not see the first one's files
    other = await boot(spec())
    assert (await run(other, "test", "-e", "/root/file"))[0] == 1
    await backend.remove(handle)
    assert not (gv_state / "gvisor" / handle).exists()
    await backend.remove(handle)  # idempotent


async def test_background_process_lives_until_stop(boot, spec, run, backend):
    box = spec()
    handle = await boot(box)
    code, _, _ = await run(handle, "sh", "-c", "sleep 300 > /dev/null 2>&1 & echo $! > /root/bg")
    assert code == 0
    assert (await run(handle, "sh", "-c", 'kill -0 "$(cat /root/bg)"'))[0] == 0
    await backend.stop(handle)
    await backend.start(handle, box)
    assert (await run(handle, "sh", "-c", 'kill -0 "$(cat /root/bg)"'))[0] != 0


async def test_kernel_is_gvisors(boot, spec, run):
    handle = await boot(spec())
    _, release, _ = await run(handle, "uname", "-r")
    assert release.strip() != platform.release().encode()
    _, version, _ = await run(handle, "cat", "/proc/version")
    assert version.strip() != Path("/proc/version").read_bytes().strip()
    _, dmesg, _ = await run(handle, "dmesg")
    assert b"Starting gVisor" in dmesg


async def test_exec_streams_env_workdir_exit_codes(boot, spec, run, backend):
    handle = await boot(spec())
    script = 'echo "out $A"; echo err >&2; pwd; exit 7'
    code, out, err = await run(handle, "sh", "-c", script, env={"A": "1 2", "PATH": "/bin"},
                               workdir="/etc")
    assert (code, out, err) == (7, b"out 1 2\n/etc\n", b"err\n")
    _, env, _ = await run(handle, "env", env={"ONLY": "this", "PATH": "/usr/bin:/bin"})
    names = {line.split(b"=")[0] for line in env.splitlines()}
    assert b"ONLY" in names and b"BOXRUN" not in env and b"LC_ALL" not in names
    code, _, err = await run(handle, "no-such-command")
    assert code == 127 and b"no-such-command" in err
    with pytest.raises(BoxRunError, match="working directory"):
        await backend.exec(handle, ["true"], {}, "/no/such/dir")


async def test_kill_and_stdin(boot, spec, backend, collect):
    handle = await boot(spec())
    process = await backend.exec(handle, ["cat"], {}, "/", stdin=True)
    lines = b"".join(b"line %d\n" % i for i in range(2000))
    await process.write_stdin(lines)
    await process.close_stdin()
    assert await collect(process.stdout) == lines
    assert await process.wait() == 0
    process = await backend.exec(handle, ["sleep", "300"], {}, "/")
    started = time.monotonic()
    process.kill()
    process.kill()  # idempotent
    assert await asyncio.wait_for(process.wait(), 10) == 137
    assert time.monotonic() - started < 10


async def test_upload_download_and_volumes(boot, spec, backend, collect, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "host.txt").write_text("from host")
    handle = await boot(spec(volumes=[Volume(str(shared), "/mnt/ro", readonly=True),
                                      Volume(str(shared), "/mnt/rw")]))
    data = os.urandom(3 << 20)

    async def chunks():
        for i in range(0, len(data), 65536):
            yield data[i:i + 65536]

    await backend.upload(handle, "/root/deep/dir/blob", chunks())
    assert b"".join([c async for c in backend.download(handle, "/root/deep/dir/blob")]) == data
    with pytest.raises(BoxRunError, match="no such file"):
        [c async for c in backend.download(handle, "/root/missing")]
    assert b"".join([c async for c in backend.download(handle, "/mnt/ro/host.txt")]) == b"from host"
    with pytest.raises(BoxRunError, match="cannot write"):
        await backend.upload(handle, "/mnt/ro/new", chunks())
    await backend.upload(handle, "/mnt/rw/new", chunks())
    assert (shared / "new").read_bytes() == data


async def test_limits_and_metrics(boot, spec, run, backend):
    handle = await boot(spec("python", cpu=1, memory_mb=384))
    _, meminfo, _ = await run(handle, "grep", "MemTotal", "/proc/meminfo")
    assert meminfo.split()[1] == str(384 << 10).encode()
    before = await backend.metrics(handle)
    assert before["memory_limit_bytes"] == 384 << 20 and before["pids"] >= 1
    spin = "timeout 3 sh -c 'while :; do :; done'"
    started = time.monotonic()
    assert (await run(handle, "sh", "-c", f"{spin} & {spin}; wait"))[0] == 0
    wall = time.monotonic() - started
    used = (await backend.metrics(handle))["cpu_seconds"] - before["cpu_seconds"]
    assert used < 1.3 * wall, f"two spinning processes used {used:.1f} cpu s in {wall:.1f} s"
    # past the memory limit the box dies, not the host, and the manager is told why
    hog = "b = bytearray(600 << 20); b[::4096] = b'x' * len(b[::4096])"
    code, _, _ = await run(handle, "python3", "-c", hog)
    assert code == 137  # killed with its sandbox
    for _ in range(100):
        if backend.exits:
            break
        await asyncio.sleep(0.1)
    assert handle not in await backend.running()
    assert backend.exits and backend.exits[0][0] == handle and "memory" in backend.exits[0][1]


async def test_process_limit(boot, spec, run, backend):
    handle = await boot(spec())
    script = f'n=0; while [ $n -lt {PROCS_MAX + 100} ]; do sleep 60 & n=$((n+1)); done'
    code, _, err = await run(handle, "sh", "-c", script)
    assert code != 0 and b"fork" in err.lower()
    assert handle in await backend.running() and not backend.exits
    assert (await run(handle, "true"))[0] == 0  # the box goes on


async def test_network_true_is_refused(backend, spec):
    with pytest.raises(BoxRunError, match="not supported"):
        await backend.create(spec(network=True))
    assert not list(backend.boxes_dir.glob("gv-*"))


def test_selected_by_name_only(built_images: BuiltImages, tmp_path: Path):
    selection = select_backend("gvisor", tmp_path, built_images.store)
    assert selection.backend_class is GvisorBackend
    assert selection.reason == "configured: backend = gvisor"
    assert select_backend("auto", tmp_path, built_images.store).backend_class is not GvisorBackend
