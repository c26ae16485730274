"""``WS /v1/boxes/{id}/sessions/{sid}/channel``: a session's events out, its messages in."""

from __future__ import annotations

import asyncio
import json
import logging
from contextlib import aclosing
from typing import Any

from jupyter_server.auth.decorator import authorized
from tornado import web
from tornado.websocket import WebSocketClosedError, WebSocketHandler

from ..core.errors import BoxRunError, validation
from ..sessions.manager import SessionManager
from ..sessions.models import parse_message
from .base import SERVER_KEY, BoxRunHandler

log = logging.getLogger(__name__)


class SessionChannelHandler(BoxRunHandler, WebSocketHandler):
    """One connection for both directions, as Jupyter's kernel channels: each text frame
    out is one event of the session (the ``data`` of its SSE stream: stored events after
    ``?after=SEQ``, then live ones; the socket closes after ``dead``); each frame in is one
    message as ``POST …/messages`` takes it. A message the server refuses is answered with
    ``{"type": "error", "code", "message", "msg_id"}``.

    The hosting app puts its own bases (authentication, origin checks, pings) between
    this class and tornado's ``WebSocketHandler``.
    """

    _forwarding: asyncio.Task[None] | None = None

    @property
    def sessions(self) -> SessionManager:
        return self.settings[SERVER_KEY].sessions

    @web.authenticated
    @authorized("execute")
    async def get(self, box_id: str, session_id: str) -> None:
        """Check the session and ``after`` (a JSON error if wrong), then upgrade."""
        after = self.get_query_argument("after", "-1")
        if not after.lstrip("-").isdigit():
            raise validation(f"after must be an event number, not {after!r}")
        self.after = int(after)
        await self.sessions.get(box_id, session_id)
        await super().get(box_id, session_id)

    async def open(self, box_id: str, session_id: str) -> None:  # type: ignore[override]
        super().open(box_id, session_id)
        self.box_id, self.session_id = box_id, session_id
        self._forwarding = asyncio.ensure_future(self._forward())

    async def _forward(self) -> None:
        events = self.sessions.events(self.box_id, self.session_id, self.after)
        try:
            async with aclosing(events):
                async for event in events:
                    if event is not None:  # keep-alives: the socket has its own pings
                        await self.write_message(event.data)
        except WebSocketClosedError:
            return
        self.close()

    async def on_message(self, message: str | bytes) -> None:
        """Hand one message to the interpreter; tornado reads the next one afterwards,
        so they reach it in order."""
        body: Any = None
        try:
            body = json.loads(message)
            if not isinstance(body, dict):
                raise validation("a message must be a JSON object")
            await self.sessions.send(self.box_id, self.session_id, parse_message(body))
        except ValueError:
            await self._refuse(validation("a message must be JSON"), None)
        except BoxRunError as err:
            await self._refuse(err, body.get("msg_id") if isinstance(body, dict) else None)

    async def _refuse(self, err: BoxRunError, msg_id: str | None) -> None:
        try:
            await self.write_message(json.dumps({"type": "error", **err.to_json(),
                                                 "msg_id": msg_id}))
        except WebSocketClosedError:
            pass

    def on_close(self) -> None:
        if self._forwarding is not None:
            self._forwarding.cancel()
