"""Shift the owners of a box disk image's files from one box's ids to another's (run as
``python -I -S reown.py IMAGE FOLDER FROM_UID TO_UID FROM_GID TO_GID COUNT`` by root,
in a mount namespace of its own): a fork's disk is a copy of a box whose ids were
another uid range's. Standard library only, like :mod:`.prepare`."""

from __future__ import annotations

import os
import stat
import subprocess
import sys


def shift(value: int, start: int, to: int, count: int) -> int:
    """``value`` moved from the range at ``start`` to the one at ``to``, if it is in it."""
    return value - start + to if start <= value < start + count else value


def reown(folder: str, uids: tuple[int, int], gids: tuple[int, int], count: int) -> None:
    """Shift every file's owner under ``folder``, keeping set-id bits (chown drops them)."""
    for root, dirs, files in os.walk(folder):
        for path in [root, *(os.path.join(root, name) for name in dirs + files)]:
            if path != root and os.path.isdir(path) and not os.path.islink(path):
                continue  # walked as a root of its own
            info = os.lstat(path)
            os.lchown(path, shift(info.st_uid, *uids, count), shift(info.st_gid, *gids, count))
            if not stat.S_ISLNK(info.st_mode) and info.st_mode & (stat.S_ISUID | stat.S_ISGID):
                os.chmod(path, stat.S_IMODE(info.st_mode))


def main(argv: list[str]) -> None:
    image, folder = argv[1], argv[2]
    from_uid, to_uid, from_gid, to_gid, count = (int(a) for a in argv[3:8])
    subprocess.run(["mount", "-o", "loop,nosuid,nodev,noexec", image, folder], check=True)
    try:
        reown(folder, (from_uid, to_uid), (from_gid, to_gid), count)
    finally:
        subprocess.run(["umount", folder], check=True)


if __name__ == "__main__":
    try:
        main(sys.argv)
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"shifting the disk's owners: {exc}", file=sys.stderr)
        sys.exit(1)
