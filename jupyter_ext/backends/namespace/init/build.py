"""Build ``boxrun-init`` from ``boxrun-init.c``: a static binary, so it runs in any image.

Standard library only: the package's build hook (``hatch_build.py``) loads this file
by path.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

SOURCE = Path(__file__).with_name("boxrun-init.c")
BINARY = Path(__file__).with_name("boxrun-init")
CFLAGS = ["-static", "-O2", "-Wall", "-Wextra", "-Werror"]


def build(target: Path = BINARY) -> Path:
    """Compile the source into ``target`` (atomically); its path."""
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise RuntimeError("building boxrun-init needs a C compiler with a static libc"
                           " (Debian: apt-get install gcc libc6-dev)")
    partial = target.with_name(f".{target.name}.{os.getpid()}")
    subprocess.run([cc, *CFLAGS, "-o", str(partial), str(SOURCE)], check=True)
    partial.replace(target)
    return target


def stale(target: Path = BINARY) -> bool:
    """Whether ``target`` is missing or older than the source."""
    return not target.exists() or target.stat().st_mtime < SOURCE.stat().st_mtime
