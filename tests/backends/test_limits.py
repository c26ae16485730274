"""Resource limits and metrics of the namespace backend: cgroups as root, else rlimits."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from jupyter_ext.backends.base import BoxSpec
from jupyter_ext.backends.namespace import NamespaceBackend
from jupyter_ext.backends.namespace.cgroups import PIDS_MAX, Cgroups, CgroupV1

from ..conftest import BuiltImages
from .conftest import Result


def read(group: Path, name: str) -> str:
    return (group / name).read_text().strip()


async def test_cgroup_holds_the_box_and_its_execs(
    backend: NamespaceBackend, spec: Callable[..., BoxSpec],
    boot: Callable[[BoxSpec], Awaitable[str]], run: Callable[..., Awaitable[Result]],
) -> None:
    limits = backend._limits
    if not isinstance(limits, Cgroups):
        pytest.skip(f"no cgroups here ({backend.limits})")
    handle = await boot(spec(cpu=2, memory_mb=300))
    groups = limits.groups(handle)
    assert all(group.is_dir() for group in groups)
    procs = {pid for group in groups for pid in read(group, "cgroup.procs").split()}
    assert str(backend._running[handle].pid) in procs  # the box's init
    if isinstance(limits, CgroupV1):
        by_file = {name: limits._read(handle, name) for name in (
            "cpu.cfs_quota_us", "cpu.shares", "memory.limit_in_bytes", "pids.max")}
        assert {k: v.strip() for k, v in by_file.items() if v} == {
            "cpu.cfs_quota_us": "200000", "cpu.shares": "2048", "memory.limit_in_bytes": str(300 << 20),
            "pids.max": str(PIDS_MAX)}
    marker = f"cgroup-marker-{os.getpid()}"
    process = await backend.exec(handle, ["sh", "-c", "sleep 30", marker], {}, "/")
    try:
        host_pids = [p.parent.name for p in Path("/proc").glob("[0-9]*/cmdline")
                     if marker.encode() in _read_bytes(p)]
        assert host_pids
        for group in groups:  # started by the box's init, so in its groups
            assert set(host_pids) <= set(read(group, "cgroup.procs").split())
    finally:
        process.kill()
        await process.wait()
    assert (await run(handle, "sh", "-c", "cat /proc/self/cgroup"))[1].count(b":/\n") >= 1
    usage = await backend.metrics(handle)
    assert usage["memory_limit_bytes"] == 300 << 20 and usage["pids"] >= 1
    await backend.stop(handle)
    assert not any(group.exists() for group in groups), "cgroups left after stop"


async def test_rlimits_without_cgroups(
    built_images: BuiltImages, state_dir: Path, spec: Callable[..., BoxSpec],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BOXRUN_LIMITS", "rlimits")
    backend = NamespaceBackend(state_dir, built_images.store)
    assert backend.limits == "rlimits" and any("cpu is not" in t for t in backend.limitations)
    await backend.open()
    try:
        box = spec(memory_mb=200)
        handle = await backend.create(box)
        await backend.start(handle, box)
        process = await backend.exec(handle, ["cat", "/proc/self/limits"], {}, "/")
        out = b"".join([chunk async for chunk in process.stdout]).decode()
        assert await process.wait() == 0
        rows = {line[:26].strip(): line[26:].split()[0] for line in out.splitlines()[1:]}
        assert rows["Max processes"] == str(PIDS_MAX)
        assert rows["Max address space"] == str(200 << 20)
        usage = await backend.metrics(handle)
        assert usage["pids"] >= 1 and usage["memory_bytes"] > 0 and usage["cpu_seconds"] >= 0
        assert usage["net_rx_bytes"] == 0 and "memory_limit_bytes" not in usage
    finally:
        await backend.close()
        for box_dir in (state_dir / "boxes").glob("ns-*"):
            await backend.remove(box_dir.name)


async def test_metrics_of_a_stopped_box_fail(
    backend: NamespaceBackend, spec: Callable[..., BoxSpec],
    boot: Callable[[BoxSpec], Awaitable[str]],
) -> None:
    handle = await boot(spec())
    await backend.stop(handle)
    with pytest.raises(Exception, match="not running"):
        await asyncio.wait_for(backend.metrics(handle), 5)


def _loop_files() -> str:
    return " ".join(path.read_text() for path in Path("/sys/block").glob("loop*/loop/backing_file"))


async def test_disk_size_bounds_the_writable_layer(
    backend: NamespaceBackend, spec: Callable[..., BoxSpec],
    boot: Callable[[BoxSpec], Awaitable[str]], run: Callable[..., Awaitable[Result]],
) -> None:
    if backend._disk_problem:
        assert any(s.startswith("disk_size_gb is not enforced") for s in backend.limitations)
        pytest.skip(backend._disk_problem)
    assert not any("disk_size_gb" in s for s in backend.limitations)
    box = spec(disk_size_gb=1)
    handle = await boot(box)
    box_dir = backend.boxes_dir / handle
    free = shutil.disk_usage(backend.boxes_dir).free
    code, _, err = await run(handle, "dd", "if=/dev/zero", "of=/root/big", "bs=1M", "count=2048")
    assert code != 0 and b"No space left on device" in err
    assert (box_dir / "disk.img").stat().st_blocks * 512 <= 1 << 30  # the host is unaffected
    assert free - shutil.disk_usage(backend.boxes_dir).free < 5 << 29
    assert (await run(handle, "sh", "-c", "rm /root/big && echo kept > /root/f"))[0] == 0
    await backend.stop(handle)
    await backend.start(handle, box)
    assert (await run(handle, "cat", "/root/f"))[1] == b"kept\n"
    assert str(box_dir) not in Path("/proc/self/mountinfo").read_text()  # box's own mount ns
    await backend.remove(handle)
    assert not box_dir.exists() and str(box_dir) not in Path("/proc/self/mountinfo").read_text()
    for _ in range(100):  # the loop device is freed with the box's mount namespace
        if str(box_dir) not in _loop_files():
            break
        await asyncio.sleep(0.05)
    assert str(box_dir) not in _loop_files()


async def test_box_without_disk_image_keeps_its_upper_dir(
    backend: NamespaceBackend, spec: Callable[..., BoxSpec],
    run: Callable[..., Awaitable[Result]],
) -> None:
    box = spec()
    handle = await backend.create(box)
    box_dir = backend.boxes_dir / handle
    (box_dir / "disk.img").unlink(missing_ok=True)  # as made before disk images
    if (box_dir / "disk").exists():
        (box_dir / "disk").rmdir()
    await backend.start(handle, box)
    assert (await run(handle, "sh", "-c", "echo hi > /root/f"))[0] == 0
    assert any((box_dir / "upper").rglob("f"))


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""
