"""``WS /v1/boxes/{id}/attach``: an interactive shell on a terminal in a box."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from jupyter_server.auth.decorator import authorized
from tornado import web
from tornado.websocket import WebSocketClosedError, WebSocketHandler

from ..backends.base import Terminal
from ..core.errors import BoxRunError, validation
from .base import BoxRunHandler

log = logging.getLogger(__name__)

#: Runs the requested shell, or says it is missing and runs /bin/sh.
SHELL_SCRIPT = ('command -v "$1" >/dev/null 2>&1 && exec "$1"; '
                'echo "boxrun: $1 is not in this box; starting /bin/sh" >&2; exec /bin/sh')
MAX_SIZE = 10000


class AttachHandler(BoxRunHandler, WebSocketHandler):
    """Binary frames carry terminal bytes both ways; text frames carry JSON control
    messages: ``resize`` in, ``exit`` or ``error`` out. Closing the socket kills the shell.

    The hosting app puts its own bases (authentication, origin checks, pings) between
    this class and tornado's ``WebSocketHandler``.
    """

    terminal: Terminal | None = None
    _forwarding: asyncio.Task[None] | None = None  # holds the task while it runs

    @web.authenticated
    @authorized("execute")
    async def get(self, box_id: str) -> None:
        """Check the query (a JSON error if wrong), then upgrade to a WebSocket."""
        self.shell = self.get_query_argument("shell", "/bin/bash")
        self.term = self.get_query_argument("term", "xterm-256color")
        self.size = (self._dimension("cols", 80), self._dimension("rows", 24))
        if not self.shell:
            raise validation("shell must not be empty")
        await super().get(box_id)

    def _dimension(self, name: str, default: int) -> int:
        raw = self.get_query_argument(name, str(default))
        if not raw.isdigit() or not 0 < int(raw) <= MAX_SIZE:
            raise validation(f"{name} must be an integer from 1 to {MAX_SIZE}, not {raw!r}")
        return int(raw)

    async def open(self, box_id: str) -> None:  # type: ignore[override]
        """Start the shell and forward its output; an ``error`` message if it cannot."""
        super().open(box_id)
        cmd = ["/bin/sh", "-c", SHELL_SCRIPT, "attach", self.shell]
        try:
            self.terminal = await self.manager.attach(box_id, cmd, {"TERM": self.term}, *self.size)
        except Exception as exc:  # noqa: BLE001 - the client is told, as the API tells
            if not isinstance(exc, BoxRunError):
                log.exception("attach %s failed", self.request.path)
            err = exc if isinstance(exc, BoxRunError) else BoxRunError("RUNTIME_ERROR", str(exc))
            await self._send({"type": "error", **err.to_json()})
            self.close()
            return
        if self.ws_connection is None:  # closed while the shell started
            self.terminal.kill()
            return
        self._forwarding = asyncio.ensure_future(self._forward(self.terminal))

    async def _forward(self, terminal: Terminal) -> None:
        while chunk := await terminal.read():
            await self._send(chunk)
        await self._send({"type": "exit", "code": await terminal.wait()})
        self.close()

    async def _send(self, message: bytes | dict[str, Any]) -> None:
        try:
            if isinstance(message, bytes):
                await self.write_message(message, binary=True)
            else:
                await self.write_message(json.dumps(message))
        except WebSocketClosedError:
            pass

    async def on_message(self, message: str | bytes) -> None:
        """Keystrokes to the terminal; ``resize`` messages resize it."""
        if self.terminal is None:
            return
        if isinstance(message, bytes):
            await self.terminal.write(message)
            return
        try:
            control = json.loads(message)
            if control.get("type") == "resize":
                cols, rows = int(control["cols"]), int(control["rows"])
                if 0 < cols <= MAX_SIZE and 0 < rows <= MAX_SIZE:
                    await self.terminal.resize(cols, rows)
                    return
        except (ValueError, TypeError, KeyError, AttributeError):
            pass
        log.info("attach %s: ignoring the control message %.200r", self.request.path, message)

    def on_close(self) -> None:
        """Kill the shell and its session."""
        if self.terminal is not None:
            self.terminal.kill()
