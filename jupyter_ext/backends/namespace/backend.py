"""The namespace backend: boxes as bubblewrap sandboxes in a user namespace."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import shutil
from collections.abc import AsyncIterable, AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from ...core.errors import BoxRunError
from ...images.oci import read_layout
from ...images.store import ImageStore
from ...images.unpack import RootfsCache, run_checked
from ...images.userns import UserNs, detect
from ..base import Backend, BoxSpec
from . import cgroups, commands
from .metrics import net_bytes, process_usage
from .process import NsProcess, alive, collect, read_some
from .terminal import NsTerminal, in_session, open_pty, open_terminal

log = logging.getLogger(__name__)

START_TIMEOUT = 30.0
TOOLS = ("unshare", "nsenter", "bwrap", "mount")


@dataclass
class Sandbox:
    """A running box: its bwrap process and the host pid of the box's first process."""

    proc: asyncio.subprocess.Process
    pid: int
    hostname: str
    network: bool
    drain: asyncio.Task[None]


class NamespaceBackend(Backend):
    """Boxes are overlay-mounted image copies under ``<state_dir>/boxes/<handle>``.

    Box root is the first id of the server user's ``/etc/subuid`` range; without one
    it is the server's user itself (see :attr:`limitations`). Boxes die with the
    server process, and a box cannot reach a host path its root may not traverse.
    ``cpu`` and ``memory_mb`` are enforced as :func:`.cgroups.detect` finds possible;
    ``disk_size_gb`` when the server may loop-mount: the writable layer is then in
    ``<box>/disk.img``, a sparse ext4 image mounted on ``<box>/disk`` in the box's own
    mount namespace only, so it is unmounted when the box's last process exits
    (boxes made without one keep their plain ``upper`` and ``work``).
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
        self._disk_problem = _disk_problem()
        self.limitations = [*self.userns.limitations,
                            *_limitations(self.limits, self._disk_problem)]
        self._running: dict[str, Sandbox] = {}

    async def open(self) -> None:
        """Check the host tools exist and make the boxes directory."""
        tools = (*TOOLS, "prlimit") if self.limits == "rlimits" else TOOLS
        missing = [tool for tool in tools if shutil.which(tool) is None]
        if missing:
            raise BoxRunError("RUNTIME_ERROR", f"missing host tools: {', '.join(missing)}")
        self.boxes_dir.mkdir(parents=True, exist_ok=True)
        self.boxes_dir.chmod(0o711)  # box root only passes through
        for box_dir in self.boxes_dir.glob("ns-*"):  # left by a server that was killed
            await self._limits.remove(box_dir.name)
        self._limits.prune()
        await self.rootfs.prune({image.digest for image in self.images.list()})

    async def close(self) -> None:
        """Stop every box still running."""
        await asyncio.gather(*(self.stop(handle) for handle in list(self._running)))

    def _box_dir(self, handle: str) -> Path:
        if not handle.startswith("ns-") or "/" in handle:
            raise BoxRunError("RUNTIME_ERROR", f"not a namespace box: {handle!r}")
        return self.boxes_dir / handle

    async def _rootfs(self, spec: BoxSpec) -> Path:
        if spec.oci_layout is None:
            raise BoxRunError("IMAGE_PULL_FAILED", f"cannot pull {spec.image!r}: the namespace"
                              " backend runs only images of the local image store")
        return await self.rootfs.get(read_layout(spec.oci_layout), self.userns)

    async def create(self, spec: BoxSpec) -> str:
        """Unpack the image if needed and make the box's empty writable layer."""
        await self._rootfs(spec)
        handle = "ns-" + secrets.token_hex(8)
        command = [*self.userns.admin(), "/bin/sh", "-c", commands.CREATE_SCRIPT, "create",
                   str(self._box_dir(handle))]
        await run_checked(command, "creating the box disk")
        if self._disk_problem is None:
            await self._make_disk(self._box_dir(handle), spec.disk_size_gb)
        return handle

    async def _make_disk(self, box_dir: Path, size_gb: int) -> None:
        """A sparse ext4 image of ``size_gb`` whose root is box root's (journal and
        inode tables left unwritten, so it takes milliseconds and little host disk)."""
        image = box_dir / "disk.img"
        uid = self.userns.uid if self.userns.uid is not None else os.geteuid()
        gid = self.userns.gid if self.userns.gid is not None else os.getegid()
        fd = os.open(image, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.ftruncate(fd, size_gb << 30)
        finally:
            os.close(fd)
        (box_dir / "disk").mkdir()
        options = f"root_owner={uid}:{gid},nodiscard,lazy_itable_init=1,lazy_journal_init=1"
        await run_checked(["mkfs.ext4", "-q", "-F", "-E", options, str(image)],
                          "formatting the box disk")

    def _disk_prefix(self, box_dir: Path) -> tuple[list[str], str]:
        """Prefix that mounts the box's disk image (if it has one) in a new mount
        namespace, and the folder, relative to ``boxes/``, of ``upper`` and ``work``."""
        if not (box_dir / "disk.img").exists():
            return [], box_dir.name
        uid = self.userns.uid if self.userns.uid is not None else os.geteuid()
        gid = self.userns.gid if self.userns.gid is not None else os.getegid()
        disk = f"{box_dir.name}/disk"
        prefix = ["unshare", "--mount", "--propagation=private", "--", "/bin/sh", "-c",
                  commands.DISK_SCRIPT, "disk", f"{box_dir.name}/disk.img", disk,
                  f"{uid}:{gid}"]
        return prefix, disk

    async def start(self, handle: str, spec: BoxSpec) -> None:
        """Mount the box's disk and boot its sandbox; returns when it is ready."""
        box_dir = self._box_dir(handle)
        if handle in await self.running():
            raise BoxRunError("RUNTIME_ERROR", f"box {handle} is already running")
        if not box_dir.is_dir():
            raise BoxRunError("RUNTIME_ERROR", f"the disk of box {handle} is missing")
        for volume in spec.volumes:
            self._check_volume(volume.host_path)
        rootfs = await self._rootfs(spec)
        disk, layer = self._disk_prefix(box_dir)
        self._limits.setup(handle, spec)
        read_fd, info_fd = os.pipe()
        try:
            # Paths relative to boxes/ (0711): box root never walks the state dir (0700).
            command = commands.start_command(
                self.userns, layer, str(rootfs.relative_to(self.boxes_dir)),
                spec, info_fd)
            proc = await asyncio.create_subprocess_exec(
                *self._limits.wrap(handle), *disk, *command, cwd=self.boxes_dir,
                pass_fds=(info_fd,), start_new_session=True, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        except BaseException:
            await self._limits.remove(handle)
            raise
        finally:
            os.close(info_fd)
        try:
            pid = await asyncio.wait_for(self._await_ready(proc, read_fd), START_TIMEOUT)
        except BaseException:
            if proc.returncode is None:
                proc.kill()
            await proc.wait()
            await self._limits.remove(handle)
            raise
        finally:
            os.close(read_fd)
        drain = asyncio.create_task(self._drain(handle, proc))
        self._running[handle] = Sandbox(proc, pid, spec.hostname, spec.network, drain)

    def _check_volume(self, host_path: str) -> None:
        """RUNTIME_ERROR unless box root can reach ``host_path`` (it is not host root)."""
        if not os.path.exists(host_path):
            raise BoxRunError("RUNTIME_ERROR", f"volume host path does not exist: {host_path}")
        for folder in Path(host_path).resolve().parents:
            info = folder.stat()
            if not info.st_mode & 0o001 and info.st_uid != self.userns.uid:
                raise BoxRunError(
                    "RUNTIME_ERROR",
                    f"volume host path {host_path} is out of reach of box root (host uid "
                    f"{self.userns.uid}): {folder} has mode {oct(info.st_mode & 0o777)}; "
                    f"let others pass through it (chmod o+x) or share another folder")

    @staticmethod
    async def _await_ready(proc: asyncio.subprocess.Process, info: int) -> int:
        """Wait for init's ``ready`` line; the host pid of the box's first process."""
        assert proc.stdout is not None and proc.stderr is not None
        if await proc.stdout.readline() != b"ready\n":
            err = (await proc.stderr.read()).decode(errors="replace").strip()
            await proc.wait()
            raise BoxRunError("RUNTIME_ERROR", f"the box failed to start: {err}")
        data = b""
        while chunk := await read_some(info):
            data += chunk
            try:
                return int(json.loads(data)["child-pid"])
            except ValueError:
                continue
        raise BoxRunError("RUNTIME_ERROR", "bwrap did not report the box's process")

    @staticmethod
    async def _drain(handle: str, proc: asyncio.subprocess.Process) -> None:
        """Log what the sandbox writes to its stderr."""
        assert proc.stderr is not None
        async for line in proc.stderr:
            log.debug("box %s: %s", handle, line.decode(errors="replace").rstrip())

    async def stop(self, handle: str) -> None:
        """Kill bwrap; the kernel then kills every process of the box."""
        sandbox = self._running.pop(handle, None)
        if sandbox is None:
            return
        if sandbox.proc.returncode is None:
            sandbox.proc.kill()
        await sandbox.proc.wait()
        await sandbox.drain
        while alive(sandbox.pid):  # until the box's mounts are gone
            await asyncio.sleep(0.01)
        await self._limits.remove(handle)

    async def remove(self, handle: str) -> None:
        """Stop the box and delete its disk (as box root: its files are box root's)."""
        await self.stop(handle)
        box_dir = self._box_dir(handle)
        if box_dir.exists():
            await run_checked([*self.userns.admin(), "rm", "-rf", "--", str(box_dir)],
                              "deleting the box disk")

    async def running(self) -> set[str]:
        """Handles of the boxes whose bwrap process is alive."""
        return {h for h, sandbox in self._running.items() if sandbox.proc.returncode is None}

    def _sandbox(self, handle: str) -> Sandbox:
        sandbox = self._running.get(handle)
        if sandbox is None or sandbox.proc.returncode is not None:
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
        """Start ``cmd`` through ``nsenter``; RUNTIME_ERROR if ``workdir`` is missing."""
        sandbox = self._sandbox(handle)
        proc = await asyncio.create_subprocess_exec(
            *self._limits.wrap(handle), *commands.exec_command(sandbox.pid, cmd, workdir),
            env=commands.exec_env(sandbox.hostname, env),
            start_new_session=True,
            stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        process = NsProcess(proc)
        assert proc.stderr is not None
        first = await proc.stderr.read(1)
        if first != b"\0":  # the wrapper did not reach the command
            err = (first + await proc.stderr.read()).decode(errors="replace").strip()
            await process.wait()
            raise BoxRunError("RUNTIME_ERROR", err or f"no such directory in the box: {workdir}")
        return process

    async def metrics(self, handle: str) -> dict[str, float | int | None]:
        """From the box's cgroup, else summed over its processes; network counters of
        its own network namespace (none when it shares the host's)."""
        sandbox = self._sandbox(handle)
        usage = self._limits.usage(handle) or process_usage(sandbox.pid)
        return usage if sandbox.network else {**usage, **net_bytes(sandbox.pid)}

    async def attach(
        self,
        handle: str,
        cmd: Sequence[str],
        env: Mapping[str, str],
        workdir: str,
        cols: int,
        rows: int,
    ) -> NsTerminal:
        """Start ``cmd`` through ``nsenter`` on a new pty of the box (see :mod:`.terminal`)."""
        sandbox = self._sandbox(handle)
        enter = commands.exec_command(sandbox.pid, in_session(cmd), workdir)
        command = [*self._limits.wrap(handle), *enter]
        pty = open_pty(f"/proc/{sandbox.pid}/root", self.userns.uid)
        return await open_terminal(
            pty, command, commands.exec_env(sandbox.hostname, env), workdir, cols, rows)

    async def _run(self, handle: str, cmd: Sequence[str], stdin: bool = False) -> NsProcess:
        return await self.exec(handle, cmd, {}, "/", stdin)

    async def upload(self, handle: str, dest: str, chunks: AsyncIterable[bytes]) -> None:
        """Pipe ``chunks`` into ``cat`` in the box, so paths resolve inside it."""
        process = await self._run(handle, ["sh", "-c", commands.UPLOAD_SCRIPT, "upload", dest], True)
        errors = asyncio.create_task(collect(process.stderr))
        try:
            async for chunk in chunks:
                await process.write_stdin(chunk)
            await process.close_stdin()
        except (BrokenPipeError, ConnectionResetError):
            pass  # cat failed: its exit code and stderr say why
        except BaseException:
            process.kill()
            raise
        code = await process.wait()
        err = (await errors).decode(errors="replace").strip()
        if code != 0:
            raise BoxRunError("RUNTIME_ERROR", f"cannot write {dest} in the box: {err}")

    async def download(self, handle: str, path: str) -> AsyncIterator[bytes]:
        """Stream ``cat PATH`` from the box after checking it is a readable file."""
        check = await self._run(handle, ["sh", "-c", 'test -f "$1" && test -r "$1"', "test", path])
        if await check.wait() != 0:
            raise BoxRunError("RUNTIME_ERROR", f"no such file in the box: {path}")
        process = await self._run(handle, ["cat", "--", path])
        errors = asyncio.create_task(collect(process.stderr))
        try:
            async for chunk in process.stdout:
                yield chunk
            if await process.wait() != 0:
                err = (await errors).decode(errors="replace").strip()
                raise BoxRunError("RUNTIME_ERROR", f"cannot read {path} in the box: {err}")
        finally:
            process.kill()
            errors.cancel()


def _disk_problem() -> str | None:
    """Why box disks cannot be loop-mounted ext4 images here; None if they can."""
    if os.geteuid() != 0:
        return "the server is not root, which loop-mounting a box's disk image needs"
    missing = [tool for tool in ("mkfs.ext4", "mount", "umount") if shutil.which(tool) is None]
    if missing:
        return f"missing host tools {', '.join(missing)} (package e2fsprogs)"
    if not os.path.exists("/dev/loop-control"):
        return "the host has no loop devices (/dev/loop-control)"
    try:
        caps = int(next(line.split()[1] for line in Path("/proc/self/status").read_text()
                        .splitlines() if line.startswith("CapEff:")), 16)
    except (OSError, StopIteration, ValueError):
        caps = 0
    if not caps & (1 << 21):  # CAP_SYS_ADMIN
        return "the server lacks CAP_SYS_ADMIN, which loop-mounting a box's disk image needs"
    return None


def _limitations(limits: str, disk_problem: str | None = None) -> list[str]:
    """What the limits mode and the writable layer leave unenforced, in words."""
    weaker = {
        "rlimits": "no cgroups the server may create: memory_mb bounds each process's"
                   f" address space, at most {cgroups.PIDS_MAX} processes per box, cpu is not"
                   " enforced",
        "none": "cpu and memory_mb are not enforced (BOXRUN_LIMITS=none)",
    }
    disk = [f"disk_size_gb is not enforced: {disk_problem}; a box's writable layer shares"
            " the state dir's disk"] if disk_problem else []
    return [weaker[limits], *disk] if limits in weaker else disk
