"""Who may call ``boxrun serve``: the socket's owner, or a TCP caller with the token."""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import socket
import struct
from typing import Any

from tornado import web

from ..api.base import request_summary

_UCRED = struct.Struct("3i")  # pid, uid, gid


def peer_uid(handler: web.RequestHandler) -> int | None:
    """The uid of the process at the other end of a Unix socket request, else None."""
    sock = getattr(handler.request.connection.stream, "socket", None)  # type: ignore[union-attr]
    if sock is None or sock.family != socket.AF_UNIX:
        return None
    _, uid, _ = _UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
    return uid


def request_token(handler: web.RequestHandler) -> str | None:
    """The token a request carries: ``Authorization: token T``, ``Bearer T``, HTTP
    basic auth with the token as password, or ``?token=T`` (for the dashboard)."""
    header = handler.request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    scheme = scheme.lower()
    if scheme in ("token", "bearer"):
        return value.strip()
    if scheme == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2]
    return handler.get_query_argument("token", None)


class AllowAll:
    """Authorizer for ``@authorized``: an authenticated caller may do everything."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        return True


class StandaloneHandler(web.RequestHandler):
    """Base of every handler of ``boxrun serve`` (and of the extension's socket).

    On the Unix socket the caller must run as the server's user (or root); on TCP it
    must send the token, unless the server runs with ``--no-auth``.
    """

    authorizer = AllowAll()

    def prepare(self) -> None:
        """Refuse unidentified callers before anything else happens."""
        if self.current_user is None:
            if peer_uid(self) is not None:
                raise web.HTTPError(403, "this socket serves only its owner's processes")
            raise web.HTTPError(401, "missing or wrong token: send 'Authorization: token T', "
                                "'Bearer T' or basic auth with the token as password")

    def get_current_user(self) -> str | None:
        uid = peer_uid(self)
        if uid is not None:
            return f"uid:{uid}" if uid in (os.getuid(), 0) else None
        token: str | None = self.settings.get("boxrun_token")
        if token is None:  # --no-auth
            return "anonymous"
        given = request_token(self)
        if given is not None and hmac.compare_digest(given.encode(), token.encode()):
            return "token"
        return None

    def _request_summary(self) -> str:
        """tornado's access and error logs: never a token (``GET /?token=`` too)."""
        return request_summary(self.request)

    def check_xsrf_cookie(self) -> None:
        """No cookies are used, so no cross-site request can carry credentials."""
