"""Handlers of execs: start, list, get, cancel and the SSE event stream."""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..core.errors import validation
from ..core.models import ExecRequest
from .base import BoxRunHandler
from .sse import EventStreamHandler


class ExecStartHandler(BoxRunHandler):
    """``POST /v1/boxes/{id}/exec`` starts a command and returns at once."""

    @web.authenticated
    @authorized
    async def post(self, box_id: str) -> None:
        ex = await self.manager.start_exec(box_id, ExecRequest.parse(self.json_body()))
        self.reply(ex.to_json(), 201)


class ExecListHandler(BoxRunHandler):
    """``GET /v1/boxes/{id}/execs``, newest first."""

    @web.authenticated
    @authorized
    async def get(self, box_id: str) -> None:
        self.reply([e.to_json() for e in await self.manager.list_execs(box_id)])


class ExecHandler(BoxRunHandler):
    """``GET /v1/boxes/{id}/exec/{eid}``."""

    @web.authenticated
    @authorized
    async def get(self, box_id: str, exec_id: str) -> None:
        self.reply((await self.manager.get_exec(box_id, exec_id)).to_json())


class ExecActionHandler(BoxRunHandler):
    """``POST /v1/boxes/{id}/exec/{eid}:cancel``."""

    @web.authenticated
    @authorized
    async def post(self, box_id: str, exec_id: str, action: str) -> None:
        if action != "cancel":
            raise validation(f"unknown action ':{action}'; use :cancel", 400)
        self.reply((await self.manager.cancel_exec(box_id, exec_id)).to_json())


class ExecEventsHandler(EventStreamHandler):
    """``GET …/events``: Server-Sent Events, stored then live, resumable by
    ``Last-Event-ID``; keep-alive comments while the exec is silent."""

    @web.authenticated
    @authorized
    async def get(self, box_id: str, exec_id: str) -> None:
        await self.stream(self.manager.events(box_id, exec_id, self.last_event_id()))
