"""Backend selection (``backend = auto|boxlite|namespace``) and what ``/v1/info`` says of
it, where boxlite is installed (gVisor's part: ``test_select.py``)."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest

pytest.importorskip("boxlite")

from jupyter_ext.backends import select  # noqa: E402
from jupyter_ext.backends.boxlite import probe  # noqa: E402
from jupyter_ext.backends.boxlite.backend import BoxliteBackend  # noqa: E402
from jupyter_ext.backends.boxlite.verdict import Verdict, VerdictStore  # noqa: E402
from jupyter_ext.backends.gvisor import probe as gvisor_probe  # noqa: E402
from jupyter_ext.backends.namespace import NamespaceBackend  # noqa: E402
from jupyter_ext.images.store import ImageStore  # noqa: E402

from ..conftest import BuiltImages  # noqa: E402
from ..servers import ServerProcess  # noqa: E402

NESTED = "KVM could not run the micro-VM: this host is probably a nested VM (test)"


@pytest.fixture
def state(tmp_path: Path) -> Path:
    path = tmp_path / "state"
    path.mkdir(mode=0o700)
    return path


@pytest.fixture
def usable_kvm(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast checks pass, whatever this host is."""
    monkeypatch.setattr(select, "host_problem", lambda: None)


def test_configured_choices_and_the_class_override(state: Path, built_images: BuiltImages) -> None:
    images = built_images.store
    chosen = select.select_backend("namespace", state, images)
    assert (chosen.backend_class, chosen.reason) == (NamespaceBackend, "configured: backend = namespace")
    assert select.select_backend("boxlite", state, images).backend_class is BoxliteBackend
    custom = select.select_backend("boxlite", state, images, NamespaceBackend)
    assert custom.backend_class is NamespaceBackend and "backend_class" in custom.reason


def test_auto_without_kvm_runs_the_namespace_sandbox(
    state: Path, built_images: BuiltImages, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(select, "host_problem", lambda: "/dev/kvm does not exist")
    chosen = select.select_backend("auto", state, built_images.store)
    assert chosen.backend_class is NamespaceBackend and chosen.probe_layout is None
    assert "not a micro-VM: micro-VMs are unavailable, /dev/kvm does not exist" in chosen.reason


def test_auto_follows_the_remembered_verdict(
    state: Path, built_images: BuiltImages, usable_kvm: None
) -> None:
    images = built_images.store
    unknown = select.select_backend("auto", state, images)
    assert unknown.backend_class is NamespaceBackend and "background" in unknown.reason
    assert unknown.probe_layout == images.get("debian").oci_layout
    assert select.select_backend("auto", state, ImageStore(state / "none")).probe_layout is None
    VerdictStore(state).put(False, NESTED)
    refused = select.select_backend("auto", state, images)
    assert refused.backend_class is NamespaceBackend and NESTED in refused.reason
    assert refused.probe_layout is None
    VerdictStore(state).put(True, "a micro-VM booted")
    assert select.select_backend("auto", state, images).backend_class is BoxliteBackend


async def test_the_background_probe_records_and_logs(
    state: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def fake(state_dir: Path, layout: Path) -> Verdict:
        return VerdictStore(state_dir).put(False, NESTED)

    monkeypatch.setattr(probe, "probe", fake)
    with caplog.at_level(logging.INFO, "jupyter_ext.backends.select"):
        await select.probe_later(state, state, delay=0)
    assert NESTED in caplog.text and "do not boot" in caplog.text
    later = asyncio.ensure_future(select.probe_later(state, state, delay=60))
    await asyncio.sleep(0)
    later.cancel()
    assert (await asyncio.gather(later, return_exceptions=True))[0].__class__ is asyncio.CancelledError


def info_of(server: ServerProcess) -> dict:
    with server.http() as client:
        return client.get("/v1/info").json()


def auto_fallback() -> str:
    """What ``auto`` runs on this host when micro-VMs are out: gVisor where it runs."""
    return "namespace" if gvisor_probe.host_problem() else "gvisor"


def test_serve_auto_decides_at_once(new_server: ServerProcess) -> None:
    started = time.monotonic()
    new_server.start("--backend", "auto")
    # a process start and at most one gVisor probe sandbox (0.2 s); no micro-VM boot
    assert time.monotonic() - started < 5
    info = info_of(new_server)
    assert (info["backend"], info["isolation"]) == (auto_fallback(), auto_fallback())
    assert info["backend_reason"].startswith("auto: ") and "used_cpu" in info
    assert "not a micro-VM" in info["backend_reason"]
    new_server.stop()
    assert not (new_server.state_dir / "boxlite-probe").exists()


def test_serve_auto_remembers_that_vms_do_not_boot(new_server: ServerProcess) -> None:
    new_server.state_dir.mkdir(mode=0o700)
    VerdictStore(new_server.state_dir).put(False, NESTED)
    new_server.start("--backend", "auto")
    info = info_of(new_server)
    assert info["backend"] == auto_fallback() and NESTED in info["backend_reason"]


def test_serve_boxlite_where_vms_do_not_boot_fails_box_creation_fast(
    new_server: ServerProcess,
) -> None:
    new_server.state_dir.mkdir(mode=0o700)
    VerdictStore(new_server.state_dir).put(False, NESTED)
    new_server.start("--backend", "boxlite")
    info = info_of(new_server)
    assert (info["backend"], info["isolation"], info["backend_reason"]) == (
        "boxlite", "vm", "configured: backend = boxlite")
    assert any(NESTED in limit for limit in info["limitations"])
    with new_server.http() as client:
        started = time.monotonic()
        reply = client.post("/v1/boxes", json={"image": "debian", "cpu": 1, "memory_mb": 256})
        assert time.monotonic() - started < 2
        assert reply.status_code == 400 and reply.json()["code"] == "RUNTIME_ERROR"
        assert NESTED in reply.json()["message"] and "--backend namespace" in reply.json()["message"]
        assert client.get("/v1/boxes").json() == []
    assert not list((new_server.state_dir / "boxlite" / "boxes").glob("*"))
