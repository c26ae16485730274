"""JupyterLab's widget manager opens its control comm the moment it connects, before any
cell imported ipywidgets in the box: the box answers it, and no ``No such comm`` line
reaches a cell."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from jupyter_client.manager import start_new_kernel

TIMEOUT = 60


def test_widget_control_comm_before_ipywidgets(kernel_env: dict[str, str],
                                               notebook_dir: Path) -> None:
    km, kc = start_new_kernel(kernel_name="boxrun", env=kernel_env, cwd=str(notebook_dir),
                              startup_timeout=120)
    try:
        session, shell = kc.session, kc.shell_channel
        opened = {"comm_id": "control1", "target_name": "jupyter.widget.control", "data": {}}
        shell.send(session.msg("comm_open", opened, metadata={"version": "1.0.0"}))
        shell.send(session.msg("comm_msg", {"comm_id": "control1",
                                            "data": {"method": "request_states"}}))
        cells = [kc.execute("6 * 7"),
                 kc.execute("import ipywidgets; w = ipywidgets.IntSlider(3); w.value")]
        seen: list[dict[str, Any]] = []
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            msg = kc.get_iopub_msg(timeout=deadline - time.monotonic())
            seen.append(msg)
            if (msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle"
                    and msg["parent_header"].get("msg_id") == cells[-1]):
                break
        types = [(m["msg_type"], m["content"].get("comm_id")) for m in seen]
        answers = [m["content"]["data"] for m in seen
                   if m["msg_type"] == "comm_msg" and m["content"]["comm_id"] == "control1"]
        streams = "".join(m["content"]["text"] for m in seen if m["msg_type"] == "stream")
        assert [a["method"] for a in answers] == ["update_states"], (types, streams)
        assert ("comm_close", "control1") not in types
        streams = "".join(m["content"]["text"] for m in seen if m["msg_type"] == "stream")
        assert "No such comm" not in streams
        results = [m["content"]["data"]["text/plain"] for m in seen
                   if m["msg_type"] == "execute_result"]
        assert results == ["42", "3"]
    finally:
        kc.stop_channels()
        km.shutdown_kernel()
