"""A BoxRun kernel whose server goes away: it reconnects to the restarted server and to
the same interpreter, variables intact, or says so once the server stays away."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager, start_new_kernel

from ..servers import ServerProcess

TIMEOUT = 120


def text(msg: dict[str, Any]) -> str:
    """What an output message shows, as text."""
    content = msg["content"]
    return (content.get("text") or content.get("data", {}).get("text/plain", "")
            or content.get("evalue", ""))


def run(kc: BlockingKernelClient, code: str) -> tuple[dict[str, Any], str]:
    """A cell's reply content and what it printed or returned, as text."""
    out: list[str] = []
    reply = kc.execute_interactive(code, timeout=TIMEOUT,
                                   output_hook=lambda msg: out.append(text(msg)))
    return reply["content"], "".join(out)


def finish(kc: BlockingKernelClient, msg_id: str) -> tuple[dict[str, Any], str]:
    """The reply and output of the cell ``msg_id`` sent before."""
    out = ""
    while True:
        msg = kc.get_iopub_msg(timeout=TIMEOUT)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        out += text(msg)
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
    while (reply := kc.get_shell_msg(timeout=TIMEOUT))["parent_header"]["msg_id"] != msg_id:
        pass
    return reply["content"], out


@pytest.fixture
def kernel(new_server: ServerProcess, notebook_dir: Path, request: pytest.FixtureRequest
           ) -> Iterator[tuple[KernelManager, BlockingKernelClient]]:
    """A BoxRun kernel on a server of its own (with the kernel arguments of an indirect
    parameter); its boxes outlive the server."""
    new_server.env["BOXRUN_STOP_BOXES"] = "0"
    new_server.start()
    km, kc = start_new_kernel(kernel_name="boxrun", cwd=str(notebook_dir),
                              env={**os.environ, "BOXRUN_SOCKET": new_server.socket},
                              startup_timeout=TIMEOUT,
                              extra_arguments=getattr(request, "param", []))
    try:
        yield km, kc
    finally:
        kc.stop_channels()
        if new_server.proc is None or new_server.proc.poll() is not None:
            new_server.start()  # so the kernel's box goes with the kernel
        km.shutdown_kernel(now=False)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_server_restart_keeps_the_interpreter(kernel: tuple[KernelManager, BlockingKernelClient],
                                              new_server: ServerProcess, sig: int) -> None:
    """``x = 42``; the server restarts (twice: once while a cell runs, once between
    cells, the next cell sent while it is away): the kernel's cells see ``x``, and the
    running cell's output arrives."""
    _, kc = kernel
    assert run(kc, "x = 42")[0]["status"] == "ok"
    msg_id = kc.execute("import time\ntime.sleep(3)\nprint('across', x)")
    time.sleep(1)
    new_server.kill(sig)
    new_server.start()
    reply, out = finish(kc, msg_id)
    assert reply["status"] == "ok" and out == "across 42\n", (reply, out)
    new_server.kill(sig)
    away = time.monotonic()
    msg_id = kc.execute("x + 1")  # sent while the server is away: it waits
    time.sleep(1)
    new_server.start()
    reply, out = finish(kc, msg_id)
    assert reply["status"] == "ok" and out == "43", (reply, out)
    print(f"\nserver {signal.Signals(sig).name}, 1 s away, start again → the cell's result "
          f"after {time.monotonic() - away:.2f} s")


@pytest.mark.parametrize("kernel", [["--BoxRunKernel.reconnect_seconds=3"]], indirect=True)
def test_server_away_fails_cells_in_words(kernel: tuple[KernelManager, BlockingKernelClient],
                                          new_server: ServerProcess) -> None:
    """A server that does not come back: a cell fails, saying so, once the kernel gave up
    on it (``reconnect_seconds``), instead of waiting forever."""
    _, kc = kernel
    assert run(kc, "x = 42")[0]["status"] == "ok"
    new_server.kill()  # no last word from it
    started = time.monotonic()
    reply, _ = run(kc, "x")
    assert reply["status"] == "error" and reply["ename"] == "BoxUnavailable"
    assert "did not come back within 3 s" in reply["evalue"], reply
    assert time.monotonic() - started < 30
