"""Fixtures shared by the suites: built test images and real BoxRun servers."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from jupyter_ext.images.store import ImageStore

from .servers import ServerProcess

TEST_IMAGES = Path(os.environ.get("BOXRUN_TEST_IMAGES", "/var/tmp/boxrun-test-images"))


@dataclass
class BuiltImages:
    """The shared image store of the tests."""

    store: ImageStore


@pytest.fixture(scope="session")
def built_images() -> BuiltImages:
    """A store at ``$BOXRUN_TEST_IMAGES`` with ``debian`` and ``python`` built from their
    current recipes (cached)."""
    built = BuiltImages(ImageStore(TEST_IMAGES))
    for name in ("debian", "python"):
        if not built.store.current(name):
            asyncio.run(built.store.build(name))
    return built


@pytest.fixture(scope="session")
def images_dir(built_images: BuiltImages) -> Path:
    """The root of the built test images."""
    return built_images.store.root


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, images_dir: Path) -> Iterator[ServerProcess]:
    """One ``boxrun serve`` for the session (socket + token TCP)."""
    srv = ServerProcess(tmp_path_factory.mktemp("shared") / "state", images_dir).start()
    yield srv
    srv.stop()


@pytest.fixture
def new_server(tmp_path: Path, images_dir: Path) -> Iterator[ServerProcess]:
    """A server of its own, on a fresh state dir, not yet started."""
    srv = ServerProcess(tmp_path / "state", images_dir)
    yield srv
    srv.kill()
