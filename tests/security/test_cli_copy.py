"""``boxrun cp BOX:FOLDER HOST`` unpacks an archive the box made (box root can replace its
``tar``): it may not write outside the destination, through ``..``, absolute names or a
symlink or hard link planted in the archive, nor make device files."""

from __future__ import annotations

import io
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..cli.conftest import Cli
from ..servers import ServerProcess


def archive(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def file(name: str, data: bytes = b"pwned\n") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def special(name: str, kind: bytes, target: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    if kind == tarfile.CHRTYPE:
        info.devmajor, info.devminor = 1, 3
    return info, None


@pytest.fixture
def cli(server: ServerProcess) -> Cli:
    return Cli({"BOXRUN_STATE_DIR": str(server.state_dir)})


@pytest.fixture
def tar_faker(cli: Cli) -> Iterator[str]:
    """A box whose ``tar`` hands out the archive at /root/evil.tar, whatever it is asked."""
    name = f"cli-evil-{uuid.uuid4().hex[:6]}"
    cli.ok("create", "debian", "-n", name, "-m", "256", "--cpu", "1")
    cli.ok("exec", name, "--", "sh", "-c",
           "mkdir -p /root/folder && printf '#!/bin/sh\\ncat /root/evil.tar > \"$2\"\\n' "
           "> /usr/bin/tar && chmod +x /usr/bin/tar")
    yield name
    cli("rm", "-f", name)


@pytest.mark.parametrize("case", ["dotdot", "absolute", "symlink-out", "hardlink-out",
                                  "device", "symlink-then-write"])
def test_a_hostile_archive_writes_nothing_outside(cli: Cli, tar_faker: str, tmp_path: Path,
                                                   case: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("host file")
    dest = tmp_path / "dest"
    members = {
        "dotdot": [file("./ok.txt"), file("../outside/pwned.txt")],
        "absolute": [file(str(outside / "pwned.txt"))],
        "symlink-out": [special("link", tarfile.SYMTYPE, str(outside))],
        "hardlink-out": [special("hard", tarfile.LNKTYPE, str(outside / "keep.txt"))],
        "device": [special("null", tarfile.CHRTYPE)],
        "symlink-then-write": [special("link", tarfile.SYMTYPE, "../outside"),
                               file("link/pwned.txt")],
    }[case]
    evil = tmp_path / "evil.tar"
    evil.write_bytes(archive(members))
    cli.ok("cp", str(evil), f"{tar_faker}:/root/evil.tar")
    done = cli("cp", f"{tar_faker}:/root/folder", str(dest))
    if case == "absolute":  # the leading / is dropped: it lands inside the destination
        assert done.returncode == 0 and (dest / str(outside / "pwned.txt")[1:]).is_file()
    else:
        assert done.returncode == 1 and "boxrun: RUNTIME_ERROR" in done.stderr, done
    assert sorted(p.name for p in outside.iterdir()) == ["keep.txt"]
    assert (outside / "keep.txt").read_text() == "host file"
    assert not any(p.is_symlink() or p.is_char_device() for p in tmp_path.rglob("*"))
