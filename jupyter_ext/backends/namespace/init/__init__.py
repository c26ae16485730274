"""``boxrun-init``, the first process of every namespace box (see ``boxrun-init.c``)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from ....core.errors import BoxRunError
from .build import BINARY, build, stale


def binary(target: Path = BINARY) -> Path:
    """The built ``target`` (``boxrun-init``, else another init of ``build.TARGETS``);
    built here first if the install did not (a source checkout) or its source is newer."""
    if stale(target):
        try:
            build(target)
        except (OSError, RuntimeError, subprocess.CalledProcessError) as exc:
            raise BoxRunError("RUNTIME_ERROR", f"{target.name} is not built: {exc}") from exc
    return target
