"""Snapshots of boxes: taken from a running box, restored into it, forked into new boxes.

Each snapshot is a folder ``<state_dir>/snapshots/<id>`` that the backend fills (see
:meth:`~jupyter_ext.backends.base.Backend.snapshot`) and a row of the ``snapshots``
table; their summed size on disk is bounded by ``max_bytes``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import shutil
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..store.snapshots import SnapshotStore
from .errors import BoxRunError, validation
from .models import Box, Snapshot, new_id, now

if TYPE_CHECKING:
    from ..backends.base import BoxSpec
    from .manager import BoxManager

log = logging.getLogger(__name__)

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
#: Fields of a box a fork takes from its snapshot unless its request says otherwise.
SOURCE_FIELDS = ("image", "cpu", "memory_mb", "disk_size_gb", "network", "workdir", "env",
                 "volumes")
#: Default of ``BoxRunServer.max_snapshot_bytes``.
DEFAULT_MAX_SNAPSHOT_BYTES = 32 << 30


def disk_usage(path: Path) -> int:
    """Bytes ``path``'s files take on disk (allocated blocks: a sparse image counts only
    what it holds)."""
    return sum(p.lstat().st_blocks * 512 for p in path.rglob("*") if not p.is_symlink())


class SnapshotManager:
    """The snapshots of one state dir; used by the API handlers and the box manager."""

    def __init__(self, manager: BoxManager, store: SnapshotStore, root: Path,
                 max_bytes: int = DEFAULT_MAX_SNAPSHOT_BYTES) -> None:
        self.manager = manager
        self.store = store
        self.root = root
        self.max_bytes = max_bytes
        self.snaps: dict[str, Snapshot] = {}
        #: Entered with a box while it is snapshotted (sessions ready their interpreters).
        self.prepare_hooks: list[Callable[[Box], AbstractAsyncContextManager[None]]] = []
        #: Entered with a box while it is restored from a memory snapshot.
        self.restore_hooks: list[Callable[[Box], AbstractAsyncContextManager[None]]] = []

    async def open(self) -> None:
        """Load the snapshots; drop rows without a folder and folders without a row (a
        server that died while taking one)."""
        self.root.mkdir(mode=0o700, exist_ok=True)
        for snap in await self.store.all():
            if self._dir(snap.id).is_dir():
                self.snaps[snap.id] = snap
            else:
                await self.store.delete(snap.id)
        for folder in self.root.iterdir():
            if folder.name not in self.snaps:
                await asyncio.to_thread(shutil.rmtree, folder, True)

    def _dir(self, snap_id: str) -> Path:
        return self.root / snap_id

    def used_bytes(self) -> int:
        """Bytes every snapshot takes."""
        return sum(s.size_bytes for s in self.snaps.values())

    def _box_id(self, box_ref: str) -> str:
        """The id of box ``box_ref``, or ``box_ref`` itself when it is the id of a removed
        box whose snapshots were kept."""
        try:
            return self.manager.get_box(box_ref).id
        except BoxRunError:
            if any(s.box_id == box_ref for s in self.snaps.values()):
                return box_ref
            raise

    def list(self, box_ref: str) -> list[Snapshot]:
        """The snapshots of a box, oldest first."""
        box_id = self._box_id(box_ref)
        return [s for s in self.snaps.values() if s.box_id == box_id]

    def get(self, box_ref: str, ref: str) -> Snapshot:
        """A snapshot of a box by id, else by name; SNAPSHOT_NOT_FOUND otherwise."""
        snaps = self.list(box_ref)
        found = next((s for s in snaps if s.id == ref), None) or next(
            (s for s in snaps if s.name == ref), None)
        if found is None:
            raise BoxRunError("SNAPSHOT_NOT_FOUND", f"no snapshot '{ref}' of box {box_ref}")
        return found

    def find(self, snap_id: str) -> Snapshot:
        """A snapshot by id (of any box); SNAPSHOT_NOT_FOUND otherwise."""
        snap = self.snaps.get(snap_id)
        if snap is None:
            raise BoxRunError("SNAPSHOT_NOT_FOUND", f"no snapshot '{snap_id}'")
        return snap

    async def create(self, box_ref: str, name: Any) -> Snapshot:
        """Snapshot running box ``box_ref`` as ``name``; it goes on running."""
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise validation("'name' must be 1-63 letters, digits, '.', '_' or '-', "
                             "starting with a letter or digit")
        box = self.manager.get_box(box_ref)
        async with self.manager.locked(box):
            if box.status != "running":
                raise BoxRunError("BOX_NOT_RUNNING", f"box {box.id} is not running")
            if any(s.name == name for s in self.list(box.id)):
                raise BoxRunError("NAME_ALREADY_EXISTS",
                                  f"box {box.id} has a snapshot named '{name}' already")
            self._check_quota(0)
            snap_id = new_id("snap")
            folder = self._dir(snap_id)
            folder.mkdir(mode=0o700)
            try:
                async with contextlib.AsyncExitStack() as stack:
                    for hook in self.prepare_hooks:
                        await stack.enter_async_context(hook(box))
                    memory = await self.manager.backend.snapshot(
                        box.boxlite_id or "", self.manager._spec(box), folder / "state")
                size = await asyncio.to_thread(disk_usage, folder)
                self._check_quota(size)
                snap = Snapshot(id=snap_id, name=name, box_id=box.id, memory=memory,
                                size_bytes=size, created_at=now(),
                                source={k: getattr(box, k) for k in SOURCE_FIELDS})
                await self.store.add(snap)
            except BaseException:
                await asyncio.to_thread(shutil.rmtree, folder, True)
                raise
        self.snaps[snap.id] = snap
        self.manager.lifecycle.publish("snapshotted", box, snapshot=snap.to_json())
        return snap

    def _check_quota(self, size: int) -> None:
        used = self.used_bytes()
        if used + size > self.max_bytes or used >= self.max_bytes:
            raise BoxRunError(
                "RESOURCE_EXCEEDED",
                f"snapshots may take {self.max_bytes} bytes; they take {used}"
                + (f" and this one took {size}" if size else "")
                + ": delete a snapshot (BoxRunServer.max_snapshot_bytes sets the quota)", 422)

    async def delete(self, box_ref: str, ref: str) -> None:
        """Delete a snapshot of a box."""
        snap = self.get(box_ref, ref)
        await self._delete(snap)

    async def _delete(self, snap: Snapshot) -> None:
        self.snaps.pop(snap.id, None)
        await self.store.delete(snap.id)
        await asyncio.to_thread(shutil.rmtree, self._dir(snap.id), True)
        box = self.manager.boxes.get(snap.box_id)
        self.manager.lifecycle.publish("snapshot_deleted", box or {"id": snap.box_id},
                                       snapshot=snap.to_json())

    async def forget_box(self, box_id: str) -> None:
        """Delete the snapshots of a removed box."""
        for snap in [s for s in self.snaps.values() if s.box_id == box_id]:
            await self._delete(snap)

    async def restore(self, box_ref: str, ref: str) -> Box:
        """Put box ``box_ref`` back in the state of its snapshot ``ref``, running."""
        box = self.manager.get_box(box_ref)
        snap = self.get(box.id, ref)
        why = f"the box was restored to snapshot {snap.name}"

        async def restore(handle: str, spec: BoxSpec) -> None:
            async with contextlib.AsyncExitStack() as stack:
                for hook in self.restore_hooks if snap.memory else []:
                    await stack.enter_async_context(hook(box))
                with self.manager.lifecycle.timed(box.id, "restore_ms"):
                    await self.manager.backend.restore(handle, spec, self._dir(snap.id) / "state")

        await self.manager.replace_state(
            box, why, None if snap.memory else why + " (its disk only: its processes were restarted)",
            restore)
        self.manager.lifecycle.publish("restored", box, snapshot=snap.to_json())
        return box

    def fork_body(self, body: dict[str, Any]) -> dict[str, Any]:
        """A ``POST /v1/boxes`` body with ``snapshot``: the snapshot's box fills what the
        body leaves out; its disk size is the snapshot's."""
        snap = self.find(body["snapshot"]) if isinstance(body["snapshot"], str) else None
        if snap is None:
            raise validation("'snapshot' must be a snapshot id")
        size = snap.source["disk_size_gb"]
        if body.get("disk_size_gb", size) != size:
            raise validation(f"a fork's disk_size_gb is its snapshot's ({size})")
        image = snap.source["image"]
        if "image" in body and self.manager.backend.resolve_image(
                self.manager.images, body["image"])[0] != image:
            raise validation(f"a fork's image is its snapshot's ({image})")
        return {**snap.source, **body}

    async def fork(self, spec: Any, snap_id: str) -> str:
        """The backend handle of a new running box made from snapshot ``snap_id``."""
        self.find(snap_id)
        return await self.manager.backend.create_from_snapshot(
            spec, self._dir(snap_id) / "state")
