"""The agent's listen mode, run for real as a process here (it is stdlib only, as in a
box): detached from its starter, one client at a time through the relay command, a
greeting for each, what the interpreter says while no client is attached kept bounded,
and the lines a killed relay took asked for again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from jupyter_ext.sessions import commands

from .agents import copy_agent, execute, reports

#: agent_listen.KEEP_BYTES (a module for the box: it imports the agent as ``agent``).
KEEP_BYTES = 16 << 20


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[str]:
    """A ``python`` agent listening on a socket under ``tmp_path``; its socket path."""
    agent_py = copy_agent(tmp_path)
    path = str(tmp_path / "sessions" / "s1" / "agent.sock")
    cmd = [sys.executable if c == "python3" else c for c in commands.agent_command("python", path)]
    cmd[2] = str(agent_py)
    started = subprocess.run(cmd, capture_output=True, timeout=30, check=True)
    said = json.loads(started.stdout)
    assert said["type"] == "listening" and os.stat(path).st_mode & 0o777 == 0o600
    yield path
    relay(path).communicate(b'{"op": "close"}\n', timeout=30)


def relay(path: str, resume: int | None = None) -> subprocess.Popen[bytes]:
    """A relay to the agent, its first line a ``resume`` from ``resume`` (as the server's)."""
    cmd = [sys.executable if c == "python3" else c for c in commands.relay_command(path)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdin is not None
    proc.stdin.write(json.dumps({"op": "resume", "next": resume}).encode() + b"\n")
    proc.stdin.flush()
    return proc


def drop(proc: subprocess.Popen[bytes]) -> None:
    """Kill a relay (the client goes away) and close its pipes."""
    proc.kill()
    proc.communicate()


def test_greeting_and_output_kept_while_detached(agent: str) -> None:
    first = relay(agent)
    assert first.stdin is not None
    first.stdin.write(execute("x = 42", "a"))
    first.stdin.flush()
    said = reports(first, '"msg_type": "execute_reply"')
    assert said[0] == {"type": "resumed", "next": 0} and said[1]["type"] == "ready"
    # 24 MiB of output while nobody listens: the newest 16 MiB are kept
    first.stdin.write(execute("import time\ntime.sleep(0.5)\n"
                              "for i in range(24 * 1024): print(str(i).rjust(1023, '.'))\n"
                              "print('done', x)", "b"))
    first.stdin.flush()
    time.sleep(0.2)
    drop(first)
    time.sleep(6)
    second = relay(agent)
    got = reports(second, '"done 42\\n"')[1:]
    assert got[0]["type"] == "ready" and got[0]["attached"] is True
    note = got[1]
    assert note["msg_type"] == "stream" and "dropped" in note["content"]["text"]
    assert note["parent_msg_id"] == "b"
    kept = sum(len(json.dumps(r)) for r in got[2:])
    assert KEEP_BYTES // 2 < kept <= KEEP_BYTES + 4096, kept
    drop(second)
    third = relay(agent)
    assert third.stdin is not None
    third.stdin.write(execute("x + 1", "c"))
    third.stdin.flush()
    got = reports(third, '"msg_type": "execute_result"')[1:]
    assert got[0]["attached"] is True and got[-1]["content"]["data"]["text/plain"] == "43"
    drop(third)


def test_resume_after_a_killed_relay(agent: str) -> None:
    """A relay killed in the middle of a cell's output: the next one asks again from the
    last line the server had, and the output comes whole, once, in order."""
    first = relay(agent, 0)
    assert first.stdin is not None and first.stdout is not None
    first.stdin.write(execute("import time\nfor i in range(400):\n    print(i)\n"
                              "    time.sleep(0.005)", "a"))
    first.stdin.flush()
    said = [json.loads(first.stdout.readline()) for _ in range(60)]
    drop(first)  # what it had read but not passed on is lost with it
    start = said[0]["next"]
    numbered = [r for r in said[1:] if not r.get("attached")]
    second = relay(agent, start + len(numbered))
    more = reports(second, '"msg_type": "execute_reply"')
    assert more[0] == {"type": "resumed", "next": start + len(numbered)}
    text = "".join(r["content"]["text"] for r in numbered + more[1:]
                   if r.get("msg_type") == "stream")
    assert text == "".join(f"{i}\n" for i in range(400))
    assert not any("dropped" in str(r.get("content")) for r in more)
    drop(second)
