"""An async client of the BoxRun server (Unix socket or TCP) with a timeout on every call."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect, unix_connect
from websockets.exceptions import InvalidHandshake, InvalidStatus

if TYPE_CHECKING:
    import httpx

#: Seconds to connect, read, write and wait for a connection (httpx's order): most calls
#: answer at once; creating or starting a box may unpack an image first.
Timeout = tuple[float, float, float, float]
TIMEOUT: Timeout = (5, 30, 30, 30)
SLOW_TIMEOUT: Timeout = (5, 300, 300, 300)
#: Removing a box at shutdown: the server carries on if the kernel stops waiting, and
#: jupyter_client terminates a kernel still running 2.5 s after its shutdown_request.
REMOVE_TIMEOUT: Timeout = (1, 2, 2, 2)


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
        self.socket, self.token, self.where = socket, "", socket
        if url:
            parts = urlsplit(url)
            self.token = parts.password or ""
            netloc = parts.netloc.rpartition("@")[2]
            self.where = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
            self.socket = ""
        self._http: httpx.AsyncClient | None = None

    @property
    def http(self) -> httpx.AsyncClient:
        """The HTTP client, made at the first call: a kernel with its box opened early
        needs only the channel to start, and httpx with its transport takes 90 ms to
        import and make."""
        if self._http is None:
            import httpx  # noqa: PLC0415

            if self.socket:  # plain HTTP: no TLS settings to load (certifi's take 25 ms)
                self._http = httpx.AsyncClient(
                    transport=httpx.AsyncHTTPTransport(uds=self.socket, verify=False),
                    base_url="http://boxrun", timeout=TIMEOUT)
            else:
                self._http = httpx.AsyncClient(
                    base_url=self.where, timeout=TIMEOUT,
                    auth=("", self.token) if self.token else None)
        return self._http

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """The JSON answer of one call; :class:`ApiError` or :class:`BoxUnavailable` if none."""
        http = self.http
        import httpx  # noqa: PLC0415 - imported by self.http

        try:
            response = await http.request(method, path, **kwargs)
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

    async def remove_box(self, box_id: str, timeout: Timeout = REMOVE_TIMEOUT) -> None:
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
            import httpx  # noqa: PLC0415

            self._json(httpx.Response(exc.response.status_code, content=exc.response.body))
            raise BoxUnavailable(f"the BoxRun server refused the channel: {exc}") from exc
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            raise BoxUnavailable(f"cannot reach the BoxRun server at {self.where}: {exc}") from exc

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
