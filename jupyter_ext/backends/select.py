"""Which backend a server runs (``auto``, ``boxlite``, ``gvisor`` or ``namespace``), and why.

``auto`` takes the strongest isolation known to work here: BoxLite micro-VMs where
one is known to boot, else gVisor where a probe sandbox ran, else the namespace
sandbox. It decides from fast checks (boxlite installed, ``/dev/kvm`` usable, runsc
installed) and the verdicts remembered in the state dir (:mod:`.verdict`). With no
micro-VM verdict yet it boots one micro-VM in the background, so the next start knows;
with no gVisor verdict it runs a probe sandbox at start (about 0.2 s, once).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import BoxRunError
from ..images.store import ImageStore
from .base import Backend
from .boxlite.verdict import VerdictStore, host_problem
from .gvisor import GvisorBackend
from .gvisor import probe as gvisor_probe
from .namespace import NamespaceBackend

log = logging.getLogger(__name__)

CHOICES = ("auto", "boxlite", "gvisor", "namespace")
#: Seconds after start-up before the background boot probe, so that short-lived
#: servers never pay for it and start-up requests never compete with it.
PROBE_DELAY = 30.0
#: Images a boot probe may use, preferred first.
PROBE_IMAGES = ("debian", "python")


@dataclass(frozen=True)
class Selection:
    """The backend class to run, why in words, and the image to boot-probe, if any."""

    backend_class: type[Backend]
    reason: str
    probe_layout: Path | None = None


def boxlite_backend() -> type[Backend]:
    """The BoxLite backend class; RUNTIME_ERROR saying how to install it if missing."""
    try:
        from .boxlite.backend import BoxliteBackend
    except ImportError as err:
        raise BoxRunError("RUNTIME_ERROR", f"the boxlite backend needs the boxlite package "
                          f"(pip install 'boxrun-jupyter[boxlite]'): {err}") from err
    return BoxliteBackend


def _probe_layout(images: ImageStore) -> Path | None:
    built = {info.name: info.oci_layout for info in images.list()}
    return next((built[name] for name in PROBE_IMAGES if name in built), None)


def _vm_verdict(state_dir: Path, images: ImageStore) -> tuple[bool, str, Path | None]:
    """Whether micro-VMs are known to boot, why (not) in words, and the image to
    boot-probe in the background when nobody knows yet."""
    problem = host_problem()
    if problem:
        return False, f"micro-VMs are unavailable, {problem}", None
    verdict = VerdictStore(state_dir).get()
    if verdict is not None:
        if verdict.boots:
            return True, f"micro-VMs boot on this host (seen {verdict.checked_at})", None
        return False, (f"micro-VMs do not boot on this host (seen {verdict.checked_at}): "
                       f"{verdict.reason}"), None
    layout = _probe_layout(images)
    if layout is None:
        return False, ("KVM is usable but no local image is built to learn whether "
                       "micro-VMs boot (boxrun image build debian)"), None
    return False, ("KVM is usable but whether micro-VMs boot here is not known yet; a boot "
                   "probe runs in the background and its verdict applies from the next "
                   "start"), layout


def _gvisor_problem(state_dir: Path) -> str | None:
    """Why gVisor is not used here, or ``None`` when a probe sandbox ran."""
    problem = gvisor_probe.host_problem()
    if problem:
        return problem
    verdict = gvisor_probe.verdicts(state_dir).get()
    if verdict is None:
        return "no probe sandbox has run yet"
    if not verdict.boots:
        return (f"{verdict.reason} (seen {verdict.checked_at}; delete "
                f"{gvisor_probe.verdicts(state_dir).path} to try again)")
    return None


def select_backend(choice: str, state_dir: Path, images: ImageStore,
                   override: type[Backend] | None = None) -> Selection:
    """The backend for ``choice``; ``override`` (a configured class) wins over it.
    ``auto`` reads remembered verdicts only: :func:`choose` probes gVisor first."""
    if override is not None:
        return Selection(override, f"configured: backend_class = "
                                   f"{override.__module__}.{override.__qualname__}")
    if choice not in CHOICES:
        raise BoxRunError("RUNTIME_ERROR", f"unknown backend {choice!r}: one of {', '.join(CHOICES)}")
    if choice != "auto":
        backend = {"boxlite": boxlite_backend, "gvisor": lambda: GvisorBackend,
                   "namespace": lambda: NamespaceBackend}[choice]()
        return Selection(backend, f"configured: backend = {choice}")
    boots, why_not_vm, layout = _vm_verdict(state_dir, images)
    if boots:
        return Selection(boxlite_backend(), f"auto: {why_not_vm}")
    gvisor_problem = _gvisor_problem(state_dir)
    if gvisor_problem is None:
        return Selection(GvisorBackend, f"auto: gVisor user-space kernel, not a micro-VM: "
                                        f"{why_not_vm}", layout)
    return Selection(NamespaceBackend, f"auto: namespace sandbox on the host's kernel, not a "
                                       f"micro-VM: {why_not_vm}; not gVisor: {gvisor_problem}",
                     layout)


async def choose(choice: str, state_dir: Path, images: ImageStore,
                 override: type[Backend] | None = None) -> Selection:
    """:func:`select_backend`, after a first probe sandbox of gVisor (about 0.2 s, once
    per host and runsc) when ``auto`` would otherwise not know whether gVisor runs."""
    if (override is None and choice == "auto" and not _vm_verdict(state_dir, images)[0]
            and gvisor_probe.host_problem() is None
            and gvisor_probe.verdicts(state_dir).get() is None):
        verdict = await gvisor_probe.probe(state_dir)
        log.info("gVisor %s on this host", "runs" if verdict.boots
                 else f"does not run ({verdict.reason})")
    return select_backend(choice, state_dir, images, override)


async def probe_later(state_dir: Path, layout: Path, delay: float = PROBE_DELAY) -> None:
    """After ``delay`` s, boot-probe micro-VMs and log the verdict (cancel to abandon)."""
    from .boxlite.probe import probe

    await asyncio.sleep(delay)
    log.info("probing whether micro-VMs boot on this host (about 20 s)")
    verdict = await probe(state_dir, layout)
    if verdict is None:
        log.warning("the micro-VM boot probe reached no verdict")
    else:
        log.info("micro-VMs %s on this host; `backend = auto` %s from the next start",
                 "boot" if verdict.boots else f"do not boot ({verdict.reason})",
                 "uses them" if verdict.boots else "keeps to what it runs now")
