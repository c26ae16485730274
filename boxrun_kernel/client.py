"""An async client of the BoxRun server (Unix socket or TCP) with a timeout on every call."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from websockets.asyncio.client import ClientConnection, connect, unix_connect
from websockets.exceptions import InvalidHandshake, InvalidStatus

#: Most calls answer at once; creating or starting a box may unpack an image first.
TIMEOUT = httpx.Timeout(30, connect=5)
SLOW_TIMEOUT = httpx.Timeout(300, connect=5)
#: Removing a box at shutdown: the server carries on if the kernel stops waiting, and
#: jupyter_client terminates a kernel still running 2.5 s after its shutdown_request.
REMOVE_TIMEOUT = httpx.Timeout(2, connect=1)


class BoxUnavailable(Exception):
    """The box or its interpreter cannot be used; the message says why, in words."""


class ApiError(BoxUnavailable):
    """An error answer of the server: its ``code`` (``BOX_NOT_FOUND``...) and message."""

    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


class BoxRunClient:
    """Calls the BoxRun API at ``url`` (``http://:TOKEN@host:port``) or on ``socket``."""

    def __init__(self, url: str = "", socket: str = "") -> None:
        self.socket, self.token = socket, ""
        if url:
            parts = urlsplit(url)
            self.token = parts.password or ""
            auth = ("", parts.password) if parts.password else None
            netloc = parts.netloc.rpartition("@")[2]
            base = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
            self.where, self.socket = base, ""
            self.http = httpx.AsyncClient(base_url=base, auth=auth, timeout=TIMEOUT)
        else:
            self.where = socket
            self.http = httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=socket),
                                          base_url="http://boxrun", timeout=TIMEOUT)

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """The JSON answer of one call; :class:`ApiError` or :class:`BoxUnavailable` if none."""
        try:
            response = await self.http.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise BoxUnavailable(f"the BoxRun server at {self.where} did not answer "
                                 f"{method} {path} in time") from exc
        except httpx.TransportError as exc:
            raise BoxUnavailable(f"cannot reach the BoxRun server at {self.where}: {exc}") from exc
        return self._json(response)

    @staticmethod
    def _json(response: httpx.Response) -> Any:
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.is_error:
            if not isinstance(body, dict):
                body = {}
            raise ApiError(body.get("code", "RUNTIME_ERROR"),
                           body.get("message", f"HTTP {response.status_code}"),
                           response.status_code)
        return body

    async def find_box(self, name: str) -> dict[str, Any] | None:
        """The box called ``name``, or None."""
        try:
            return await self.call("GET", f"/v1/boxes/{name}")
        except ApiError as exc:
            if exc.code == "BOX_NOT_FOUND":
                return None
            raise

    async def create_box(self, spec: dict[str, Any]) -> dict[str, Any]:
        return await self.call("POST", "/v1/boxes", json=spec, timeout=SLOW_TIMEOUT)

    async def start_box(self, box_id: str) -> dict[str, Any]:
        return await self.call("POST", f"/v1/boxes/{box_id}:start", timeout=SLOW_TIMEOUT)

    async def remove_box(self, box_id: str, timeout: httpx.Timeout = REMOVE_TIMEOUT) -> None:
        """Remove a box, running or not (short ``timeout``: a kernel shutting down)."""
        await self.call("DELETE", f"/v1/boxes/{box_id}", params={"force": "true"},
                        timeout=timeout)

    async def start_session(self, box_id: str, cwd: str | None) -> dict[str, Any]:
        """A new interpreter in the box, ready (``idle``) when this returns."""
        body = {"kind": "auto", **({"cwd": cwd} if cwd else {})}
        return await self.call("POST", f"/v1/boxes/{box_id}/sessions", json=body,
                               timeout=SLOW_TIMEOUT)

    async def session(self, box_id: str, sid: str) -> dict[str, Any]:
        return await self.call("GET", f"/v1/boxes/{box_id}/sessions/{sid}")

    async def interrupt(self, box_id: str, sid: str) -> None:
        await self.call("POST", f"/v1/boxes/{box_id}/sessions/{sid}:interrupt")

    async def close_session(self, box_id: str, sid: str) -> None:
        await self.call("DELETE", f"/v1/boxes/{box_id}/sessions/{sid}")

    async def channel(self, box_id: str, sid: str, after: int) -> ClientConnection:
        """The WebSocket channel of a session: its events after ``after`` come in, messages
        go out (docs/sessions.md)."""
        path = f"/v1/boxes/{box_id}/sessions/{sid}/channel?after={after}"
        options: dict[str, Any] = {"max_size": None, "compression": None, "open_timeout": 10}
        try:
            if self.socket:
                return await unix_connect(self.socket, "ws://boxrun" + path, **options)
            headers = {"Authorization": f"token {self.token}"} if self.token else {}
            return await connect("ws" + self.where.removeprefix("http") + path,
                                 additional_headers=headers, **options)
        except InvalidStatus as exc:  # the server answered with an error instead
            self._json(httpx.Response(exc.response.status_code, content=exc.response.body))
            raise BoxUnavailable(f"the BoxRun server refused the channel: {exc}") from exc
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            raise BoxUnavailable(f"cannot reach the BoxRun server at {self.where}: {exc}") from exc

    async def aclose(self) -> None:
        await self.http.aclose()
