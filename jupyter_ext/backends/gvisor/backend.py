"""The gVisor backend: every box is a ``runsc`` sandbox, its system calls served by
gVisor's user-space kernel (the Sentry), not by the host's."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import secrets
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

from ...core.errors import BoxRunError
from ...core.hostcmd import HOST_ENV, missing, run_checked, tool
from ...images.oci import read_layout
from ...images.store import ImageStore
from ...images.unpack import RootfsCache
from ...images.userns import UserNs
from ..base import BoxSpec, Volume
from ..diskimage import (
    MOUNTPOINT,
    disk_plan,
    disk_problem,
    has_disk,
    make_disk,
    prepare_prefix,
    unenforced,
)
from ..execfiles import ExecFiles
from ..namespace import cgroups
from ..namespace.commands import hidden_in
from . import bundle, checkpoint, compat, latemount, network, warm
from .init import binary
from .launcher import READY, SOCKET, Command, connect
from .process import GvProcess
from .terminal import GvTerminal
from .usage import tree_cpu_seconds
from .warm import WarmTemplates

log = logging.getLogger(__name__)

TOOLS = ("runsc", "unshare", "sh", "mount", "rm")
HANDLE = re.compile(r"gv-[0-9a-f]{16}")
START_TIMEOUT = 60.0
#: Seconds the box's init has to let go of the host before a checkpoint, or to listen
#: again.
LET_GO_TIMEOUT = 10.0
#: Runs as root (rootless: root of a user namespace of the server's), in a mount
#: namespace that only the sandbox (and its gofer) will inherit (with root, the box's
#: disk image already mounted there on ``<box>/disk``): the
#: box's writable layer (``upper``/``work`` in folder ``layer``) over the image on
#: ``<box>/rootfs``, then runsc. The mounts go away with the sandbox; nothing of the box
#: is mounted on the host.
START_SCRIPT = """set -e
box=$1 layer=$2 lower=$3
shift 3
mount -t overlay overlay -o "lowerdir=$lower,upperdir=$layer/upper,workdir=$layer/work" "$box/rootfs"
exec "$@"
"""
#: What a server that is not root loses (it runs ``runsc --rootless``), in words.
ROOTLESS = ("the server is not root: sandboxes run with runsc --rootless, the box's root"
            " is the server's user outside the Sentry, and this runsc refuses checkpoint"
            " and restore in rootless mode")
#: What gVisor boxes give and lack, in words (``/v1/info``).
LIMITATIONS = [
    "boxes run on gVisor's user-space kernel (the Sentry, ptrace platform): the host kernel"
    " sees only the Sentry's own filtered system calls; process start-up and file-heavy"
    " work are several times slower than natively",
    network.WORDS,
    "a gVisor box past its memory limit dies whole (the host kills its Sentry), where the"
    " namespace backend kills only the process",
    "/tmp in a gVisor box is gVisor's tmpfs: counted in the box's memory, empty after a"
    " stop",
    f"at most {bundle.PROCS_MAX} processes per box (RLIMIT_NPROC): the ptrace platform"
    " makes a host process of each",
    compat.WORDS,
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
    """A running box: the host pid of its sandbox process, the task watching it (which
    holds a pidfd of the process until it ends), its memory limit in bytes (None: not
    enforced), and whether no command was started in it since this server booted it (see
    :mod:`.warm`)."""

    pid: int
    watch: asyncio.Task[None]
    memory_limit: int | None
    fresh: bool = False
    pidfd: int | None = None
    #: Its processes are a warm template's, untouched (see :mod:`.warm`).
    warm: bool = False
    #: A spare box, no box's yet (see :mod:`.spares`).
    spare: bool = False

    def kill(self) -> None:
        """SIGKILL the sandbox process unless it ended (through its pidfd: never another
        process that got its pid)."""
        if self.pidfd is not None and not self.watch.done():
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)


class GvisorBackend(ExecFiles):
    """Boxes are OCI bundles under ``<state_dir>/gvisor/<handle>``: ``disk.img`` (a
    sparse ext4 image of ``disk_size_gb`` holding ``upper``/``work``, the writable layer
    kept from stop to start; see :mod:`..diskimage`) or, where the server may not
    loop-mount, ``upper``/``work`` themselves, ``rootfs`` (where the layer is mounted
    over the image for the sandbox only), ``ctl`` (where the box's init listens) and
    ``config.json``. Every command is started by the box's init (``boxrun-gvinit``) over
    a connection to it: no runsc process on the way. Sandboxes run detached from the
    server and outlive it; cpu, memory and pids are limited by runsc's cgroup where the
    server may make one."""

    name: ClassVar[str] = "gvisor"
    isolation: ClassVar[str] = "gvisor"

    def __init__(self, state_dir: Path, images: ImageStore) -> None:
        self.boxes_dir = state_dir / "gvisor"
        self.runsc_root = self.boxes_dir / ".runsc"
        self.rootfs = RootfsCache(self.boxes_dir / ".rootfs", self.boxes_dir / ".locks",
                                  compat.ADDITION)
        self.images = images
        self.rootless = os.geteuid() != 0
        # without root, images are unpacked as the server's user, box root in the Sentry
        self.ids: UserNs = UserNs(None, None) if self.rootless else HostIds(0, 0)
        self._cgroups = cgroups.detect()
        mode = self._cgroups.mode
        self.limits = mode if mode.startswith("cgroup") and not self.rootless else "none"
        self._disk_problem = disk_problem()
        self._network_problem = ("the server is not root: a box's network namespace needs"
                                 " root" if self.rootless else network.problem())
        self.limitations = [*LIMITATIONS, *([ROOTLESS] if self.rootless else []),
                            *([] if self.limits != "none" else [
                                "cpu, memory_mb and the process count are not enforced: the"
                                " server may not make cgroups here (only RLIMIT_NPROC holds)"]),
                            *([unenforced(self._disk_problem)] if self._disk_problem else []),
                            *([f"network: true is refused: {self._network_problem}"]
                              if self._network_problem else [])]
        self._running: dict[str, Sandbox] = {}
        #: Why each box whose sandbox ended by itself ended (until it starts again).
        self._ended: dict[str, str] = {}
        self.warm = WarmTemplates(self)

    @property
    def _runsc(self) -> list[str]:
        flags = [*(["--rootless"] if self.rootless else []),
                 *([] if self.limits != "none" else ["--ignore-cgroups"])]
        return [tool("runsc"), f"--root={self.runsc_root}", "--network=none", *flags,
                "--host-uds=create"]  # the init's socket; never connect to the host's

    async def open(self) -> None:
        """Check the host tools (boxes a server left running are kept: see :meth:`adopt`
        and :meth:`prune`)."""
        if lacking := missing(TOOLS):
            raise BoxRunError("RUNTIME_ERROR", f"missing host tools: {', '.join(lacking)}"
                              " (the gvisor backend needs the runsc package)")
        self.runsc_root.mkdir(parents=True, exist_ok=True)
        self.boxes_dir.chmod(0o700)
        binary()
        await self.rootfs.prune({image.digest for image in self.images.list()})

    async def close(self) -> None:
        """Stop watching the boxes; their sandboxes run on (a next server adopts them)."""
        await self.warm.close()
        for sandbox in self._running.values():
            sandbox.watch.cancel()
        self._running.clear()

    def _box_dir(self, handle: str) -> Path:
        if not HANDLE.fullmatch(handle):
            raise BoxRunError("RUNTIME_ERROR", f"not a gvisor box: {handle!r}")
        return self.boxes_dir / handle

    async def _lower(self, spec: BoxSpec) -> Path:
        if spec.oci_layout is None:
            raise BoxRunError("IMAGE_PULL_FAILED", f"cannot pull {spec.image!r}: the gvisor"
                              " backend runs only images of the local image store")
        return await self.rootfs.get(read_layout(spec.oci_layout), self.ids)

    async def create(self, spec: BoxSpec, spare: bool = True) -> str:
        """Unpack the image if needed and make the box's empty writable layer; or, with
        ``spare``, take a spare box of ``spec``'s shape, if one is ready (see
        :mod:`.spares`)."""
        if spare and (handle := self.warm.spares.take(spec)) is not None:
            return handle
        if spec.network and self._network_problem:
            raise BoxRunError("RUNTIME_ERROR", f"network: true: {self._network_problem}")
        await self._lower(spec)
        handle = f"gv-{secrets.token_hex(8)}"
        box_dir = self._box_dir(handle)
        try:
            box_dir.mkdir(mode=0o700)
            layer = ("upper", "work") if self._disk_problem else ()
            for name in (*layer, "rootfs", "ctl"):
                (box_dir / name).mkdir(mode=0o700)
            if self._disk_problem is None:
                await make_disk(box_dir, spec.disk_size_gb, 0, 0)
        except BaseException:
            await self.remove(handle)
            raise
        return handle

    async def start(self, handle: str, spec: BoxSpec, image: Path | None = None) -> None:
        """Mount the layer and run the sandbox (restored from the checkpoint in ``image``
        if given, see :mod:`.checkpoint`); returns once commands can run."""
        box_dir = self._box_dir(handle)
        if (sandbox := self._running.get(handle)) is not None and sandbox.spare:
            try:
                await self.warm.spares.fit(handle, spec)
            except BoxRunError as err:
                log.warning("box %s: the spare box did not fit, starting anew: %s", handle, err)
                await self.warm.reset(handle, spec)
            return
        if handle in self._running:
            raise BoxRunError("RUNTIME_ERROR", f"box {handle} is already running")
        disk = has_disk(box_dir)
        if not (disk or (box_dir / "upper").is_dir()):
            raise BoxRunError("RUNTIME_ERROR", f"the disk of box {handle} is missing")
        lower = await self._lower(spec)
        hidden = self.hidden(spec)
        # the namespace backend's group folder: its cgroups code reads usage and OOM kills
        cgroup = None if self.limits == "none" else f"/boxrun/{handle}"
        await self._delete(handle)  # a sandbox of the same box that ended by itself
        for name in (SOCKET, READY):  # the previous run's
            (box_dir / "ctl" / name).unlink(missing_ok=True)
        net = await network.Network.start(box_dir) if spec.network else None
        proc = None
        try:
            netns, resolv = (net.netns, str(net.resolv_conf)) if net else (None, None)
            sandboxed, readonly = self._readonly_sources(box_dir, spec, image is not None)
            config = bundle.config(sandboxed, cgroup, str(binary()), str(box_dir / "ctl"),
                                   hidden, netns, resolv)
            (box_dir / "config.json").write_text(json.dumps(config))
            runsc = network.runsc(self._runsc) if net else self._runsc
            layer = box_dir / MOUNTPOINT if disk else box_dir
            pid_file = box_dir / "sandbox.pid"  # the sandbox process's (runsc writes it)
            pid_file.unlink(missing_ok=True)
            # as root: a mount namespace (the disk mounted in it); else a user namespace too
            prefix = ([tool("unshare"), "--user", "--map-root-user", "--mount",
                       "--propagation=private", "--"] if self.rootless
                      else prepare_prefix(disk_plan(box_dir, 0, 0) if disk else None, [],
                                          readonly))
            # under a reaper of its own: the sandbox process is reaped as soon as it ends
            command = [str(binary()), "reap", *prefix, tool("sh"), "-c", START_SCRIPT, "start", str(box_dir),
                       str(layer), str(lower),
                       *runsc, *(["restore", f"--image-path={image}"] if image else ["run"]),
                       "--detach", f"--bundle={box_dir}", f"--pid-file={pid_file}", handle]
            errors = box_dir / "start.err"
            with errors.open("wb") as err:  # the sandbox keeps its stderr: a file, not a pipe
                proc = await asyncio.create_subprocess_exec(
                    *command, env=HOST_ENV, stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.DEVNULL, stderr=err, start_new_session=True)
            async with asyncio.timeout(START_TIMEOUT):
                pid = _read_pid(pid_file) if await proc.wait() == 0 else None
                if pid is not None and image is not None:  # its init let go before
                    await self._runsc_out("kill", handle, "USR2")
                if pid is None or not await _listening(box_dir, pid):
                    raise BoxRunError("RUNTIME_ERROR", "the box failed to start: "
                                      + errors.read_text(errors="replace")[-2000:].strip())
            if net is not None:
                net.bind(pid)
        except BaseException:
            if proc is not None and proc.returncode is None:
                proc.kill()
            await self._delete(handle)  # and the network
            raise
        pidfd = _pidfd(pid)
        watch = asyncio.create_task(self._watch(handle, pidfd))
        self._running[handle] = Sandbox(pid, watch, None if cgroup is None
                                        else spec.memory_mb << 20, fresh=image is None,
                                        pidfd=pidfd)
        self._ended.pop(handle, None)

    def _readonly_sources(self, box_dir: Path, spec: BoxSpec, restore: bool
                          ) -> tuple[BoxSpec, list[list[str]]]:
        """``spec`` as the sandbox gets it, and the read-only binds to make first. A
        restored Sentry enforces read-only only on the mounts of the box it saved (it sees
        the others through the root filesystem), and runsc binds volumes read-write on
        the host: for a restore, each read-only volume is first bound read-only in the
        box's mount namespace (below ``volumes/``), and the sandbox binds that."""
        if not restore or self.rootless:
            return spec, []
        volumes, readonly = [], []
        for i, volume in enumerate(spec.volumes):
            if volume.readonly:
                source = box_dir / "volumes" / str(i)
                source.mkdir(parents=True, exist_ok=True)
                readonly.append([volume.host_path, str(source)])
                volume = replace(volume, host_path=str(source))
            volumes.append(volume)
        return replace(spec, volumes=volumes), readonly

    async def mount_late(self, handle: str, volumes: Sequence[Volume]) -> None:
        """Mount ``volumes`` into running box ``handle`` (see :mod:`.latemount`)."""
        if volumes:
            await run_checked(
                [sys.executable, "-I", "-S", latemount.__file__, str(self.gofer_pid(handle)),
                 *(arg for v in volumes
                   for arg in (v.host_path, v.guest_path, "ro" if v.readonly else "rw"))],
                "mounting the box's volumes")

    def gofer_pid(self, handle: str) -> int:
        """The host pid of the box's gofer (from runsc's state of the sandbox)."""
        try:
            state = json.loads((self.runsc_root / f"{handle}_sandbox:{handle}.state")
                               .read_text())
            return int(state["goferPid"])
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise BoxRunError("RUNTIME_ERROR", f"box {handle} has no gofer: {err!r}") from err

    def hidden(self, spec: BoxSpec) -> list[str]:
        """Where in the box the server's state would show through a volume: covered by an
        empty tmpfs of the Sentry's (which a restore does not add: see :mod:`.warm`)."""
        return hidden_in(spec, (self.boxes_dir.parent, self.images.root))

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

    async def let_go(self, handle: str) -> None:
        """Have the box's init close everything of the host's before a checkpoint: its
        listening socket and the connections of running commands (which go on without
        stdio, reported killed); returns once it has (see ``boxrun-gvinit.c``)."""
        ready = self._box_dir(handle) / "ctl" / READY
        await self._runsc_out("kill", handle, "USR1")
        async with asyncio.timeout(LET_GO_TIMEOUT):
            while ready.exists():
                await asyncio.sleep(0.01)

    async def listen_again(self, handle: str) -> bool:
        """Have the box's init listen again after :meth:`let_go`; whether it does."""
        await self._runsc_out("kill", handle, "USR2")
        async with asyncio.timeout(LET_GO_TIMEOUT):
            return await _listening(self._box_dir(handle), await self._sandbox_pid(handle))

    async def _sandbox_pid(self, handle: str) -> int:
        """The host pid of ``handle``'s sandbox process."""
        state = json.loads(await self._runsc_out("state", handle))
        return int(state["pid"])

    async def _delete(self, handle: str) -> None:
        """Kill and forget ``handle``'s sandbox, if runsc knows one, and end its network.
        Idempotent."""
        if any(self.runsc_root.glob(f"{handle}_sandbox*")):
            try:
                await run_checked([*self._runsc, "delete", "--force", handle],
                                  "deleting the sandbox")
            except BoxRunError as err:
                log.warning("box %s: %s", handle, err)
        await network.stop(self._box_dir(handle))

    async def _watch(self, handle: str, pidfd: int | None) -> None:
        """Wait for the sandbox process (``pidfd``, closed here; None: it has ended) to
        end; if the server did not stop it, clean up and tell the manager."""
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
        self._ended[handle] = ("the box ran out of memory and its sandbox was killed"
                               if self._cgroups.oom_killed(handle) else
                               "the box's sandbox ended by itself (its init was killed, or"
                               " the Sentry failed)")
        await self._delete(handle)
        if self.on_exit is not None:
            self.on_exit(handle, self._ended[handle])

    async def warm_session(self, handle: str, spec: BoxSpec, kind: str, path: str, cwd: str,
                           env: dict[str, str]) -> str | None:
        """Restore fresh box ``handle`` from its image's warm template (see :mod:`.warm`)."""
        return await self.warm.session(handle, spec, kind, path, cwd, env)

    async def snapshot(self, handle: str, spec: BoxSpec, dest_dir: Path) -> bool:
        """A checkpoint of the running box, which goes on from it; with memory."""
        await checkpoint.checkpoint(self, handle, spec, dest_dir)
        return True

    def snapshot_prepare(self, kind: str) -> str | None:
        """ipykernel's IOPub pipe moves off TCP (see :data:`.warm.PREPARE`), once."""
        return warm.PREPARE_ONCE if kind == warm.KIND else None

    async def restore(self, handle: str, spec: BoxSpec, snap_dir: Path) -> None:
        """Stop the box and start it from the checkpoint, on a copy of its layer."""
        await self.stop(handle)
        await checkpoint.restore(self, handle, spec, checkpoint.Checkpoint(snap_dir))

    async def create_from_snapshot(self, spec: BoxSpec, snap_dir: Path) -> str:
        """A new box going on from the checkpoint, with its own copy of the layer."""
        return await checkpoint.create_from(self, spec, checkpoint.Checkpoint(snap_dir))

    async def stop(self, handle: str) -> None:
        """Delete the sandbox (every process of the box ends with it); the layer stays."""
        sandbox = self._running.pop(handle, None)
        if sandbox is None:
            return
        sandbox.kill()  # runsc delete then finds it gone at once (else it polls 0.1 s)
        await self._delete(handle)
        await sandbox.watch  # the sandbox process is gone, and the layer's mount with it

    async def remove(self, handle: str) -> None:
        """Stop the box and delete its layer and bundle."""
        await self.stop(handle)
        self._ended.pop(handle, None)
        await self._delete(handle)  # a sandbox that ended by itself, not yet deleted
        box_dir = self._box_dir(handle)
        if box_dir.exists():
            await run_checked([tool("rm"), "-rf", "--", str(box_dir)], "deleting the box disk")

    async def running(self) -> set[str]:
        """Handles of the boxes whose sandbox is alive."""
        return set(self._running)

    def _check_running(self, handle: str) -> Path:
        if handle not in self._running:
            why = f": {self._ended[handle]}" if handle in self._ended else ""
            raise BoxRunError("RUNTIME_ERROR", f"box {handle} is not running{why}")
        return self._box_dir(handle)

    async def exec(
        self,
        handle: str,
        cmd: Sequence[str],
        env: Mapping[str, str],
        workdir: str,
        stdin: bool = False,
    ) -> GvProcess:
        """Have the box's init start ``cmd`` with exactly ``env`` in ``workdir`` (argv,
        no shell); returns once it runs. RUNTIME_ERROR if ``workdir`` is missing."""
        return GvProcess(await self._start(handle, cmd, env, workdir, stdin))

    async def attach(
        self,
        handle: str,
        cmd: Sequence[str],
        env: Mapping[str, str],
        workdir: str,
        cols: int,
        rows: int,
    ) -> GvTerminal:
        """Start ``cmd`` on a new terminal of the Sentry (a pty the box's init opens)."""
        return GvTerminal(await self._start(handle, cmd, env, workdir, True, (cols, rows)))

    async def _start(self, handle: str, cmd: Sequence[str], env: Mapping[str, str],
                     workdir: str, stdin: bool, size: tuple[int, int] | None = None) -> Command:
        box_dir = self._check_running(handle)
        self._running[handle].fresh = False
        return await Command.start(box_dir / "ctl", cmd, env, workdir, stdin, size)

    async def adopt(self, handle: str) -> bool:
        """Serve a box whose sandbox a previous server left running: True if it runs
        and its init answers (the box is then watched again), else False."""
        try:
            box_dir = self._box_dir(handle)
            state = json.loads(await self._runsc_out("state", handle))
        except (BoxRunError, ValueError):
            return False
        if state.get("status") != "running" or not isinstance(state.get("pid"), int):
            await self._delete(handle)
            return False
        try:
            (await connect(box_dir / "ctl")).close()
        except OSError:
            log.warning("box %s: its sandbox runs but its init does not answer; deleted",
                        handle)
            await self._delete(handle)
            return False
        try:
            limits = json.loads((box_dir / "config.json").read_text())["linux"]
            memory_limit = limits.get("resources", {}).get("memory", {}).get("limit")
        except (OSError, ValueError, KeyError):
            memory_limit = None
        pidfd = _pidfd(state["pid"])
        watch = asyncio.create_task(self._watch(handle, pidfd))
        self._running[handle] = Sandbox(state["pid"], watch, memory_limit, pidfd=pidfd)
        return True

    async def prune(self, keep: set[str]) -> None:
        """Delete the boxes (sandboxes, layers) of this backend not in ``keep``."""
        sandboxes = {path.name.partition("_sandbox")[0]
                     for path in self.runsc_root.glob("gv-*_sandbox*")}
        for handle in sandboxes | {path.name for path in self.boxes_dir.glob("gv-*")}:
            if handle not in keep and HANDLE.fullmatch(handle):
                await self.remove(handle)

    async def metrics(self, handle: str) -> dict[str, float | int | None]:
        """CPU, memory and host tasks from the sandbox's cgroup, else memory and tasks as
        ``runsc events --stats`` reports (a runsc process: tens of ms; its cpu figure is
        then the enclosing cgroup's) and cpu from the sandbox's host processes."""
        self._check_running(handle)
        usage = self._cgroups.usage(handle)
        net = network.counters(self._box_dir(handle))
        if usage.get("cpu_seconds") is not None:
            return {**usage, **net}
        limit = self._running[handle].memory_limit
        stats = json.loads(await self._runsc_out("events", "--stats", handle))["data"]
        memory = stats.get("memory", {}).get("usage", {})
        return {"cpu_seconds": tree_cpu_seconds(self._running[handle].pid),
                "memory_bytes": memory.get("usage"),
                "memory_limit_bytes": limit,
                "pids": stats.get("pids", {}).get("current"), **net}


def _pidfd(pid: int) -> int | None:
    """A pidfd of process ``pid``; None if it has ended."""
    try:
        return os.pidfd_open(pid)
    except ProcessLookupError:
        return None


def _read_pid(path: Path) -> int | None:
    """The pid runsc wrote to ``path``; None if it wrote none."""
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


async def _listening(box_dir: Path, pid: int) -> bool:
    """Wait until the box's init listens; False if its sandbox (host ``pid``) ended first."""
    delay = 0.001
    while not (box_dir / "ctl" / READY).exists():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.01)
    return True
