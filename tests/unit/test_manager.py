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
from jupyter_ext.core.volumes import VolumePolicy, default_roots
from jupyter_ext.store.db import Store

from .fakes import FakeBackend, FakeImages


@pytest.fixture
async def make_manager(tmp_path: Path):
    opened: list[tuple[BoxManager, Store]] = []

    async def make(backend: FakeBackend | None = None, cpu: int = 4, mem: int = 4096,
                   disk: int = 100) -> BoxManager:
        store = Store(tmp_path / "boxrun.db")
        await store.open()
        volumes = VolumePolicy.make(default_roots(), tmp_path)
        manager = BoxManager(store, backend or FakeBackend(), FakeImages(),  # type: ignore[arg-type]
                             Ledger(cpu, mem, max_disk_gb=disk), volumes)
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


class GatedBackend(FakeBackend):
    """Boots only once ``go`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.booting, self.go = asyncio.Event(), asyncio.Event()

    async def start(self, handle: str, spec) -> None:
        self.booting.set()
        await self.go.wait()
        await super().start(handle, spec)


@pytest.mark.parametrize("fails", [False, True])
async def test_a_box_removed_or_stopped_while_being_created_waits_for_its_creation(
        make_manager, fails: bool) -> None:
    backend = GatedBackend()
    backend.fail_start = fails
    m = await make_manager(backend)
    creating = asyncio.ensure_future(m.create_box(box(name="x")))
    await backend.booting.wait()
    assert m.get_box("x").status == "creating"
    removing = asyncio.ensure_future(m.remove_box("x", force=True))
    stopping = asyncio.ensure_future(m.stop_box("x"))
    await asyncio.sleep(0.05)
    assert not removing.done() and not stopping.done()  # they wait for the creation
    backend.go.set()
    made, removed, stopped = await asyncio.gather(creating, removing, stopping,
                                                  return_exceptions=True)
    if fails:
        assert isinstance(made, BoxRunError)
        assert [e.code for e in (removed, stopped)] == ["BOX_NOT_FOUND"] * 2
    else:
        assert not isinstance(made, BaseException) and removed is None
        assert isinstance(stopped, BoxRunError) and stopped.code == "BOX_NOT_FOUND"
    # nothing of the box is left: not listed, not stored, no sandbox, nothing reserved
    assert m.list_boxes() == [] and await m.store.boxes() == []
    assert backend.alive == set() and list(backend.root.iterdir()) == []
    assert m.ledger.cpu == 0 and m.ledger.memory_mb == 0


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


async def test_disk_ceiling_and_volume_allowlist_refuse_before_anything_is_made(
        make_manager, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    backend = FakeBackend()
    m = await make_manager(backend, disk=10)
    shared = tmp_path_factory.mktemp("shared")
    (shared / "etc").symlink_to("/etc")
    refused = {
        "disk": box(disk_size_gb=11),
        "/etc": box(volumes=[{"host_path": "/etc/ssl", "guest_path": "/mnt"}]),
        "/": box(volumes=[{"host_path": "/", "guest_path": "/mnt"}]),
        "state": box(volumes=[{"host_path": str(tmp_path), "guest_path": "/mnt"}]),
        "link": box(volumes=[{"host_path": str(shared / "etc"), "guest_path": "/mnt"}]),
        "outside": box(volumes=[{"host_path": "/usr/share", "guest_path": "/mnt"}]),
    }
    for what, req in refused.items():
        with pytest.raises(BoxRunError) as err:
            await m.create_box(req)
        assert err.value.code == "VALIDATION_ERROR" and err.value.status == 422, what
        limit = "at most 10" if what == "disk" else "allowed roots"
        assert limit in err.value.message, (what, err.value.message)
    assert m.list_boxes() == [] and await m.store.boxes() == [] and m.ledger.cpu == 0
    assert list(backend.root.iterdir()) == []
    ok = await m.create_box(box(disk_size_gb=10, volumes=[{"host_path": str(shared),
                                                            "guest_path": "/mnt"}]))
    assert ok.volumes == [{"host_path": str(shared), "guest_path": "/mnt", "readonly": False}]
    # A folder swapped for a link to a system folder is refused when the box starts again.
    await m.stop_box(ok.id)
    (shared / "data").mkdir()
    again = await m.create_box(box(volumes=[{"host_path": str(shared / "data"),
                                             "guest_path": "/mnt"}]))
    await m.stop_box(again.id)
    (shared / "data").rmdir()
    (shared / "data").symlink_to("/proc")
    with pytest.raises(BoxRunError) as err:
        await m.start_box(again.id)
    assert err.value.code == "VALIDATION_ERROR" and m.get_box(again.id).status == "stopped"


async def test_box_death_is_a_state(make_manager) -> None:
    backend = FakeBackend()
    m = await make_manager(backend)
    b = await m.create_box(box(name="doomed"))
    ex = await m.start_exec(b.id, ExecRequest.parse({"cmd": ["sleep", "30"]}))
    seen = m.lifecycle.events(None, 60)
    backend.alive.discard(b.boxlite_id)
    assert backend.on_exit is not None
    backend.on_exit(b.boxlite_id, "its init was killed by the out-of-memory killer")
    event = await asyncio.wait_for(anext(seen), 2)
    await seen.aclose()
    assert event is not None and event.type == "died"
    assert event.box["status"] == "stopped" and event.box["error_code"] == "BOX_DIED"
    dead = m.get_box(b.id)
    assert dead.status == "stopped" and dead.stopped_at is not None
    assert dead.error_message == "the box died: its init was killed by the out-of-memory killer"
    assert m.ledger.cpu == 0 and m.ledger.memory_mb == 0
    stored = next(s for s in await m.store.boxes() if s.id == b.id)
    assert (stored.status, stored.error_code) == ("stopped", "BOX_DIED")
    ex = await m.get_exec(b.id, ex.id)
    assert ex.status == "failed" and "the box died" in ex.error_message
    assert "out-of-memory" in ex.error_message
    events = await collect(m, b.id, ex.id)
    assert "the box died" in json.loads(events[-1].data)["error"]
    with pytest.raises(BoxRunError) as err:
        await m.start_exec(b.id, ExecRequest.parse({"cmd": ["true"]}))
    assert err.value.code == "BOX_NOT_RUNNING"
    backend.on_exit(b.boxlite_id, "again")  # a late second report changes nothing
    await asyncio.sleep(0.05)
    assert m.get_box(b.id).error_message == dead.error_message
    started = await m.start_box(b.id)
    assert started.status == "running" and started.error_code is None
    backend.on_exit(b.boxlite_id, "killed")
    await asyncio.sleep(0.05)
    # gc treats a dead box like any stopped one, by the time it stopped.
    assert m.get_box(b.id).error_code == "BOX_DIED" and await m.gc(3600) == 0
    assert await m.gc(0) == 1 and m.list_boxes() == []


def test_volume_policy_refuses_the_servers_own_folders(tmp_path: Path) -> None:
    for name in ("state", "images", "data"):
        (tmp_path / name).mkdir()
    policy = VolumePolicy.make([str(tmp_path)], tmp_path / "state", tmp_path / "images")
    assert policy.resolve(str(tmp_path / "data")) == str(tmp_path / "data")
    for path in (tmp_path / "state", tmp_path / "images", tmp_path / "data" / ".." / "images"):
        with pytest.raises(BoxRunError) as err:
            policy.resolve(str(path))
        assert err.value.code == "VALIDATION_ERROR" and str(tmp_path) in err.value.message
