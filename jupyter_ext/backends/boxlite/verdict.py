"""Whether micro-VMs boot on this host: fast checks and the remembered verdict."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
from pathlib import Path

from ..verdict import Verdict
from ..verdict import VerdictStore as Verdicts

__all__ = ["ADVICE", "KVM", "Verdict", "VerdictStore", "boxlite_version", "host_key",
           "host_problem", "kvm_problem"]

KVM = "/dev/kvm"
#: What to do instead when micro-VMs cannot boot, appended to the reasons.
ADVICE = ("Use the namespace sandbox instead: `boxrun serve --backend namespace` "
          "(c.BoxRunServer.backend = 'namespace')")


def boxlite_version() -> str | None:
    """The installed boxlite version, without importing it; ``None`` if it is missing."""
    if importlib.util.find_spec("boxlite") is None:
        return None
    try:
        return importlib.metadata.version("boxlite")
    except importlib.metadata.PackageNotFoundError:
        return None


def kvm_problem() -> str | None:
    """Why ``/dev/kvm`` cannot be used by this process, or ``None`` if it can."""
    try:
        os.close(os.open(KVM, os.O_RDWR | os.O_CLOEXEC))
    except FileNotFoundError:
        return f"{KVM} does not exist (no hardware virtualisation, or kvm is not loaded)"
    except OSError as err:
        return f"{KVM} cannot be opened: {err.strerror} (join the kvm group?)"
    return None


def host_problem() -> str | None:
    """The fast checks: why micro-VMs certainly cannot run here, or ``None``."""
    if boxlite_version() is None:
        return "the boxlite package is not installed (pip install 'boxrun-jupyter[boxlite]')"
    return kvm_problem()


def host_key() -> str:
    """What a verdict holds for: this kernel release and boxlite version."""
    return f"{platform.release()} boxlite-{boxlite_version()}"


class VerdictStore(Verdicts):
    """Boot verdicts of micro-VMs in ``<state_dir>/boxlite-verdict.json``, keyed by
    :func:`host_key`."""

    def __init__(self, state_dir: Path) -> None:
        super().__init__(state_dir / "boxlite-verdict.json", host_key)
