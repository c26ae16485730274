"""Fast tests of the BoxManager's logic over a fake backend and a real SQLite file."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from jupyter_ext.core.errors import BoxRunError
from jupyter_ext.core.manager import BoxManager
from jupyter_ext.core.models import BoxRequest, Event, Exec, ExecRequest, new_id
from jupyter_ext.core.resources import Ledger
from jupyter_ext.store.db import Store

from .fakes import FakeBackend, FakeImages


@pytest.fixture
async def make_manager(tmp_path: Path):
    opened: list[tuple[BoxManager, Store]] = []

    async def make(backend: FakeBackend | None = None, cpu: int = 4, mem: int = 4096) -> BoxManager:
        store = Store(tmp_path / "boxrun.db")
        await store.open()
        manager = BoxManager(store, backend or FakeBackend(), FakeImages(), Ledger(cpu, mem))  # type: ignore[arg-type]
        await manager.open()
        opened.append((manager, store))
        return manager

    yield make
    for manager, store in opened:
        await manager.close()
        await store.close()


def box(**kw) -> BoxRequest:
    return BoxRequest.parse({"image": "debian", "cpu": 1, "memory_mb": 256, **kw})


async def collect(manager: BoxManager, box_id: str, exec_id: str, after: int = -1) -> list:
    return [e async for e in manager.events(box_id, exec_id, after) if e is not None]


async def test_create_reserves_and_remove_releases(make_manager) -> None:
    m = await make_manager(cpu=2)
    a = await m.create_box(box(name="a"))
    assert a.status == "running" and m.ledger.cpu == 1
    with pytest.raises(BoxRunError) as err:
        await m.create_box(box(name="a"))
    assert err.value.code == "NAME_ALREADY_EXISTS"
    await m.stop_box("a")
    assert m.ledger.cpu == 0
    await m.remove_box(a.id)
    with pytest.raises(BoxRunError) as err:
        m.get_box(a.id)
    assert err.value.code == "BOX_NOT_FOUND"


async def test_concurrent_creates_cannot_overcommit_memory(make_manager) -> None:
    m = await make_manager(cpu=3, mem=768)
    results = await asyncio.gather(*(m.create_box(box()) for _ in range(5)), return_exceptions=True)
    made = [r for r in results if not isinstance(r, Exception)]
    refused = [r for r in results if isinstance(r, BoxRunError)]
    assert len(made) == 3 and len(refused) == 2
    assert {r.code for r in refused} == {"RESOURCE_EXCEEDED"}
    assert m.ledger.memory_mb == 768
    assert "0 of 768 MB" in refused[0].message and made[0].id in refused[0].message


async def test_cpu_is_committed_up_to_the_overcommit_factor(make_manager) -> None:
    m = await make_manager(cpu=2, mem=4096)
    made = [await m.create_box(box(cpu=1, memory_mb=64)) for _ in range(10)]
    assert m.info()["committed_cpu"] == 10 and m.info()["max_committed_cpu"] == 10
    with pytest.raises(BoxRunError) as err:
        await m.create_box(box(cpu=1, memory_mb=64))
    assert err.value.code == "RESOURCE_EXCEEDED" and "0 of 10 committable cpu" in err.value.message
    with pytest.raises(BoxRunError) as err:
        await m.create_box(box(cpu=3))
    assert err.value.code == "RESOURCE_EXCEEDED" and "at most 2 cpu" in err.value.message
    await m.stop_box(made[0].id)
    assert (await m.create_box(box(cpu=1))).status == "running"


async def test_failed_create_leaves_nothing(make_manager) -> None:
    backend = FakeBackend()
    backend.fail_start = True
    m = await make_manager(backend)
    with pytest.raises(BoxRunError):
        await m.create_box(box(name="x"))
    assert m.list_boxes() == [] and m.ledger.cpu == 0
    assert list(backend.root.iterdir()) == []
    assert await m.store.boxes() == []


async def test_events_replayed_in_order_whenever_subscribed(make_manager) -> None:
    m = await make_manager()
    b = await m.create_box(box())
    script = "for i in $(seq 1 300); do echo out$i; echo err$i >&2; done"
    ex = await m.start_exec(b.id, ExecRequest.parse({"cmd": ["sh", "-c", script]}))
    early = asyncio.create_task(collect(m, b.id, ex.id))
    await asyncio.sleep(0.01)
    during = asyncio.create_task(collect(m, b.id, ex.id))
    events = await early
    assert events == await during == await collect(m, b.id, ex.id)
    assert [e.seq for e in events] == list(range(len(events)))
    assert events[-1].event == "exit" and json.loads(events[-1].data) == {"exit_code": 0}
    out = "".join(e.data for e in events if e.stream == "stdout")
    assert out.split() == [f"out{i}" for i in range(1, 301)]
    half = len(events) // 2
    assert await collect(m, b.id, ex.id, after=events[half].seq) == events[half + 1 :]


async def test_timeout_cancel_and_stop_finalise(make_manager) -> None:
    m = await make_manager()
    b = await m.create_box(box())
    slow = ExecRequest.parse({"cmd": ["sleep", "30"], "timeout_ms": 200})
    ex = await m.start_exec(b.id, slow)
    events = await collect(m, b.id, ex.id)
    ex = await m.get_exec(b.id, ex.id)
    assert ex.status == "failed" and "timed out" in ex.error_message
    assert "timed out" in json.loads(events[-1].data)["error"]

    ex = await m.start_exec(b.id, ExecRequest.parse({"cmd": ["sleep", "30"]}))
    canceled = await m.cancel_exec(b.id, ex.id)
    assert canceled.status == "canceled"
    with pytest.raises(BoxRunError) as err:
        await m.cancel_exec(b.id, ex.id)
    assert err.value.code == "EXEC_ALREADY_FINISHED"

    ex = await m.start_exec(b.id, ExecRequest.parse({"cmd": ["sleep", "30"]}))
    await m.stop_box(b.id)
    ex = await m.get_exec(b.id, ex.id)
    assert ex.status == "failed" and "stopped" in ex.error_message


async def test_restart_reconciles_boxes_and_execs(make_manager) -> None:
    m = await make_manager()
    b = await m.create_box(box())
    # An exec the previous server left running, with one event stored.
    ex = Exec(id=new_id("exec"), box_id=b.id, status="running", cmd=["sleep", "30"],
              env=None, workdir=None, timeout_ms=None)
    await m.store.put_exec(ex)
    await m.store.add_events(ex.id, [Event(0, "log", "stdout", "partial\n")])
    m2 = await make_manager(FakeBackend())  # a new backend: nothing is alive
    assert m2.get_box(b.id).status == "stopped" and m2.ledger.cpu == 0
    ex2 = await m2.get_exec(b.id, ex.id)
    assert ex2.status == "failed" and "restarted" in ex2.error_message
    events = await collect(m2, b.id, ex.id)
    assert [(e.seq, e.event) for e in events] == [(0, "log"), (1, "exit")]


async def test_gc_and_run(make_manager) -> None:
    m = await make_manager()
    b = await m.create_box(box())
    await m.stop_box(b.id)
    assert await m.gc(3600) == 0
    assert await m.gc(0) == 1
    result = await m.run(box(), ExecRequest.parse({"cmd": ["sh", "-c", "echo hi; echo no >&2; exit 3"]}))
    assert result == {"exit_code": 3, "stdout": "hi\n", "stderr": "no\n", "error_message": None}
    assert m.list_boxes() == []
