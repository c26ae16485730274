"""``%boxrun build``: a real image build into the server's store, its progress in a bar."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ..servers import ServerProcess
from .conftest import Driver, start_kernel, status, text


@pytest.fixture
def bare_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server whose image store (next to its socket) is empty."""
    state = tmp_path / "state"
    srv = ServerProcess(state, state / "images").start()
    yield srv
    srv.stop()


@pytest.fixture
def bare_kernel(bare_server: ServerProcess, work_dir: Path) -> Iterator[Driver]:
    driver = start_kernel(bare_server.socket, work_dir)
    yield driver
    driver.kc.stop_channels()
    driver.km.shutdown_kernel(now=True)


def test_build_then_create(bare_kernel: Driver, bare_server: ServerProcess) -> None:
    refused = text(bare_kernel.run("%boxrun create debian --name built --cpu 1"), "stderr")
    assert "not built yet" in refused and "%boxrun build debian" in refused
    failed = text(bare_kernel.run("%boxrun build nosuchrecipe"), "stderr")
    assert failed.startswith("BoxRun: building image nosuchrecipe failed:")
    bare_kernel.run("%boxrun build debian", timeout=280)
    bar = next(i for i, s in bare_kernel.models.items() if s.get("_model_name")
               == "IntProgressModel" and s.get("bar_style") == "success")
    values = [state["value"] for comm, state in bare_kernel.updates
              if comm == bar and "value" in state]
    assert len(set(values)) > 3 and values[-1] == 100 and values == sorted(values)
    assert any("debian: installing" in str(state.get("value")) for _, state in bare_kernel.updates)
    assert "debian" in text(bare_kernel.run("%boxrun images"))
    bare_kernel.run("%boxrun create debian --name built --cpu 1 --memory 128")
    assert status(bare_server, "built") == "running"
    bare_kernel.run("%boxrun rm --force built")
