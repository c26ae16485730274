"""The namespace backend: boxes as bubblewrap sandboxes in user namespaces of their own."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import secrets
import select
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from ...core.boxlog import BoxLog
from ...core.errors import BoxRunError
from ...core.hostcmd import HOST_ENV, missing, run_checked, tool
from ...images.oci import read_layout
from ...images.store import ImageStore
from ...images.unpack import RootfsCache
from ...images.userns import RANGE, UserNs, detect
from ..base import BoxSpec
from ..diskimage import disk_plan, disk_problem, make_disk, prepare_prefix, unenforced
from ..execfiles import ExecFiles
from . import cgroups, commands, snapshot
from .adoption import Child, Records, open_process
from .fdio import fd_ready, read_some
from .init import binary
from .launcher import Launcher, close_all
from .metrics import net_bytes, process_usage
from .network import Slirp
from .process import NsProcess
from .seccomp import box_filter
from .terminal import NsTerminal, open_pty, open_terminal

log = logging.getLogger(__name__)

START_TIMEOUT = 30.0
#: Seconds a stopped box's host processes get to end (then they are killed) and its
#: stderr to reach its end (then it is no longer logged).
END_TIMEOUT = 5.0
TOOLS = ("unshare", "bwrap", "mount", "sh", "ip", "rm")
#: ``ns-<hex>`` (ids of slot 0, the images') or ``ns-<slot>-<hex>``.
HANDLE = re.compile(r"ns-(?:(\d{1,6})-)?[0-9a-f]{16}")


@dataclass
class Sandbox:
    """A running box: the host pid of its first process and a pidfd of it, its init's
    control socket; and, if this server started it, its bwrap (whose stderr the server
    logs), holder and slirp4netns processes."""

    pid: int
    pidfd: int
    slot: int
    launcher: Launcher
    watch: asyncio.Task[None] | None = None
    proc: Child | None = None
    holder: Child | None = None
    slirp: Slirp | None = None
    drain: asyncio.Task[None] | None = None


class NamespaceBackend(ExecFiles):
    """Boxes are overlay-mounted image copies under ``<state_dir>/boxes/<handle>``.

    Box ids are a slot of the server user's subordinate range (see
    :mod:`~jupyter_ext.images.userns`); every command of a box is started inside it by
    its first process, ``boxrun-init`` (see :mod:`.launcher`), with Docker's default
    capabilities less ``CAP_NET_RAW``, no_new_privs and a seccomp filter
    (:mod:`.seccomp`); a box has its own network namespace (:mod:`.network`). Boxes
    outlive the server: the next one adopts them (see :mod:`.adoption`). ``cpu`` and
    ``memory_mb`` are enforced as :func:`.cgroups.detect` finds possible;
    ``disk_size_gb`` when the server may loop-mount: the writable layer is then in
    ``<box>/disk.img``, a sparse ext4 image mounted on ``<box>/disk`` in the box's own
    mount namespace only.
    """

    name: ClassVar[str] = "namespace"
    isolation: ClassVar[str] = "namespace"

    def __init__(self, state_dir: Path, images: ImageStore, userns: UserNs | None = None):
        self.boxes_dir = state_dir / "boxes"
        self.rootfs = RootfsCache(self.boxes_dir / ".rootfs", self.boxes_dir / ".locks")
        self.images = images
        self.userns = userns or detect()
        self._limits = cgroups.detect()
        self.limits = self._limits.mode
        self._disk_problem = disk_problem()
        self._network_problem = ("missing host tool slirp4netns (package slirp4netns)"
                                 if missing(("slirp4netns",)) else None)
        self.limitations = [*self.userns.limitations,
                            *_limitations(self.limits, self._disk_problem),
                            *([f"network: true is refused: {self._network_problem}"]
                              if self._network_problem else []),
                            SHARED_KERNEL]
        self.records = Records(self.boxes_dir / ".ctl")
        self._running: dict[str, Sandbox] = {}

    async def open(self) -> None:
        """Check the host tools, build ``boxrun-init`` if needed, make ``boxes/``."""
        tools = (*TOOLS, "prlimit") if self.limits == "rlimits" else TOOLS
        if lacking := missing(tools):
            raise BoxRunError("RUNTIME_ERROR", f"missing host tools: {', '.join(lacking)}")
        self._init = binary()
        box_filter()
        self.boxes_dir.mkdir(parents=True, exist_ok=True)
        self.boxes_dir.chmod(0o711)  # box root only passes through
        self.records.make()
        self._limits.prune()
        await self.rootfs.prune({image.digest for image in self.images.list()})

    async def close(self) -> None:
        """Let go of every running box, leaving it running (see :mod:`.adoption`)."""
        sandboxes = list(self._running.values())
        self._running.clear()
        tasks = [t for s in sandboxes for t in (s.watch, s.drain) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for sandbox in sandboxes:
            if sandbox.slirp is not None:
                sandbox.slirp.detach()
            sandbox.launcher.close()
            os.close(sandbox.pidfd)

    async def adopt(self, handle: str) -> bool:
        """Take over a box the last server left running: its first process (by its
        record) and its init's control socket (from its holder)."""
        self._box_dir(handle)
        record = self.records.load(handle)
        pidfd = None if record is None else open_process(record)
        if record is None or pidfd is None:
            await self._reap(handle)
            return False
        try:
            ctl = await self.records.fetch(handle)
        except OSError as exc:
            log.warning("box %s runs but cannot be adopted: %s", handle, exc)
            os.close(pidfd)
            await self._reap(handle)
            return False
        sandbox = Sandbox(record.pid, pidfd, self._slot(handle), Launcher(ctl))
        self._running[handle] = sandbox
        sandbox.watch = asyncio.create_task(self._watch(handle, sandbox))
        return True

    async def prune(self, keep: set[str]) -> None:
        """Delete every box folder, sandbox and record no handle of ``keep`` names."""
        for box_dir in self.boxes_dir.glob("ns-*"):
            if box_dir.name not in keep and HANDLE.fullmatch(box_dir.name):
                log.info("removing box %s: no box of the database owns it", box_dir.name)
                await self.remove(box_dir.name)
        for handle in self.records.handles() - keep:
            await self._reap(handle)

    @property
    def box_uid_ranges(self) -> int | None:  # type: ignore[override]
        """How many boxes may exist at once, each with host ids of its own (None: every
        box has the images' ids, and their number is not bounded by ids)."""
        return self.userns.slots or None

    def _box_dir(self, handle: str) -> Path:
        if not HANDLE.fullmatch(handle):
            raise BoxRunError("RUNTIME_ERROR", f"not a namespace box: {handle!r}")
        return self.boxes_dir / handle

    @staticmethod
    def _slot(handle: str) -> int:
        match = HANDLE.fullmatch(handle)
        return int(match.group(1) or 0) if match else 0

    def _free_slot(self) -> int:
        """The lowest slot no box has (0 when boxes share the images' ids)."""
        if not self.userns.slots:
            return 0
        used = {self._slot(path.name) for path in self.boxes_dir.glob("ns-*")}
        free = next((s for s in range(1, self.userns.slots + 1) if s not in used), None)
        if free is None:
            raise BoxRunError("RESOURCE_EXCEEDED", f"all {self.userns.slots} uid ranges of"
                              " the server's subordinate ids are taken: remove a box, or give"
                              " the server's user a larger range in /etc/subuid and /etc/subgid")
        return free

    async def _rootfs(self, spec: BoxSpec) -> Path:
        if spec.oci_layout is None:
            raise BoxRunError("IMAGE_PULL_FAILED", f"cannot pull {spec.image!r}: the namespace"
                              " backend runs only images of the local image store")
        return await self.rootfs.get(read_layout(spec.oci_layout), self.userns)

    async def create(self, spec: BoxSpec) -> str:
        """Unpack the image if needed and make the box's empty writable layer."""
        if spec.network and self._network_problem:
            raise BoxRunError("RUNTIME_ERROR", f"network: true: {self._network_problem}")
        await self._rootfs(spec)
        slot = self._free_slot()
        handle = f"ns-{slot}-{secrets.token_hex(8)}" if slot else f"ns-{secrets.token_hex(8)}"
        box_dir = self._box_dir(handle)
        box_dir.mkdir()  # claims the slot before any await: creates run concurrently
        try:
            await run_checked([*self.userns.admin(slot), tool("sh"), "-c", commands.CREATE_SCRIPT,
                               "create", str(box_dir)], "creating the box disk")
            if self._disk_problem is None:
                await make_disk(box_dir, spec.disk_size_gb, *self._owner(slot))
        except BaseException:
            await self.remove(handle)
            raise
        return handle

    def _owner(self, slot: int) -> tuple[int, int]:
        """Host uid and gid of box root in ``slot``."""
        uid, gid = self.userns.host_uid(slot), self.userns.host_gid(slot)
        return (os.geteuid() if uid is None else uid, os.getegid() if gid is None else gid)

    async def _plan(
        self, handle: str, slot: int, spec: BoxSpec
    ) -> tuple[list[str], str, str, list[tuple[str, str, bool]]]:
        """What to do as root before the box's user namespace exists (the prefix that
        runs :mod:`.prepare`, or none), the folders of the writable layer and of the
        image, and the volumes' sources, relative to ``boxes/``."""
        box_dir = self._box_dir(handle)
        rootfs = str((await self._rootfs(spec)).relative_to(self.boxes_dir))
        disk = None
        layer = handle
        if (box_dir / "disk.img").exists():
            disk = disk_plan(Path(handle), *self._owner(slot))
            layer = f"{handle}/disk"
        idmaps: list[list[object]] = []
        if slot:
            shift = f"{self.userns.uid} {self.userns.host_uid(slot)} {RANGE}\n"
            gshift = f"{self.userns.gid} {self.userns.host_gid(slot)} {RANGE}\n"
            (box_dir / "lower").mkdir(exist_ok=True)
            idmaps.append([rootfs, f"{handle}/lower", shift, gshift, True])
            rootfs = f"{handle}/lower"
        volumes = []
        for index, volume in enumerate(spec.volumes):
            if self.userns.slots:  # the volume's owner becomes box root
                target = box_dir / "volumes" / str(index)
                target.mkdir(parents=True, exist_ok=True)
                uid, gid = self._owner(slot)
                idmaps.append([volume.host_path, f"{handle}/volumes/{index}",
                               f"{os.geteuid()} {uid} 1\n", f"{os.getegid()} {gid} 1\n",
                               volume.readonly])
                volumes.append((f"{handle}/volumes/{index}", volume.guest_path, volume.readonly))
            else:
                self._check_volume(volume.host_path, slot)
                volumes.append((volume.host_path, volume.guest_path, volume.readonly))
        if disk is None and not idmaps:
            return [], layer, rootfs, volumes
        return prepare_prefix(disk, idmaps), layer, rootfs, volumes

    async def start(self, handle: str, spec: BoxSpec) -> None:
        """Boot the box's sandbox; returns when its init is ready (and its network up).

        Every host process of the box is in a session of its own, and SIGPIPE stays
        ignored in bwrap, so that neither a signal to the server's process group nor the
        server's end reaches the box."""
        box_dir = self._box_dir(handle)
        if handle in await self.running():
            raise BoxRunError("RUNTIME_ERROR", f"box {handle} is already running")
        if not box_dir.is_dir():
            raise BoxRunError("RUNTIME_ERROR", f"the disk of box {handle} is missing")
        slot = self._slot(handle)
        prefix, layer, rootfs, volumes = await self._plan(handle, slot, spec)
        self._limits.setup(handle, spec)
        ours, theirs = Launcher.pair()
        launcher = Launcher(ours)
        info_r, info_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        fds = {"info": info_w, "ctl": theirs.fileno(), "seccomp": _memfd(box_filter()),
               "init": os.open(self._init, os.O_RDONLY | os.O_CLOEXEC)}
        if spec.network:
            fds["resolv"] = _memfd(commands.RESOLV_CONF)
        try:
            hidden = commands.hidden_in(spec, (self.boxes_dir.parent, self.images.root))
            command = commands.start_command(
                self.userns, slot, layer, rootfs, spec, volumes, fds, hidden)
            proc = Child(
                [*self._limits.wrap(handle), *prefix, *command], cwd=self.boxes_dir,
                env=HOST_ENV, pass_fds=tuple(fds.values()), start_new_session=True,
                restore_signals=False, stdin=subprocess.DEVNULL, stdout=out_w, stderr=err_w)
        except BaseException:
            launcher.close()
            close_all([info_r, out_r, err_r])
            await self._limits.remove(handle)
            raise
        finally:
            theirs.close()
            close_all([out_w, err_w, *(fd for name, fd in fds.items() if name != "ctl")])
        sandbox = None
        exit_r, exit_w = os.pipe() if spec.network else (-1, -1)
        try:
            pid = await asyncio.wait_for(self._await_ready(proc, out_r, err_r, info_r),
                                         START_TIMEOUT)
            sandbox = Sandbox(pid, os.pidfd_open(pid), slot, launcher, proc=proc)
            self.records.save(handle, pid)
            sandbox.holder = self.records.start_holder(
                handle, ours, exit_w if spec.network else None)
            if spec.network:
                os.close(exit_w)
                exit_w = -1
                sandbox.slirp = await Slirp.start(pid, exit_r)
        except BaseException:
            close_all([err_r, *(fd for fd in (exit_r, exit_w) if fd >= 0)])
            launcher.close()
            if sandbox is None:  # bwrap and the box's first process share its group
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await asyncio.to_thread(proc.wait)
                await self._limits.remove(handle)
            else:
                self._running[handle] = sandbox
                await self._release(handle)
            raise
        finally:
            close_all([info_r, out_r])
        if exit_r >= 0:
            os.close(exit_r)
        sandbox.drain = asyncio.create_task(self._log(handle, err_r))
        self._running[handle] = sandbox
        sandbox.watch = asyncio.create_task(self._watch(handle, sandbox))

    def _check_volume(self, host_path: str, slot: int) -> None:
        """RUNTIME_ERROR unless box root can reach ``host_path`` (without idmapped
        mounts it is bound as it is, and box root is not the server's user)."""
        if not os.path.exists(host_path):
            raise BoxRunError("RUNTIME_ERROR", f"volume host path does not exist: {host_path}")
        uid = self.userns.host_uid(slot)
        for folder in Path(host_path).resolve().parents:
            info = folder.stat()
            if not info.st_mode & 0o001 and info.st_uid != uid:
                raise BoxRunError(
                    "RUNTIME_ERROR",
                    f"volume host path {host_path} is out of reach of box root (host uid "
                    f"{uid}): {folder} has mode {oct(info.st_mode & 0o777)}; "
                    f"let others pass through it (chmod o+x) or share another folder")

    @staticmethod
    async def _await_ready(proc: Child, out: int, err: int, info: int) -> int:
        """Wait for init's ``ready`` line; the host pid of the box's first process."""
        said = b""
        while len(said) < 6 and (chunk := await read_some(out)):
            said += chunk
        if said != b"ready\n":
            text = (await read_some(err)).decode(errors="replace").strip()
            await asyncio.to_thread(proc.wait)
            raise BoxRunError("RUNTIME_ERROR", f"the box failed to start: {text}")
        data = b""
        while chunk := await read_some(info):
            data += chunk
            try:
                return int(json.loads(data)["child-pid"])
            except ValueError:
                continue
        raise BoxRunError("RUNTIME_ERROR", "bwrap did not report the box's process")

    @staticmethod
    async def _log(handle: str, err: int) -> None:
        """Log what the sandbox writes to its stderr (the pipe ``err``, closed after)."""
        box_log = BoxLog(log, handle, level=logging.DEBUG)
        try:
            while chunk := await read_some(err):
                box_log.write(chunk)
            box_log.close()
        finally:
            os.close(err)

    async def _watch(self, handle: str, sandbox: Sandbox) -> None:
        """When the box's first process ends by itself (its init died), clean up and
        tell the manager."""
        await fd_ready(sandbox.pidfd)
        if self._running.get(handle) is not sandbox:
            return  # stopped by the server
        code = None if sandbox.proc is None else await asyncio.to_thread(sandbox.proc.wait)
        oom = self._limits.oom_killed(handle)
        await self._release(handle)
        reason = ("the box ran out of memory and its init was killed" if oom else
                  "the box's init ended by itself" +
                  ("" if code is None else f" (exit status {code})"))
        if self.on_exit is not None:
            self.on_exit(handle, reason)

    async def _release(self, handle: str) -> None:
        """Kill a sandbox (if it still runs) and forget it; free what it held."""
        sandbox = self._running.pop(handle, None)
        if sandbox is None:
            return
        try:  # the box's pid namespace ends with its first process
            signal.pidfd_send_signal(sandbox.pidfd, signal.SIGKILL)
        except ProcessLookupError:
            pass
        sandbox.launcher.close()
        if sandbox.watch is not None and sandbox.watch is not asyncio.current_task():
            sandbox.watch.cancel()  # before the pidfd it waits on is closed
            await asyncio.gather(sandbox.watch, return_exceptions=True)
        for child in (sandbox.proc, sandbox.holder):
            if child is not None:
                await _reaped(child, handle)
        if sandbox.slirp is not None:
            await sandbox.slirp.stop()
        if sandbox.drain is not None and not (await asyncio.wait({sandbox.drain},
                                                                 timeout=END_TIMEOUT))[0]:
            log.warning("box %s: its stderr stays open after it ended", handle)
            sandbox.drain.cancel()
        while not _ended(sandbox.pidfd):  # then the box's mounts are gone
            await asyncio.sleep(0.01)
        os.close(sandbox.pidfd)
        await self._limits.remove(handle)
        self.records.forget(handle)

    async def _reap(self, handle: str) -> None:
        """Kill what runs of a box no sandbox of this server holds (left by another
        server) and free what it held."""
        if not HANDLE.fullmatch(handle):
            return
        record = self.records.load(handle)
        pidfd = None if record is None else open_process(record)
        if pidfd is not None:
            try:
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                while not _ended(pidfd):
                    await asyncio.sleep(0.01)
            finally:
                os.close(pidfd)
        await self._limits.remove(handle)
        self.records.forget(handle)

    async def stop(self, handle: str) -> None:
        """Kill the sandbox; the kernel then kills every process of the box."""
        if handle in self._running:
            await self._release(handle)
        else:
            await self._reap(handle)

    async def remove(self, handle: str) -> None:
        """Stop the box and delete its disk (as box root: its files are box root's)."""
        await self.stop(handle)
        box_dir = self._box_dir(handle)
        if box_dir.exists():
            await run_checked([*self.userns.admin(self._slot(handle)), tool("rm"), "-rf", "--",
                               str(box_dir)], "deleting the box disk")

    async def running(self) -> set[str]:
        """Handles of the boxes whose sandbox is alive."""
        return {h for h, sandbox in self._running.items() if not _ended(sandbox.pidfd)}

    def _sandbox(self, handle: str) -> Sandbox:
        sandbox = self._running.get(handle)
        if sandbox is None or _ended(sandbox.pidfd):
            raise BoxRunError("RUNTIME_ERROR", f"box {handle} is not running")
        return sandbox

    async def exec(
        self,
        handle: str,
        cmd: Sequence[str],
        env: Mapping[str, str],
        workdir: str,
        stdin: bool = False,
    ) -> NsProcess:
        """Have the box's init start ``cmd`` on pipes; RUNTIME_ERROR if ``workdir`` is
        missing."""
        sandbox = self._sandbox(handle)
        in_r, in_w = os.pipe() if stdin else (os.open(os.devnull, os.O_RDONLY), -1)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            job = await sandbox.launcher.spawn(cmd, env, workdir, [in_r, out_w, err_w])
        except BaseException:
            close_all([fd for fd in (in_w, out_r, err_r) if fd >= 0])
            raise
        finally:
            close_all([in_r, out_w, err_w])
        if in_w >= 0:
            os.set_blocking(in_w, False)
        return NsProcess(job, in_w if in_w >= 0 else None, out_r, err_r)

    async def metrics(self, handle: str) -> dict[str, float | int | None]:
        """From the box's cgroup, else summed over its processes; network counters of
        its own network namespace."""
        sandbox = self._sandbox(handle)
        usage = self._limits.usage(handle) or process_usage(sandbox.pid)
        return {**usage, **net_bytes(sandbox.pid)}

    async def attach(
        self,
        handle: str,
        cmd: Sequence[str],
        env: Mapping[str, str],
        workdir: str,
        cols: int,
        rows: int,
    ) -> NsTerminal:
        """Have the box's init start ``cmd`` on a new pty of the box (see :mod:`.terminal`)."""
        sandbox = self._sandbox(handle)
        pty = open_pty(f"/proc/{sandbox.pid}/root", self.userns.host_uid(sandbox.slot))
        return await open_terminal(sandbox.launcher, pty, cmd, env, workdir, cols, rows)

    async def snapshot(self, handle: str, spec: BoxSpec, dest_dir: Path) -> bool:
        """A copy of the box's disk, taken frozen (see :mod:`.snapshot`); disk only."""
        return await snapshot.take(self, handle, dest_dir)

    async def restore(self, handle: str, spec: BoxSpec, snap_dir: Path) -> None:
        """Restart the box on a copy of the snapshot's disk."""
        await snapshot.restore(self, handle, spec, snap_dir)

    async def create_from_snapshot(self, spec: BoxSpec, snap_dir: Path) -> str:
        """A new box on a copy of the snapshot's disk."""
        return await snapshot.fork(self, spec, snap_dir)


