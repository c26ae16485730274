"""The shape every BoxRun handler shares: manager access, JSON in and out, errors."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from tornado import httputil, web

from ..core.errors import BoxRunError, validation
from ..core.manager import BoxManager

log = logging.getLogger(__name__)

#: Settings key under which the hosting app stores its BoxRunServer.
SERVER_KEY = "boxrun_server"

#: A query parameter whose name holds "token" (``token``, ``access_token``) and its value.
_TOKEN_PARAM = re.compile(r"([?&][^=&#]*token[^=&#]*=)[^&#]*", re.IGNORECASE)

_STATUS_CODES = {401: "UNAUTHORIZED", 403: "FORBIDDEN", 404: "NOT_FOUND", 405: "VALIDATION_ERROR"}


def request_summary(request: httputil.HTTPServerRequest) -> str:
    """What tornado's logs say of a request (method, URI, caller), token values masked."""
    uri = _TOKEN_PARAM.sub(r"\1[secret]", request.uri or "")
    return f"{request.method} {uri} ({request.remote_ip})"


class BoxRunHandler(web.RequestHandler):
    """Logic of the API's handlers, hosted by Jupyter or by ``boxrun serve``.

    The hosting app combines each handler with its own base (jupyter_server's
    ``APIHandler``, or the standalone server's), which provides ``current_user`` and
    ``authorizer`` for the ``@web.authenticated`` and ``@authorized`` decorators on
    every verb.
    """

    auth_resource = "boxrun"
    manager: BoxManager

    async def prepare(self) -> None:
        """Wait until the server has opened its state (its start-up error, if any)."""
        result = super().prepare()
        if result is not None:
            await result
        self.manager = await self.settings[SERVER_KEY].wait_ready()

    def json_body(self) -> dict[str, Any]:
        """The request body as a JSON object; VALIDATION_ERROR otherwise."""
        if not self.request.body:
            return {}
        try:
            body = json.loads(self.request.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise validation(f"the request body is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise validation("the request body must be a JSON object")
        return body

    def reply(self, payload: Any, status: int = 200) -> None:
        """Finish with ``payload`` as JSON."""
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(payload))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Render any error as ``{"code", "message"}``."""
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, BoxRunError):
            error = exc
        elif isinstance(exc, web.HTTPError):
            code = _STATUS_CODES.get(status_code, "RUNTIME_ERROR")
            error = BoxRunError(code, exc.log_message or self._reason, status_code)
        else:
            error = BoxRunError("RUNTIME_ERROR", f"internal error: {exc or self._reason}", 500)
        self.clear_header("Content-Disposition")
        self.set_status(error.status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(error.to_json()))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        """Expected API errors are not server faults: log them briefly."""
        if isinstance(value, BoxRunError):
            log.info("%s %s: %s %s", self.request.method, self.request.path, value.code, value.message)
        else:
            super().log_exception(typ, value, tb)

    def _request_summary(self) -> str:
        """tornado's access and error logs: never a token."""
        return request_summary(self.request)

    def get_login_url(self) -> str:
        """API callers are never redirected to a login page."""
        raise web.HTTPError(401, "authentication required")

