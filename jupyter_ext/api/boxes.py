"""Handlers of ``/v1/boxes``: create, list, get, actions and remove."""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..core.errors import validation
from ..core.models import BOX_STATUSES, BoxRequest
from .base import BoxRunHandler


class BoxesHandler(BoxRunHandler):
    """``GET`` lists boxes (``?status=``), ``POST`` creates one."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        status = self.get_query_argument("status", None)
        if status not in (None, "", "all", *BOX_STATUSES):
            raise validation(f"unknown status '{status}'; use one of {', '.join(BOX_STATUSES)} or all", 400)
        self.reply([b.to_json() for b in self.manager.list_boxes(status)])

    @web.authenticated
    @authorized
    async def post(self) -> None:
        body = self.json_body()
        if body.get("snapshot") is not None and self.manager.snapshots is not None:
            body = self.manager.snapshots.fork_body(body)
        box = await self.manager.create_box(BoxRequest.parse(body))
        self.reply(box.to_json(), 201)


class BoxHandler(BoxRunHandler):
    """``GET`` one box by id or name, ``DELETE`` it (``?force=true``,
    ``?keep_snapshots=true``)."""

    @web.authenticated
    @authorized
    async def get(self, box_id: str) -> None:
        self.reply(self.manager.get_box(box_id).to_json())

    @web.authenticated
    @authorized
    async def delete(self, box_id: str) -> None:
        force, keep = (self.get_query_argument(name, "false").lower() in ("true", "1", "yes")
                       for name in ("force", "keep_snapshots"))
        await self.manager.remove_box(box_id, force=force, keep_snapshots=keep)
        self.reply({"ok": True})


class BoxActionHandler(BoxRunHandler):
    """``POST /v1/boxes/{id}:start`` and ``:stop``."""

    @web.authenticated
    @authorized
    async def post(self, box_id: str, action: str) -> None:
        if action == "start":
            box = await self.manager.start_box(box_id)
        elif action == "stop":
            box = await self.manager.stop_box(box_id)
        else:
            raise validation(f"unknown action ':{action}'; use :start or :stop", 400)
        self.reply(box.to_json())
