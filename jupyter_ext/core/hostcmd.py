"""Host commands: a fixed environment and binaries from a fixed path, never the caller's.

Every process the server starts on the host (sandbox set-up, image unpacking, box disk
work, user-mode networking) gets :data:`HOST_ENV` and an executable resolved once by
:func:`tool`, so nothing a caller or a box sends (``env``, ``PATH``, ``LD_PRELOAD``)
reaches a host process.
"""

from __future__ import annotations

import asyncio
import shutil
from functools import cache

from .errors import BoxRunError

#: Where host tools are looked up: system folders only (root-owned on any sane host).
SAFE_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
#: The whole environment of every host process the server starts.
HOST_ENV = {"PATH": SAFE_PATH, "LC_ALL": "C.UTF-8"}


@cache
def tool(name: str) -> str:
    """The absolute path of host tool ``name`` on :data:`SAFE_PATH`."""
    path = shutil.which(name, path=SAFE_PATH)
    if path is None:
        raise BoxRunError("RUNTIME_ERROR", f"missing host tool {name} (looked in {SAFE_PATH})")
    return path


def missing(names: tuple[str, ...]) -> list[str]:
    """Which of ``names`` are not on :data:`SAFE_PATH`."""
    return [name for name in names if shutil.which(name, path=SAFE_PATH) is None]


async def run_checked(command: list[str], what: str) -> None:
    """Run ``command`` with :data:`HOST_ENV`; RUNTIME_ERROR quoting its stderr if it fails."""
    proc = await asyncio.create_subprocess_exec(
        *command,
        env=HOST_ENV,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate()
    if proc.returncode != 0:
        raise BoxRunError("RUNTIME_ERROR", f"{what} failed: {err.decode(errors='replace')}")
