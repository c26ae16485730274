"""Fixtures of the namespace backend tests: a backend, box specs and a running box."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from jupyter_ext.backends.base import BoxSpec
from jupyter_ext.backends.namespace import NamespaceBackend

from ..conftest import BuiltImages

Result = tuple[int, bytes, bytes]


async def _collect(chunks: AsyncIterable[bytes]) -> bytes:
    return b"".join([chunk async for chunk in chunks])


@pytest.fixture
def collect() -> Callable[[AsyncIterable[bytes]], Awaitable[bytes]]:
    """Reads a whole stream."""
    return _collect


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    """A state directory as the server makes it: mode 0700."""
    path = tmp_path / "state"
    path.mkdir(mode=0o700)
    return path


@pytest.fixture
async def backend(built_images: BuiltImages, state_dir: Path) -> AsyncIterator[NamespaceBackend]:
    """An open namespace backend; its boxes are removed afterwards."""
    backend = NamespaceBackend(state_dir, built_images.store)
    await backend.open()
    yield backend
    await backend.close()
    for box in (state_dir / "boxes").glob("ns-*"):
        await backend.remove(box.name)
    assert {p.name for p in (state_dir / "boxes").iterdir()} <= {".rootfs", ".locks", ".ctl"}
    assert not any((state_dir / "boxes" / ".ctl").iterdir())


@pytest.fixture
def spec(built_images: BuiltImages) -> Callable[..., BoxSpec]:
    """Makes a box spec: the API's defaults, a built image, then ``overrides``."""

    def make(image: str = "debian", **overrides: Any) -> BoxSpec:
        ref, layout = built_images.store.resolve(image)
        values: dict[str, Any] = dict(
            box_id="box_test", name=None, image=ref, oci_layout=layout, cpu=1,
            memory_mb=512, disk_size_gb=1, network=False, workdir="/root")
        return BoxSpec(**{**values, **overrides})

    return make


@pytest.fixture
def boot(backend: NamespaceBackend) -> Callable[[BoxSpec], Awaitable[str]]:
    """Creates and starts a box; its handle."""

    async def boot(box: BoxSpec) -> str:
        handle = await backend.create(box)
        await backend.start(handle, box)
        return handle

    return boot


@pytest.fixture
def run(backend: NamespaceBackend) -> Callable[..., Awaitable[Result]]:
    """Runs a command in a box to the end: exit code, stdout, stderr."""

    async def run(handle: str, *cmd: str, env: dict[str, str] | None = None,
                  workdir: str = "/root") -> Result:
        process = await backend.exec(handle, cmd, env or {}, workdir)
        out, err = await asyncio.gather(_collect(process.stdout), _collect(process.stderr))
        return await process.wait(), out, err

    return run
