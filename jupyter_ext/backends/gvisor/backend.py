"""The gVisor backend: every box is a ``runsc`` sandbox, its system calls served by
gVisor's user-space kernel (the Sentry), not by the host's."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from ...core.errors import BoxRunError
from ...core.hostcmd import HOST_ENV, missing, run_checked, tool
from ...images.oci import read_layout
from ...images.store import ImageStore
from ...images.unpack import RootfsCache
from ...images.userns import UserNs
from ..base import BoxSpec
from ..execfiles import ExecFiles
from ..namespace import cgroups
from ..namespace.commands import hidden_in
from . import bundle
from .process import GvProcess

log = logging.getLogger(__name__)

TOOLS = ("runsc", "unshare", "sh", "mount", "rm")
HANDLE = re.compile(r"gv-[0-9a-f]{16}")
START_TIMEOUT = 60.0
#: Runs as root on the host, in a mount namespace that only the sandbox (and its gofer)
#: will inherit: the box's writable layer over the image on ``<box>/rootfs``, then runsc.
#: The mount goes away with the sandbox; nothing of the box is mounted on the host.
START_SCRIPT = """set -e
box=$1 lower=$2
shift 2
mount -t overlay overlay -o "lowerdir=$lower,upperdir=$box/upper,workdir=$box/work" "$box/rootfs"
exec "$@"
"""
#: runsc's words for a command it could not find (the command then exits 127).
NOT_FOUND = (b"error finding executable", b"failed to load")
#: What gVisor boxes give and lack, in words (``/v1/info``).
LIMITATIONS = [
    "boxes run on gVisor's user-space kernel (the Sentry, ptrace platform): the host kernel"
    " sees only the Sentry's own filtered system calls; process start-up and file-heavy"
    " work are several times slower than natively",
    "network: true is not supported on gVisor yet: boxes have loopback only",
    "disk_size_gb is not enforced: gVisor boxes' writable layer shares the state dir's"
    " disk",
    "a gVisor box past its memory limit dies whole (the host kills its Sentry), where the"
    " namespace backend kills only the process",
    "no interactive terminals (attach) on gVisor yet",
    "/tmp in a gVisor box is gVisor's tmpfs: counted in the box's memory, empty after a"
    " stop",
    f"at most {bundle.PROCS_MAX} processes per box (RLIMIT_NPROC): the ptrace platform"
    " makes a host process of each",
    "this runsc (2022) refuses statx with AT_NO_AUTOMOUNT: coreutils' ls -l and stat"
    " report 'Invalid argument' (Python's os.stat works)",
]


@dataclass(frozen=True)
class HostIds(UserNs):
    """Images unpacked with their own owners by the server (root) itself: gVisor
    serves the files to the box as they are, and box root is root only in the Sentry."""

    @property
    def key(self) -> str:
        return "host"

    def admin(self, slot: int = 0) -> list[str]:
        return []


@dataclass
class Sandbox:
    """A running box: the host pid of its sandbox process, the task watching it and its
    memory limit in bytes (None: not enforced)."""

    pid: int
    watch: asyncio.Task[None]
    memory_limit: int | None


class GvisorBackend(ExecFiles):
    """Boxes are OCI bundles under ``<state_dir>/gvisor/<handle>``: ``upper``/``work``
    (the writable layer, kept from stop to start), ``rootfs`` (where the layer is mounted
    over the image for the sandbox only) and ``config.json``. Every command is a
    ``runsc exec`` into the box's sandbox; cpu, memory and pids are limited by runsc's
    cgroup where the server may make one."""

    name: ClassVar[str] = "gvisor"
    isolation: ClassVar[str] = "gvisor"

    def __init__(self, state_dir: Path, images: ImageStore) -> None:
        self.boxes_dir = state_dir / "gvisor"
        self.runsc_root = self.boxes_dir / ".runsc"
        self.rootfs = RootfsCache(self.boxes_dir / ".rootfs", self.boxes_dir / ".locks")
        self.images = images
        self.ids = HostIds(0, 0)
        self._cgroups = cgroups.detect()
        mode = self._cgroups.mode
        self.limits = mode if mode.startswith("cgroup") else "none"
        self.limitations = [*LIMITATIONS, *([] if self.limits != "none" else [
            "cpu, memory_mb and the process count are not enforced: the server may not"
            " make cgroups here"])]
        self._running: dict[str, Sandbox] = {}

    @property
    def _runsc(self) -> list[str]:
        flags = [] if self.limits != "none" else ["--ignore-cgroups"]
        return [tool("runsc"), f"--root={self.runsc_root}", "--network=none", *flags]

    async def open(self) -> None:
        """Check the host tools; delete sandboxes a killed server left behind."""
        if lacking := missing(TOOLS):
            raise BoxRunError("RUNTIME_ERROR", f"missing host tools: {', '.join(lacking)}"
                              " (the gvisor backend needs the runsc package)")
        if os.geteuid() != 0:
            raise BoxRunError("RUNTIME_ERROR", "the gvisor backend needs a server run as root")
        self.runsc_root.mkdir(parents=True, exist_ok=True)
        self.boxes_dir.chmod(0o700)
        for box_dir in self.boxes_dir.glob("gv-*"):
            await self._delete(box_dir.name)
        await self.rootfs.prune({image.digest for image in self.images.list()})

    async def close(self) -> None:
        """Stop every box still running."""
        await asyncio.gather(*(self.stop(handle) for handle in list(self._running)))

    def _box_dir(self, handle: str) -> Path:
        if not HANDLE.fullmatch(handle):
            raise BoxRunError("RUNTIME_ERROR", f"not a gvisor box: {handle!r}")
        return self.boxes_dir / handle

    async def _lower(self, spec: BoxSpec) -> Path:
        if spec.oci_layout is None:
            raise BoxRunError("IMAGE_PULL_FAILED", f"cannot pull {spec.image!r}: the gvisor"
                              " backend runs only images of the local image store")
        return await self.rootfs.get(read_layout(spec.oci_layout), self.ids)

    async def create(self, spec: BoxSpec) -> str:
        """Unpack the image if needed and make the box's empty writable layer."""
        if spec.network:
            raise BoxRunError("RUNTIME_ERROR", "network: true is not supported on the gvisor"
                              " backend yet (boxes have loopback only); use network: false")
        await self._lower(spec)
        handle = f"gv-{secrets.token_hex(8)}"
        box_dir = self._box_dir(handle)
        try:
            box_dir.mkdir(mode=0o700)
            for name in ("upper", "work", "rootfs", "exec"):
                (box_dir / name).mkdir(mode=0o700)
        except BaseException:
            await self.remove(handle)
            raise
        return handle

    async def start(self, handle: str, spec: BoxSpec) -> None:
        """Mount the layer and run the sandbox; returns once commands can run."""
        box_dir = self._box_dir(handle)
        if handle in self._running:
            raise BoxRunError("RUNTIME_ERROR", f"box {handle} is already running")
        if not (box_dir / "upper").is_dir():
            raise BoxRunError("RUNTIME_ERROR", f"the disk of box {handle} is missing")
        lower = await self._lower(spec)
        hidden = hidden_in([(v.host_path, v.guest_path, v.readonly) for v in spec.volumes],
                           [os.path.realpath(v.host_path) for v in spec.volumes],
                           [os.path.realpath(self.boxes_dir.parent),
                            os.path.realpath(self.images.root)])
        # the namespace backend's group folder: its cgroups code reads usage and OOM kills
        cgroup = None if self.limits == "none" else f"/boxrun/{handle}"
        (box_dir / "config.json").write_text(json.dumps(bundle.config(spec, cgroup, hidden)))
        await self._delete(handle)  # a sandbox of the same box that ended by itself
        command = [tool("unshare"), "--mount", "--propagation=private", "--",
                   tool("sh"), "-c", START_SCRIPT, "start", str(box_dir), str(lower),
                   *self._runsc, "run", "--detach", f"--bundle={box_dir}", handle]
        errors = box_dir / "start.err"
        with errors.open("wb") as err:  # the sandbox keeps its stderr: a file, not a pipe
            proc = await asyncio.create_subprocess_exec(
                *command, env=HOST_ENV, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL, stderr=err, start_new_session=True)
        try:
            code = await asyncio.wait_for(proc.wait(), START_TIMEOUT)
            if code != 0:
                raise BoxRunError("RUNTIME_ERROR", "the box failed to start: "
                                  + errors.read_text(errors="replace")[-2000:].strip())
            pid = await self._sandbox_pid(handle)
        except BaseException:
            if proc.returncode is None:
                proc.kill()
            await self._delete(handle)
            raise
        watch = asyncio.create_task(self._watch(handle, pid))
        self._running[handle] = Sandbox(pid, watch, None if cgroup is None else spec.memory_mb << 20)

    async def _runsc_out(self, *args: str) -> bytes:
        """stdout of ``runsc ARGS``; RUNTIME_ERROR quoting its stderr if it fails."""
        proc = await asyncio.create_subprocess_exec(
            *self._runsc, *args, env=HOST_ENV, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
        if proc.returncode != 0:
            raise BoxRunError("RUNTIME_ERROR", f"runsc {args[0]} failed: "
                              f"{err.decode(errors='replace')[-1000:].strip()}")
        return out

    async def _sandbox_pid(self, handle: str) -> int:
        """The host pid of ``handle``'s sandbox process."""
        state = json.loads(await self._runsc_out("state", handle))
        return int(state["pid"])

    async def _delete(self, handle: str) -> None:
        """Kill and forget ``handle``'s sandbox, if runsc knows one. Idempotent."""
        if not any(self.runsc_root.glob(f"{handle}_sandbox*")):
            return
        try:
            await run_checked([*self._runsc, "delete", "--force", handle], "deleting the sandbox")
        except BoxRunError as err:
            log.warning("box %s: %s", handle, err)

    async def _watch(self, handle: str, pid: int) -> None:
        """Wait for the sandbox process to end; if the server did not stop it, clean up
        and tell the manager."""
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            pidfd = None
        if pidfd is not None:
            ended = asyncio.get_running_loop().create_future()
            asyncio.get_running_loop().add_reader(pidfd, ended.set_result, None)
            try:
                await ended
            finally:
                asyncio.get_running_loop().remove_reader(pidfd)
                os.close(pidfd)
        sandbox = self._running.get(handle)
        if sandbox is None or sandbox.watch is not asyncio.current_task():
            return  # stopped by the server
        del self._running[handle]
        oom = self._cgroups.oom_killed(handle)
        await self._delete(handle)
        if self.on_exit is not None:
            self.on_exit(handle, "the box ran out of memory and its sandbox was killed" if oom
                         else "the box's sandbox ended by itself (its init was killed, or the"
                              " Sentry failed)")

    async def stop(self, handle: str) -> None:
        """Delete the sandbox (every process of the box ends with it); the layer stays."""
        sandbox = self._running.pop(handle, None)
        if sandbox is None:
            return
        await self._delete(handle)
        await sandbox.watch  # the sandbox process is gone, and the layer's mount with it

    async def remove(self, handle: str) -> None:
        """Stop the box and delete its layer and bundle."""
        await self.stop(handle)
        await self._delete(handle)  # a sandbox that ended by itself, not yet deleted
        box_dir = self._box_dir(handle)
        if box_dir.exists():
            await run_checked([tool("rm"), "-rf", "--", str(box_dir)], "deleting the box disk")

    async def running(self) -> set[str]:
        """Handles of the boxes whose sandbox is alive."""
        return set(self._running)

    def _check_running(self, handle: str) -> Path:
        if handle not in self._running:
            raise BoxRunError("RUNTIME_ERROR", f"box {handle} is not running")
        return self._box_dir(handle)

    async def exec(
        self,
        handle: str,
        cmd: Sequence[str],
        env: Mapping[str, str],
        workdir: str,
        stdin: bool = False,
    ) -> GvProcess:
        """``runsc exec`` of ``cmd`` with exactly ``env`` in ``workdir`` (argv, no shell);
        returns once it runs in the box. RUNTIME_ERROR if ``workdir`` is missing."""
        box_dir = self._check_running(handle)
        pid_file = box_dir / "exec" / f"{secrets.token_hex(8)}.pid"
        args = [*self._runsc, "exec", f"--internal-pid-file={pid_file}", f"--cwd={workdir}",
                *(f"--env={key}={value}" for key, value in env.items()), handle, *cmd]
        proc = await asyncio.create_subprocess_exec(
            *args, env=HOST_ENV,
            stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            start_new_session=True, limit=1 << 16)
        try:
            pid = await self._started(proc, pid_file)
        except BaseException:
            if proc.returncode is None:
                proc.kill()
            raise
        finally:
            pid_file.unlink(missing_ok=True)
        if pid is not None:
            watch = self._running[handle].watch
            return GvProcess(proc, lambda: self._kill(handle, pid),
                             sandbox_ended=lambda: _ends_soon(watch))
        assert proc.stderr is not None
        err = await proc.stderr.read(65536)
        if any(words in err for words in NOT_FOUND):
            return GvProcess(proc, None, 127, err)
        raise BoxRunError("RUNTIME_ERROR", f"cannot run {cmd[0] if cmd else ''!r} in "
                          f"{workdir!r}: {err.decode(errors='replace').strip()[-1000:]}")

    @staticmethod
    async def _started(proc: asyncio.subprocess.Process, pid_file: Path) -> int | None:
        """The command's pid in the sandbox once runsc wrote it; None if runsc ended
        without starting it."""
        delay = 0.001
        while True:
            try:
                text = pid_file.read_text()
            except FileNotFoundError:
                text = ""
            if text.strip().isdigit():
                return int(text)
            if proc.returncode is not None:
                return None
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.02)

    async def _kill(self, handle: str, pid: int) -> None:
        if handle not in self._running:
            return  # the sandbox is gone, and the command with it
        proc = await asyncio.create_subprocess_exec(
            *self._runsc, "kill", f"--pid={pid}", handle, "KILL", env=HOST_ENV,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL)
        await proc.wait()

    async def metrics(self, handle: str) -> dict[str, float | int | None]:
        """CPU, memory and host tasks from the sandbox's cgroup, else as ``runsc events
        --stats`` reports (a runsc process: tens of ms)."""
        self._check_running(handle)
        usage = self._cgroups.usage(handle)
        if usage.get("cpu_seconds") is not None:
            return {**usage, "net_rx_bytes": 0, "net_tx_bytes": 0}
        limit = self._running[handle].memory_limit
        stats = json.loads(await self._runsc_out("events", "--stats", handle))["data"]
        memory = stats.get("memory", {}).get("usage", {})
        return {"cpu_seconds": stats.get("cpu", {}).get("usage", {}).get("total", 0) / 1e9,
                "memory_bytes": memory.get("usage"),
                "memory_limit_bytes": limit,
                "pids": stats.get("pids", {}).get("current"),
                "net_rx_bytes": 0, "net_tx_bytes": 0}



async def _ends_soon(watch: asyncio.Task[None], within: float = 5.0) -> bool:
    """Whether the sandbox ``watch`` waits for ends within ``within`` seconds (asked only
    when runsc exits 128: a command exiting 128 itself costs that wait)."""
    try:
        await asyncio.wait_for(asyncio.shield(watch), within)
    except TimeoutError:
        return False
    except asyncio.CancelledError:
        if not watch.cancelled():
            raise
    return True
