"""The gVisor backend on real ``runsc`` sandboxes: lifecycle, exec, terminals, files,
limits, and boxes that outlive the server."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from jupyter_ext.backends.base import Volume
from jupyter_ext.backends.gvisor import GvisorBackend
from jupyter_ext.backends.gvisor.bundle import PROCS_MAX
from jupyter_ext.backends.gvisor.compat import LIBRARY
from jupyter_ext.backends.gvisor.compat import PRELOAD as LD_SO_PRELOAD
from jupyter_ext.backends.gvisor.launcher import KILLED, Command
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
    await backend.close()  # detaches: the boxes run on until removed
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


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command's name (state, ppid, ...); None if gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except FileNotFoundError:
        return None


async def test_sandbox_reaped_by_its_own_reaper(boot, spec, run, backend):
    """Each sandbox process is a child of a reaper of its own (``boxrun-gvinit reap``),
    not orphaned to the host's init (which may reap only every second or so): a stop
    does not wait for that, and the reaper leaves once its sandbox has ended."""
    handle = await boot(spec())
    sandbox = backend._running[handle].pid
    reaper = int(_stat(sandbox)[1])
    assert reaper != 1
    assert Path(f"/proc/{reaper}/cmdline").read_bytes().split(b"\0")[1:2] == [b"reap"]
    assert (await run(handle, "true"))[0] == 0
    await backend.stop(handle)
    assert _stat(sandbox) is None
    for _ in range(100):
        if (_stat(reaper) or ["Z"])[0] == "Z":
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the reaper did not leave after its sandbox ended")


async def test_kernel_is_gvisors(boot, spec, run):
    handle = await boot(spec())
    _, release, _ = await run(handle, "uname", "-r")
    assert release.strip() != platform.release().encode()
    _, version, _ = await run(handle, "cat", "/proc/version")
    assert version.strip() != Path("/proc/version").read_bytes().strip()
    _, dmesg, _ = await run(handle, "dmesg")
    assert b"Starting gVisor" in dmesg


async def test_coreutils_stat_through_the_compat_library(boot, spec, run):
    """This runsc refuses statx's AT_NO_AUTOMOUNT, which coreutils passes: the backend's
    copy of the image preloads ``statx-compat.so``, which drops it."""
    handle = await boot(spec())
    code, out, err = await run(handle, "sh", "-c", "ls -ld / /etc/passwd && stat -c %s /etc/hostname")
    assert code == 0, err
    assert out.split(b"\n")[0].startswith(b"d")
    assert await run(handle, "cat", LD_SO_PRELOAD) == (0, LIBRARY.encode() + b"\n", b"")
    # without it, the flag is refused: the library is what makes ls work
    code, _, err = await run(handle, "sh", "-c", f": > {LD_SO_PRELOAD}; ls -ld /")
    assert code != 0 and b"Invalid argument" in err


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
    with pytest.raises(BoxRunError, match="no such directory"):
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


def host_address() -> str:
    """The host's first global IPv4 address: where the box's outbound connection goes."""
    out = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"],
                         capture_output=True, text=True).stdout
    if not out.split():
        pytest.skip("this host has no global IPv4 address to stand for the outside")
    return out.split()[3].split("/")[0]


def alive(pids: dict[str, int]) -> set[str]:
    """Which of the named host processes ``pids`` still run (zombies do not)."""
    running = set()
    for name, pid in pids.items():
        try:
            if Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z":
                running.add(name)
        except OSError:
            continue
    return running


def network_pids(backend: GvisorBackend, handle: str) -> dict[str, int]:
    saved = json.loads((backend.boxes_dir / handle / "network.pids").read_text())
    return {name: pid for name, (pid, _) in saved.items()}


async def gone(pids: dict[str, int], within: float = 5.0) -> set[str]:
    """Which of ``pids`` still run after ``within`` seconds at most."""
    deadline = time.monotonic() + within
    while alive(pids) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return alive(pids)


async def test_network_true_is_netstack_in_a_namespace_of_its_own(boot, spec, run, backend):
    outside = socket.create_server((host_address(), 0))
    outside.settimeout(10)
    box = spec(network=True)
    handle = await boot(box)
    pids = network_pids(backend, handle)
    assert alive(pids) == {"holder", "slirp4netns"}
    assert all(os.getsid(pid) == pid for pid in pids.values())  # sessions of their own
    sandbox = backend._running[handle].pid
    netns = os.readlink(f"/proc/{pids['holder']}/ns/net")
    assert os.readlink(f"/proc/{sandbox}/ns/net") == netns != os.readlink("/proc/self/ns/net")
    # the box's interfaces and routes are netstack's, copied from the namespace
    _, links, _ = await run(handle, "cat", "/proc/net/dev")
    assert {line.split(b":")[0].strip() for line in links.splitlines()[2:]} == {b"lo", b"tap0"}
    _, routes, _ = await run(handle, "cat", "/proc/net/route")
    table = [line.split()[:3] for line in routes.splitlines()[1:]]
    assert [b"tap0", b"00000000", b"0202000A"] in table  # default via 10.0.2.2
    assert (await run(handle, "cat", "/etc/resolv.conf"))[1] == b"nameserver 10.0.2.3\n"
    try:  # names resolve through slirp4netns's forwarder wherever the host resolves them
        socket.getaddrinfo("deb.debian.org", 80)
    except OSError:
        pass
    else:
        code, out, _ = await run(handle, "getent", "ahostsv4", "deb.debian.org")
        assert code == 0 and b"STREAM" in out
    # outbound through the gateway to the host's global address
    ip, port = outside.getsockname()
    reply = asyncio.create_task(run(handle, "bash", "-c", f"exec 3<>/dev/tcp/{ip}/{port}; head -c 5 <&3"))
    peer, _ = await asyncio.to_thread(outside.accept)
    peer.sendall(b"hello")
    assert (await reply)[:2] == (0, b"hello")
    peer.close()
    outside.close()
    metrics = await backend.metrics(handle)
    assert metrics["net_rx_bytes"] > 0 and metrics["net_tx_bytes"] > 0, metrics
    # it ends with the box, and comes back with it
    await backend.stop(handle)
    assert alive(pids) == set()
    await backend.start(handle, box)
    again = network_pids(backend, handle)
    assert alive(again) == {"holder", "slirp4netns"} and again != pids
    assert (await run(handle, "cat", "/proc/net/route"))[1] == routes
    await backend.remove(handle)
    assert alive(again) == set()
    assert not (backend.boxes_dir / handle).exists()


async def test_network_ends_with_its_sandbox_without_a_server(boot, spec, backend):
    handle = await boot(spec(network=True))
    pids = network_pids(backend, handle)
    sandbox = backend._running.pop(handle)  # as if the server had gone away
    sandbox.watch.cancel()
    os.kill(sandbox.pid, signal.SIGKILL)
    assert await gone(pids) == set()
    await backend.remove(handle)


def children() -> set[str]:
    """Names of this process's children that run (the backend's network processes)."""
    names = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            name, _, rest = stat.read_text().rpartition(")")
        except OSError:
            continue
        state, parent = rest.split()[:2]
        if int(parent) == os.getpid() and state != "Z":
            names.add(name.partition("(")[2])
    return names


async def test_a_failed_start_leaves_no_network(spec, backend, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    box = spec(network=True, volumes=[Volume(str(shared), "/mnt/shared")])
    handle = await backend.create(box)
    shared.rmdir()  # runsc cannot mount it: the sandbox fails after the network came up
    before = children()  # earlier tests' children (a BoxLite probe) may still be ending
    with pytest.raises(BoxRunError, match="failed to start"):
        await backend.start(handle, box)
    deadline = time.monotonic() + 5  # a child may still be on its way out
    while (left := children() - before) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert left == set()
    assert not (backend.boxes_dir / handle / "network.pids").exists()


#: A server in a process of its own: starts a network: true box, prints its handle and
#: waits to be killed.
SERVER = """
import asyncio, sys
from pathlib import Path
from jupyter_ext.backends.base import BoxSpec
from jupyter_ext.backends.gvisor import GvisorBackend
from jupyter_ext.images.store import ImageStore

