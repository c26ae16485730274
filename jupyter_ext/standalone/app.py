"""The tornado application of the BoxRun API at the root path, without Jupyter."""

from __future__ import annotations

from tornado import web

from ..api.base import SERVER_KEY
from ..api.routes import bind
from ..server import BoxRunServer
from .auth import StandaloneHandler


class RootRedirectHandler(StandaloneHandler):
    """``GET /`` redirects to the dashboard."""

    def get(self) -> None:
        query = f"?{self.request.query}" if self.request.query else ""
        self.redirect(f"/ui{query}")


def make_app(server: BoxRunServer, token: str | None) -> web.Application:
    """The API for ``server``; TCP callers need ``token`` (``None``: no auth)."""
    handlers = [(r"/", RootRedirectHandler), *bind("", lambda _: (StandaloneHandler,))]
    return web.Application(
        handlers,
        **{SERVER_KEY: server, "boxrun_token": token},
    )
