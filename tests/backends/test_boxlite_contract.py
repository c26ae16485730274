"""The API contract on micro-VMs: boxrun-sdk against ``boxrun serve --backend boxlite``.

Runs only where micro-VMs boot, which the boot probe decides (its verdict is cached
by pytest per kernel and boxlite version; ``--cache-clear`` probes again). Everything
before the boot is tested in test_boxlite.py and test_boxlite_select.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict
from pathlib import Path

import pytest

pytest.importorskip("boxlite")

from boxrun_sdk import BoxRunClient, BoxRunError  # noqa: E402

from jupyter_ext.backends.base import BoxSpec  # noqa: E402
from jupyter_ext.backends.boxlite.backend import BoxliteBackend  # noqa: E402
from jupyter_ext.backends.boxlite.probe import probe  # noqa: E402
from jupyter_ext.backends.boxlite.verdict import Verdict, host_key, host_problem  # noqa: E402

from ..api.test_attach import Tty, attach  # noqa: E402
from ..conftest import BuiltImages  # noqa: E402
from ..servers import ServerProcess  # noqa: E402

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def vm_verdict(request: pytest.FixtureRequest, built_images: BuiltImages,
               tmp_path_factory: pytest.TempPathFactory) -> Verdict:
    """Whether micro-VMs boot here: the boot probe's verdict (cached by pytest)."""
    problem = host_problem()
    if problem:
        return Verdict(False, problem, "now")
    cache, key = getattr(request.config, "cache", None), f"boxrun/vm-verdict/{host_key()}"
    if cache is not None and cache.get(key, None):
        return Verdict(**cache.get(key, None))
    layout = built_images.store.get("debian").oci_layout
    verdict = asyncio.run(probe(tmp_path_factory.mktemp("probe"), layout))
    assert verdict is not None, "the boot probe reached no verdict"
    if cache is not None:
        cache.set(key, asdict(verdict))
    return verdict


@pytest.fixture(scope="module")
def vm_server(vm_verdict: Verdict, tmp_path_factory: pytest.TempPathFactory,
              images_dir: Path) -> Iterator[ServerProcess]:
    """``boxrun serve --backend boxlite``, where micro-VMs boot."""
    if not vm_verdict.boots:
        pytest.skip(f"micro-VMs cannot boot on this host: {vm_verdict.reason}")
    server = ServerProcess(tmp_path_factory.mktemp("vm") / "state", images_dir)
    server.start("--backend", "boxlite")
    yield server
    server.stop()


@pytest.fixture
async def client(vm_server: ServerProcess) -> AsyncIterator[BoxRunClient]:
    async with BoxRunClient(vm_server.socket_url) as c:
        yield c


async def error_code(awaitable) -> str:
    with pytest.raises(BoxRunError) as err:
        await awaitable
    return err.value.code


async def test_info_says_vm(vm_server: ServerProcess) -> None:
    with vm_server.http() as http:
        info = http.get("/v1/info").json()
    assert (info["backend"], info["isolation"]) == ("boxlite", "vm")


async def test_box_lifecycle_in_a_micro_vm(client: BoxRunClient, tmp_path: Path) -> None:
    box = await client.create("debian", cpu=1, memory_mb=512, env={"GREETING": "hej"})
    try:
        assert box.info.status == "running" and box.info.boxlite_id
        result = await box.exec(["sh", "-c", "echo $GREETING; pwd; echo oops >&2; exit 3"])
        assert result.status == "failed" and result.exit_code == 3
        events = [e async for e in box.exec_stream(["sh", "-c", "echo one; echo two >&2"])]
        assert "".join(e.data for e in events if e.stream == "stdout") == "one\n"
        assert "".join(e.data for e in events if e.stream == "stderr") == "two\n"

        src = tmp_path / "in.bin"
        src.write_bytes(bytes(range(256)) * 4096)
        await box.upload(str(src), "/root/data/in.bin")
        await box.download("/root/data/in.bin", str(tmp_path / "out.bin"))
        assert (tmp_path / "out.bin").read_bytes() == src.read_bytes()
        assert await error_code(client.download_file(box.id, "/root/none", "/dev/null")) == "RUNTIME_ERROR"

        assert (await box.stop()).status == "stopped"
        assert (await box.start()).status == "running"
        kept = await box.exec(["cmp", "/root/data/in.bin", "/root/data/in.bin"])
        assert kept.exit_code == 0, "the disk was not kept across stop/start"
    finally:
        await box.remove(force=True)
    assert await error_code(client.get_box(box.id)) == "BOX_NOT_FOUND"