async def main(state, images):
    store = ImageStore(Path(images))
    backend = GvisorBackend(Path(state), store)
    await backend.open()
    ref, layout = store.resolve("debian")
    spec = BoxSpec(box_id="box_test", name=None, image=ref, oci_layout=layout, cpu=1,
                   memory_mb=512, disk_size_gb=1, network=True, workdir="/root")
    handle = await backend.create(spec)
    await backend.start(handle, spec)
    print(handle, flush=True)
    await asyncio.sleep(3600)

asyncio.run(main(*sys.argv[1:]))
"""


async def test_network_outlives_a_killed_server(built_images: BuiltImages, backend, gv_state):
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(gv_state), str(built_images.store.root)],
        stdout=subprocess.PIPE, start_new_session=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    handle = (await asyncio.to_thread(server.stdout.readline)).decode().strip()
    pids = network_pids(backend, handle)
    os.killpg(server.pid, signal.SIGKILL)  # the server's whole process group
    server.wait()
    server.stdout.close()
    await asyncio.sleep(1)
    assert alive(pids) == {"holder", "slirp4netns"}
    await backend.remove(handle)
    assert alive(pids) == set()


def test_selected_by_name_only(built_images: BuiltImages, tmp_path: Path):
    selection = select_backend("gvisor", tmp_path, built_images.store)
    assert selection.backend_class is GvisorBackend
    assert selection.reason == "configured: backend = gvisor"
    assert select_backend("auto", tmp_path, built_images.store).backend_class is not GvisorBackend


async def test_terminal_size_resize_and_exit(boot, spec, backend):
    handle = await boot(spec())
    script = 'stty size; tty; read x; stty size; echo "got $x"; exit 5'
    terminal = await backend.attach(handle, ["bash", "-c", script], {"PATH": "/usr/bin:/bin"},
                                    "/", 100, 30)
    shown = b""
    while b"/dev/pts/" not in shown:
        shown += await terminal.read()
    assert b"30 100" in shown
    await terminal.resize(120, 40)
    await asyncio.sleep(0.5)
    await terminal.write(b"hello\n")
    while chunk := await asyncio.wait_for(terminal.read(), 10):
        shown += chunk
    assert b"40 120" in shown and b"got hello" in shown
    assert await terminal.wait() == 5
    terminal.kill()
    terminal.kill()  # idempotent


async def test_box_outlives_the_server(built_images, gv_state, boot, spec, run, backend):
    handle = await boot(spec())
    code, _, _ = await run(handle, "sh", "-c", "sleep 300 > /dev/null 2>&1 & echo $! > /root/bg")
    assert code == 0
    await backend.close()  # the server goes: the box runs on
    again = GvisorBackend(gv_state, built_images.store)
    exits: list[tuple[str, str]] = []
    again.on_exit = lambda handle, reason: exits.append((handle, reason))
    await again.open()
    try:
        assert await again.adopt(handle)
        assert not await again.adopt("gv-0000000000000000")
        assert await again.running() == {handle}
        process = await again.exec(handle, ["sh", "-c", 'kill -0 "$(cat /root/bg)"'], {}, "/")
        assert await process.wait() == 0  # the background process of the first server
        # the adopted box is watched: its end reaches on_exit
        await again.prune({handle})
        assert await again.running() == {handle}
        sandbox = again._running[handle]
        os.kill(sandbox.pid, 9)
        for _ in range(100):
            if exits:
                break
            await asyncio.sleep(0.1)
        assert exits and exits[0][0] == handle
        assert not await again.adopt(handle)
        await again.prune(set())
        assert not (gv_state / "gvisor" / handle).exists()
    finally:
        await again.close()


async def test_control_folder_hidden_and_host_sockets_unreachable(boot, spec, run, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    host = socket.socket(socket.AF_UNIX)
    host.bind(str(shared / "host.sock"))
    host.listen()
    try:
        handle = await boot(spec("python", volumes=[Volume(str(shared), "/mnt/rw")]))
        listing = "import os; print(os.listdir('/dev/.boxrun/ctl'))"
        assert await run(handle, "python3", "-c", listing) == (0, b"[]\n", b"")  # covered
        connect = ("import socket; s = socket.socket(socket.AF_UNIX);"
                   " s.connect('/mnt/rw/host.sock'); print('connected')")
        code, out, err = await run(handle, "python3", "-c", connect)
        assert code != 0 and b"connected" not in out, err
    finally:
        host.close()


async def test_hostile_frames_end_only_their_command(tmp_path):
    """A fake init that answers with an oversized frame: that command is killed, and
    the server neither buffers the claimed length nor stalls another command."""
    ctl = tmp_path / "ctl"
    ctl.mkdir()
    replies = [struct.pack(">BI", ord("S"), 2) + b"42" + struct.pack(">BI", ord("1"), 1 << 30),
               struct.pack(">BI", ord("S"), 2) + b"43" + struct.pack(">BI", ord("1"), 2) + b"ok"
               + struct.pack(">BI", ord("1"), 0) + struct.pack(">BI", ord("X"), 1) + b"3"]

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(replies.pop(0))
        await reader.read()  # until the server lets go
        writer.close()

    server = await asyncio.start_unix_server(serve, str(ctl / "sock"))
    try:
        hostile = await Command.start(ctl, ["x"], {}, "/")
        assert await asyncio.wait_for(hostile.wait(), 5) == KILLED
        assert await hostile.stdout.get() == b""
        fine = await Command.start(ctl, ["y"], {}, "/")
        assert await fine.stdout.get() == b"ok"
        assert await asyncio.wait_for(fine.wait(), 5) == 3
        fine.close()  # the fake init's connection ends (no transport left to the GC)
        await asyncio.sleep(0.1)
        os.unlink(ctl / "sock")
        os.symlink(str(tmp_path / "elsewhere"), ctl / "sock")
        with pytest.raises(BoxRunError, match="gone"):
            await Command.start(ctl, ["z"], {}, "/")
    finally:
        server.close()
