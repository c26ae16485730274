"""Step 1 of a box's process tree (run as ``python -I -S prepare.py PLAN -- COMMAND…``
by root, in ``boxes/``, in a new mount namespace that only the box will inherit).

``PLAN`` is JSON: ``disk`` ([image, folder, "uid:gid"] or null) is the box's disk
image to loop-mount, with its ``upper`` and ``work`` made box root's on first use;
``idmaps`` ([source, target, uid map, gid map, read-only], …) are idmapped bind mounts:
the image's files shifted to the box's ids, and volumes whose owner (the server's
user) box root becomes; ``readonly`` ([source, target], …, optional) are recursive bind
mounts read-only on the host (what a sandbox then binds again stays read-only). Then it
execs ``COMMAND`` with the environment it was given.
Standard library only: it runs before anything of the box, with ``-I -S``.
"""

from __future__ import annotations

import ctypes
import json
import os
import struct
import subprocess
import sys

SYS_OPEN_TREE, SYS_MOVE_MOUNT, SYS_MOUNT_SETATTR = 428, 429, 442
OPEN_TREE_CLONE, OPEN_TREE_CLOEXEC = 1, 0o2000000
AT_FDCWD, AT_SYMLINK_NOFOLLOW, AT_EMPTY_PATH, AT_RECURSIVE = -100, 0x100, 0x1000, 0x8000
MOVE_MOUNT_F_EMPTY_PATH = 4
MOUNT_ATTR_RDONLY, MOUNT_ATTR_NOSUID, MOUNT_ATTR_NODEV = 0x1, 0x2, 0x4
MOUNT_ATTR_IDMAP = 0x100000
CLONE_NEWUSER = 0x10000000

libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def userns(uid_map: str, gid_map: str) -> int:
    """A descriptor of a new user namespace with these maps (its process is gone)."""
    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(ready_r)
        os.close(done_w)
        ok = libc.unshare(CLONE_NEWUSER) == 0
        os.write(ready_w, b"1" if ok else b"0")
        os.read(done_r, 1)
        os._exit(0)
    os.close(ready_w)
    os.close(done_r)
    try:
        if os.read(ready_r, 1) != b"1":
            raise OSError("cannot make a user namespace for an idmapped mount")
        for name, text in (("uid_map", uid_map), ("gid_map", gid_map)):
            with open(f"/proc/{pid}/{name}", "w") as f:
                f.write(text)
        return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(done_w)
        os.close(ready_r)
        os.waitpid(pid, 0)


def idmapped_bind(source: str, target: str, uid_map: str, gid_map: str, readonly: bool) -> None:
    """Bind ``source`` on ``target`` with its owners shifted by the maps."""
    ns = userns(uid_map, gid_map)
    flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_SYMLINK_NOFOLLOW  # a real path
    tree = _check(libc.syscall(SYS_OPEN_TREE, AT_FDCWD, source.encode(), flags),
                  f"open_tree {source}")
    try:
        flags = MOUNT_ATTR_IDMAP | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV
        attr = struct.pack("QQQQ", flags | (MOUNT_ATTR_RDONLY if readonly else 0), 0, 0, ns)
        _check(libc.syscall(SYS_MOUNT_SETATTR, tree, b"", AT_EMPTY_PATH, attr, len(attr)),
               f"idmapping {source}")
        _check(libc.syscall(SYS_MOVE_MOUNT, tree, b"", AT_FDCWD, target.encode(),
                            MOVE_MOUNT_F_EMPTY_PATH), f"mounting {source}")
    finally:
        os.close(tree)
        os.close(ns)


def readonly_bind(source: str, target: str) -> None:
    """Bind ``source`` (and the mounts below it) on ``target``, read-only, nosuid, nodev."""
    flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_SYMLINK_NOFOLLOW | AT_RECURSIVE
    tree = _check(libc.syscall(SYS_OPEN_TREE, AT_FDCWD, source.encode(), flags),
                  f"open_tree {source}")
    try:
        attr = struct.pack("QQQQ", MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
                           0, 0, 0)
        _check(libc.syscall(SYS_MOUNT_SETATTR, tree, b"", AT_EMPTY_PATH | AT_RECURSIVE, attr,
                            len(attr)), f"making {source} read-only")
        _check(libc.syscall(SYS_MOVE_MOUNT, tree, b"", AT_FDCWD, target.encode(),
                            MOVE_MOUNT_F_EMPTY_PATH), f"mounting {source}")
    finally:
        os.close(tree)


def mount_disk(image: str, folder: str, owner: str) -> None:
    """Loop-mount the box's disk image; its ``upper`` and ``work`` are box root's."""
    subprocess.run(["mount", "-o", "loop,nosuid,nodev,discard,noinit_itable", image, folder],
                   check=True)
    upper, work = os.path.join(folder, "upper"), os.path.join(folder, "work")
    if not os.path.isdir(upper):
        uid, gid = (int(part) for part in owner.split(":"))
        for path in (upper, work):
            os.mkdir(path)
            os.chown(path, uid, gid)


def main(argv: list[str]) -> None:
    plan = json.loads(argv[1])
    if argv[2] != "--":
        raise SystemExit("usage: prepare.py PLAN -- COMMAND...")
    if plan["disk"]:
        mount_disk(*plan["disk"])
    for source, target, uid_map, gid_map, readonly in plan["idmaps"]:
        idmapped_bind(source, target, uid_map, gid_map, readonly)
    for source, target in plan["readonly"]:
        readonly_bind(source, target)
    os.execv(argv[3], argv[3:])


if __name__ == "__main__":
    try:
        main(sys.argv)
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"preparing the box: {exc}", file=sys.stderr)
        sys.exit(1)
