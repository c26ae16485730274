"""A client command with no server starts ``boxrun serve``; completion scripts parse."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import Cli


@pytest.fixture
def lone_state(tmp_path: Path) -> Iterator[Path]:
    """A state dir no server serves; any server started on it is stopped after."""
    state = tmp_path / "state"
    yield state
    pid_file = state / "server.pid"
    if pid_file.exists() and (pid := pid_file.read_text().strip()).isdigit():
        try:
            os.kill(int(pid), signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.kill(int(pid), 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


def test_a_command_starts_a_server_and_leaves_it_running(lone_state: Path, images_dir: Path) -> None:
    cli = Cli({"BOXRUN_STATE_DIR": str(lone_state), "BOXRUN_IMAGES_DIR": str(images_dir),
               "BOXRUN_BACKEND": os.environ.get("BOXRUN_TEST_BACKEND", "namespace")})
    first = cli("ls")
    assert first.returncode == 0, first.stderr
    assert first.stdout == "No boxes found.\n"
    said = re.search(r"started `boxrun serve` in the background \(pid (\d+), log (.+)\)", first.stderr)
    assert said, first.stderr
    pid, log = int(said[1]), Path(said[2])
    assert log == lone_state / "serve.log" and "BoxRun serving" in log.read_text()
    assert os.getsid(pid) == pid  # its own session: a terminal's hangup does not reach it
    assert (lone_state / "server.pid").read_text().strip() == str(pid)
    # the next command finds it running, says nothing about starting, and it works
    box_id = cli.ok("create", "debian", "-m", "256").strip()
    again = cli("exec", box_id, "--", "echo", "served")
    assert (again.returncode, again.stdout) == (0, "served\n") and "started" not in again.stderr
    os.kill(pid, 0)  # still running after the commands ended
    cli.ok("rm", "-f", box_id)


def test_completion_scripts(cli: Cli, tmp_path: Path) -> None:
    for shell in ("bash", "zsh", "fish"):
        script = cli.ok("completion", shell)
        flag = "-l older-than" if shell == "fish" else "--older-than"
        for word in ("create", "exec", "attach", "completion", flag):
            assert word in script, (shell, word)
        if shutil.which(shell):
            checked = subprocess.run([shell, "-n"], input=script, text=True, capture_output=True)
            assert checked.returncode == 0, (shell, checked.stderr)
    # bash: the script completes for real
    script = tmp_path / "boxrun.bash"
    script.write_text(cli.ok("completion", "bash"))
    probe = (f"source {script}; COMP_WORDS=(boxrun ex); COMP_CWORD=1; _boxrun; echo ${{COMPREPLY[*]}};"
             f" COMP_WORDS=(boxrun exec box --ti); COMP_CWORD=3; _boxrun; echo ${{COMPREPLY[*]}}")
    shown = subprocess.run(["bash", "-c", probe], capture_output=True, text=True).stdout.split("\n")
    assert shown[0].split() == ["exec"] and shown[1].split() == ["--timeout"]
    bad = cli("completion", "tcsh")
    assert bad.returncode == 2
