"""Checkpoints of gVisor boxes: a running box's processes and memory saved to a folder
(``runsc checkpoint``), and boxes made from one (``runsc restore``), each with its own
copy of the writable layer as it was at the checkpoint.

What this runsc (2022) restore takes, found by trying:

- another container id and bundle folder (so another ``rootfs`` path) than the box saved;
- a bind mount whose host source differs, and bind mounts the saved box did not have;
  but every mount destination of the saved box must be there (else "no server FD
  available for filesystem with unique ID ...");
- a writable layer holding every file the saved processes had open or were in; a file
  missing fails the restore, a file changed is seen changed (nothing is verified), so the
  layer (the box's disk image, or its ``upper`` folder where there is none) is copied
  while the saved sandbox is gone, exactly as it left it.

``runsc checkpoint --leave-running`` restores the sandbox from outside the box's private
mount namespace, where the layer is not mounted, and fails; a box that is to go on is
restored here by :meth:`GvisorBackend.start` instead (the same cost: a checkpoint whose
sandbox ends, then a restore). runsc cannot save a socket bound on the host, so the
box's init first closes its listening socket and its commands' connections
(:meth:`GvisorBackend.let_go`), and listens again after the restore. Commands running
at that moment lose their stdio (they are reported killed) but go on in the box;
interpreters that are to go on listen on a socket in the box (``agent.py --listen``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ...core.errors import BoxRunError
from ...core.hostcmd import run_checked, tool
from ..diskimage import IMAGE, has_disk
from . import bundle

if TYPE_CHECKING:
    from ..base import BoxSpec
    from .backend import GvisorBackend

log = logging.getLogger(__name__)

#: Seconds a checkpoint may take (a box with gigabytes of memory writes them all).
CHECKPOINT_TIMEOUT = 600.0
#: Mount destinations every box has (bundle.config); the rest are its volumes.
#: What runsc says of a socket bound on a gofer-served path (a host socket).
HOST_SOCKET = "Cannot save endpoint with bound host socket"
BASE_MOUNTS = {"/proc", "/dev", "/dev/pts", "/dev/shm", "/sys", bundle.INIT, bundle.CTL,
               "/etc/resolv.conf"}  # that of network boxes


@dataclass(frozen=True)
class Checkpoint:
    """A saved box in ``path``: runsc's image (``image/``), the writable layer as it was
    (``disk.img``, the box's disk image, or ``layer/``, its ``upper`` folder) and the
    mount destinations it had (``mounts.json``)."""

    path: Path

    @property
    def image(self) -> Path:
        return self.path / "image"

    @property
    def layer(self) -> Path:
        """The saved layer: a disk image, or a folder."""
        disk = self.path / IMAGE
        return disk if disk.exists() else self.path / "layer"

    def mounts(self) -> list[str]:
        """The saved box's volume (and covering tmpfs) destinations."""
        return json.loads((self.path / "mounts.json").read_text())

    def size_bytes(self) -> int:
        """Bytes on disk: the image and the layer copy (a reflinked copy counts whole)."""
        return sum(p.lstat().st_size for p in self.path.rglob("*") if p.is_file()
                   and not p.is_symlink())


def _layer(box_dir: Path) -> Path:
    """Box ``box_dir``'s writable layer: its disk image, else its ``upper`` folder."""
    return box_dir / IMAGE if has_disk(box_dir) else box_dir / "upper"


async def _copy_tree(source: Path, dest: Path) -> None:
    """``cp -a`` (reflinked where the filesystem can): owners, modes, xattrs (overlay
    whiteouts and opaque folders), special files and holes (a disk image) kept."""
    await run_checked([tool("cp"), "-a", "--reflink=auto", "--", str(source), str(dest)],
                      "copying a box's writable layer")


async def _rm_tree(path: Path) -> None:
    if path.exists() or path.is_symlink():
        await run_checked([tool("rm"), "-rf", "--", str(path)], "deleting a box's layer")


async def checkpoint(backend: GvisorBackend, handle: str, spec: BoxSpec, dest: Path,
                     leave_running: bool = True) -> Checkpoint:
    """Save running box ``handle`` (started from ``spec``) into the new folder ``dest``;
    with ``leave_running`` the box goes on from the checkpoint, else it is stopped."""
    box_dir = backend._check_running(handle)
    dest.mkdir(mode=0o700)
    saved = Checkpoint(dest)
    config = json.loads((box_dir / "config.json").read_text())
    (dest / "mounts.json").write_text(json.dumps(
        [m["destination"] for m in config["mounts"] if m["destination"] not in BASE_MOUNTS]))
    saved.image.mkdir(mode=0o700)
    # Out of the running set first: the sandbox's end is then not reported as a death.
    sandbox = backend._running.pop(handle)
    try:
        await backend.let_go(handle)
        proc = await asyncio.create_subprocess_exec(
            *backend._runsc, "checkpoint", f"--image-path={saved.image}", handle,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE)
        _, err = await asyncio.wait_for(proc.communicate(), CHECKPOINT_TIMEOUT)
        if proc.returncode != 0:
            raise BoxRunError("RUNTIME_ERROR", _why(err.decode(errors="replace")))
        await sandbox.watch  # the sandbox has ended: its layer is as the image expects
        await backend._delete(handle)
        layer = _layer(box_dir)
        await _copy_tree(layer, dest / (IMAGE if layer.name == IMAGE else "layer"))
    except BaseException:
        if not sandbox.watch.done():  # runsc failed before the sandbox ended: it goes on
            backend._running[handle] = sandbox
            # (a sandbox that ends meanwhile is reported by its watch, once)
            if (not await _listens_again(backend, handle)
                    and backend._running.pop(handle, None) is not None):
                await _lost(backend, handle, "its init did not listen again after a"
                                             " failed checkpoint")
        else:
            await _lost(backend, handle, "its checkpoint failed")
        with contextlib.suppress(OSError):
            shutil.rmtree(dest)
        raise
    if leave_running:
        try:
            await backend.start(handle, spec, image=saved.image)
        except BaseException:
            await _lost(backend, handle, "its restore after a checkpoint failed")
            raise
    return saved


def _why(err: str) -> str:
    """The reason in runsc checkpoint's ``err``: its first line (a Go stack follows),
    in words where it is a socket bound on the box's disk."""
    first = err.strip().partition("\n")[0]
    if HOST_SOCKET in first:
        path = re.search(r'path:"([^"]{0,200})"', first)
        return ("a process of the box listens on a Unix socket on the box's disk"
                f" ({path.group(1) if path else 'unknown path'}), which runsc cannot save"
                " (sockets in /tmp or /dev/shm can be saved)")
    return f"runsc checkpoint failed: {first[-500:]}"


async def _listens_again(backend: GvisorBackend, handle: str) -> bool:
    try:
        return await backend.listen_again(handle)
    except (BoxRunError, TimeoutError):
        return False


async def _lost(backend: GvisorBackend, handle: str, why: str) -> None:
    await backend._delete(handle)
    if backend.on_exit is not None:
        backend.on_exit(handle, f"the box's sandbox ended: {why}")


def check_mounts(saved: Checkpoint, spec: BoxSpec) -> None:
    """VALIDATION_ERROR unless ``spec`` has a volume at every path the saved box had one
    (restore needs them; their sources may differ, and volumes may be added)."""
    missing = sorted(set(saved.mounts()) - {v.guest_path for v in spec.volumes})
    if missing:
        raise BoxRunError("VALIDATION_ERROR", "a box made from a checkpoint needs a volume"
                          f" at each path the saved box had one: {', '.join(missing)}")


async def restore(backend: GvisorBackend, handle: str, spec: BoxSpec, saved: Checkpoint
                  ) -> None:
    """Replace stopped box ``handle``'s writable layer by a copy of ``saved``'s and start
    it from ``saved``: its processes go on from the checkpoint. On failure the box keeps
    its own layer (stopped). Read-only volumes are read-only on the host too (the
    restored Sentry enforces it only for the saved box's, see :meth:`.GvisorBackend.start`)."""
    check_mounts(saved, spec)
    box_dir = backend._box_dir(handle)
    if handle in backend._running:
        raise BoxRunError("RUNTIME_ERROR", f"box {handle} is running")
    upper = _layer(box_dir)
    if (upper.name == IMAGE) != (saved.layer.name == IMAGE):
        raise BoxRunError("RUNTIME_ERROR", "the checkpoint and the box differ in having a"
                          " disk image (made by servers that could loop-mount and not)")
    kept = upper.with_name(upper.name + ".before-restore")
    await _rm_tree(kept)
    upper.rename(kept)
    try:
        await _copy_tree(saved.layer, upper)
        if upper.name != IMAGE:
            await _rm_tree(box_dir / "work")
            (box_dir / "work").mkdir(mode=0o700)
        await backend.start(handle, spec, image=saved.image)
    except BaseException:
        await _rm_tree(upper)
        kept.rename(upper)
        raise
    await _rm_tree(kept)


async def create_from(backend: GvisorBackend, spec: BoxSpec, saved: Checkpoint) -> str:
    """A new running box from ``saved`` (a fork): its own copy of the saved layer, its
    processes going on from the checkpoint, independent of the saved box and of other
    boxes made from it. ``spec`` gives its volumes and limits."""
    check_mounts(saved, spec)
    handle = await backend.create(spec, spare=False)
    try:
        await restore(backend, handle, spec, saved)
    except BaseException:
        await backend.remove(handle)
        raise
    return handle
