"""``boxrun attach`` and ``boxrun shell`` in a real pty: typing, resize, exit codes."""

from __future__ import annotations

import json
import subprocess
import time

import pexpect

from .conftest import Cli

PROMPT = r"[#$] "


def test_attach_types_resizes_and_passes_the_exit_code(cli: Cli, box: str) -> None:
    term = cli.spawn("attach", box, rows=24, cols=80)
    term.expect(PROMPT)
    term.sendline("stty size; echo $((6 * 7))")
    term.expect("24 80")
    term.expect("42")
    term.setwinsize(37, 111)  # the kernel sends SIGWINCH to boxrun
    deadline = time.monotonic() + 20
    while True:  # the resize travels: ask until the box's terminal has it
        term.sendline("stty size")
        try:
            term.expect("37 111", timeout=1)
            break
        except pexpect.TIMEOUT:
            assert time.monotonic() < deadline, term.before
    term.sendcontrol("c")  # raw mode: Ctrl-C goes to the box's shell, not to boxrun
    term.sendline("echo still-here")
    term.expect("still-here")
    term.sendline("exit 9")
    term.expect(pexpect.EOF)
    term.close()
    assert term.exitstatus == 9


def test_attach_with_another_shell_and_errors(cli: Cli, box: str) -> None:
    term = cli.spawn("attach", box, "--shell", "/bin/sh")
    term.expect(PROMPT)
    term.sendline("echo $0")
    term.expect("/bin/sh")
    term.sendline("exit")
    term.expect(pexpect.EOF)
    term.close()
    assert term.exitstatus == 0
    missing = cli("attach", "no-such-box")
    assert missing.returncode == 1 and "BOX_NOT_FOUND" in missing.stderr
    cli.ok("stop", box)
    stopped = cli("attach", box)
    assert stopped.returncode == 1 and "BOX_NOT_RUNNING" in stopped.stderr


def test_shell_removes_its_box_unless_kept(cli: Cli) -> None:
    before = {b["id"] for b in json.loads(cli.ok("ls", "--json"))}
    term = cli.spawn("shell", "debian", "-m", "256", "--cpu", "1")
    term.expect(PROMPT)
    term.sendline("cat /etc/debian_version && exit 4")
    term.expect(pexpect.EOF)
    term.close()
    assert term.exitstatus == 4
    assert {b["id"] for b in json.loads(cli.ok("ls", "--json"))} == before

    term = cli.spawn("shell", "debian", "-n", "kept-shell", "-m", "256", "--keep")
    term.expect(PROMPT)
    term.sendline("touch /root/mark; exit")
    term.expect(pexpect.EOF)
    term.close()
    try:
        assert term.exitstatus == 0
        assert cli.ok("exec", "kept-shell", "--", "ls", "/root/mark") == "/root/mark\n"
    finally:
        cli("rm", "-f", "kept-shell")


def test_attach_with_input_that_is_not_a_terminal(cli: Cli, box: str) -> None:
    piped = cli("attach", box, input="echo piped-$((2 + 3))\nexit 6\n", timeout=60)
    assert piped.returncode == 6 and "piped-5" in piped.stdout
    # input that ends without `exit`: its end reaches the shell (Ctrl-D) and it exits
    ended = cli("attach", box, input="echo no-exit-$((1 + 1))\n", timeout=60)
    assert ended.returncode == 0 and "no-exit-2" in ended.stdout
    nothing = cli("attach", box, stdin=subprocess.DEVNULL, timeout=60)
    assert nothing.returncode == 0
