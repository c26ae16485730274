"""Volumes added to a running gVisor sandbox (a spare box, see :mod:`.spares`): bind
mounts made in its gofer's mount namespace (the process serving the box's files from
the host), where the Sentry's next lookup through the root filesystem finds them.

Run by the server as root, stdlib only: ``python3 -I -S latemount.py GOFER_PID [HOST
GUEST ro|rw]...``. Each host folder is cloned as a detached mount tree in the host's
namespace (``open_tree``) and made nosuid, nodev and, where asked, read-only (the Sentry
enforces read-only only on mounts it knows), before this process enters the gofer's
mount namespace (that of the process its pidfd names, checked to be a gofer). There it
executes nothing: it walks GUEST from the gofer's root one component at a time, never
following a link (the box's files, and its image's, are the box's: a link could point
anywhere), makes missing folders, and moves the tree onto the folder it holds
(``move_mount``). It exits 0 once every volume is mounted; else 1, naming it (what it
mounted goes with the sandbox: the caller starts the box anew).
"""

from __future__ import annotations

import ctypes
import os
import stat
import sys

SYS_OPEN_TREE, SYS_MOVE_MOUNT, SYS_MOUNT_SETATTR = 428, 429, 442
SYS_PIDFD_OPEN, SYS_PIDFD_SEND_SIGNAL = 434, 424
#: The gofer's name for itself (argv[0]).
GOFER = b"runsc-gofer"
OPEN_TREE_CLONE, AT_RECURSIVE, AT_EMPTY_PATH, AT_SYMLINK_NOFOLLOW = 0x1, 0x8000, 0x1000, 0x100
MOVE_MOUNT_F_EMPTY_PATH, MOVE_MOUNT_T_EMPTY_PATH = 0x4, 0x40
MOUNT_ATTR_RDONLY, MOUNT_ATTR_NOSUID, MOUNT_ATTR_NODEV = 0x1, 0x2, 0x4
CLONE_FS, CLONE_NEWNS = 0x200, 0x20000
#: How a path component is opened: a folder, never through a link.
STEP = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

_libc = ctypes.CDLL(None, use_errno=True)


class MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def _check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def clone_tree(host: str, readonly: bool) -> int:
    """A detached copy of the mount tree at folder ``host`` (the real path the server
    checked: not a link) with its attributes set."""
    if not stat.S_ISDIR(os.lstat(host).st_mode):
        raise OSError(f"{host} is not a folder")
    flags = OPEN_TREE_CLONE | os.O_CLOEXEC | AT_RECURSIVE | AT_SYMLINK_NOFOLLOW
    tree = _check(_libc.syscall(SYS_OPEN_TREE, -100, host.encode(), flags), "open_tree")
    attr = MountAttr(MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV
                     | (MOUNT_ATTR_RDONLY if readonly else 0), 0, 0, 0)
    _check(_libc.syscall(SYS_MOUNT_SETATTR, tree, b"", AT_EMPTY_PATH | AT_RECURSIVE,
                         ctypes.byref(attr), ctypes.sizeof(attr)), "mount_setattr")
    return tree


def walk(root: int, guest: str) -> int:
    """Folder ``guest`` below ``root``, made where missing, reached without a link."""
    parts = [part for part in guest.split("/") if part]
    if not guest.startswith("/") or not parts or any(part in (".", "..") for part in parts):
        raise OSError(f"not a clean absolute path: {guest!r}")
    fd = os.dup(root)
    for part in parts:
        try:
            step = os.open(part, STEP, dir_fd=fd)
        except FileNotFoundError:
            os.mkdir(part, 0o755, dir_fd=fd)
            step = os.open(part, STEP, dir_fd=fd)
        os.close(fd)
        fd = step
    return fd


def enter(pid: int) -> int:
    """Enter the mount namespace of gofer ``pid``; its root folder (the box's)."""
    pidfd = _check(_libc.syscall(SYS_PIDFD_OPEN, pid, 0), "pidfd_open")
    # the gofer's root, the box's root folder (a link of /proc's own, followed)
    root = os.open(f"/proc/{pid}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
        name = cmdline.read().partition(b"\0")[0]
    # still the process pidfd_open found (root and name are its), and a gofer
    _check(_libc.syscall(SYS_PIDFD_SEND_SIGNAL, pidfd, 0, None, 0), "pidfd_send_signal")
    if name != GOFER:
        raise OSError(f"process {pid} is not a gofer ({name[:40]!r})")
    _check(_libc.unshare(CLONE_FS), "unshare")  # a mount namespace is entered alone
    _check(_libc.setns(pidfd, CLONE_NEWNS), "setns")  # the same process as its root's
    return root


def mount(pid: int, args: list[str]) -> None:
    """Mount the volumes ``args`` (HOST GUEST ro|rw triples) in gofer ``pid``'s namespace."""
    volumes = [(args[i], args[i + 1], args[i + 2] == "ro") for i in range(0, len(args), 3)]
    trees = [clone_tree(host, readonly) for host, _, readonly in volumes]
    root = enter(pid)
    for tree, (host, guest, _) in zip(trees, volumes, strict=True):
        try:
            target = walk(root, guest)
            _check(_libc.syscall(SYS_MOVE_MOUNT, tree, b"", target, b"",
                                 MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH),
                   "move_mount")
        except OSError as err:
            raise OSError(f"volume {host} at {guest}: {err}") from err


def main(argv: list[str]) -> int:
    try:
        mount(int(argv[0]), argv[1:])
    except OSError as err:
        print(err, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
