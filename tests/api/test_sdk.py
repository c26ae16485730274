"""The unmodified boxrun-sdk 0.3.0 against a real server, over the socket and token TCP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from boxrun_sdk import BoxRunClient, BoxRunError

from ..servers import ServerProcess


@pytest.fixture(params=["socket", "tcp"])
async def client(request: pytest.FixtureRequest, server: ServerProcess) -> AsyncIterator[BoxRunClient]:
    url = server.socket_url if request.param == "socket" else server.url
    async with BoxRunClient(url) as c:
        yield c


async def error_code(awaitable) -> str:
    with pytest.raises(BoxRunError) as err:
        await awaitable
    return err.value.code


async def test_box_lifecycle(client: BoxRunClient, tmp_path: Path) -> None:
    box = await client.create("debian", cpu=1, memory_mb=128, env={"GREETING": "hej"})
    info = box.info
    assert info.status == "running" and info.image == "local/debian"
    assert info.id.startswith("box_") and len(info.id) == 16
    assert (info.cpu, info.memory_mb, info.disk_size_gb, info.workdir) == (1, 128, 8, "/root")
    assert info.boxlite_id and info.started_at and info.created_at.endswith("Z")

    assert (await client.get_box(info.id)).id == info.id
    named = await client.create("debian", name=f"named-{info.id[4:10].lower()}", cpu=1, memory_mb=64)
    assert (await client.get_box(named.name)).id == named.id

    result = await box.exec(["sh", "-c", "echo $GREETING; pwd; echo oops >&2; exit 3"])
    assert result.status == "failed" and result.exit_code == 3

    events = [e async for e in box.exec_stream(["sh", "-c", "echo one; echo two >&2; echo three"])]
    assert [e.seq for e in events] == list(range(len(events)))
    assert events[-1].type == "exit" and '"exit_code": 0' in events[-1].data
    out = "".join(e.data for e in events if e.stream == "stdout")
    assert out == "one\nthree\n" and "".join(e.data for e in events if e.stream == "stderr") == "two\n"

    src = tmp_path / "in.bin"
    src.write_bytes(bytes(range(256)) * 4096)
    await box.upload(str(src), "/root/data/in.bin")
    await box.download("/root/data/in.bin", str(tmp_path / "out.bin"))
    assert (tmp_path / "out.bin").read_bytes() == src.read_bytes()

    stopped = await box.stop()
    assert stopped.status == "stopped" and stopped.stopped_at
    assert stopped.id in {b.id for b in await client.list_boxes(status="stopped")}
    assert stopped.id not in {b.id for b in await client.list_boxes(status="running")}
    assert await error_code(box.exec(["true"])) == "BOX_NOT_RUNNING"
    assert await error_code(box.stop()) == "BOX_NOT_RUNNING"
    assert (await box.start()).status == "running"
    assert await error_code(box.start()) == "BOX_ALREADY_RUNNING"
    kept = await box.exec(["cmp", "/root/data/in.bin", "/root/data/in.bin"])
    assert kept.exit_code == 0, "the disk was not kept across stop/start"

    assert await error_code(box.remove()) == "BOX_ALREADY_RUNNING"
    await box.remove(force=True)
    await named.stop()
    await named.remove()
    assert await error_code(client.get_box(info.id)) == "BOX_NOT_FOUND"
    listed = {b.id for b in await client.list_boxes()}
    assert info.id not in listed and named.id not in listed


async def test_errors_the_sdk_meets(client: BoxRunClient) -> None:
    assert await error_code(client.get_box("box_doesnotexist")) == "BOX_NOT_FOUND"
    assert await error_code(client.create("debian", cpu=0)) == "VALIDATION_ERROR"
    assert await error_code(client.create("debian", workdir="relative")) == "VALIDATION_ERROR"
    assert await error_code(client.create("debian", cpu=10_000)) == "RESOURCE_EXCEEDED"
    assert await error_code(client.create("ubuntu:24.04")) == "IMAGE_PULL_FAILED"
    vol = [{"host_path": "/nonexistent/dir", "guest_path": "/data", "readonly": True}]
    code = await error_code(client.create("debian", volumes=vol))
    assert code == "RUNTIME_ERROR"
    box = await client.create("debian", cpu=1, memory_mb=64)
    try:
        assert await error_code(client.get_exec(box.id, "exec_nothere")) == "EXEC_NOT_FOUND"
        assert await error_code(client.start_exec(box.id, [])) == "VALIDATION_ERROR"
        await box.stop()
        assert await error_code(client.upload_file(box.id, __file__, "/root/x")) == "BOX_NOT_RUNNING"
        assert await error_code(client.download_file(box.id, "/etc/hostname", "/dev/null")) == "BOX_NOT_RUNNING"
        await box.start()
        assert await error_code(client.download_file(box.id, "/root/none", "/dev/null")) == "RUNTIME_ERROR"
    finally:
        await box.remove(force=True)


async def test_name_conflict_and_run_and_gc(client: BoxRunClient) -> None:
    box = await client.create("debian", name="dup", cpu=1, memory_mb=64)
    try:
        assert await error_code(client.create("debian", name="dup")) == "NAME_ALREADY_EXISTS"
    finally:
        await box.stop()
    result = await client.run("python", ["python3", "-c", "import sys; print(6*7); print('e', file=sys.stderr)"])
    assert (result.exit_code, result.stdout, result.stderr) == (0, "42\n", "e\n")
    timed = await client.run("debian", ["sleep", "30"], timeout_ms=300)
    assert timed.exit_code != 0 and "timed out" in timed.error_message
    assert await client.gc(older_than=3600) == 0
    assert await client.gc(older_than=0) >= 1
    assert await error_code(client.get_box("dup")) == "BOX_NOT_FOUND"
