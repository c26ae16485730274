"""The box's usage for the BoxRun kernel: ``usage_reply`` content and a cell's usage."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from jupyter_client.manager import start_new_kernel

from boxrun_kernel.client import BoxRunClient
from boxrun_kernel.magics.usage import usage_reply
from boxrun_kernel.session import open_session

from ..servers import ServerProcess


async def test_usage_reply_and_cell_usage(magics_server: ServerProcess) -> None:
    """``usage_reply`` from the box's metrics; the server's ``execute_reply`` carries what
    the box used during the cell."""
    client = BoxRunClient(socket=magics_server.socket)
    spec = {"image": "python", "name": "metered", "cpu": 1, "memory_mb": 512}
    box = await client.create_box(spec)
    try:
        usage = await usage_reply(client, box)
        assert usage["hostname"] == "metered" and usage["cpu_count"] == 1
        assert usage["kernel_memory"] > 0 and usage["box"]["box_id"] == box["id"]
        assert usage["host_virtual_memory"]["total"] >= usage["kernel_memory"]
        session = await open_session(client, box, None, lambda *a: None, None,  # type: ignore[arg-type]
                                     logging.getLogger())
        busy = "import time\nx = bytearray(96 << 20)\nend = time.time() + 1.5\n" \
               "while time.time() < end: pass"
        metadata: dict[str, Any] = {}
        reply = await session.request("shell", "execute_request", {"code": busy},
                                      reply_metadata=metadata)
        assert reply and reply["status"] == "ok"
        cell = metadata["boxrun_usage"]
        assert cell["wall_time_s"] >= 1.5 and cell["peak_memory_bytes"] > 96 << 20
        assert 1.0 < cell["cpu_time_s"] < cell["wall_time_s"] + 0.5
        await session.close()
    finally:
        await client.remove_box(box["id"])
        await client.aclose()


def test_boxrun_kernel_reports_the_box(magics_server: ServerProcess, work_dir: Path) -> None:
    """The BoxRun kernel answers ``usage_request`` with its box's metrics and records each
    cell's usage in the reply's metadata."""
    env = {**os.environ, "BOXRUN_SOCKET": magics_server.socket}
    km, kc = start_new_kernel(kernel_name="boxrun", env=env, cwd=str(work_dir),
                              startup_timeout=120)
    try:
        reply = kc.execute_interactive("import time\nx = bytearray(64 << 20)\ntime.sleep(1.2)",
                                       timeout=60)
        usage = reply["metadata"]["boxrun_usage"]
        assert usage["wall_time_s"] >= 1.2 and usage["peak_memory_bytes"] > 64 << 20
        kc.control_channel.send(kc.session.msg("usage_request", {}))
        answer = kc.control_channel.get_msg(timeout=30)
        assert answer["msg_type"] == "usage_reply"
        content = answer["content"]
        assert content["hostname"].startswith("jupyter-") and content["kernel_memory"] > 64 << 20
        assert content["cpu_count"] == 1 and content["box"]["status"] == "running"
    finally:
        kc.stop_channels()
        km.shutdown_kernel()  # graceful: the kernel removes its box
