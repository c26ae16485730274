"""The ``boxrun`` kernelspec against jupyter_kernel_test, with a real server and box, on
every backend (a unittest class cannot be parametrized: one subclass per backend)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jupyter_kernel_test
import pytest
from jupyter_client.manager import start_new_kernel

from boxrun_kernel.outputs import MIME_TYPE

from ..conftest import backend_problem, suite_backends
from ..servers import ServerProcess
from .conftest import env_of

TIMEOUT = 30


@pytest.fixture(scope="class", autouse=True)
def boxrun_kernel(request: pytest.FixtureRequest, servers: Callable[[str], ServerProcess],
                  notebook_dir: Path) -> Iterator[None]:
    """Start the kernel once for the class (in place of ``KernelTests.setUpClass``), on
    the shared server of the class's backend."""
    cls = request.cls
    if problem := backend_problem(cls.backend):
        pytest.skip(f"backend {cls.backend}: {problem}")
    cls.km, cls.kc = start_new_kernel(kernel_name="boxrun", env=env_of(servers(cls.backend)),
                                      cwd=str(notebook_dir), startup_timeout=120)
    yield
    cls.kc.stop_channels()
    cls.km.shutdown_kernel()


class BoxRunKernelTests(jupyter_kernel_test.KernelTests):
    __test__ = False  # collected through its subclass per backend, below
    backend = ""
    kernel_name = "boxrun"
    language_name = "python"
    file_extension = ".py"

    code_hello_world = "print('hello, world')"
    code_stderr = "import sys; print('test', file=sys.stderr)"
    completion_samples = [{"text": "zi", "matches": {"zip"}}]
    complete_code_samples = ["1", "print('hello, world')", "def f(x):\n  return x*2\n\n\n"]
    incomplete_code_samples = ["print('''hello", "def f(x):\n  x*2"]
    invalid_code_samples = ["import = 7q"]
    code_page_something = "zip?"
    code_generate_error = "raise ValueError('boom')"
    code_execute_result = [
        {"code": "1+2+3", "result": "6"},
        {"code": "[n*n for n in range(1, 4)]", "result": "[1, 4, 9]"},
    ]
    code_display_data = [
        # Under the BoxRun MIME type, which the lab extension renders sanitized.
        {"code": "from IPython.display import HTML, display; display(HTML('<b>test</b>'))",
         "mime": MIME_TYPE},
        {"code": "from IPython.display import Math, display; display(Math('\\\\frac{1}{2}'))",
         "mime": "text/latex"},
    ]
    code_history_pattern = "1?2*"
    # Not "range": IPython answers a range of the current session as session 0, which the
    # suite refuses for a local python3 ipykernel too (checked with ipykernel 7.4).
    supported_history_operations = ("tail", "search")
    code_inspect_sample = "zip"
    code_clear_output = "from IPython.display import clear_output; clear_output()"

    @classmethod
    def setUpClass(cls) -> None:
        """The kernel comes from the ``boxrun_kernel`` fixture."""

    @classmethod
    def tearDownClass(cls) -> None:
        """See :meth:`setUpClass`."""

    def iopub(self, msg_id: str, until: str = "idle") -> list[dict[str, Any]]:
        """The iopub messages of request ``msg_id`` up to its ``idle`` (or an ``until``)."""
        messages = []
        while True:
            msg = self.kc.get_iopub_msg(timeout=TIMEOUT)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == until:
                return messages
            messages.append(msg)
            if msg["msg_type"] == until:
                return messages

    def test_stdin(self) -> None:
        """``input()`` in the box asks the frontend on the stdin channel."""
        self.flush_channels()
        msg_id = self.kc.execute("name = input('name? '); print('hi', name)", allow_stdin=True)
        request = self.kc.get_stdin_msg(timeout=TIMEOUT)
        assert request["msg_type"] == "input_request"
        assert request["content"]["prompt"] == "name? "
        assert request["parent_header"]["msg_id"] == msg_id
        self.kc.input("box")
        reply = self.kc.get_shell_msg(timeout=TIMEOUT)
        assert reply["content"]["status"] == "ok"
        streams = [m["content"]["text"] for m in self.iopub(msg_id) if m["msg_type"] == "stream"]
        assert "".join(streams) == "hi box\n"

    def test_execution_count_and_input(self) -> None:
        """execute_input and the reply carry the box interpreter's execution count."""
        self.flush_channels()
        msg_id = self.kc.execute("40 + 2")
        reply = self.kc.get_shell_msg(timeout=TIMEOUT)
        outputs = self.iopub(msg_id)
        inputs = [m for m in outputs if m["msg_type"] == "execute_input"]
        results = [m for m in outputs if m["msg_type"] == "execute_result"]
        assert len(inputs) == 1 and len(results) == 1
        count = reply["content"]["execution_count"]
        assert inputs[0]["content"]["execution_count"] == count
        assert results[0]["content"]["execution_count"] == count

    def test_comms_both_ways(self) -> None:
        """comm_open, comm_msg and comm_info from the frontend reach the box; its answers
        come back under the frontend's message."""
        self.flush_channels()
        target = ("def _echo(comm, msg):\n"
                  "    comm.on_msg(lambda m: comm.send({'echo': m['content']['data']}))\n"
                  "get_ipython().kernel.comm_manager.register_target('echo', _echo)")
        self.kc.execute_interactive(target, timeout=TIMEOUT)
        session, shell = self.kc.session, self.kc.shell_channel
        shell.send(session.msg("comm_open", {"comm_id": "c1", "target_name": "echo", "data": {}}))
        msg = session.msg("comm_msg", {"comm_id": "c1", "data": {"n": 7}})
        shell.send(msg)
        # A comm message that comes while the comm_open is handled is handled at once,
        # without busy/idle (as ipykernel does while a cell runs): wait for the echo.
        echo = self.iopub(msg["header"]["msg_id"], until="comm_msg")[-1]
        assert echo["content"]["data"] == {"echo": {"n": 7}}
        info_id = self.kc.comm_info(target_name="echo")
        reply = self.kc.get_shell_msg(timeout=TIMEOUT)
        assert reply["parent_header"]["msg_id"] == info_id
        assert reply["content"]["comms"] == {"c1": {"target_name": "echo"}}


for _backend in suite_backends():
    globals()[f"TestBoxRunKernel_{_backend}"] = type(
        f"TestBoxRunKernel_{_backend}", (BoxRunKernelTests,),
        {"__test__": True, "backend": _backend})
