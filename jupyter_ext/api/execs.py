"""Handlers of execs: start, list, get, cancel and the SSE event stream."""

from __future__ import annotations

import json

from jupyter_server.auth.decorator import authorized
from tornado import web
from tornado.iostream import StreamClosedError

from ..core.errors import validation
from ..core.models import Event, ExecRequest
from .base import BoxRunHandler


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


class ExecEventsHandler(BoxRunHandler):
    """``GET …/events``: Server-Sent Events, stored then live, resumable by
    ``Last-Event-ID``; keep-alive comments while the exec is silent."""

    @web.authenticated
    @authorized
    async def get(self, box_id: str, exec_id: str) -> None:
        last = self.request.headers.get("Last-Event-ID", "")
        after = int(last) if last.strip().lstrip("-").isdigit() else -1
        events = self.manager.events(box_id, exec_id, after)
        first = await anext(events)  # errors (no such exec) become a JSON reply
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")
        try:
            await self._send(first)
            async for event in events:
                await self._send(event)
        except StreamClosedError:
            return
        finally:
            await events.aclose()
        self.finish()

    async def _send(self, event: Event | None) -> None:
        if event is None:
            self.write(": keep-alive\n\n")
        else:
            payload = json.dumps(event.to_json())
            self.write(f"id: {event.seq}\nevent: {event.event}\ndata: {payload}\n\n")
        await self.flush()
