"""Many notebooks on a small host: kernels' boxes commit cpu (ceilings and weights, not
reserved cores), so ten BoxRun kernels run on two cores; memory is never over-committed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from jupyter_client.manager import KernelManager

from ..servers import ServerProcess

KERNELS = 10


@pytest.mark.timeout(600)
def test_ten_kernels_on_the_host_cores(new_server: ServerProcess, notebook_dir: Path,
                                       tmp_path: Path) -> None:
    server = new_server.start()
    with server.http() as http:
        info = http.get("/v1/info").json()
    assert info["max_cpu"] == os.cpu_count() and info["max_cpu"] < KERNELS
    env = {**os.environ, "BOXRUN_SOCKET": server.socket, "IPYTHONDIR": str(tmp_path / "ipython")}
    env.pop("BOXRUN_URL", None)
    managers = [KernelManager(kernel_name="boxrun") for _ in range(KERNELS)]
    clients = []
    try:
        for km in managers:  # all start at once, as a restored workspace's notebooks do
            km.start_kernel(env=env, cwd=str(notebook_dir))
        for km in managers:
            kc = km.client()
            kc.start_channels()
            clients.append(kc)
            kc.wait_for_ready(timeout=240)
        names = []
        for kc in clients:
            out: list[str] = []
            reply = kc.execute_interactive(
                "import socket; print(socket.gethostname())", timeout=120,
                output_hook=lambda m, out=out: out.append(m["content"].get("text", "")))
            assert reply["content"]["status"] == "ok", reply["content"]
            names.append("".join(out).strip())
        expected = [f"jupyter-{Path(km.connection_file).stem.removeprefix('kernel-')}"
                    for km in managers]
        assert names == expected  # each kernel answered from its own box

        with server.http() as http:
            info = http.get("/v1/info").json()
            assert info["committed_cpu"] == KERNELS > info["max_cpu"]
            assert info["reserved_memory_mb"] == KERNELS * 1024
            free = info["max_memory_mb"] - info["reserved_memory_mb"]
            refused = http.post("/v1/boxes", json={"image": "python", "memory_mb": free + 1})
        assert refused.status_code == 409
        error = refused.json()
        assert error["code"] == "RESOURCE_EXCEEDED"
        assert f"{free} of {info['max_memory_mb']} MB" in error["message"]
        assert "stop or remove a box to free some: jupyter-" in error["message"]
    finally:
        for kc in clients:
            kc.stop_channels()
        for km in managers:
            if km.has_kernel:
                km.shutdown_kernel()
        server.stop()  # stops whatever box is left
