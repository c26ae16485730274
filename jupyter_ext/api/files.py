"""Handlers of file transfer: multipart upload and streamed download."""

from __future__ import annotations

import posixpath
from urllib.parse import quote

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..backends.base import one_chunk
from ..core.errors import validation
from .base import BoxRunHandler


class UploadHandler(BoxRunHandler):
    """``POST /v1/boxes/{id}/files/upload``: multipart ``file`` and ``dest``."""

    @web.authenticated
    @authorized
    async def post(self, box_id: str) -> None:
        files = self.request.files.get("file")
        dest = self.get_body_argument("dest", None)
        if not files:
            raise validation("multipart field 'file' is required", 400)
        if not dest:
            raise validation("multipart field 'dest' is required", 400)
        if not dest.startswith("/"):
            raise validation("'dest' must be an absolute path in the box", 400)
        await self.manager.upload(box_id, dest, one_chunk(files[0]["body"]))
        self.reply({"ok": True, "dest": dest})


class DownloadHandler(BoxRunHandler):
    """``POST /v1/boxes/{id}/files/download`` with ``{"path"}``: the file's bytes."""

    @web.authenticated
    @authorized
    async def post(self, box_id: str) -> None:
        path = self.json_body().get("path")
        if not isinstance(path, str) or not path.startswith("/"):
            raise validation("'path' must be an absolute path in the box")
        chunks = self.manager.download(box_id, path)
        try:
            first = await anext(chunks, b"")  # a missing file fails here, as JSON
            name = posixpath.basename(path.rstrip("/")) or "download"
            self.set_header("Content-Type", "application/octet-stream")
            self.set_header("Content-Disposition", f"attachment; filename*=UTF-8''{quote(name)}")
            self.write(first)
            await self.flush()  # headers go out now, as octet-stream
            async for chunk in chunks:
                self.write(chunk)
                await self.flush()
        finally:
            await chunks.aclose()  # type: ignore[attr-defined]
        self.finish()
