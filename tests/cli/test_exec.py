"""``boxrun exec|logs|run``: output streamed apart, exit codes passed on, Ctrl-C cancels."""

from __future__ import annotations

import json
import re
import subprocess
import time

import pexpect

from ..servers import ServerProcess
from .conftest import BOXRUN, Cli


def test_exit_code_and_streams_kept_apart(cli: Cli, box: str) -> None:
    done = cli("exec", box, "--", "sh", "-c", "echo to-out; echo to-err >&2; exit 7")
    assert done.returncode == 7
    assert done.stdout == "to-out\n" and done.stderr == "to-err\n"
    assert cli("exec", box, "--", "false").returncode == 1
    assert cli("exec", box, "--", "sh", "-c", "kill -9 $$").returncode == 137


def test_env_workdir_and_options_after_the_box(cli: Cli, box: str) -> None:
    shown = cli.ok("exec", box, "-e", "A=1", "--env", "B=two words", "-w", "/etc", "--",
                   "sh", "-c", 'echo "$A|$B|$(pwd)"')
    assert shown == "1|two words|/etc\n"
    # the command's own flags and a later -- are the command's
    assert cli.ok("exec", box, "--", "printf", "%s,", "-t", "--", "x") == "-t,--,x,"


def test_timeout_kills_and_fails(cli: Cli, box: str) -> None:
    started = time.monotonic()
    done = cli("exec", box, "-t", "1", "--", "sleep", "30")
    assert done.returncode == 137 and time.monotonic() - started < 20  # killed
    assert "boxrun: timed out after 1000 ms" in done.stderr


def test_output_comes_as_it_is_written(cli: Cli, box: str) -> None:
    term = cli.spawn("exec", box, "--", "sh", "-c", "echo first; sleep 3; echo second")
    term.expect("first")
    first_at = time.monotonic()
    term.expect("second")
    assert time.monotonic() - first_at > 2  # "first" was shown before the sleep ended
    term.expect(pexpect.EOF)
    term.close()
    assert term.exitstatus == 0


def test_ctrl_c_cancels_the_exec(cli: Cli, server: ServerProcess, box: str) -> None:
    term = cli.spawn("exec", box, "--", "sh", "-c", "echo ready; sleep 60")
    term.expect("ready")
    term.sendintr()
    term.expect("canceled (exec_[A-Za-z0-9_-]+)")
    exec_id = term.match.group(1).decode()
    term.expect(pexpect.EOF)
    term.close()
    assert term.exitstatus == 130
    box_id = json.loads(cli.ok("info", box))["id"]
    with server.http() as http:
        assert http.get(f"/v1/boxes/{box_id}/exec/{exec_id}").json()["status"] == "canceled"


def test_detach_then_logs_replays(cli: Cli, box: str) -> None:
    exec_id = cli.ok("exec", box, "-d", "--", "sh", "-c", "echo out; echo err >&2; exit 3").strip()
    assert exec_id.startswith("exec_")
    replay = cli("logs", box, exec_id)  # waits for the end if it still runs
    assert (replay.returncode, replay.stdout, replay.stderr) == (3, "out\n", "err\n")
    assert cli("logs", box, exec_id).stdout == "out\n"  # again, the same
    missing = cli("logs", box, "exec_nosuchexec00")
    assert missing.returncode == 1 and "EXEC_NOT_FOUND" in missing.stderr


def test_run_a_throwaway_box(cli: Cli) -> None:
    before = json.loads(cli.ok("ls", "--json"))
    done = cli("run", "debian", "-d", "2", "--", "sh", "-c", "cat /etc/debian_version; echo e >&2; exit 5")
    assert done.returncode == 5 and done.stdout.strip()[0].isdigit() and done.stderr == "e\n"
    timed = cli("run", "debian", "-t", "1", "--", "sleep", "30")
    assert timed.returncode == 137 and "timed out" in timed.stderr
    assert json.loads(cli.ok("ls", "--json")) == before  # removed, whatever the end


def test_a_closed_pipe_cancels_the_exec(cli: Cli, box: str) -> None:
    piped = subprocess.run(
        ["bash", "-c", 'set -o pipefail; "$@" | head -n 2', "bash", *BOXRUN,
         "exec", box, "--", "sh", "-c", "while :; do echo line; done"],
        env=cli.env, capture_output=True, text=True, timeout=60)
    assert piped.returncode == 141 and piped.stdout == "line\nline\n"
    assert re.search(r"boxrun: canceled exec_", piped.stderr), piped.stderr
