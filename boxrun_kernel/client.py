"""An async client of the BoxRun server (Unix socket or TCP) with a timeout on every call."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from httpx_sse import ServerSentEvent, aconnect_sse

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
        if url:
            parts = urlsplit(url)
            auth = ("", parts.password) if parts.password else None
            netloc = parts.netloc.rpartition("@")[2]
            base = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
            self.where = base
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

    async def remove_box(self, box_id: str) -> None:
        await self.call("DELETE", f"/v1/boxes/{box_id}", params={"force": "true"},
                        timeout=REMOVE_TIMEOUT)

    async def start_session(self, box_id: str, cwd: str | None) -> dict[str, Any]:
        """A new interpreter in the box, ready (``idle``) when this returns."""
        body = {"kind": "auto", **({"cwd": cwd} if cwd else {})}
        return await self.call("POST", f"/v1/boxes/{box_id}/sessions", json=body,
                               timeout=SLOW_TIMEOUT)

    async def session(self, box_id: str, sid: str) -> dict[str, Any]:
        return await self.call("GET", f"/v1/boxes/{box_id}/sessions/{sid}")

    async def send(self, box_id: str, sid: str, message: dict[str, Any]) -> None:
        """Post one Jupyter message (``channel``, ``msg_type``, ``content``...) to a session."""
        await self.call("POST", f"/v1/boxes/{box_id}/sessions/{sid}/messages", json=message)

    async def interrupt(self, box_id: str, sid: str) -> None:
        await self.call("POST", f"/v1/boxes/{box_id}/sessions/{sid}:interrupt")

    async def close_session(self, box_id: str, sid: str) -> None:
        await self.call("DELETE", f"/v1/boxes/{box_id}/sessions/{sid}")

    async def events(self, box_id: str, sid: str, last_id: str | None,
                     idle_timeout: float) -> AsyncIterator[tuple[str, dict[str, Any], str]]:
        """A session's events after ``last_id`` as ``(event, data, id)``.

        Raises :class:`BoxUnavailable` if the stream cannot be opened or stays silent
        (not even a keep-alive) for ``idle_timeout`` seconds.
        """
        headers = {"Last-Event-ID": last_id} if last_id else {}
        timeout = httpx.Timeout(5, read=idle_timeout)
        path = f"/v1/boxes/{box_id}/sessions/{sid}/events"
        try:
            async with aconnect_sse(self.http, "GET", path, headers=headers,
                                    timeout=timeout) as source:
                if source.response.is_error:
                    await source.response.aread()
                    self._json(source.response)
                sse: ServerSentEvent
                async for sse in source.aiter_sse():
                    if sse.data:  # httpx-sse turns a keep-alive after an event into one
                        yield sse.event, json.loads(sse.data), sse.id
        except httpx.TransportError as exc:
            raise BoxUnavailable(f"lost the event stream of the BoxRun server at "
                                 f"{self.where}: {exc!r}") from exc

    async def aclose(self) -> None:
        await self.http.aclose()
