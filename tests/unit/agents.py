"""The session agent run for real as a host process (it is stdlib only, as in a box)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from jupyter_ext.sessions.install import agent_files


def copy_agent(folder: Path) -> Path:
    """The agent's files copied into ``folder``, as into a box; the path of ``agent.py``."""
    for name, content in agent_files():
        (folder / name).write_bytes(content)
    return folder / "agent.py"


def execute(code: str, msg_id: str) -> bytes:
    """The request line running ``code`` as execute_request ``msg_id``."""
    return json.dumps({"op": "send", "channel": "shell", "msg_type": "execute_request",
                       "msg_id": msg_id, "content": {"code": code}}).encode() + b"\n"


def reports(proc: subprocess.Popen[bytes], until: str) -> list[dict]:
    """Reports up to the first whose line holds ``until``."""
    assert proc.stdout is not None
    got = []
    while line := proc.stdout.readline():
        got.append(json.loads(line))
        if until in line.decode():
            return got
    raise AssertionError(f"the relay ended before {until!r}: {got[-3:]}")
