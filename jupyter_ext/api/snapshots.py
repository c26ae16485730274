"""Handlers of ``/v1/boxes/{id}/snapshots``: take, list, get, delete and restore."""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..core.errors import validation
from ..core.snapshots import SnapshotManager
from .base import BoxRunHandler


class SnapshotHandlerBase(BoxRunHandler):
    """The state dir's snapshots."""

    @property
    def snapshots(self) -> SnapshotManager:
        assert self.manager.snapshots is not None
        return self.manager.snapshots


class SnapshotsHandler(SnapshotHandlerBase):
    """``GET`` lists a box's snapshots, ``POST`` takes one (``{"name": ...}``)."""

    @web.authenticated
    @authorized
    async def get(self, box_id: str) -> None:
        self.reply([s.to_json() for s in self.snapshots.list(box_id)])

    @web.authenticated
    @authorized
    async def post(self, box_id: str) -> None:
        snap = await self.snapshots.create(box_id, self.json_body().get("name"))
        self.reply(snap.to_json(), 201)


class SnapshotHandler(SnapshotHandlerBase):
    """``GET`` one snapshot by id or name, ``DELETE`` it."""

    @web.authenticated
    @authorized
    async def get(self, box_id: str, snap_id: str) -> None:
        self.reply(self.snapshots.get(box_id, snap_id).to_json())

    @web.authenticated
    @authorized
    async def delete(self, box_id: str, snap_id: str) -> None:
        await self.snapshots.delete(box_id, snap_id)
        self.reply({"ok": True})


class SnapshotActionHandler(SnapshotHandlerBase):
    """``POST /v1/boxes/{id}/snapshots/{id|name}:restore``: the box, running, restored."""

    @web.authenticated
    @authorized
    async def post(self, box_id: str, snap_id: str, action: str) -> None:
        if action != "restore":
            raise validation(f"unknown action ':{action}'; use :restore", 400)
        box = await self.snapshots.restore(box_id, snap_id)
        self.reply(box.to_json())
