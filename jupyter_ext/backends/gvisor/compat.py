"""What this runsc lacks, made up for in the gVisor backend's copy of each image.

Debian's runsc (2022) refuses ``statx`` with ``AT_NO_AUTOMOUNT``, which coreutils passes:
``ls -l`` and ``stat`` failed on every path. Each unpacked image gets
``statx-compat.so`` (``init/statx-compat.c``), which drops the flag, named in its
``/etc/ld.so.preload``: every program linked with glibc loads it. The image itself, and
other backends' copies of it, are left as they are.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from ...images.unpack import Addition
from ..namespace.init import binary
from ..namespace.init.build import STATX

log = logging.getLogger(__name__)

#: Where the library goes in the image's copy, and the file that preloads it.
LIBRARY = "/usr/lib/boxrun/statx-compat.so"
PRELOAD = "/etc/ld.so.preload"
WORDS = (f"programs linked with glibc preload {LIBRARY} ({PRELOAD} of the backend's copy"
         " of the image): it drops statx's flag AT_NO_AUTOMOUNT, which this runsc (2022)"
         " refuses and coreutils' ls and stat pass")


def add_compat(root: Path) -> None:
    """Put the library into unpacked image ``root`` and add it to its ``ld.so.preload``
    (after the image's own lines). Nothing is followed out of ``root``: where a folder on
    the way or a file is a symbolic link, the image is left as it is (and ls fails)."""
    try:
        with _folder(root, LIBRARY) as lib:
            _write(lib, os.path.basename(LIBRARY), binary(STATX).read_bytes())
        with _folder(root, PRELOAD) as etc:
            name = os.path.basename(PRELOAD)
            kept = _read(etc, name)
            if LIBRARY.encode() not in kept.split():
                _write(etc, name, kept + (b"\n" if kept and not kept.endswith(b"\n") else b"")
                       + LIBRARY.encode() + b"\n")
    except OSError as err:
        log.warning("image %s: statx-compat.so not added (ls -l will fail in its gVisor"
                    " boxes): %s", root.name, err)


#: The change to each unpacked image, tagged by the library's source: a new version
#: unpacks each image anew.
ADDITION = Addition(hashlib.sha256(STATX.with_suffix(".c").read_bytes()).hexdigest()[:8],
                    add_compat)


@contextlib.contextmanager
def _folder(root: Path, path: str) -> Iterator[int]:
    """The folder of guest path ``path`` in ``root``, made where missing, as an open
    descriptor: every step opened without following symbolic links."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    for part in path.strip("/").split("/")[:-1]:
        fd = _step(fd, part)
    try:
        yield fd
    finally:
        os.close(fd)


def _step(parent: int, name: str) -> int:
    """Folder ``name`` in ``parent`` (made if missing), opened; ``parent`` closed either way."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
    try:
        try:
            return os.open(name, flags, dir_fd=parent)
        except FileNotFoundError:
            os.mkdir(name, 0o755, dir_fd=parent)
            return os.open(name, flags, dir_fd=parent)
    finally:
        os.close(parent)


def _read(folder: int, name: str) -> bytes:
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=folder)
    except FileNotFoundError:
        return b""
    with open(fd, "rb") as f:
        return f.read(1 << 16)


def _write(folder: int, name: str, content: bytes) -> None:
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644,
                 dir_fd=folder)
    with open(fd, "wb") as f:
        f.write(content)
