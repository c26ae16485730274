"""Handlers of ``/v1/info``, ``/v1/openapi.json``, ``/v1/run``, ``/v1/gc``, ``/v1/images``
and the dashboard."""

from __future__ import annotations

import secrets
from functools import cache
from importlib.resources import files
from typing import Any

import yaml
from jupyter_server.auth.decorator import authorized
from tornado import web

from ..core.models import BoxRequest, ExecRequest, seconds
from .base import BoxRunHandler


class InfoHandler(BoxRunHandler):
    """``GET /v1/info``: limits, usage and backend."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.reply(self.manager.info())


@cache
def openapi() -> dict[str, Any]:
    """The API's OpenAPI description, ``openapi.yaml`` of this package."""
    return yaml.safe_load((files(__package__) / "openapi.yaml").read_text(encoding="utf-8"))


class OpenAPIHandler(BoxRunHandler):
    """``GET /v1/openapi.json``: the API's OpenAPI description as JSON."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.reply(openapi())


class RunHandler(BoxRunHandler):
    """``POST /v1/run``: create a box, run a command, collect it, remove the box."""

    @web.authenticated
    @authorized
    async def post(self) -> None:
        body = self.json_body()
        box = BoxRequest.parse({**body, "name": None})
        cmd = ExecRequest.parse({k: body.get(k) for k in ("cmd", "env", "timeout_ms")})
        self.reply(await self.manager.run(box, cmd))


class GcHandler(BoxRunHandler):
    """``POST /v1/gc``: remove boxes stopped longer than ``older_than`` seconds ago."""

    @web.authenticated
    @authorized
    async def post(self) -> None:
        older_than = seconds(self.json_body(), "older_than", 3600)
        self.reply({"removed": await self.manager.gc(older_than)})


class ImagesHandler(BoxRunHandler):
    """``GET /v1/images``: the local image store."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.reply([image.to_json() for image in self.manager.images.list()])


@cache
def dashboard_page() -> bytes:
    """The dashboard, ``static/ui.html`` of this package."""
    return (files(__package__).parent / "static" / "ui.html").read_bytes()


class DashboardHandler(BoxRunHandler):
    """``GET /ui``: the single-page dashboard.

    Its only script and style carry a fresh nonce, and its Content-Security-Policy
    allows no other script, style, frame or remote connection: even if something from a
    box reached the page as markup, nothing of it would run.
    """

    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.xsrf_token  # noqa: B018 - sets the _xsrf cookie the page sends back on writes
        nonce = secrets.token_urlsafe(18)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.set_header("Referrer-Policy", "no-referrer")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Content-Security-Policy", (
            f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
            "connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; "
            "frame-ancestors 'self'"))
        self.finish(dashboard_page().replace(b"{{nonce}}", nonce.encode()))
