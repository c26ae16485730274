"""The namespace backend on real sandboxes: isolation, lifecycle, exec and files."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

import pytest

from jupyter_ext.backends.base import Volume
from jupyter_ext.core.errors import BoxRunError
from jupyter_ext.images.oci import read_layout


async def test_host_files_are_invisible(boot, spec, run, state_dir):
    marker = state_dir / "host-marker"
    marker.write_text("secret")
    handle = await boot(spec())
    code, _, _ = await run(handle, "test", "-e", str(marker))
    assert code != 0
    _, box_hostname, _ = await run(handle, "cat", "/etc/hostname")
    assert box_hostname.strip() != socket.gethostname().encode()
    marker.unlink()


@pytest.mark.parametrize("network", [False, True])
async def test_network_is_the_boxs_own(boot, spec, run, network):
    """Never the host's loopback; an interface besides ``lo`` only with ``network``
    (tests/security/test_network.py attacks it further)."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    handle = await boot(spec("python", network=network))
    probe = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=3)"
    assert (await run(handle, "python3", "-c", probe))[0] != 0
    server.close()
    _, links, _ = await run(handle, "cat", "/proc/net/dev")
    names = [line.split(b":")[0].strip() for line in links.splitlines()[2:]]
    assert sorted(names) == ([b"lo", b"tap0"] if network else [b"lo"])
    if not network:
        resolve = "import socket; socket.getaddrinfo('deb.debian.org', 80)"
        assert (await run(handle, "python3", "-c", resolve))[0] != 0


async def test_host_processes_are_invisible(boot, spec, run):
    handle = await boot(spec())
    code, _, _ = await run(handle, "test", "-e", f"/proc/{os.getpid()}")
    assert code != 0
    _, out, _ = await run(handle, "sh", "-c", "cat /proc/[0-9]*/comm")
    assert set(out.split()) <= {b"bwrap", b".boxrun-init", b"sh", b"cat"}  # the box's own


async def test_root_in_box_is_not_host_root(boot, spec, run, backend):
    handle = await boot(spec())
    code, out, _ = await run(handle, "sh", "-c", "id -u; touch /root/made-in-box")
    assert (code, out) == (0, b"0\n")
    # the writable layer may be in a disk image mounted only in the box's namespace
    made = Path(f"/proc/{backend._running[handle].pid}/root/root/made-in-box")
    assert made.stat().st_uid >= 100000


async def test_writes_stay_in_their_box(boot, spec, run, built_images, backend):
    first, second = await boot(spec()), await boot(spec(box_id="box_other"))
    assert (await run(first, "sh", "-c", "echo 1 > /etc/only-first"))[0] == 0
    assert (await run(second, "test", "-e", "/etc/only-first"))[0] != 0
    rootfs = await backend.rootfs.get(read_layout(spec().oci_layout), backend.userns)
    assert not (rootfs / "etc" / "only-first").exists()


async def test_background_process_lives_until_stop(boot, spec, run, backend):
    box = spec(name="lifecycle")
    handle = await boot(box)
    await run(handle, "sh", "-c", "sleep 1000 >/dev/null 2>&1 & echo kept > /root/state")
    sleepers = ("sh", "-c", "grep -c '^sleep$' /proc/[0-9]*/comm | grep -c ':1$'")
    assert (await run(handle, *sleepers))[1] == b"1\n"
    await backend.stop(handle)
    assert handle not in await backend.running()
    with pytest.raises(BoxRunError):
        await backend.exec(handle, ["true"], {}, "/")
    await backend.start(handle, box)
    assert handle in await backend.running()
    assert (await run(handle, "cat", "/root/state"))[1] == b"kept\n"
    assert (await run(handle, *sleepers))[1] == b"0\n"


async def test_hostname_env_workdir(boot, spec, run):
    handle = await boot(spec(name="named-box", workdir="/srv/work"))
    code, out, _ = await run(handle, "sh", "-c", "hostname; pwd; env | sort",
                             env={"FOO": "bar", "HOME": "/root"}, workdir="/srv/work")
    lines = out.decode().split("\n")
    assert code == 0 and lines[:2] == ["named-box", "/srv/work"]
    assert "FOO=bar" in lines and "HOME=/root" in lines
    assert not [line for line in lines if line.startswith(("PYTHONPATH=", "VIRTUAL_ENV="))]
    assert (await run(handle, "env"))[1] == b""  # exactly the env given: nothing of the server


async def test_streams_exit_codes_and_errors(boot, spec, run, backend):
    handle = await boot(spec())
    assert await run(handle, "sh", "-c", "echo out; echo err >&2; exit 3") == (3, b"out\n", b"err\n")
    code, _, err = await run(handle, "no-such-command")
    assert code == 127 and b"not found" in err
    with pytest.raises(BoxRunError, match="no such directory"):
        await backend.exec(handle, ["true"], {}, "/no/such/dir")


