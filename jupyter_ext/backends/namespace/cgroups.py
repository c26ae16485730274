"""Per-box resource limits: a cgroup (v1 or v2) where the server may make one, else rlimits."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

from ..base import BoxSpec

ROOT = Path("/sys/fs/cgroup")
#: Processes a box may have at once (fork bombs stop there).
PIDS_MAX = 1024
CFS_PERIOD_US = 100_000
#: An empty box group this old was left by a server that was killed (a live box's
#: group always holds its init; a new one is empty only until its first process).
ORPHAN_AGE = 60.0

#: Host-side wrapper: writes its pid to each file before ``--``, then execs the rest,
#: so the command and all it forks (the box's whole process tree) start in the box's group.
JOIN_SCRIPT = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"'


class Limits:
    """No limits: boxes share the host's resources (``/v1/info`` ``limits: "none"``)."""

    mode = "none"

    def setup(self, handle: str, spec: BoxSpec) -> None:
        """Prepare ``handle``'s limits before its first process starts."""

    def wrap(self, handle: str) -> list[str]:
        """Command prefix that puts a box process (init or exec) under the limits."""
        return []

    async def remove(self, handle: str) -> None:
        """Kill what is left of the box and drop its limits. Idempotent."""

    def prune(self) -> None:
        """Drop what killed servers left behind (of any state dir)."""

    def usage(self, handle: str) -> dict[str, float | int | None]:
        """``cpu_seconds``, ``memory_bytes``, ``memory_limit_bytes``, ``pids``, as known."""
        return {}

    def oom_killed(self, handle: str) -> bool:
        """Whether the kernel's OOM killer has killed a process of the box."""
        return False


class Rlimits(Limits):
    """Per-process rlimits through ``prlimit``: address space ≤ ``memory_mb`` and at most
    :data:`PIDS_MAX` processes of box root in the box's user namespace; no CPU bound."""

    mode = "rlimits"

    def __init__(self) -> None:
        self._specs: dict[str, BoxSpec] = {}

    def setup(self, handle: str, spec: BoxSpec) -> None:
        self._specs[handle] = spec

    def wrap(self, handle: str) -> list[str]:
        spec = self._specs.get(handle)
        if spec is None:
            return []
        memory = spec.memory_mb << 20
        return ["prlimit", f"--nproc={PIDS_MAX}", f"--as={memory}", "--"]

    async def remove(self, handle: str) -> None:
        self._specs.pop(handle, None)


class Cgroups(Limits):
    """A ``boxrun/<handle>`` group in each of ``dirs``: the hierarchies' roots (v1: one
    per controller; v2: the unified one)."""

    def __init__(self, dirs: list[Path]) -> None:
        self.dirs = dirs
        #: Control files found, by (handle, name): a cell's usage reads four at each end.
        self._files: dict[tuple[str, str], Path] = {}

    def groups(self, handle: str) -> list[Path]:
        """The box's group in each hierarchy."""
        return [d / "boxrun" / handle for d in self.dirs]

    def setup(self, handle: str, spec: BoxSpec) -> None:
        for group in self.groups(handle):
            group.mkdir(parents=True, exist_ok=True)
        for name, value in self.settings(spec):
            path = self._file(handle, name)
            if path is not None:
                path.write_text(value)

    def wrap(self, handle: str) -> list[str]:
        procs = [str(group / "cgroup.procs") for group in self.groups(handle)]
        return ["/bin/sh", "-c", JOIN_SCRIPT, "join", *procs, "--"]

    async def remove(self, handle: str) -> None:
        for key in [key for key in self._files if key[0] == handle]:
            del self._files[key]
        groups = [g for g in self.groups(handle) if g.is_dir()]
        for _ in range(500):
            for group in groups:
                for pid in _pids(group):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                try:
                    group.rmdir()
                except FileNotFoundError:
                    pass
                except OSError:  # EBUSY until the killed processes are reaped
                    continue
            groups = [g for g in groups if g.is_dir()]
            if not groups:
                return
            await asyncio.sleep(0.01)
        raise OSError(f"cannot remove cgroups {groups}: processes remain")

    def prune(self) -> None:
        for group in (g for d in self.dirs for g in d.glob("boxrun/ns-*")):
            try:
                if not _pids(group) and time.time() - group.stat().st_mtime > ORPHAN_AGE:
                    group.rmdir()
            except OSError:
                continue

    def _file(self, handle: str, name: str) -> Path | None:
        """The first group of ``handle`` with the control file ``name``."""
        found = self._files.get((handle, name))
        if found is None:
            found = next((g / name for g in self.groups(handle) if (g / name).exists()), None)
            if found is not None:
                self._files[handle, name] = found
        return found

    def _read(self, handle: str, name: str) -> str | None:
        path = self._file(handle, name)
        try:
            return path.read_text() if path else None
        except OSError:
            return None

    def settings(self, spec: BoxSpec) -> list[tuple[str, str]]:
        """Control files and values that apply ``spec`` (in writing order)."""
        raise NotImplementedError

    def oom_killed(self, handle: str) -> bool:
        # v1 (kernel 4.13+): memory.oom_control; v2: memory.events
        text = self._read(handle, "memory.oom_control") or self._read(handle, "memory.events")
        counts = dict(line.split()[:2] for line in (text or "").splitlines() if " " in line)
        return counts.get("oom_kill", "0") not in ("0", "")


