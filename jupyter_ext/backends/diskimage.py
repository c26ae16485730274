"""A box's disk: a sparse ext4 image of ``disk_size_gb`` holding its writable layer
(``upper`` and ``work``), loop-mounted only in the mount namespace its sandbox starts in
(by :mod:`.namespace.prepare`), so ``disk_size_gb`` bounds what a box can write."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from ..core.hostcmd import missing, run_checked, tool

IMAGE, MOUNTPOINT = "disk.img", "disk"
#: The mount step (a script run with ``python -I -S``; not imported, as it imports nothing
#: of the package).
PREPARE = Path(__file__).parent / "namespace" / "prepare.py"
CAP_SYS_ADMIN = 21


def disk_problem() -> str | None:
    """Why box disks cannot be loop-mounted ext4 images here; None if they can."""
    if os.geteuid() != 0:
        return "the server is not root, which loop-mounting a box's disk image needs"
    lacking = missing(("mkfs.ext4", "mount", "umount"))
    if lacking:
        return f"missing host tools {', '.join(lacking)} (package e2fsprogs)"
    if not os.path.exists("/dev/loop-control"):
        return "the host has no loop devices (/dev/loop-control)"
    try:
        caps = int(next(line.split()[1] for line in Path("/proc/self/status").read_text()
                        .splitlines() if line.startswith("CapEff:")), 16)
    except (OSError, StopIteration, ValueError):
        caps = 0
    if not caps & (1 << CAP_SYS_ADMIN):
        return "the server lacks CAP_SYS_ADMIN, which loop-mounting a box's disk image needs"
    return None


def unenforced(problem: str) -> str:
    """The limitation, in words, of boxes without a disk image."""
    return (f"disk_size_gb is not enforced: {problem}; a box's writable layer shares the"
            " state dir's disk")


async def make_disk(box_dir: Path, size_gb: int, uid: int, gid: int) -> None:
    """A sparse ext4 image of ``size_gb`` in ``box_dir`` whose root is ``uid:gid``'s
    (journal and inode tables left unwritten, so it takes milliseconds and little host
    disk), and its empty mount point."""
    image = box_dir / IMAGE
    fd = os.open(image, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.ftruncate(fd, size_gb << 30)
    finally:
        os.close(fd)
    (box_dir / MOUNTPOINT).mkdir()
    options = f"root_owner={uid}:{gid},nodiscard,lazy_itable_init=1,lazy_journal_init=1"
    await run_checked([tool("mkfs.ext4"), "-q", "-F", "-E", options, str(image)],
                      "formatting the box disk")


def has_disk(box_dir: Path) -> bool:
    """Whether the box has a disk image (boxes made without one keep ``upper`` in
    ``box_dir`` itself)."""
    return (box_dir / IMAGE).exists()


def disk_plan(box_dir: Path, uid: int, gid: int) -> list[str]:
    """The ``disk`` of a :mod:`.namespace.prepare` plan: the box's image, its mount
    point, and the owner ``upper``/``work`` get on first use."""
    return [str(box_dir / IMAGE), str(box_dir / MOUNTPOINT), f"{uid}:{gid}"]


def prepare_prefix(disk: list[str] | None, idmaps: list[list[object]],
                   readonly: list[list[str]] | None = None) -> list[str]:
    """The command prefix that runs the rest of a command line as root in a new mount
    namespace, once :mod:`.namespace.prepare` mounted ``disk``, ``idmaps`` and the
    ``readonly`` binds there."""
    plan = json.dumps({"disk": disk, "idmaps": idmaps, "readonly": readonly or []})
    return [tool("unshare"), "--mount", "--propagation=private", "--",
            sys.executable, "-I", "-S", str(PREPARE), plan, "--"]
