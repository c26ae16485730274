"""Whether micro-VMs boot on this host: fast checks and the remembered verdict."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import platform
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

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


@dataclass(frozen=True)
class Verdict:
    """The outcome of a real boot on this host."""

    boots: bool
    reason: str
    checked_at: str


class VerdictStore:
    """Verdicts in ``<state_dir>/boxlite-verdict.json``, keyed by :func:`host_key`."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "boxlite-verdict.json"

    def _all(self) -> dict[str, dict]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def get(self) -> Verdict | None:
        """The verdict remembered for this host, if any."""
        entry = self._all().get(host_key())
        try:
            return Verdict(**entry) if entry else None
        except TypeError:
            return None

    def put(self, boots: bool, reason: str) -> Verdict:
        """Remember a verdict for this host (atomically)."""
        verdict = Verdict(boots, reason, datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
        data = {**self._all(), host_key(): asdict(verdict)}
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=2))
        tmp.replace(self.path)
        return verdict
