"""The BoxRun API as the client commands call it: JSON calls, errors, SSE streams."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
from httpx_sse import SSEError, connect_sse

from ...core.errors import BoxRunError
from .connection import Endpoint


def error_of(resp: httpx.Response) -> BoxRunError:
    """The API's error in a reply (``{"code", "message"}``), or one made from its status."""
    try:
        body = json.loads(resp.read())
        return BoxRunError(str(body["code"]), str(body["message"]), resp.status_code)
    except (ValueError, KeyError, TypeError):
        return BoxRunError("HTTP_" + str(resp.status_code),
                           f"{resp.reason_phrase or 'error'} from {resp.request.url.path}",
                           resp.status_code)


class Api:
    """Calls to one server; every failure is a :class:`BoxRunError`."""

    def __init__(self, target: Endpoint) -> None:
        self.target = target
        self.http = target.http(timeout=None)

    def close(self) -> None:
        self.http.close()

    def call(self, method: str, path: str, timeout: float | None = 600, **kw: Any) -> Any:
        """Send a request; the JSON reply, or raise the API's error."""
        try:
            resp = self.http.request(method, path, timeout=timeout, **kw)
        except httpx.TransportError as exc:
            raise BoxRunError("UNREACHABLE", f"{self.target.describe()}: {exc}") from None
        if resp.status_code >= 400:
            raise error_of(resp)
        return resp.json()

    def box(self, box: str) -> dict[str, Any]:
        return self.call("GET", f"/v1/boxes/{box}")

    def events(self, path: str, last_id: int | None = None) -> Iterator[tuple[str, Any, str]]:
        """Events of an SSE stream as ``(event, JSON data, id)``, after ``last_id``."""
        headers = {"Last-Event-ID": str(last_id)} if last_id is not None else {}
        try:
            with connect_sse(self.http, "GET", path, headers=headers,
                             timeout=httpx.Timeout(10, read=None)) as source:
                if source.response.status_code == 204:
                    return
                if source.response.status_code >= 400:
                    raise error_of(source.response)
                for sse in source.iter_sse():
                    try:
                        data = json.loads(sse.data)
                    except ValueError:
                        continue
                    yield sse.event, data, sse.id
        except (httpx.TransportError, SSEError) as exc:
            raise BoxRunError("UNREACHABLE", f"{self.target.describe()}: {exc}") from None
