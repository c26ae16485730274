"""Fixtures shared by the suites: built test images and real BoxRun servers.

The API contract (``tests/api``), kernel (``tests/kernel``) and hostile-box
(``tests/security``) suites run once per backend of :data:`~.servers.BACKENDS` (or of
``$BOXRUN_TEST_BACKENDS``, comma-separated): every test whose fixtures reach
:func:`server_backend` is parametrized by it, and a backend this host cannot run is skipped
with the reason. The other suites use :func:`~.servers.default_backend`.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from jupyter_ext.backends.gvisor import probe as gvisor_probe
from jupyter_ext.images.store import ImageStore

from .servers import BACKENDS, ServerProcess, default_backend

TEST_IMAGES = Path(os.environ.get("BOXRUN_TEST_IMAGES", "/var/tmp/boxrun-test-images"))
#: The suites (folders of ``tests/``) that run on every backend.
EVERY_BACKEND = ("api", "kernel", "security")


def pytest_report_header() -> str:
    """The disk the tests' state dirs (an unpacked image each) have to live on."""
    free = shutil.disk_usage(tempfile.gettempdir()).free
    return f"boxrun: {free / 2**30:.1f} GiB free in {tempfile.gettempdir()}"


def suite_backends() -> list[str]:
    """The backends the suites of :data:`EVERY_BACKEND` run on."""
    chosen = os.environ.get("BOXRUN_TEST_BACKENDS")
    return [name.strip() for name in chosen.split(",") if name.strip()] if chosen else list(BACKENDS)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run each test of the suites of :data:`EVERY_BACKEND` that uses a server on every
    backend (session-scoped: pytest runs all tests of one backend, then the next)."""
    suite = metafunc.definition.path.relative_to(Path(__file__).parent).parts[0]
    if "server_backend" in metafunc.fixturenames and suite in EVERY_BACKEND:
        metafunc.parametrize("server_backend", suite_backends(), indirect=True, scope="session")


def backend_problem(name: str) -> str | None:
    """Why this host cannot run servers on backend ``name``, or ``None``."""
    return gvisor_probe.host_problem() if name == "gvisor" else None


@pytest.fixture(scope="session")
def server_backend(request: pytest.FixtureRequest) -> str:
    """The backend of the test's servers: each of :func:`suite_backends` in turn in the
    suites of :data:`EVERY_BACKEND`, else the default; skips where the host lacks it."""
    name = getattr(request, "param", None) or default_backend()
    if problem := backend_problem(name):
        pytest.skip(f"backend {name}: {problem}")
    return name
# Servers the tests start (boxrun serve, Jupyter) stop their boxes when they stop, so no
# box outlives its test; tests/api/test_adopt.py turns it off.
os.environ.setdefault("BOXRUN_STOP_BOXES", "1")


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
def servers(tmp_path_factory: pytest.TempPathFactory,
            images_dir: Path) -> Iterator[Callable[[str], ServerProcess]]:
    """The shared ``boxrun serve`` of each backend (socket + token TCP), started on first
    use and stopped at the end of the session."""
    started: dict[str, ServerProcess] = {}

    def of(backend: str) -> ServerProcess:
        if backend not in started:
            state = tmp_path_factory.mktemp(f"shared-{backend}") / "state"
            started[backend] = ServerProcess(state, images_dir, backend=backend).start()
        return started[backend]

    yield of
    for srv in started.values():
        srv.stop()


@pytest.fixture(scope="session")
def server(servers: Callable[[str], ServerProcess], server_backend: str) -> ServerProcess:
    """The shared server of :func:`server_backend`."""
    return servers(server_backend)


@pytest.fixture
def new_server(tmp_path: Path, images_dir: Path, server_backend: str) -> Iterator[ServerProcess]:
    """A server of its own on :func:`server_backend`, on a fresh state dir, not yet started."""
    srv = ServerProcess(tmp_path / "state", images_dir, backend=server_backend)
    yield srv
    srv.stop()  # which stops its boxes (BOXRUN_STOP_BOXES)
