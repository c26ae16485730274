"""The session agent's files in a box: a folder named for their content, installed once
and never written again.

A running agent and its interpreter map ``pidcache.so`` and may still read the agent's
sources: rewriting a file in place under them would break them (truncating a mapped
library kills its processes with SIGBUS; a gVisor box restored from a snapshot lost its
interpreters so). A new version of the agent goes to a folder of its own, next to the old.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
from importlib import resources

from ..backends.base import Backend, one_chunk
from ..backends.execfiles import EXEC_DEFAULT_ENV
from ..core.errors import BoxRunError

#: Where the agent's folders go in a box.
AGENT_HOME = "/root/.boxrun"
#: The agent's sources, installed with the pid cache (:func:`agent_files`).
AGENT_SOURCES = ("agent.py", "agent_python.py", "agent_kernel.py", "agent_listen.py")
#: Moves an uploaded folder ($1) to the agent's ($2) unless that is there (runs in the box).
PLACE = '[ -d "$2" ] || mv -- "$1" "$2"; rm -rf -- "$1"; [ -f "$2/agent.py" ]'


@functools.cache
def agent_files() -> tuple[tuple[str, bytes], ...]:
    """The agent's files (name, content): its sources and ``pidcache.so``
    (``pidcache.c``; built here first in a source checkout)."""
    from ..backends.namespace.init import binary  # noqa: PLC0415 - the backends import sessions
    from ..backends.namespace.init.build import PIDCACHE  # noqa: PLC0415

    package = resources.files(__package__)
    return (*((name, package.joinpath(name).read_bytes()) for name in AGENT_SOURCES),
            (PIDCACHE.name, binary(PIDCACHE).read_bytes()))


@functools.cache
def agent_dir() -> str:
    """The agent's folder in a box, named by a digest of its files."""
    digest = hashlib.sha256()
    for name, content in agent_files():
        digest.update(name.encode() + b"\0" + content + b"\0")
    return f"{AGENT_HOME}/agent-{digest.hexdigest()[:16]}"


async def install_agent(backend: Backend, handle: str) -> None:
    """Put the agent's folder into running box ``handle`` unless it is there: its files
    uploaded into a folder of their own, then moved into place whole."""
    target = agent_dir()
    if await _run(backend, handle, ["test", "-d", target]) == 0:
        return
    partial = f"{target}.partial-{secrets.token_hex(4)}"
    for name, content in agent_files():
        await backend.upload(handle, f"{partial}/{name}", one_chunk(content))
    if await _run(backend, handle, ["sh", "-c", PLACE, "place", partial, target]) != 0:
        raise BoxRunError("RUNTIME_ERROR", f"cannot install the session agent at {target}")


async def _run(backend: Backend, handle: str, cmd: list[str]) -> int:
    """The exit status of ``cmd`` run in the box as root."""
    return await (await backend.exec(handle, cmd, EXEC_DEFAULT_ENV, "/")).wait()
