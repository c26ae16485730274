"""The kernel's box opened while the kernel starts: what it opens, when it stays out, and
the kernel undoing a box its settings turn out not to want."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from jupyter_client.manager import start_new_kernel

from boxrun_kernel import prestart

from ..servers import ServerProcess


@pytest.fixture
def defaults(monkeypatch: pytest.MonkeyPatch, server: ServerProcess, notebook_dir: Path,
             tmp_path: Path) -> Path:
    """This process as a kernel in ``notebook_dir`` with the shared server, and an IPython
    dir with no config."""
    monkeypatch.setenv("BOXRUN_SOCKET", server.socket)
    monkeypatch.delenv("BOXRUN_URL", raising=False)
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.chdir(notebook_dir)
    return tmp_path / "ipython" / "profile_default"


def test_begin_opens_the_box_the_defaults_describe(defaults: Path, server: ServerProcess,
                                                   notebook_dir: Path) -> None:
    prestart.begin(["boxrun_kernel", "-f", "/run/kernel-early1.json"])
    started = prestart.claim()
    assert started is not None and prestart.claim() is None  # claimed once
    (where, spec), future = started
    box, record, created = future.result(timeout=120)
    try:
        assert where == ("", server.socket) and created
        assert box["name"] == spec["name"] == "jupyter-early1" and box["memory_mb"] == 1024
        assert box["volumes"] == [{"host_path": str(notebook_dir),
                                   "guest_path": str(notebook_dir), "readonly": True}]
        assert record["kind"] == "ipykernel" and record["status"] == "idle"
        assert record["cwd"] == str(notebook_dir)
    finally:
        with server.http() as http:
            http.delete(f"/v1/boxes/{box['id']}", params={"force": "true"})


def test_begin_stays_out_of_configured_kernels(defaults: Path) -> None:
    prestart.begin(["boxrun_kernel", "-f", "/run/kernel-x.json", "--BoxRunKernel.cpu=2"])
    assert prestart.claim() is None
    defaults.mkdir(parents=True)
    (defaults / "ipython_kernel_config.py").write_text("c.BoxRunKernel.memory_mb = 512\n")
    prestart.begin(["boxrun_kernel", "-f", "/run/kernel-x.json"])
    assert prestart.claim() is None


def test_kernel_undoes_an_early_box_it_is_not_configured_for(
        defaults: Path, server: ServerProcess, notebook_dir: Path) -> None:
    """A config the early start cannot see (the class name built at run time): the kernel
    removes the early box and makes its own as configured."""
    defaults.mkdir(parents=True)
    (defaults / "ipython_kernel_config.py").write_text('c["BoxRun" + "Kernel"].memory_mb = 512\n')
    km, kc = start_new_kernel(kernel_name="boxrun", env=dict(os.environ),
                              cwd=str(notebook_dir), startup_timeout=120)
    try:
        reply = kc.execute_interactive("import socket; print(socket.gethostname())", timeout=60)
        assert reply["content"]["status"] == "ok"
        name = f"jupyter-{Path(km.connection_file).stem.removeprefix('kernel-')}"
        with server.http() as http:
            boxes = [b for b in http.get("/v1/boxes").json() if b["name"] == name]
        assert [b["memory_mb"] for b in boxes] == [512]
    finally:
        kc.stop_channels()
        km.shutdown_kernel()


def test_a_cell_sent_while_the_box_opens_ends(defaults: Path, notebook_dir: Path) -> None:
    """JupyterLab's first messages to a kernel that is still opening its box: history, its
    widget manager's comm, then a cell. The cell's ``idle`` must come under the cell (comms
    are forwarded in the background, so ipykernel restores no stale parent over it)."""
    km, kc = start_new_kernel(kernel_name="boxrun", env=dict(os.environ),
                              cwd=str(notebook_dir), startup_timeout=120)
    km.restart_kernel(now=True)  # a fresh kernel process: it opens its session again
    try:
        kc.history(hist_access_type="tail", n=10)
        comm = {"comm_id": "c0ffee", "target_name": "jupyter.widget.control", "data": {}}
        kc.shell_channel.send(kc.session.msg("comm_open", comm))
        kc.shell_channel.send(kc.session.msg("comm_msg", {"comm_id": "c0ffee", "data": {}}))
        cell = kc.execute("6 * 7")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            msg = kc.get_iopub_msg(timeout=deadline - time.monotonic())
            if (msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle"
                    and msg["parent_header"].get("msg_id") == cell):
                break
        else:
            pytest.fail("the cell's idle status never came")
    finally:
        kc.stop_channels()
        km.shutdown_kernel()
