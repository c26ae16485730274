"""Build what runs in boxes from C: the boxes' first processes, static binaries so they
run in any image, and libraries preloaded into the boxes' programs.

``boxrun-init`` (namespace boxes, this folder) and ``boxrun-gvinit`` (gVisor boxes,
``gvisor/init``) share ``boxinit.h`` of this folder; ``sessions/pidcache.so`` (the
sessions' interpreters) and ``gvisor/init/statx-compat.so`` (every program of a gVisor
box) are built from the ``.c`` files of their names. Standard library only: the package's build hook
(``hatch_build.py``) loads this file by path.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

HERE = Path(__file__).parent
HEADER = HERE / "boxinit.h"
BINARY = HERE / "boxrun-init"
GVINIT = HERE.parents[1] / "gvisor" / "init" / "boxrun-gvinit"
PIDCACHE = HERE.parents[2] / "sessions" / "pidcache.so"
STATX = GVINIT.with_name("statx-compat.so")
#: Every binary built, each from the C file of its name.
TARGETS = (BINARY, GVINIT, PIDCACHE, STATX)
CFLAGS = ["-O2", "-Wall", "-Wextra", "-Werror", f"-I{HERE}"]
#: How each is linked: static programs, and libraries that use the process's C library
#: (stripped, code and read-only data in one segment: fewer system calls to load them).
LIBRARY = ["-shared", "-fPIC", "-nostdlib", "-s", "-Wl,-z,noseparate-code"]
LINK = {BINARY: ["-static"], GVINIT: ["-static"], PIDCACHE: LIBRARY, STATX: LIBRARY}


def _source(target: Path) -> Path:
    return target.with_suffix(".c")


def build(target: Path = BINARY) -> Path:
    """Compile ``target`` from its source (atomically); its path."""
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise RuntimeError(f"building {target.name} needs a C compiler with a static libc"
                           " (Debian: apt-get install gcc libc6-dev)")
    partial = target.with_name(f".{target.name}.{os.getpid()}")
    subprocess.run([cc, *CFLAGS, *LINK[target], "-o", str(partial), str(_source(target))],
                   check=True)
    partial.replace(target)
    return target


def stale(target: Path = BINARY) -> bool:
    """Whether ``target`` is missing or older than its source or the shared header."""
    return not target.exists() or target.stat().st_mtime < max(
        _source(target).stat().st_mtime, HEADER.stat().st_mtime)