class CgroupV1(Cgroups):
    """cgroup v1: cfs quota and shares (the box's weight), memory (+memsw) limit,
    pids.max; usage from cpuacct."""

    mode = "cgroup v1"

    def settings(self, spec: BoxSpec) -> list[tuple[str, str]]:
        memory = str(spec.memory_mb << 20)
        return [
            ("cpu.cfs_period_us", str(CFS_PERIOD_US)),
            ("cpu.cfs_quota_us", str(spec.cpu * CFS_PERIOD_US)),
            ("cpu.shares", str(spec.cpu * 1024)),
            ("memory.limit_in_bytes", memory),
            ("memory.memsw.limit_in_bytes", memory),
            ("pids.max", str(PIDS_MAX)),
        ]

    def usage(self, handle: str) -> dict[str, float | int | None]:
        cpu = self._read(handle, "cpuacct.usage")
        memory = self._read(handle, "memory.usage_in_bytes")
        limit = self._read(handle, "memory.limit_in_bytes")
        pids = self._read(handle, "pids.current")
        return {
            "cpu_seconds": int(cpu) / 1e9 if cpu else None,
            "memory_bytes": int(memory) if memory else None,
            "memory_limit_bytes": int(limit) if limit else None,
            "pids": int(pids) if pids else None,
        }


class CgroupV2(Cgroups):
    """cgroup v2: cpu.max and cpu.weight, memory.max with no swap, pids.max in the unified hierarchy."""

    mode = "cgroup v2"

    def setup(self, handle: str, spec: BoxSpec) -> None:
        for folder in (self.dirs[0], self.dirs[0] / "boxrun"):
            folder.mkdir(exist_ok=True)
            (folder / "cgroup.subtree_control").write_text("+cpu +memory +pids")
        super().setup(handle, spec)

    def settings(self, spec: BoxSpec) -> list[tuple[str, str]]:
        return [
            ("cpu.max", f"{spec.cpu * CFS_PERIOD_US} {CFS_PERIOD_US}"),
            ("cpu.weight", str(min(spec.cpu * 100, 10_000))),
            ("memory.max", str(spec.memory_mb << 20)),
            ("memory.swap.max", "0"),
            ("pids.max", str(PIDS_MAX)),
        ]

    def usage(self, handle: str) -> dict[str, float | int | None]:
        stat = dict(line.split() for line in (self._read(handle, "cpu.stat") or "").splitlines())
        memory = self._read(handle, "memory.current")
        limit = (self._read(handle, "memory.max") or "").strip()
        pids = self._read(handle, "pids.current")
        return {
            "cpu_seconds": int(stat["usage_usec"]) / 1e6 if "usage_usec" in stat else None,
            "memory_bytes": int(memory) if memory else None,
            "memory_limit_bytes": int(limit) if limit.isdigit() else None,
            "pids": int(pids) if pids else None,
        }


def _pids(group: Path) -> list[int]:
    try:
        return [int(line) for line in (group / "cgroup.procs").read_text().split()]
    except OSError:
        return []


def _writable(folder: Path) -> bool:
    return folder.is_dir() and os.access(folder, os.W_OK)


def detect(root: Path = ROOT) -> Limits:
    """The strongest limits this host lets the server apply.

    ``BOXRUN_LIMITS=rlimits`` or ``none`` asks for weaker ones (for tests and hosts
    whose cgroups the server must not touch).
    """
    wanted = os.environ.get("BOXRUN_LIMITS", "auto")
    if wanted == "none":
        return Limits()
    if wanted != "rlimits":
        if (root / "cgroup.controllers").exists():
            controllers = (root / "cgroup.controllers").read_text().split()
            if _writable(root) and {"cpu", "memory", "pids"} <= set(controllers):
                return CgroupV2([root])
        else:
            names = ("cpu", "cpuacct", "memory", "pids")
            dirs = list(dict.fromkeys((root / name).resolve() for name in names))
            if all(_writable(d) for d in dirs):
                return CgroupV1(dirs)
    return Rlimits()
