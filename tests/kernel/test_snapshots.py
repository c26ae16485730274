"""``%boxrun snapshot`` / ``restore`` in a BoxRun kernel through jupyter_client: with
memory snapshots (gVisor) the interpreter is the restored one and the
execution count goes on; with disk-only ones (namespace) the kernel says it restarted."""

from __future__ import annotations

import re

from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager

from ..servers import ServerProcess
from .test_reconnect import kernel, run

__all__ = ["kernel"]  # the fixture

def test_restore_to_a_snapshot(kernel: tuple[KernelManager, BlockingKernelClient],
                               server_backend: str) -> None:
    _, kc = kernel
    memory = server_backend == "gvisor"
    assert run(kc, "x = 41")[0]["status"] == "ok"
    reply, out = run(kc, "%boxrun snapshot after-x")
    assert reply["status"] == "ok" and "snapshot after-x" in out, out
    before = run(kc, "x = 0")[0]["execution_count"]
    reply, out = run(kc, "%boxrun snapshots")
    assert "after-x" in out and ("yes" if memory else "disk only") in out, out
    reply, said = run(kc, "%boxrun restore after-x")
    assert reply["status"] == "ok", said
    assert ("go on" if memory else "the interpreter was restarted") in said, said
    count = reply["execution_count"]
    assert count > before  # the restored interpreter's count (3) does not show
    reply, out = run(kc, "x + 1")
    if memory:
        assert reply["status"] == "ok" and out.strip() == "42", out
    else:
        assert reply["status"] == "error" and "NameError" in reply["ename"] + out, out
    assert reply["execution_count"] > count
    reply, out = run(kc, "!ls -l /etc/hostname")  # coreutils in the restored box
    assert out.startswith("-") and "/etc/hostname" in out, out
    reply, out = run(kc, "%boxrun restore nope")
    assert "nope" in out and "Traceback" not in out, out


def test_fork_and_attach(kernel: tuple[KernelManager, BlockingKernelClient],
                         new_server: ServerProcess, server_backend: str) -> None:
    """``%boxrun fork`` of a memory snapshot names the interpreter the fork carries, and
    ``%boxrun use FORK --attach SID`` goes on with it: ``y`` is there, not re-run."""
    _, kc = kernel
    memory = server_backend == "gvisor"
    try:
        assert run(kc, "import random; y = random.randrange(10**9)")[0]["status"] == "ok"
        y = run(kc, "print(y)")[1].strip()
        assert run(kc, "%boxrun snapshot at-y")[0]["status"] == "ok"
        reply, said = run(kc, "%boxrun fork at-y --name branch-y")
        assert reply["status"] == "ok" and "box branch-y" in said, said
        carried = re.search(r"--attach (sess_\S+)", said)
        assert bool(carried) is memory, said
        if not memory:  # a disk-only fork carries no interpreter: refused in words
            reply, said = run(kc, "%boxrun use branch-y --attach sess_nope")
            assert "disk only" in said and "Traceback" not in said, said
            return
        reply, said = run(kc, "%boxrun use branch-y --attach sess_nope")
        assert "sess_nope" in said and "Traceback" not in said, said
        reply, said = run(kc, f"%boxrun use branch-y --attach {carried[1]}")
        assert "its variables are there" in said, said
        reply, out = run(kc, "open('/root/where', 'w').write('in the fork'); print(y)")
        assert reply["status"] == "ok" and out.strip() == y, out
        assert run(kc, "%boxrun exec -b branch-y -- cat /root/where")[1] == "in the fork"
        reply, said = run(kc, f"%boxrun use branch-y --attach {carried[1]}")
        assert "already" in said, said  # (a page reload asks again)
        assert run(kc, "print(y)")[1].strip() == y
    finally:
        with new_server.http() as http:
            http.delete("/v1/boxes/branch-y", params={"force": "true"})
