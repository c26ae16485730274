"""Fixtures of the kernel tests: a folder for notebooks the boxes can read, and the kernel's
environment pointing at the shared test server."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..servers import ServerProcess


@pytest.fixture(scope="class")
def notebook_dir() -> Iterator[Path]:
    """A notebook folder box root can enter (pytest's own tmp dirs are 0700)."""
    path = Path(tempfile.mkdtemp(prefix="boxrun-nb-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def env_of(server: ServerProcess) -> dict[str, str]:
    """The environment of a ``boxrun`` kernel using ``server``."""
    return {**os.environ, "BOXRUN_SOCKET": server.socket}


@pytest.fixture(scope="class")
def kernel_env(server: ServerProcess) -> dict[str, str]:
    """The environment of a ``boxrun`` kernel using the shared test server."""
    return env_of(server)