async def test_limits_network_volumes_and_timeouts(client: BoxRunClient, tmp_path: Path) -> None:
    (tmp_path / "shared.txt").write_text("from the host")
    vol = [{"host_path": str(tmp_path), "guest_path": "/data", "readonly": True}]
    box = await client.create("debian", cpu=1, memory_mb=512, network=False, volumes=vol)
    try:
        seen = await box.exec(["sh", "-c", "nproc; cat /data/shared.txt; touch /data/x || echo ro"])
        assert seen.exit_code == 0
        offline = await box.exec(["getent", "hosts", "deb.debian.org"])
        assert offline.exit_code != 0
    finally:
        await box.remove(force=True)
    assert not (tmp_path / "x").exists()
    timed = await client.run("debian", ["sleep", "30"], timeout_ms=500)
    assert timed.exit_code != 0 and "timed out" in timed.error_message


async def test_attach_types_resizes_and_exits_in_a_micro_vm(
    vm_server: ServerProcess, client: BoxRunClient
) -> None:
    box = await client.create("debian", cpu=1, memory_mb=512)
    try:
        async with attach(vm_server, box.id, "?cols=100&rows=30&shell=/bin/sh") as ws:
            tty = Tty(ws)
            await tty.type("stty size; tty; echo $TERM\r")
            await tty.expect(rb"30 100\r\n/dev/pts/\d+\r\nxterm-256color\r\n")
            await ws.send(json.dumps({"type": "resize", "cols": 120, "rows": 40}))
            await tty.type("stty size\r")
            await tty.expect(rb"40 120\r\n")
            await tty.type("sleep 100\r")
            await asyncio.sleep(0.5)
            await tty.type("\x03echo status $?\r")  # Ctrl-C reaches the foreground job
            await tty.expect(rb"status 130\r\n")
            await tty.type("exit 3\r")
            assert await tty.control() == {"type": "exit", "code": 3}, tty.shown
    finally:
        await box.remove(force=True)


async def test_a_running_micro_vm_is_adopted_by_the_next_runtime(
    vm_verdict: Verdict, built_images: BuiltImages, tmp_path: Path
) -> None:
    """A box outlives the backend that booted it (BoxLite's detach); a new backend on the
    same state dir adopts it and runs commands in it; prune removes what no row owns."""
    if not vm_verdict.boots:
        pytest.skip(f"micro-VMs cannot boot on this host: {vm_verdict.reason}")
    ref, layout = built_images.store.resolve("debian")
    spec = BoxSpec(box_id="box_adopted", name=None, image=ref, oci_layout=layout, cpu=1,
                   memory_mb=512, disk_size_gb=1, network=False, workdir="/root")
    first = BoxliteBackend(tmp_path, built_images.store)
    await first.open()
    handle = await first.create(spec)
    await first.start(handle, spec)
    marker = await first.exec(handle, ["sh", "-c", "sleep 1000 & echo $! > /root/pid"], {}, "/")
    assert await marker.wait() == 0
    await first.close()

    second = BoxliteBackend(tmp_path, built_images.store)
    await second.open()
    try:
        assert await second.adopt(handle)
        alive = await second.exec(handle, ["sh", "-c", "kill -0 $(cat /root/pid)"], {}, "/")
        assert await alive.wait() == 0, "the box's processes outlived the first backend"
        await second.prune(set())
        assert not await second.adopt(handle)
        assert await second.runtime.get_info(handle) is None
    finally:
        await second.remove(handle)
        await second.close()

