"""The Jupyter server extension: the BoxRun API under ``{base_url}boxrun/``."""

from __future__ import annotations

import logging
from typing import Any

from jupyter_server.base.handlers import APIHandler, JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from jupyter_server.extension.application import ExtensionApp
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado.websocket import WebSocketHandler
from traitlets import Bool, Instance

from .api.base import SERVER_KEY, BoxRunHandler
from .api.misc import DashboardHandler
from .api.routes import bind
from .server import BoxRunServer
from .standalone.app import make_app


def _jupyter_bases(handler: type[BoxRunHandler]) -> tuple[type, ...]:
    if issubclass(handler, WebSocketHandler):  # like jupyter_server_terminals' TermSocket
        return (ExtensionHandlerMixin, WebSocketMixin, JupyterHandler, WebSocketHandler)
    page = JupyterHandler if issubclass(handler, DashboardHandler) else APIHandler
    return (ExtensionHandlerMixin, page)


class BoxRunExtension(ExtensionApp):
    """Hosts the BoxRun server in Jupyter, behind Jupyter's authentication, and serves
    the state dir's Unix socket so the SDK and the BoxRun kernel reach it too."""

    name = "jupyter_ext"
    load_other_extensions = True

    serve_socket = Bool(
        True, help="Also serve the BoxRun API on the state dir's Unix socket (mode 0600)."
    ).tag(config=True)
    boxrun = Instance(BoxRunServer, allow_none=True)

    def initialize_settings(self) -> None:
        # The server's loggers under Jupyter's, as jupyter_server does with tornado's: its
        # lines in Jupyter's log and format, at its level.
        logging.getLogger(__package__).parent = self.log
        self.boxrun = BoxRunServer(parent=self, jupyter_root_dir=self.serverapp.root_dir)
        self.settings[SERVER_KEY] = self.boxrun

    def initialize_handlers(self) -> None:
        self.handlers.extend(bind("/boxrun", _jupyter_bases))

    async def _start_jupyter_server_extension(self, serverapp: Any) -> None:
        assert self.boxrun is not None
        socket_app = make_app(self.boxrun, token=None) if self.serve_socket else None
        try:
            await self.boxrun.start(socket_app)
        except Exception as err:  # noqa: BLE001 - Jupyter keeps running; the API says why
            self.log.error("BoxRun is not available in this Jupyter server: %s", err)
            return
        info = self.boxrun.manager.info() if self.boxrun.manager else {}
        self.log.info(
            "BoxRun API at %sboxrun/v1 (backend %s) and on %s",
            serverapp.base_url, info.get("backend"), self.boxrun.socket_path or "no socket",
        )

    async def stop_extension(self) -> None:
        if self.boxrun is not None:
            await self.boxrun.stop()
