"""``boxrun-init``, the first process of every namespace box (see ``boxrun-init.c``)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from ....core.errors import BoxRunError
from .build import BINARY, build, stale


def binary() -> Path:
    """The built ``boxrun-init``; built here first if the install did not (a source
    checkout) or the source is newer."""
    if stale():
        try:
            build()
        except (OSError, RuntimeError, subprocess.CalledProcessError) as exc:
            raise BoxRunError("RUNTIME_ERROR", f"boxrun-init is not built: {exc}") from exc
    return BINARY