async def test_kill_and_stdin(boot, spec, backend, collect):
    handle = await boot(spec())
    process = await backend.exec(handle, ["sh", "-c", "sleep 1000; echo never"], {}, "/")
    started = time.monotonic()
    process.kill()
    assert await process.wait() == 137 and time.monotonic() - started < 5
    assert await collect(process.stdout) == b""
    process = await backend.exec(handle, ["cat"], {}, "/", stdin=True)
    await process.write_stdin(b"echoed")
    await process.close_stdin()
    assert await collect(process.stdout) == b"echoed" and await process.wait() == 0


async def test_volumes(boot, spec, run, state_dir, backend):
    """Read-only stays read-only. With idmapped mounts (root) a folder box root could
    not pass through is shared all the same, and box root acts as its owner; without,
    it must be reachable by box root as it is."""
    hidden = state_dir / "hidden"  # inside the 0700 state dir
    hidden.mkdir()
    (hidden / "from-host").write_text("hi")
    volumes = (Volume(str(hidden), "/mnt/ro", True), Volume(str(hidden), "/mnt/rw"))
    if not backend.box_uid_ranges:
        with pytest.raises(BoxRunError, match="out of reach of box root"):
            await boot(spec(volumes=volumes))
        hidden = Path(tempfile.mkdtemp(dir="/var/tmp"))
        hidden.chmod(0o777)  # box root is not host root: it writes where "others" may
        (hidden / "from-host").write_text("hi")
        volumes = (Volume(str(hidden), "/mnt/ro", True), Volume(str(hidden), "/mnt/rw"))
    handle = await boot(spec(volumes=volumes))
    assert (await run(handle, "cat", "/mnt/ro/from-host"))[1] == b"hi"
    assert (await run(handle, "touch", "/mnt/ro/x"))[0] != 0
    assert (await run(handle, "touch", "/mnt/rw/x"))[0] == 0
    assert (hidden / "x").exists()
    if backend.box_uid_ranges:
        assert (hidden / "x").stat().st_uid == os.geteuid()  # the server user's file
        assert (await run(handle, "stat", "-c", "%u", "/mnt/rw/from-host"))[1] == b"0\n"
        # a volume holding the state dir shows it empty and read-only
        parent = await boot(spec(volumes=(Volume(str(state_dir.parent), "/mnt/up"),)))
        assert (await run(parent, "ls", "-A", "/mnt/up/state")) == (0, b"", b"")
        assert (await run(parent, "touch", "/mnt/up/state/x"))[0] != 0
        assert (await run(parent, "touch", "/mnt/up/beside"))[0] == 0
    with pytest.raises(BoxRunError, match="/no/such/path"):
        await boot(spec(volumes=(Volume("/no/such/path", "/mnt/x"),)))
    shutil.rmtree(hidden)


async def test_upload_download_round_trip(boot, spec, backend, collect):
    handle = await boot(spec())
    data = os.urandom(5 * 1024 * 1024)

    async def chunks():
        for start in range(0, len(data), 100_000):
            yield data[start:start + 100_000]

    await backend.upload(handle, "/root/deep/dir/blob.bin", chunks())
    assert await collect(backend.download(handle, "/root/deep/dir/blob.bin")) == data
    with pytest.raises(BoxRunError, match="no such file in the box: /root/missing"):
        await collect(backend.download(handle, "/root/missing"))


async def test_network_box_gets_host_dns(boot, spec, run):
    handle = await boot(spec(network=True))
    code, out, _ = await run(handle, "cat", "/etc/resolv.conf")
    assert code == 0 and b"nameserver" in out


async def test_concurrent_execs_with_large_environments(boot, spec, backend, collect):
    """Requests that fill the control socket wait their turn; none is lost."""
    handle = await boot(spec())
    env = {"PATH": "/usr/bin:/bin", "BIG": "x" * 60_000}
    processes = await asyncio.gather(*(backend.exec(handle, ["echo", str(i)], env, "/")
                                       for i in range(40)))
    outs = await asyncio.gather(*(collect(p.stdout) for p in processes))
    assert [await p.wait() for p in processes] == [0] * 40
    assert outs == [f"{i}\n".encode() for i in range(40)]
    with pytest.raises(BoxRunError, match="exceed"):
        await backend.exec(handle, ["true"], {"BIG": "x" * 200_000}, "/")


async def test_concurrent_creates_get_distinct_uid_ranges(backend, spec):
    if not backend.box_uid_ranges:
        pytest.skip("boxes share one uid range here (not root, or a one-box subordinate range)")
    handles = await asyncio.gather(*(backend.create(spec(box_id=f"box_{i}")) for i in range(6)))
    assert len({backend._slot(handle) for handle in handles}) == 6