#: What every namespace box shares with the host, in words (``/v1/info``).
SHARED_KERNEL = ("boxes share the host's kernel: they are kept apart by namespaces, a"
                 " seccomp filter and dropped capabilities, not by a VM, so a kernel bug"
                 " reachable through the allowed system calls is a way out; they do not"
                 " share the host's files (but volumes), processes, network or user ids")


async def _reaped(child: Child, handle: str) -> None:
    """Wait for a host process of box ``handle`` that ends with it; kill it if it does not."""
    try:
        await asyncio.wait_for(asyncio.to_thread(child.wait), END_TIMEOUT)
    except asyncio.TimeoutError:
        log.warning("box %s: %s did not end with the box: killed", handle, child.args[0])
        child.kill()
        await asyncio.to_thread(child.wait)


def _ended(pidfd: int) -> bool:
    """Whether the process of ``pidfd`` has ended."""
    return bool(select.select([pidfd], [], [], 0)[0])


def _memfd(data: bytes) -> int:
    """A descriptor of an anonymous file holding ``data``, at offset 0."""
    fd = os.memfd_create("boxrun", 0)
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _limitations(limits: str, disk_problem: str | None = None) -> list[str]:
    """What the limits mode and the writable layer leave unenforced, in words."""
    weaker = {
        "rlimits": "no cgroups the server may create: memory_mb bounds each process's"
                   f" address space, at most {cgroups.PIDS_MAX} processes per box, cpu is not"
                   " enforced",
        "none": "cpu and memory_mb are not enforced (BOXRUN_LIMITS=none)",
    }
    disk = [unenforced(disk_problem)] if disk_problem else []
    return [weaker[limits], *disk] if limits in weaker else disk
