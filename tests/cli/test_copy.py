"""``boxrun cp``: files and folders both ways."""

from __future__ import annotations

import os
from pathlib import Path

from .conftest import Cli


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_folder_up_and_down(cli: Cli, box: str, tmp_path: Path) -> None:
    src = tmp_path / "project"
    (src / "sub" / "deeper").mkdir(parents=True)
    (src / "a.txt").write_text("alpha\n")
    (src / "sub" / "b.bin").write_bytes(bytes(range(256)) * 1000)
    (src / "sub" / "deeper" / "c d.txt").write_text("spaced name")
    assert "Uploaded" in cli.ok("cp", str(src), f"{box}:/root/up")
    listed = cli.ok("exec", box, "--", "sh", "-c", "cd /root/up && find . -type f | sort && md5sum sub/b.bin")
    assert listed.split("\n")[:3] == ["./a.txt", "./sub/b.bin", "./sub/deeper/c d.txt"]
    # into an existing folder: it lands inside, under its own name
    cli.ok("cp", str(src), f"{box}:/root/up")
    assert cli.ok("exec", box, "--", "cat", "/root/up/project/a.txt") == "alpha\n"

    cli.ok("exec", box, "--", "sh", "-c", "echo made-in-box > /root/up/sub/new.txt")
    down = tmp_path / "down"
    assert "Downloaded" in cli.ok("cp", f"{box}:/root/up", str(down))
    got = tree(down)
    assert got["a.txt"] == b"alpha\n" and got["sub/deeper/c d.txt"] == b"spaced name"
    assert got["sub/b.bin"] == (src / "sub" / "b.bin").read_bytes()
    assert got["sub/new.txt"] == b"made-in-box\n"
    # no scratch archive left behind in the box
    assert ".boxrun-cp" not in cli.ok("exec", box, "--", "ls", "-a", "/root")


def test_files_both_ways(cli: Cli, box: str, tmp_path: Path) -> None:
    (tmp_path / "one.txt").write_text("one")
    cli.ok("cp", str(tmp_path / "one.txt"), f"{box}:/root/renamed.txt")
    cli.ok("cp", str(tmp_path / "one.txt"), f"{box}:/root")  # into a folder
    assert cli.ok("exec", box, "--", "cat", "/root/renamed.txt", "/root/one.txt") == "oneone"
    out = tmp_path / "out"
    out.mkdir()
    cli.ok("cp", f"{box}:/root/renamed.txt", str(out))
    cli.ok("cp", f"{box}:/root/renamed.txt", str(out / "again.txt"))
    assert (out / "renamed.txt").read_text() == (out / "again.txt").read_text() == "one"


def test_cp_errors(cli: Cli, box: str, tmp_path: Path) -> None:
    for args in ([str(tmp_path), str(tmp_path)], [f"{box}:/a", f"{box}:/b"],
                 [str(tmp_path / "missing"), f"{box}:/root/x"], [f"{box}:relative", str(tmp_path)],
                 [f"{box}:/root/nothing-here", str(tmp_path / "x")]):
        done = cli("cp", *args)
        assert done.returncode == 1 and "boxrun: " in done.stderr, (args, done.stderr)
    assert not (tmp_path / "x").exists() and os.listdir(tmp_path) == []
