"""Files in a box through commands run in it (``sh``/``cat``), so paths resolve inside
the box and no host process opens a path a box chose."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Sequence

from ..core.errors import BoxRunError
from .base import Backend, Process

#: The environment of these commands.
EXEC_DEFAULT_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
}
#: Writes stdin to a file in the box, making its folder (runs in the box).
UPLOAD_SCRIPT = 'mkdir -p -- "$(dirname -- "$1")" && cat > "$1"'


async def collect(stream: AsyncIterator[bytes]) -> bytes:
    """All chunks of ``stream``."""
    return b"".join([chunk async for chunk in stream])


class ExecFiles(Backend):
    """:meth:`upload` and :meth:`download` through the backend's own :meth:`exec`."""

    async def _run(self, handle: str, cmd: Sequence[str], stdin: bool = False) -> Process:
        """Start ``cmd`` in the box as root with a default environment, in ``/``."""
        return await self.exec(handle, cmd, EXEC_DEFAULT_ENV, "/", stdin)

    async def upload(self, handle: str, dest: str, chunks: AsyncIterable[bytes]) -> None:
        """Pipe ``chunks`` into ``cat`` in the box."""
        process = await self._run(handle, ["sh", "-c", UPLOAD_SCRIPT, "upload", dest], True)
        errors = asyncio.create_task(collect(process.stderr))
        try:
            async for chunk in chunks:
                await process.write_stdin(chunk)
            await process.close_stdin()
        except (BrokenPipeError, ConnectionResetError):
            pass  # cat failed: its exit code and stderr say why
        except BaseException:
            process.kill()
            raise
        code = await process.wait()
        err = (await errors).decode(errors="replace").strip()
        if code != 0:
            raise BoxRunError("RUNTIME_ERROR", f"cannot write {dest} in the box: {err}")

    async def download(self, handle: str, path: str) -> AsyncIterator[bytes]:
        """Stream ``cat PATH`` from the box after checking it is a readable file."""
        check = await self._run(handle, ["sh", "-c", 'test -f "$1" && test -r "$1"', "test", path])
        if await check.wait() != 0:
            raise BoxRunError("RUNTIME_ERROR", f"no such file in the box: {path}")
        process = await self._run(handle, ["cat", "--", path])
        errors = asyncio.create_task(collect(process.stderr))
        try:
            async for chunk in process.stdout:
                yield chunk
            if await process.wait() != 0:
                err = (await errors).decode(errors="replace").strip()
                raise BoxRunError("RUNTIME_ERROR", f"cannot read {path} in the box: {err}")
        finally:
            process.kill()
            errors.cancel()
