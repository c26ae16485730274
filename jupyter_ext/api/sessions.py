"""Handlers of interpreter sessions: start, list, get, message, interrupt, restart, events."""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..core.errors import validation
from ..sessions.manager import SessionManager
from ..sessions.models import parse_attach, parse_message, parse_start
from .base import SERVER_KEY
from .sse import EventStreamHandler


class SessionsBase(EventStreamHandler):
    """Access to the server's :class:`SessionManager`."""

    @property
    def sessions(self) -> SessionManager:
        return self.settings[SERVER_KEY].sessions


class SessionsHandler(SessionsBase):
    """``POST /v1/boxes/{id}/sessions`` starts one, or attaches one to an interpreter the
    box carries from its snapshot (201 once ready); ``GET`` lists them."""

    @web.authenticated
    @authorized
    async def post(self, box_id: str) -> None:
        body = self.json_body()
        source = parse_attach(body)
        if source is not None:
            session = await self.sessions.attach_to(box_id, source)
        else:
            session = await self.sessions.create(box_id, *parse_start(body))
        self.reply(session.to_json(), 201)

    @web.authenticated
    @authorized
    async def get(self, box_id: str) -> None:
        self.reply([s.to_json() for s in await self.sessions.list(box_id)])


class SessionHandler(SessionsBase):
    """``GET`` and ``DELETE /v1/boxes/{id}/sessions/{sid}``."""

    @web.authenticated
    @authorized
    async def get(self, box_id: str, session_id: str) -> None:
        self.reply((await self.sessions.get(box_id, session_id)).to_json())

    @web.authenticated
    @authorized
    async def delete(self, box_id: str, session_id: str) -> None:
        await self.sessions.delete(box_id, session_id)
        self.reply({"ok": True})


class SessionActionHandler(SessionsBase):
    """``POST …/sessions/{sid}:interrupt`` and ``:restart``."""

    @web.authenticated
    @authorized
    async def post(self, box_id: str, session_id: str, action: str) -> None:
        if action == "interrupt":
            session = await self.sessions.interrupt(box_id, session_id)
        elif action == "restart":
            session = await self.sessions.restart(box_id, session_id)
        else:
            raise validation(f"unknown action ':{action}'; use :interrupt or :restart", 400)
        self.reply(session.to_json())


class SessionMessagesHandler(SessionsBase):
    """``POST …/sessions/{sid}/messages``: one Jupyter message to the interpreter (202)."""

    @web.authenticated
    @authorized
    async def post(self, box_id: str, session_id: str) -> None:
        req = parse_message(self.json_body())
        self.reply({"msg_id": await self.sessions.send(box_id, session_id, req)}, 202)


class SessionEventsHandler(SessionsBase):
    """``GET …/sessions/{sid}/events``: the session's messages as SSE, stored then live."""

    @web.authenticated
    @authorized
    async def get(self, box_id: str, session_id: str) -> None:
        await self.stream(self.sessions.events(box_id, session_id, self.last_event_id()))
