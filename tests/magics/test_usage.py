"""The box's usage for the BoxRun kernel: ``usage_reply`` content and a cell's usage."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from jupyter_client.manager import start_new_kernel

from boxrun_kernel.client import BoxRunClient
from boxrun_kernel.magics.usage import CellMeter, usage_reply

from ..servers import ServerProcess


async def test_usage_reply_and_cell_meter(magics_server: ServerProcess) -> None:
    client = BoxRunClient(socket=magics_server.socket)
    spec = {"image": "debian", "name": "metered", "cpu": 1, "memory_mb": 256}
    box = await client.create_box(spec)
    try:
        usage = await usage_reply(client, box)
        assert usage["hostname"] == "metered" and usage["cpu_count"] == 1
        assert usage["kernel_memory"] > 0 and usage["box"]["box_id"] == box["id"]
        assert usage["host_virtual_memory"]["total"] >= usage["kernel_memory"]
        meter = CellMeter(client, box["id"], interval=0.2)
        # date +%s counts whole seconds: "+3" spins between 2 and 3 s
        busy = {"cmd": ["sh", "-c", "end=$(($(date +%s)+3)); while [ $(date +%s) -lt $end ]; "
                                    "do :; done"]}
        ex = await client.call("POST", f"/v1/boxes/{box['id']}/exec", json=busy)
        while (await client.call("GET", f"/v1/boxes/{box['id']}/exec/{ex['id']}"))[
                "status"] == "running":
            await asyncio.sleep(0.2)
        cell = await meter.stop()
        assert cell["wall_time_s"] >= 1.5 and cell["peak_memory_bytes"] > 0
        assert 0.5 < cell["cpu_time_s"] < cell["wall_time_s"] + 0.5
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
