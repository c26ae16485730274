"""Which backend a server runs (``auto``, ``boxlite``, ``gvisor`` or ``namespace``), and why.

``auto`` decides at once from fast checks (boxlite installed, ``/dev/kvm`` usable)
and the verdict remembered in the state dir. With no verdict yet it runs the
namespace sandbox and boots one micro-VM in the background, so the next start knows.
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


def select_backend(choice: str, state_dir: Path, images: ImageStore,
                   override: type[Backend] | None = None) -> Selection:
    """The backend for ``choice``; ``override`` (a configured class) wins over it."""
    if override is not None:
        return Selection(override, f"configured: backend_class = "
                                   f"{override.__module__}.{override.__qualname__}")
    if choice not in CHOICES:
        raise BoxRunError("RUNTIME_ERROR", f"unknown backend {choice!r}: one of {', '.join(CHOICES)}")
    if choice != "auto":
        backend = {"boxlite": boxlite_backend, "gvisor": lambda: GvisorBackend,
                   "namespace": lambda: NamespaceBackend}[choice]()
        return Selection(backend, f"configured: backend = {choice}")
    problem = host_problem()
    if problem:
        return Selection(NamespaceBackend, f"auto: micro-VMs are unavailable, {problem}")
    verdict = VerdictStore(state_dir).get()
    if verdict is not None:
        if verdict.boots:
            return Selection(boxlite_backend(),
                             f"auto: micro-VMs boot on this host (seen {verdict.checked_at})")
        return Selection(NamespaceBackend, f"auto: micro-VMs do not boot on this host (seen "
                                           f"{verdict.checked_at}): {verdict.reason}")
    layout = _probe_layout(images)
    if layout is None:
        return Selection(NamespaceBackend, "auto: KVM is usable but no local image is built "
                         "to learn whether micro-VMs boot (boxrun image build debian)")
    return Selection(NamespaceBackend, "auto: KVM is usable but whether micro-VMs boot here is "
                     "not known yet; a boot probe runs in the background and its verdict "
                     "applies from the next start", layout)


async def probe_later(state_dir: Path, layout: Path, delay: float = PROBE_DELAY) -> None:
    """After ``delay`` s, boot-probe micro-VMs and log the verdict (cancel to abandon)."""
    from .boxlite.probe import probe

    await asyncio.sleep(delay)
    log.info("probing whether micro-VMs boot on this host (about 20 s)")
    verdict = await probe(state_dir, layout)
    if verdict is None:
        log.warning("the micro-VM boot probe reached no verdict")
    else:
        log.info("micro-VMs %s on this host; `backend = auto` uses %s from the next start",
                 "boot" if verdict.boots else f"do not boot ({verdict.reason})",
                 "them" if verdict.boots else "the namespace sandbox")
