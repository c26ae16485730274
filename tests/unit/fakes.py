"""Test doubles for fast manager tests: host subprocesses stand in for sandboxes."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
import weakref
from collections.abc import AsyncIterable, AsyncIterator, Mapping, Sequence
from pathlib import Path

from jupyter_ext.backends.base import Backend, BoxSpec, Process
from jupyter_ext.core.errors import BoxRunError


class FakeImages:
    """Resolves every image to itself, with no layout."""

    def resolve(self, image: str) -> tuple[str, Path | None]:
        if image == "missing":
            raise BoxRunError("IMAGE_PULL_FAILED", "no such image: missing")
        return f"fake/{image}", None

    def list(self) -> list:
        return []


class FakeProcess(Process):
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.stdout = self._read(proc.stdout)
        self.stderr = self._read(proc.stderr)

    @staticmethod
    async def _read(stream: asyncio.StreamReader | None) -> AsyncIterator[bytes]:
        assert stream is not None
        while chunk := await stream.read(65536):
            yield chunk

    async def write_stdin(self, data: bytes) -> None:
        raise NotImplementedError

    async def close_stdin(self) -> None:
        raise NotImplementedError

    async def wait(self) -> int:
        code = await self.proc.wait()
        return 128 - code if code < 0 else code

    def kill(self) -> None:
        if self.proc.returncode is None:
            os.killpg(self.proc.pid, signal.SIGKILL)


class FakeBackend(Backend):
    """Boxes are folders; execs run on the host in them. No isolation at all."""

    name = "fake"
    isolation = "none"

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="fake-backend-"))
        weakref.finalize(self, shutil.rmtree, self.root, True)  # at exit at the latest
        self.alive: set[str] = set()
        self.fail_start = False

    async def create(self, spec: BoxSpec) -> str:
        (self.root / spec.box_id).mkdir()
        return spec.box_id

    async def start(self, handle: str, spec: BoxSpec) -> None:
        if self.fail_start:
            raise BoxRunError("RUNTIME_ERROR", "fake boot failure")
        self.alive.add(handle)

    async def stop(self, handle: str) -> None:
        self.alive.discard(handle)

    async def remove(self, handle: str) -> None:
        self.alive.discard(handle)
        (self.root / handle).rmdir()

    async def running(self) -> set[str]:
        return set(self.alive)

    async def exec(
        self, handle: str, cmd: Sequence[str], env: Mapping[str, str], workdir: str,
        stdin: bool = False,
    ) -> Process:
        proc = await asyncio.create_subprocess_exec(
            *cmd, env=dict(env), cwd=self.root / handle, start_new_session=True,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        return FakeProcess(proc)

    async def upload(self, handle: str, dest: str, chunks: AsyncIterable[bytes]) -> None:
        raise NotImplementedError

    def download(self, handle: str, path: str) -> AsyncIterator[bytes]:
        raise NotImplementedError
