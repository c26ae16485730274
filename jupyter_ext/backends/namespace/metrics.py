"""Usage of a namespace box read from /proc: its network counters and, without a
cgroup, the sums over the processes of its pid namespace."""

from __future__ import annotations

import os
from pathlib import Path

PROC = Path("/proc")
_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def net_bytes(pid: int) -> dict[str, int]:
    """Bytes received and sent by every interface but ``lo`` in ``pid``'s netns."""
    rx = tx = 0
    try:
        lines = (PROC / str(pid) / "net" / "dev").read_text().splitlines()[2:]
    except OSError:
        return {}
    for line in lines:
        name, _, counters = line.partition(":")
        if name.strip() != "lo":
            fields = counters.split()
            rx, tx = rx + int(fields[0]), tx + int(fields[8])
    return {"net_rx_bytes": rx, "net_tx_bytes": tx}


def _namespace(pid: int | str) -> str | None:
    try:
        return os.readlink(PROC / str(pid) / "ns" / "pid")
    except OSError:
        return None


def process_usage(pid: int) -> dict[str, float | int | None]:
    """CPU seconds, resident bytes and count of the processes in ``pid``'s pid namespace."""
    namespace = _namespace(pid)
    if namespace is None:
        return {}
    ticks = pages = count = 0
    for entry in PROC.iterdir():
        if not entry.name.isdigit() or _namespace(entry.name) != namespace:
            continue
        try:
            stat = (entry / "stat").read_text().rpartition(")")[2].split()
            pages += int((entry / "statm").read_text().split()[1])
        except OSError:
            continue
        ticks += int(stat[11]) + int(stat[12])  # utime, stime
        count += 1
    return {"cpu_seconds": ticks / _TICKS, "memory_bytes": pages * _PAGE, "pids": count}
