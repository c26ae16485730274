"""``backend = auto`` and gVisor: a real probe sandbox decides, once, and its verdict is
remembered; ``backend_reason`` says why no stronger backend was taken."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from jupyter_ext.backends import select
from jupyter_ext.backends.gvisor import GvisorBackend
from jupyter_ext.backends.gvisor import probe as gvisor_probe
from jupyter_ext.backends.namespace import NamespaceBackend

from ..conftest import BuiltImages

NO_KVM = "/dev/kvm does not exist (test)"


@pytest.fixture
def state(tmp_path: Path) -> Path:
    path = tmp_path / "state"
    path.mkdir(mode=0o700)
    return path


@pytest.fixture(autouse=True)
def no_vms(monkeypatch: pytest.MonkeyPatch) -> None:
    """Micro-VMs are out, whatever this host is."""
    monkeypatch.setattr(select, "host_problem", lambda: NO_KVM)


needs_runsc = pytest.mark.skipif(gvisor_probe.host_problem() is not None or os.geteuid() != 0,
                                 reason="needs runsc and root")


@needs_runsc
async def test_auto_probes_gvisor_once_and_takes_it(
    state: Path, built_images: BuiltImages, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = time.monotonic()
    chosen = await select.choose("auto", state, built_images.store)
    assert time.monotonic() - started < 5  # one tiny sandbox
    assert chosen.backend_class is GvisorBackend
    assert chosen.reason == ("auto: gVisor user-space kernel, not a micro-VM: micro-VMs are"
                             f" unavailable, {NO_KVM}")
    remembered = json.loads((state / "gvisor-verdict.json").read_text())
    assert remembered[gvisor_probe.host_key()]["boots"] is True
    assert not [p for p in state.iterdir() if p.name.startswith("gvisor-probe-")]

    async def no_second_probe(state_dir: Path) -> None:
        raise AssertionError("probed again")

    monkeypatch.setattr(gvisor_probe, "probe", no_second_probe)
    assert (await select.choose("auto", state, built_images.store)).backend_class is GvisorBackend


async def test_a_sandbox_that_fails_is_remembered_and_said(
    state: Path, built_images: BuiltImages, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gvisor_probe, "runsc_path", lambda: "/bin/false")  # a runsc that fails
    chosen = await select.choose("auto", state, built_images.store)
    verdict = gvisor_probe.verdicts(state).get()
    assert verdict is not None and not verdict.boots and "runsc exit 1" in verdict.reason
    assert chosen.backend_class is NamespaceBackend
    assert f"micro-VMs are unavailable, {NO_KVM}" in chosen.reason
    assert f"not gVisor: {verdict.reason}" in chosen.reason
    assert str(gvisor_probe.verdicts(state).path) in chosen.reason  # how to try again


async def test_without_runsc_no_probe_runs(
    state: Path, built_images: BuiltImages, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gvisor_probe, "runsc_path", lambda: None)
    chosen = await select.choose("auto", state, built_images.store)
    assert chosen.backend_class is NamespaceBackend and "runsc is not installed" in chosen.reason
    assert not (state / "gvisor-verdict.json").exists()


async def test_a_vm_that_boots_wins_without_a_gvisor_probe(
    state: Path, built_images: BuiltImages, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(select, "_vm_verdict", lambda state_dir, images: (True, "VMs boot", None))
    monkeypatch.setattr(select, "boxlite_backend", lambda: NamespaceBackend)  # stands for it
    chosen = await select.choose("auto", state, built_images.store)
    assert chosen.reason == "auto: VMs boot" and not (state / "gvisor-verdict.json").exists()
    configured = await select.choose("gvisor", state, built_images.store)
    assert (configured.backend_class, configured.reason) == (GvisorBackend,
                                                             "configured: backend = gvisor")


def test_verdicts_hold_for_one_runsc_and_root_or_not(state: Path) -> None:
    key = gvisor_probe.host_key()
    assert key.endswith(" root" if os.geteuid() == 0 else " rootless")
    assert f"runsc={gvisor_probe.runsc_path() or 'none'}" in key
