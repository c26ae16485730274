"""Verdicts of a real probe of a backend on this host, remembered in the state dir, so
that ``backend = auto`` decides at once on later starts."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path


@dataclass(frozen=True)
class Verdict:
    """The outcome of a real probe box on this host: whether it booted, and why not."""

    boots: bool
    reason: str
    checked_at: str


class VerdictStore:
    """Verdicts in a JSON file, one per host key (``host_key()`` says what a verdict
    holds for: a kernel release, a runtime version, …), written atomically."""

    def __init__(self, path: Path, host_key: Callable[[], str]) -> None:
        self.path = path
        self.host_key = host_key

    def _all(self) -> dict[str, dict]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def get(self) -> Verdict | None:
        """The verdict remembered for this host, if any."""
        entry = self._all().get(self.host_key())
        try:
            return Verdict(**entry) if isinstance(entry, dict) and entry else None
        except TypeError:
            return None

    def put(self, boots: bool, reason: str) -> Verdict:
        """Remember a verdict for this host (atomically)."""
        verdict = Verdict(boots, reason, datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
        data = {**self._all(), self.host_key(): asdict(verdict)}
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=2))
        tmp.replace(self.path)
        return verdict
