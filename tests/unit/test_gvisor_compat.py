"""The gVisor backend's change to each unpacked image (``gvisor/compat.py``), on real
folders: the library is added and preloaded, the image's own preloads are kept, and
nothing is written through a symbolic link out of the tree."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from jupyter_ext.backends.gvisor.compat import LIBRARY, PRELOAD, add_compat
from jupyter_ext.backends.namespace.init import binary
from jupyter_ext.backends.namespace.init.build import STATX


def _tree(root: Path) -> Path:
    (root / "etc").mkdir(parents=True)
    (root / "usr" / "lib").mkdir(parents=True)
    return root


def test_library_added_and_preloaded_once(tmp_path: Path) -> None:
    root = _tree(tmp_path / "rootfs")
    (root / PRELOAD.lstrip("/")).write_text("/usr/lib/theirs.so")
    add_compat(root)
    add_compat(root)  # again: nothing doubled
    assert (root / LIBRARY.lstrip("/")).read_bytes() == binary(STATX).read_bytes()
    assert (root / PRELOAD.lstrip("/")).read_text() == f"/usr/lib/theirs.so\n{LIBRARY}\n"
    assert oct((root / LIBRARY.lstrip("/")).stat().st_mode & 0o777) == "0o644"


@pytest.mark.parametrize("link", ["etc", "usr/lib", "usr/lib/boxrun", "etc/ld.so.preload"])
def test_nothing_written_through_a_symbolic_link(tmp_path: Path, caplog, link: str) -> None:
    """An image whose folder or preload file is a link out of the tree: the host's
    target is untouched, and the image is left without the library."""
    root = _tree(tmp_path / "rootfs")
    outside = tmp_path / "host"
    outside.mkdir()
    (outside / "ld.so.preload").write_text("host\n")
    target = outside / "ld.so.preload" if link.endswith("preload") else outside
    if (root / link).is_dir():
        (root / link).rmdir()
    (root / link).symlink_to(target)
    with caplog.at_level(logging.WARNING):
        add_compat(root)
    assert sorted(p.name for p in outside.iterdir()) == ["ld.so.preload"]
    assert (outside / "ld.so.preload").read_text() == "host\n"
    assert "statx-compat.so not added" in caplog.text
