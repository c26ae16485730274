"""``boxrun create|ls|info|start|stop|rm|gc|images`` and errors, over the socket and TCP."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pexpect

from ..servers import ServerProcess
from .conftest import Cli


def test_box_lifecycle(cli: Cli, tmp_path: Path) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    (tmp_path / "shared.txt").write_text("from the host")
    created = cli("create", "python", "-n", name, "--cpu", "1", "-m", "300", "-d", "3",
                  "-e", "GREETING=hi there", "-v", f"{tmp_path}:/mnt/host:ro")
    assert created.returncode == 0, created.stderr
    box_id = created.stdout.strip()
    assert box_id.startswith("box_") and "\n" not in box_id  # stdout: the id, for scripts
    assert f"created {name}" in created.stderr
    try:
        info = json.loads(cli.ok("info", name))
        assert (info["id"], info["cpu"], info["memory_mb"], info["disk_size_gb"]) == (box_id, 1, 300, 3)
        assert info["env"] == {"GREETING": "hi there"} and info["image"] == "local/python"
        assert info["volumes"] == [{"host_path": str(tmp_path), "guest_path": "/mnt/host",
                                    "readonly": True}]
        assert cli.ok("exec", name, "--", "sh", "-c", "cat /mnt/host/shared.txt; echo \" $GREETING\"") \
            == "from the host hi there\n"

        header, *rows = cli.ok("ls").splitlines()
        assert header.split() == ["ID", "NAME", "STATUS", "IMAGE", "CPU", "MEM", "DISK", "CREATED"]
        row = next(r.split() for r in rows if r.startswith(box_id))
        assert row[1:7] == [name, "running", "local/python", "1", "300MB", "3G"]
        listed = json.loads(cli.ok("ls", "--json"))
        assert box_id in [b["id"] for b in listed]

        assert cli.ok("stop", name).strip() == f"Stopped {box_id}"
        assert box_id in cli.ok("ls", "-s", "stopped")
        assert box_id not in cli.ok("ls", "--status", "running")
        assert box_id in cli.ok("ls", "-s", "all")
        again = cli("stop", name)
        assert again.returncode == 1 and "BOX_NOT_RUNNING" in again.stderr and not again.stdout
        assert cli.ok("start", box_id).strip() == f"Started {box_id}"

        refused = cli("rm", name)
        assert refused.returncode == 1 and "BOX_ALREADY_RUNNING" in refused.stderr
        assert cli.ok("rm", "-f", name).strip() == f"Removed {name}"
        gone = cli("info", box_id)
        assert gone.returncode == 1 and "BOX_NOT_FOUND" in gone.stderr
    finally:
        cli("rm", "--force", name)


def test_create_errors_in_words(cli: Cli, box: str) -> None:
    taken = cli("create", "debian", "-n", box)
    assert taken.returncode == 1 and not taken.stdout
    assert taken.stderr.startswith("boxrun: NAME_ALREADY_EXISTS: ") and "rm -f" in taken.stderr
    unbuilt = cli("create", "node:22-slim")
    assert unbuilt.returncode == 1 and "IMAGE_PULL_FAILED" in unbuilt.stderr
    for bad in (["-v", "relative:/x"], ["-v", "/a:/b:rx"], ["-e", "NOEQUALS"]):
        wrong = cli("create", "debian", *bad)
        assert wrong.returncode == 1 and "VALIDATION_ERROR" in wrong.stderr, bad
    usage = cli("create", "--cpu", "two")
    assert usage.returncode == 2 and "invalid int value" in usage.stderr


def test_gc_removes_long_stopped_boxes(cli: Cli, box: str) -> None:
    cli.ok("stop", box)
    assert cli.ok("gc").strip() == "Removed 0 box(es)"  # stopped for less than an hour
    assert cli.ok("gc", "--older-than", "0").strip().startswith("Removed ")
    assert cli("info", box).returncode == 1


def test_images_lists_aliases_and_local_images(cli: Cli) -> None:
    shown = cli.ok("images")
    aliases, local = shown.split("\n\n")
    rows = {line.split()[0]: line.split() for line in aliases.splitlines()[1:]}
    assert rows["python"] == ["python", "python:3.12-slim", "local/python"]
    assert rows["node"] == ["node", "node:22-slim", "-"]
    assert any(line.startswith("debian ") and "local/debian" in line for line in local.splitlines())


def test_tcp_with_a_token(server: ServerProcess, box: str) -> None:
    url = f"http://127.0.0.1:{server.port}"
    for env in ({"BOXRUN_URL": url, "BOXRUN_TOKEN": server.token},
                {"BOXRUN_URL": f"http://:{server.token}@127.0.0.1:{server.port}"},
                {"BOXRUN_HOST": "127.0.0.1", "BOXRUN_PORT": str(server.port),
                 "BOXRUN_TOKEN": server.token}):
        tcp = Cli(env)
        assert box in tcp.ok("ls")
        assert tcp.ok("exec", box, "--", "echo", "over tcp") == "over tcp\n"
    refused = Cli({"BOXRUN_URL": url})("ls")
    assert refused.returncode == 1 and "UNAUTHORIZED" in refused.stderr and "BOXRUN_TOKEN" in refused.stderr
    nobody = Cli({"BOXRUN_URL": "http://127.0.0.1:1"})("ls")  # TCP: nothing is started
    assert nobody.returncode == 1 and "UNREACHABLE" in nobody.stderr


def test_create_shows_progress_on_a_terminal(cli: Cli) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    term = cli.spawn("create", "debian", "-n", name, "-m", "256")
    try:
        term.expect(r"creating a box of debian +0%")
        term.expect(r"(box_\S+): running +100%\|")
        box_id = term.match.group(1).decode()
        term.expect(pexpect.EOF)
        term.close()
        assert term.exitstatus == 0 and f"\n{box_id}\r\n" in term.before.decode()
    finally:
        cli("rm", "-f", name)
    piped = cli("create", "debian", "-n", name, "-m", "256")  # no terminal: no bar
    cli("rm", "-f", name)
    assert "%|" not in piped.stderr
