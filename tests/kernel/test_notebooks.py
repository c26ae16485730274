"""Real notebooks run through nbclient on the ``boxrun`` kernel, and the box's life cycle."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook

from boxrun_kernel.outputs import MIME_TYPE

from ..servers import ServerProcess

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


@pytest.fixture(autouse=True)
def use_server(monkeypatch: pytest.MonkeyPatch, kernel_env: dict[str, str]) -> None:
    """nbclient starts kernels with this process's environment."""
    monkeypatch.setenv("BOXRUN_SOCKET", kernel_env["BOXRUN_SOCKET"])


def notebook(*cells: str) -> nbformat.NotebookNode:
    return new_notebook(cells=[new_code_cell(source) for source in cells])


def client(nb: nbformat.NotebookNode, folder: Path, **kw: Any) -> NotebookClient:
    """A client running ``nb`` as if it were saved in ``folder``; errors stay in outputs."""
    options = {"kernel_name": "boxrun", "timeout": 60, "startup_timeout": 120,
               "allow_errors": True, "resources": {"metadata": {"path": str(folder)}}, **kw}
    return NotebookClient(nb, **options)


def run(nb: nbformat.NotebookNode, folder: Path, **kw: Any) -> nbformat.NotebookNode:
    return client(nb, folder, **kw).execute()


def text(cell: nbformat.NotebookNode) -> str:
    """What a cell showed as text: streams, results, error names."""
    parts = []
    for out in cell.outputs:
        if out.output_type == "stream":
            parts.append(out.text)
        elif out.output_type in ("execute_result", "display_data"):
            parts.append(out.data.get("text/plain", ""))
        elif out.output_type == "error":
            parts.append(f"{out.ename}: {out.evalue}")
    return "".join(parts)


def test_state_rich_output_files_and_errors(notebook_dir: Path) -> None:
    (notebook_dir / "data.csv").write_text("a,b\n1,2\n")
    nb = run(notebook(
        "x = 40",
        "x + 2",
        "from IPython.display import HTML, Markdown, display\n"
        "display(HTML('<b>bold</b>')); display(Markdown('# Title'))",
        "%matplotlib inline\nimport matplotlib.pyplot as plt\nplt.plot([1, 2, 3]); plt.show()",
        "print(open('data.csv').read().splitlines()[1])",
        "open('written.txt', 'w')",
        "1 / 0",
        "print('still', x)",
    ), notebook_dir)
    cells = nb.cells
    assert text(cells[1]) == "42" and cells[1].outputs[0].execution_count == 2
    assert [o.data[MIME_TYPE]["data"] for o in cells[2].outputs] \
        == [{"text/html": "<b>bold</b>"}, {"text/markdown": "# Title"}]
    assert any("image/png" in o.get("data", {}) for o in cells[3].outputs)
    assert text(cells[4]) == "1,2\n"
    assert "OSError: [Errno 30] Read-only file system" in text(cells[5])  # mounted ro
    assert cells[6].outputs[0].ename == "ZeroDivisionError"
    assert text(cells[7]) == "still 40\n"


def test_interrupt_keeps_state(notebook_dir: Path) -> None:
    nb = run(notebook("n = 7", "while True:\n    pass", "n * 6"), notebook_dir,
             timeout=5, interrupt_on_timeout=True)
    assert nb.cells[1].outputs[-1].ename == "KeyboardInterrupt"
    assert text(nb.cells[2]) == "42"


def test_widget_from_the_box(notebook_dir: Path) -> None:
    nb = run(notebook("import ipywidgets\nslider = ipywidgets.IntSlider(value=3)\nslider"),
             notebook_dir)
    view = next(o.data[WIDGET_VIEW] for o in nb.cells[0].outputs if WIDGET_VIEW in o.data)
    state = nb.metadata.widgets[WIDGET_STATE]["state"]
    assert state[view["model_id"]]["state"]["value"] == 3  # from the relayed comm_open


def test_box_stopped_under_the_kernel(notebook_dir: Path, server: ServerProcess) -> None:
    nb = notebook("import socket\nprint(socket.gethostname(), end='')", "1 + 1")
    nbc = client(nb, notebook_dir)
    with nbc.setup_kernel():
        nbc.execute_cell(nb.cells[0], 0)
        name = text(nb.cells[0])
        with server.http() as http:
            assert http.post(f"/v1/boxes/{name}:stop").status_code == 200
        nbc.execute_cell(nb.cells[1], 1)
    error = nb.cells[1].outputs[-1]
    assert error.ename == "BoxUnavailable"
    assert f"box {name}" in error.evalue and "the box was stopped" in error.evalue
    assert "Restart the kernel" in error.evalue


def test_folder_outside_the_volume_roots_is_not_mounted() -> None:
    """The server refuses a notebook folder outside its volume_roots (/var/tmp here); the
    kernel says so and runs the notebook in a box without it."""
    folder = Path(tempfile.mkdtemp(prefix="boxrun-nb-", dir="/var/tmp"))
    folder.chmod(0o755)
    secret = folder / "secret.txt"
    secret.write_text("host file")
    try:
        nb = run(notebook(f"import os\nprint(os.path.exists({str(secret)!r}), end='')", "1 + 1"),
                 folder)
    finally:
        shutil.rmtree(folder)
    first = text(nb.cells[0])
    assert "The notebook's folder is not mounted in the box" in first
    assert "allowed roots" in first and first.endswith("False")
    assert text(nb.cells[1]) == "2"


def test_no_server(notebook_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOXRUN_SOCKET", str(notebook_dir / "no.sock"))
    nb = run(notebook("1 + 1"), notebook_dir, timeout=30)
    error = nb.cells[0].outputs[-1]
    assert error.ename == "BoxUnavailable"
    assert "cannot reach the BoxRun server" in error.evalue


def test_restart_reuses_the_box_and_shutdown_removes_it(
        notebook_dir: Path, server: ServerProcess, kernel_env: dict[str, str]) -> None:
    km = KernelManager(kernel_name="boxrun")
    km.start_kernel(env=kernel_env, cwd=str(notebook_dir))
    try:
        kc = km.blocking_client()
        kc.start_channels()
        kc.wait_for_ready(timeout=120)
        results = []

        def ask(code: str) -> str:
            results.clear()
            kc.execute_interactive(code, timeout=60, output_hook=lambda m: results.append(
                m["content"]["data"]["text/plain"]) if m["msg_type"] == "execute_result"
                else None)
            return results[-1]

        name = ask("a = 1; import socket; socket.gethostname()")
        ask("open('/root/kept', 'w').write('x')")
        km.restart_kernel()
        kc.wait_for_ready(timeout=120)
        assert ask("import socket; socket.gethostname()") == name
        assert ask("'a' in globals(), open('/root/kept').read()") == "(False, 'x')"
        kc.stop_channels()
    finally:
        km.shutdown_kernel()
    with server.http() as http:  # the server finishes the removal the kernel asked for
        deadline = time.monotonic() + 30
        while http.get(f"/v1/boxes/{name.strip(repr(''))}").status_code != 404:
            assert time.monotonic() < deadline, "the box was not removed"
            time.sleep(0.2)
