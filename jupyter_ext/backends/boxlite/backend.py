"""The BoxLite backend: every box a micro-VM of one BoxLite runtime."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import tempfile
from collections.abc import AsyncIterable, AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path, PurePosixPath
from typing import ClassVar

import boxlite

from ...core.errors import BoxRunError
from ...images.store import ImageStore
from ..base import Backend, BoxSpec
from . import options
from .errors import boot_failure, is_boot_failure, to_boxrun
from .process import VmProcess
from .terminal import VmTerminal
from .verdict import ADVICE, VerdictStore, kvm_problem

log = logging.getLogger(__name__)

#: Longest wait for a micro-VM to boot (a first boot also imports the image).
BOOT_TIMEOUT = 180.0
#: Longest wait for the guest agent of a micro-VM found running at start-up to answer.
ADOPT_TIMEOUT = 10.0
CHUNK = 1 << 16


class BoxliteBackend(Backend):
    """Boxes are BoxLite micro-VMs under ``<state_dir>/boxlite``; handles are BoxLite ids.

    Boxes boot from the image store's OCI layouts, or from a registry when one is
    reachable. A failed boot is remembered (see :class:`VerdictStore`), so later
    boxes fail at once instead of waiting for the hypervisor again.
    """

    name: ClassVar[str] = "boxlite"
    isolation: ClassVar[str] = "vm"
    limits = "vm"

    def __init__(self, state_dir: Path, images: ImageStore | None = None,
                 verdicts: VerdictStore | None = None) -> None:
        self.home = state_dir / "boxlite"
        self.transfers = state_dir / "boxlite-transfers"
        self.images = images
        self.verdicts = verdicts or VerdictStore(state_dir)
        self.runtime: boxlite.Boxlite | None = None
        self.limitations = []
        self._registry: asyncio.Future[bool] | None = None

    async def open(self) -> None:
        """Start the runtime and, in the background, probe the registry once."""
        for folder in (self.home, self.transfers):
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            self.runtime = boxlite.Boxlite(boxlite.Options(home_dir=str(self.home)))
        except boxlite.BoxliteError as err:
            raise to_boxrun(err, "starting the BoxLite runtime") from err
        problem = self.boot_problem()
        self.limitations = [problem] if problem else []
        self._registry = asyncio.ensure_future(asyncio.to_thread(options.registry_reachable))

    async def close(self) -> None:
        """Release the runtime. Boxes still running keep running: they are created
        detached, so their micro-VMs outlive this process and :meth:`adopt` finds them."""
        if self._registry is not None:
            self._registry.cancel()
        if self.runtime is not None:
            self.runtime.close()
            self.runtime = None

    async def adopt(self, handle: str) -> bool:
        """Whether the box's micro-VM still runs (booted by an earlier server) and its
        guest agent answers; then this runtime serves it like a box it booted."""
        try:
            self.box_dir(handle)
            info = await self._rt.get_info(handle)
            if info is None or not info.state.running:
                return False
            return await asyncio.wait_for(self._answers(handle), ADOPT_TIMEOUT)
        except (BoxRunError, boxlite.BoxliteError, TimeoutError) as err:
            log.warning("BoxLite box %s cannot be adopted: %s", handle, err)
            return False

    async def _answers(self, handle: str) -> bool:
        """Whether a command runs in the box (its guest agent answers)."""
        return await (await self.exec(handle, ["/bin/sh", "-c", ":"], {}, "/")).wait() == 0

    async def prune(self, keep: set[str]) -> None:
        """Remove the BoxLite boxes (and their folders) that no box of the server owns."""
        for info in await self._rt.list_info():
            if info.id not in keep:
                await self.remove(info.id)

    def boot_problem(self) -> str | None:
        """Why boxes cannot boot, known without booting: no KVM, or a remembered failure."""
        problem = kvm_problem()
        if problem:
            return f"micro-VMs cannot run: {problem}"
        verdict = self.verdicts.get()
        if verdict is not None and not verdict.boots:
            return (f"micro-VMs do not boot on this host: {verdict.reason} (seen "
                    f"{verdict.checked_at}; delete {self.verdicts.path} to try again)")
        return None

    def resolve_image(self, images: ImageStore, image: str) -> tuple[str, Path | None]:
        """Registry references once the registry answered, else the local store's images."""
        registry = self._registry
        reachable = bool(registry and registry.done() and not registry.cancelled()
                         and registry.result())
        return options.resolve(images, image, reachable)

    @property
    def _rt(self) -> boxlite.Boxlite:
        if self.runtime is None:
            raise BoxRunError("RUNTIME_ERROR", "the BoxLite runtime is not open")
        return self.runtime

    def box_dir(self, handle: str) -> Path:
        """BoxLite's folder of a box (disks, logs)."""
        if not handle.isalnum():
            raise BoxRunError("RUNTIME_ERROR", f"not a BoxLite box: {handle!r}")
        return self.home / "boxes" / handle

    async def _box(self, handle: str, running: bool = False) -> boxlite.Box:
        self.box_dir(handle)
        box = await self._rt.get(handle)
        if box is None:
            raise BoxRunError("RUNTIME_ERROR", f"BoxLite has no box {handle}")
        if running and not (await box.info()).state.running:
            raise BoxRunError("RUNTIME_ERROR", f"box {handle} is not running")
        return box

    async def create(self, spec: BoxSpec) -> str:
        """Register the box with BoxLite (its disk is made on first boot)."""
        try:
            box = await self._rt.create(options.box_options(spec), name=spec.box_id)
        except boxlite.BoxliteError as err:
            raise to_boxrun(err, "creating the micro-VM") from err
        return box.id

    async def start(self, handle: str, spec: BoxSpec) -> None:
        """Boot the micro-VM; fails at once where micro-VMs are known not to boot."""
        problem = self.boot_problem()
        if problem:
            raise BoxRunError("RUNTIME_ERROR", f"{problem}. {ADVICE}")
        box = await self._box(handle)
        try:
            await asyncio.wait_for(box.start(), BOOT_TIMEOUT)
        except Exception as err:
            _kill_shim(self.box_dir(handle))
            if not is_boot_failure(err):
                raise to_boxrun(err, f"starting box {handle}") from err
            error, reason = boot_failure(err, self.box_dir(handle))
            self.verdicts.put(False, reason)
            self.limitations = [self.boot_problem() or reason]
            raise error from err
        verdict = self.verdicts.get()
        if verdict is None or not verdict.boots:
            self.verdicts.put(True, "a micro-VM booted")

    async def stop(self, handle: str) -> None:
        """Stop the micro-VM, keeping its disk."""
        box = await self._rt.get(handle)
        if box is None:
            return
        try:
            await box.stop()
        except boxlite.NotFoundError:
            pass
        except boxlite.BoxliteError as err:
            raise to_boxrun(err, f"stopping box {handle}") from err

    async def remove(self, handle: str) -> None:
        """Remove the box, and the diagnostics BoxLite keeps after a failed boot."""
        box_dir = self.box_dir(handle)
        try:
            await self._rt.remove(handle, force=True)
        except boxlite.NotFoundError:
            pass
        except boxlite.BoxliteError as err:
            raise to_boxrun(err, f"removing box {handle}") from err
        _kill_shim(box_dir)
        shutil.rmtree(box_dir, ignore_errors=True)

    async def running(self) -> set[str]:
        """Ids of the boxes BoxLite reports running."""
        return {info.id for info in await self._rt.list_info() if info.state.running}

    async def exec(
        self,
        handle: str,
        cmd: Sequence[str],
        env: Mapping[str, str],
        workdir: str,
        stdin: bool = False,
    ) -> VmProcess:
        """Start ``cmd`` in the running micro-VM."""
        async with self._running(handle, cmd) as box:
            execution = await box.exec(cmd[0], args=list(cmd[1:]), env=list(env.items()),
                                       cwd=workdir)
            return await VmProcess.start(execution, stdin)

    async def attach(
        self,
        handle: str,
        cmd: Sequence[str],
        env: Mapping[str, str],
        workdir: str,
        cols: int,
        rows: int,
    ) -> VmTerminal:
        """Start ``cmd`` on a pty of the guest (BoxLite's ``tty=True``): a new session with
        the pty as its controlling terminal, sized ``cols`` x ``rows``."""
        async with self._running(handle, cmd) as box:
            execution = await box.exec(cmd[0], args=list(cmd[1:]), env=list(env.items()),
                                       cwd=workdir, tty=True)
            return await VmTerminal.start(execution, cols, rows)

    @asynccontextmanager
    async def _running(self, handle: str, cmd: Sequence[str]) -> AsyncIterator[boxlite.Box]:
        """The running box, to start ``cmd`` in; BoxLite's errors as RUNTIME_ERROR."""
        box = await self._box(handle, running=True)
        try:
            yield box
        except boxlite.BoxliteError as err:
            raise to_boxrun(err, f"cannot run {cmd[0]!r} in box {handle}") from err

    async def metrics(self, handle: str) -> dict[str, float | int | None]:
        """Memory and network use as BoxLite measures them."""
        box = await self._box(handle, running=True)
        info, usage = await box.info(), await box.metrics()
        return {"memory_bytes": usage.memory_bytes, "memory_limit_bytes": info.memory_mib << 20,
                "net_rx_bytes": usage.network_bytes_received,
                "net_tx_bytes": usage.network_bytes_sent}

    @contextmanager
    def _transfer(self) -> Iterator[Path]:
        with tempfile.TemporaryDirectory(dir=self.transfers) as folder:
            yield Path(folder)

    async def upload(self, handle: str, dest: str, chunks: AsyncIterable[bytes]) -> None:
        """Spool ``chunks`` to a host file, make ``dest``'s folder, ``copy_in`` the file."""
        box = await self._box(handle, running=True)
        with self._transfer() as folder:
            path = folder / "upload"
            with path.open("wb") as out:
                async for chunk in chunks:
                    out.write(chunk)
            mkdir = await self.exec(handle, ["mkdir", "-p", "--", str(PurePosixPath(dest).parent)],
                                    {}, "/")
            if await mkdir.wait() != 0:
                raise BoxRunError("RUNTIME_ERROR", f"cannot make the folder of {dest} in the box")
            try:
                await box.copy_in(str(path), dest, boxlite.CopyOptions(recursive=False))
            except boxlite.BoxliteError as err:
                raise BoxRunError("RUNTIME_ERROR", f"cannot write {dest} in the box: {err}") from err

    async def download(self, handle: str, path: str) -> AsyncIterator[bytes]:
        """``copy_out`` the file to a host file and stream that."""
        box = await self._box(handle, running=True)
        with self._transfer() as folder:
            target = folder / "download"
            try:
                await box.copy_out(path, str(target), boxlite.CopyOptions(follow_symlinks=True))
            except boxlite.BoxliteError as err:
                raise BoxRunError("RUNTIME_ERROR", f"cannot read {path} in the box: {err}") from err
            if not target.is_file():
                raise BoxRunError("RUNTIME_ERROR", f"no such file in the box: {path}")
            with target.open("rb") as data:
                while chunk := data.read(CHUNK):
                    yield chunk


def _kill_shim(box_dir: Path) -> None:
    """Kill the shim of a micro-VM that did not boot, with the sandbox it runs in.

    Boxes are detached, so BoxLite leaves such a shim running (hung in the hypervisor)
    when its boot fails, and neither stop nor remove ends it. It is the process running
    the box's own ``bin/boxlite-shim`` (its ``shim.pid`` counts in the sandbox's pid
    namespace), leading the process group of that sandbox.
    """
    shim = str(box_dir / "bin" / "boxlite-shim").encode()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if not cmdline.read_bytes().startswith(shim):
                continue
            pid = int(cmdline.parent.name)
            group = os.getpgid(pid)
            if group == os.getpgrp():
                os.kill(pid, signal.SIGKILL)
            else:
                os.killpg(group, signal.SIGKILL)
        except (OSError, ValueError):
            continue
