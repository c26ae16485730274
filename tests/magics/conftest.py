"""A plain ``python3`` ipykernel with ``%load_ext boxrun_kernel``, driven through
jupyter_client against a BoxRun server of its own, and a reader of its widgets' comms."""

from __future__ import annotations

import os
import queue
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.blocking import BlockingKernelClient
from jupyter_client.manager import KernelManager, start_new_kernel

from ..servers import ServerProcess

TIMEOUT = 60


class Driver:
    """Runs cells and keeps every iopub message, and the widget models their comms describe."""

    def __init__(self, km: KernelManager, kc: BlockingKernelClient) -> None:
        self.km, self.kc = km, kc
        self.models: dict[str, dict[str, Any]] = {}
        self.closed: set[str] = set()
        self.updates: list[tuple[str, dict[str, Any]]] = []
        self.answers: dict[str, dict[str, Any]] = {}  # control comms' update_states
        self.reply: dict[str, Any] = {}

    def _read(self, timeout: float) -> dict[str, Any] | None:
        try:
            msg = self.kc.get_iopub_msg(timeout=timeout)
        except queue.Empty:
            return None
        content = msg["content"]
        if msg["msg_type"] == "comm_open":
            self.models[content["comm_id"]] = dict(content["data"].get("state", {}))
        elif msg["msg_type"] == "comm_msg" and content["data"].get("method") == "update":
            state = content["data"]["state"]
            self.models.setdefault(content["comm_id"], {}).update(state)
            self.updates.append((content["comm_id"], state))
        elif msg["msg_type"] == "comm_msg" and content["data"].get("method") == "update_states":
            self.answers[content["comm_id"]] = content["data"]
        elif msg["msg_type"] == "comm_close":
            self.closed.add(content["comm_id"])
        return msg

    def run(self, code: str, timeout: float = TIMEOUT) -> list[dict[str, Any]]:
        """Execute ``code``; the iopub messages it caused (until its ``idle``); its reply
        is then :attr:`reply`."""
        return self.collect(self.kc.execute(code, allow_stdin=False), timeout)

    def collect(self, msg_id: str, timeout: float = TIMEOUT) -> list[dict[str, Any]]:
        """The iopub messages of request ``msg_id``, once it is done."""
        mine: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = self._read(0.2)
            if msg is None or msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                reply = self.kc.get_shell_msg(timeout=timeout)
                while reply["parent_header"].get("msg_id") != msg_id:
                    reply = self.kc.get_shell_msg(timeout=timeout)
                self.reply = reply["content"]
                return mine
            mine.append(msg)
        raise TimeoutError(f"request {msg_id} did not finish in {timeout} s")

    def wait(self, check: Callable[[], Any], timeout: float = TIMEOUT, what: str = "") -> Any:
        """Read iopub until ``check()`` is truthy; its value."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            self._read(0.2)
        raise TimeoutError(f"waited {timeout} s for {what or check}")

    def send_comm(self, comm_id: str, data: dict[str, Any]) -> None:
        """A frontend's comm message to the kernel (a click, a state change)."""
        self.kc.shell_channel.send(self.kc.session.msg("comm_msg",
                                                       {"comm_id": comm_id, "data": data}))


VIEW = "application/vnd.jupyter.widget-view+json"


class Row:
    """The widget models of one box's row, found by its title."""

    def __init__(self, kernel: Driver, name: str) -> None:
        self.kernel, self.name = kernel, name

    def _ids(self) -> dict[str, Any] | None:
        models = self.kernel.models
        title = next((i for i, s in models.items() if s.get("_model_name") == "HTMLModel"
                      and f"<b>{self.name}</b>" in s.get("value", "")), None)
        line = next((i for i, s in models.items()
                     if f"IPY_MODEL_{title}" in s.get("children", [])), None)
        row = next((i for i, s in models.items()
                    if f"IPY_MODEL_{line}" in s.get("children", [])), None)
        if title is None or line is None or row is None:
            return None

        def children(model: str) -> list[str]:
            return [c.removeprefix("IPY_MODEL_") for c in models[model]["children"]]
        toggle, _, badge, cpu, _ = children(line)
        about, actions, confirm = children(children(row)[1])
        buttons = {models[p]["description"]: p for p in children(actions)}
        return {"row": row, "badge": badge, "cpu": cpu, "spark": children(about)[1],
                "toggle": toggle, "buttons": buttons, "confirm": confirm}

    def ids(self) -> dict[str, Any]:
        return self.kernel.wait(self._ids, what=f"the row of box {self.name}")

    def badge(self) -> str:
        return self.kernel.models[self.ids()["badge"]]["value"]

    def wait_status(self, status: str) -> None:
        self.kernel.wait(lambda: self._ids() and f">{status}</span>" in self.badge(),
                         what=f"box {self.name} shown {status}")

    def click(self, button: str) -> None:
        self.kernel.send_comm(self.ids()["buttons"][button],
                              {"method": "custom", "content": {"event": "click"}})


def text(messages: list[dict[str, Any]], name: str | None = None) -> str:
    """Streamed text of ``messages`` (of stream ``name`` only, if given) and text results."""
    parts = []
    for msg in messages:
        content = msg["content"]
        if msg["msg_type"] == "stream" and name in (None, content["name"]):
            parts.append(content["text"])
        elif msg["msg_type"] in ("display_data", "execute_result") and name is None:
            parts.append(content["data"].get("text/plain", "") + "\n")
    return "".join(parts)


def status(server: ServerProcess, name: str) -> str | None:
    """Box ``name``'s status as the server says, None if there is no such box."""
    with server.http() as http:
        answer = http.get(f"/v1/boxes/{name}")
    return answer.json()["status"] if answer.status_code == 200 else None


@pytest.fixture(scope="package")
def magics_server(tmp_path_factory: pytest.TempPathFactory,
                  images_dir: Path) -> Iterator[ServerProcess]:
    """A server of the magics' tests, with room for a few boxes at once."""
    env = {"BOXRUN_MAX_CPU": "16", "BOXRUN_MAX_MEMORY_MB": "16384"}
    srv = ServerProcess(tmp_path_factory.mktemp("magics") / "state", images_dir, env=env).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="package")
def work_dir() -> Iterator[Path]:
    """The kernel's working directory."""
    path = Path(tempfile.mkdtemp(prefix="boxrun-magics-"))
    path.chmod(0o755)  # box root mounts it (the BoxRun kernel's notebook folder)
    yield path
    shutil.rmtree(path)


def start_kernel(socket: str, cwd: Path) -> Driver:
    """A ``python3`` kernel using the server at ``socket``, with the extension loaded."""
    env = {**os.environ, "BOXRUN_SOCKET": socket}
    env.pop("BOXRUN_URL", None)
    km, kc = start_new_kernel(kernel_name="python3", env=env, cwd=str(cwd), startup_timeout=60)
    driver = Driver(km, kc)
    assert not text(driver.run("%load_ext boxrun_kernel"), "stderr")
    return driver


@pytest.fixture(scope="module")
def kernel(magics_server: ServerProcess, work_dir: Path) -> Iterator[Driver]:
    driver = start_kernel(magics_server.socket, work_dir)
    yield driver
    driver.kc.stop_channels()
    driver.km.shutdown_kernel(now=True)
