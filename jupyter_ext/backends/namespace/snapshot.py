"""Disk-only snapshots of namespace boxes (:meth:`.NamespaceBackend.snapshot`).

A snapshot is a sparse copy of the box's ``disk.img`` taken while the filesystem on it is
frozen (``fsfreeze`` in the box's mount namespace, where only it is mounted): the freeze
writes ext4's dirty pages and journal through the loop device and holds every writer
until the copy is done, so the copy is a clean filesystem. (The box's cgroup freezer
would stop its processes but leave their unwritten data in the page cache, out of the
image; readers in the box are not held by ``fsfreeze``.) Processes are not saved:
restoring stops the box, puts the disk back and starts it again.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ...core.errors import BoxRunError
from ...core.hostcmd import run_checked, tool
from ...images.userns import RANGE
from . import reown

if TYPE_CHECKING:
    from ..base import BoxSpec
    from .backend import NamespaceBackend

DISK = "disk.img"


async def _copy_disk(source: Path, dest: Path) -> None:
    """Copy a disk image sparsely (reflinked where the filesystem can), into place at
    once: ``dest`` is whole or absent."""
    partial = dest.with_name(dest.name + ".partial")
    await run_checked([tool("cp"), "--sparse=always", "--reflink=auto", "--", str(source),
                       str(partial)], "copying the box disk")
    partial.replace(dest)


def _disk(backend: NamespaceBackend, handle: str) -> Path:
    image = backend._box_dir(handle) / DISK
    if not image.is_file():
        raise BoxRunError("RUNTIME_ERROR", "snapshots of namespace boxes need a box disk "
                          f"image, and this server cannot loop-mount: {backend._disk_problem}")
    return image


def _disk_holder(pid: int) -> int:
    """The host pid of a process in whose mount namespace the box's disk is mounted: the
    parent (bwrap) of the box's first process ``pid``, also in a box a server adopted."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines()
                    if line.startswith("PPid:")))


async def take(backend: NamespaceBackend, handle: str, dest: Path) -> bool:
    """Copy running box ``handle``'s disk into the new folder ``dest``; False (disk
    only)."""
    sandbox = backend._sandbox(handle)
    image = _disk(backend, handle)
    dest.mkdir(mode=0o700)
    freeze = [tool("nsenter"), f"--mount=/proc/{_disk_holder(sandbox.pid)}/ns/mnt", "--",
              tool("fsfreeze")]
    mount = str(image.with_name("disk"))
    await run_checked([*freeze, "--freeze", mount], "freezing the box disk")
    try:
        await _copy_disk(image, dest / DISK)
    finally:
        await run_checked([*freeze, "--unfreeze", mount], "thawing the box disk")
    (dest / "box.json").write_text(json.dumps({"slot": backend._slot(handle)}))
    return False


async def restore(backend: NamespaceBackend, handle: str, spec: BoxSpec, snap: Path
                  ) -> None:
    """Stop box ``handle``, put its disk back as ``snap`` has it, start it again."""
    image = _disk(backend, handle)
    await backend.stop(handle)
    await _copy_disk(snap / DISK, image)
    await backend.start(handle, spec)


async def fork(backend: NamespaceBackend, spec: BoxSpec, snap: Path) -> str:
    """A new running box whose disk is a copy of ``snap``'s, its files shifted to the new
    box's ids."""
    handle = await backend.create(spec)
    try:
        image = _disk(backend, handle)
        await _copy_disk(snap / DISK, image)
        old, new = json.loads((snap / "box.json").read_text())["slot"], backend._slot(handle)
        if old != new:
            ids = backend.userns
            await run_checked(
                [tool("unshare"), "--mount", "--propagation=private", "--", sys.executable,
                 "-I", "-S", reown.__file__, str(image), str(image.with_name("disk")),
                 *map(str, (ids.host_uid(old), ids.host_uid(new), ids.host_gid(old),
                            ids.host_gid(new), RANGE))], "shifting the fork's disk owners")
        await backend.start(handle, spec)
    except BaseException:
        await backend.remove(handle)
        raise
    return handle
