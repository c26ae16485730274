"""The BoxRun API calls of the magics and widgets, on top of the kernel's client."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import aconnect_sse

from ..client import SLOW_TIMEOUT, ApiError, BoxRunClient, BoxUnavailable

Event = tuple[str, dict[str, Any], str]


class Server:
    """Boxes, images, execs, files and event streams of one BoxRun server."""

    def __init__(self, client: BoxRunClient) -> None:
        self.client = client

    async def get(self, path: str, **params: Any) -> Any:
        return await self.client.call("GET", path, params=params)

    async def box(self, name: str) -> dict[str, Any]:
        return await self.get(f"/v1/boxes/{name}")

    async def create(self, spec: dict[str, Any]) -> dict[str, Any]:
        return await self.client.create_box(spec)

    async def act(self, name: str, action: str) -> dict[str, Any]:
        """``start`` or ``stop`` the box; the box after it."""
        return await self.client.call("POST", f"/v1/boxes/{name}:{action}", timeout=SLOW_TIMEOUT)

    async def remove(self, name: str, force: bool) -> None:
        await self.client.call("DELETE", f"/v1/boxes/{name}",
                               params={"force": "true"} if force else {}, timeout=SLOW_TIMEOUT)

    async def snapshot(self, name: str, snapshot: str) -> dict[str, Any]:
        return await self.client.call("POST", f"/v1/boxes/{name}/snapshots",
                                      json={"name": snapshot}, timeout=SLOW_TIMEOUT)

    async def restore(self, name: str, snapshot: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """Restore box ``name`` to its snapshot; the snapshot and the box after it."""
        snap = await self.get(f"/v1/boxes/{name}/snapshots/{snapshot}")
        box = await self.client.call("POST", f"/v1/boxes/{name}/snapshots/{snap['id']}:restore",
                                     timeout=SLOW_TIMEOUT)
        return snap, box

    async def fork(self, name: str, snapshot: str, new: str | None
                   ) -> tuple[dict[str, Any], dict[str, Any]]:
        """A new box from snapshot ``snapshot`` of box ``name``; the snapshot and the box."""
        snap = await self.get(f"/v1/boxes/{name}/snapshots/{snapshot}")
        return snap, await self.create({"snapshot": snap["id"], **({"name": new} if new else {})})

    async def attach(self, name: str, session: str) -> dict[str, Any]:
        """A session of box ``name`` on the interpreter of ``session`` the box carries."""
        return await self.client.call("POST", f"/v1/boxes/{name}/sessions",
                                      json={"attach": session}, timeout=SLOW_TIMEOUT)

    async def start_exec(self, name: str, cmd: list[str]) -> dict[str, Any]:
        return await self.client.call("POST", f"/v1/boxes/{name}/exec", json={"cmd": cmd})

    async def upload(self, name: str, local: Path, remote: str) -> dict[str, Any]:
        files = {"file": (local.name, local.read_bytes())}
        return await self.client.call("POST", f"/v1/boxes/{name}/files/upload", files=files,
                                      data={"dest": remote}, timeout=SLOW_TIMEOUT)

    async def download(self, name: str, remote: str) -> bytes:
        response = await self.client.http.post(f"/v1/boxes/{name}/files/download",
                                               json={"path": remote}, timeout=SLOW_TIMEOUT)
        if response.is_error:
            self.client._json(response)  # raises the server's error
        return response.content

    async def events(self, path: str, last_id: str = "", on_open: Callable[[], Awaitable[None]]
                     | None = None, **params: Any) -> AsyncIterator[Event]:
        """The SSE events of ``path`` after ``last_id`` as ``(event, data, id)``, until the
        stream ends; ``on_open`` runs once the server has accepted it."""
        headers = {"Last-Event-ID": last_id} if last_id else {}
        timeout = httpx.Timeout(10, read=None)
        try:
            async with aconnect_sse(self.client.http, "GET", path, params=params,
                                    headers=headers, timeout=timeout) as source:
                if source.response.is_error:
                    await source.response.aread()
                    self.client._json(source.response)
                if on_open is not None:
                    await on_open()
                async for sse in source.aiter_sse():
                    if sse.data:
                        yield sse.event, json.loads(sse.data), sse.id
        except httpx.TransportError as exc:
            raise BoxUnavailable(f"lost the event stream {path} of the BoxRun server at "
                                 f"{self.client.where}: {exc}") from exc


def explain(exc: Exception) -> str:
    """A server error in words, with the magic that helps where there is one."""
    text = f"BoxRun: {exc}"
    wanted = re.search(r"boxrun image build (\w+)", str(exc))
    if isinstance(exc, ApiError) and exc.code == "IMAGE_PULL_FAILED" and wanted:
        text += f"\nBuild it from here with: %boxrun build {wanted[1]}"
    return text
