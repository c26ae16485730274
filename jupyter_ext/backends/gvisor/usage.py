"""CPU time of a sandbox without a cgroup of its own, read from /proc: its Sentry and
the stub processes that run the box's code (ptrace platform) are the sandbox
process and its descendants on the host."""

from __future__ import annotations

import os
from pathlib import Path

PROC = Path("/proc")
_TICKS = os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in (PROC / str(pid) / "task").iterdir():
            found += [int(child) for child in (task / "children").read_text().split()]
    except OSError:
        pass
    return found


def tree_cpu_seconds(pid: int) -> float | None:
    """User and system CPU seconds of ``pid`` and its descendants; None if it is gone."""
    ticks, seen, stack = 0, set(), [pid]
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        try:
            stat = (PROC / str(current) / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            if current == pid:
                return None
            continue
        ticks += int(stat[11]) + int(stat[12])  # utime, stime
        stack += _children(current)
    return ticks / _TICKS
