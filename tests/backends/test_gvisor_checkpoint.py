"""Checkpoint and restore of gVisor boxes on real ``runsc`` sandboxes: a box goes on after
its checkpoint, and boxes made from one go on from it, each on its own."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time

import pytest

from jupyter_ext.backends.base import Volume
from jupyter_ext.backends.execfiles import EXEC_DEFAULT_ENV
from jupyter_ext.backends.gvisor.checkpoint import Checkpoint, checkpoint, create_from
from jupyter_ext.core.errors import BoxRunError
from jupyter_ext.sessions.commands import relay_command, socket_path

from . import test_gvisor

# the gVisor backend fixtures and skip mark
backend, gv_state, pytestmark = test_gvisor.backend, test_gvisor.gv_state, test_gvisor.pytestmark

#: A background process counting in its memory (a shell variable), writing each value
#: to /root/log; it never reads the file back.
COUNTER = ("i=0; while :; do i=$((i+1)); echo $i >> /root/log; sleep 0.05; done"
           " </dev/null >/dev/null 2>&1 &")


def saved_file(saved: Checkpoint, path: str) -> str:
    """The text of file ``path`` (below /) in the checkpoint's layer copy: a folder, or
    a disk image (read with debugfs, nothing mounted)."""
    if saved.layer.is_dir():
        return (saved.layer / path).read_text()
    return subprocess.run(["debugfs", "-R", f"cat /upper/{path}", str(saved.layer)],
                          capture_output=True, check=True, text=True).stdout


async def counts(run, handle: str) -> list[int]:
    _, out, _ = await run(handle, "cat", "/root/log")
    return [int(line) for line in out.split()]


async def grows(run, handle: str, beyond: int) -> list[int]:
    """The box's log once it has counted past ``beyond`` (its counter runs)."""
    for _ in range(200):
        values = await counts(run, handle)
        if values and values[-1] > beyond:
            return values
        await asyncio.sleep(0.05)
    raise AssertionError(f"the counter of {handle} stopped at {values[-1:]}")


async def test_checkpoint_goes_on_and_forks_diverge(boot, spec, run, backend, tmp_path):
    box = spec()
    source = await boot(box)
    assert (await run(source, "sh", "-c", "echo before > /root/file; " + COUNTER))[0] == 0
    await grows(run, source, 3)
    saved = await checkpoint(backend, source, box, tmp_path / "ckpt")
    at_checkpoint = [int(n) for n in saved_file(saved, "root/log").split()]
    assert at_checkpoint == list(range(1, len(at_checkpoint) + 1))
    assert saved.size_bytes() > 0
    # the source went on: same counter, nothing lost or repeated
    assert await backend.running() == {source}
    values = await grows(run, source, at_checkpoint[-1] + 3)
    assert values == list(range(1, len(values) + 1))

    forks = [await create_from(backend, spec(), saved) for _ in range(2)]
    for fork in forks:
        values = await grows(run, fork, at_checkpoint[-1] + 3)
        # the shell's variable came back from memory: it counts on from the checkpoint
        assert values == list(range(1, len(values) + 1))
        assert await run(fork, "cat", "/root/file") == (0, b"before\n", b"")
    assert backend.exits == []  # type: ignore[attr-defined]

    # each box writes its own layer
    await run(forks[0], "sh", "-c", "echo fork0 > /root/file")
    await run(source, "sh", "-c", "echo source > /root/file; rm /root/log")
    assert (await run(forks[1], "cat", "/root/file"))[1] == b"before\n"
    assert (await run(forks[0], "cat", "/root/file"))[1] == b"fork0\n"
    assert (await run(source, "cat", "/root/file"))[1] == b"source\n"
    # a fork stopped leaves the other counting
    await backend.stop(forks[0])
    last = (await counts(run, forks[1]))[-1]
    await grows(run, forks[1], last + 2)
    assert saved_file(saved, "root/file") == "before\n"  # the checkpoint too


async def test_restore_takes_other_volume_sources_and_new_volumes(
        boot, spec, run, backend, tmp_path):
    first, second, extra, kept = (tmp_path / n for n in ("first", "second", "extra", "kept"))
    for folder in (first, second, extra, kept):
        folder.mkdir()
        (folder / "name").write_text(folder.name)
    box = spec(volumes=[Volume(str(first), "/mnt/nb", readonly=True)])
    source = await boot(box)
    saved = await checkpoint(backend, source, box, tmp_path / "ckpt", leave_running=False)
    assert await backend.running() == set()
    assert saved.mounts() == ["/mnt/nb"]
    fork = await create_from(backend, spec(volumes=[
        Volume(str(second), "/mnt/nb", readonly=True), Volume(str(extra), "/opt/extra"),
        Volume(str(kept), "/opt/kept", readonly=True)]), saved)
    assert (await run(fork, "cat", "/mnt/nb/name"))[1] == b"second"
    assert (await run(fork, "cat", "/opt/extra/name"))[1] == b"extra"
    assert (await run(fork, "sh", "-c", "echo x > /opt/extra/w"))[0] == 0
    assert (extra / "w").read_text() == "x\n"
    for folder in ("/mnt/nb", "/opt/kept"):  # read-only, saved with the box or added
        code, _, err = await run(fork, "sh", "-c", f"echo x > {folder}/w")
        assert code != 0 and b"Read-only" in err
    assert not (kept / "w").exists()
    with pytest.raises(BoxRunError, match="/mnt/nb") as refused:
        await create_from(backend, spec(), saved)
    assert refused.value.code == "VALIDATION_ERROR"


async def test_failed_restore_leaves_nothing(boot, spec, backend, gv_state, tmp_path):
    box = spec()
    saved = await checkpoint(backend, await boot(box), box, tmp_path / "ckpt")
    (saved.image / "checkpoint.img").write_bytes(b"not an image")
    before = set((gv_state / "gvisor").glob("gv-*"))
    with pytest.raises(BoxRunError, match="failed to start"):
        await create_from(backend, spec(), Checkpoint(saved.path))
    assert set((gv_state / "gvisor").glob("gv-*")) == before


async def test_running_execs_and_a_socket_on_the_disk(boot, spec, run, backend, tmp_path):
    box = spec("python")
    handle = await boot(box)
    # an exec running at the checkpoint loses its stdio (reported killed), its process
    # goes on; the box's init listens again after
    sleeper = await backend.exec(handle, ["sh", "-c", "sleep 3; echo done > /root/after"],
                                 {}, "/root")
    await checkpoint(backend, handle, box, tmp_path / "ckpt")
    assert await asyncio.wait_for(sleeper.wait(), 10) == 137
    await asyncio.sleep(3.5)
    assert await run(handle, "cat", "/root/after") == (0, b"done\n", b"")
    # a socket bound on the box's disk is the host's: refused in words, and the box ends
    listen = ("import socket, time; s = socket.socket(socket.AF_UNIX); s.bind('/root/app.sock');"
              " s.listen(); print('up', flush=True); time.sleep(600)")
    server = await backend.exec(handle, ["python3", "-c", listen], {}, "/root")
    assert await anext(aiter(server.stdout)) == b"up\n"
    with pytest.raises(BoxRunError, match=r"Unix socket on the box's disk \(/root/app.sock\)"):
        await checkpoint(backend, handle, box, tmp_path / "ckpt2")
    assert not (tmp_path / "ckpt2").exists()
    # runsc ends the box during the checkpoint or soon after (its init may listen again
    # first): its death is reported once
    for _ in range(100):
        if backend.exits:  # type: ignore[attr-defined]
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(1)
    assert [h for h, _ in backend.exits] == [handle]  # type: ignore[attr-defined]


def printed(reports: list[dict]) -> str:
    return "".join(r["content"].get("text", "") for r in reports if r.get("msg_type") == "stream")


async def ask(backend, handle: str, path: str, code: str, until: str = "") -> list[dict]:
    """Attach to the agent on ``path`` through the relay exec, run ``code``, detach; the
    reports of that cell (up to its reply, its ``idle`` and the output ``until``: reply
    and output travel on different sockets, either may come first)."""
    process = await backend.exec(handle, relay_command(path), EXEC_DEFAULT_ENV, "/",
                                 stdin=True)
    msg_id = "test-" + str(time.monotonic_ns())
    await process.write_stdin(json.dumps({
        "op": "send", "channel": "shell", "msg_type": "execute_request", "msg_id": msg_id,
        "metadata": {}, "buffers": [], "content": {"code": code, "silent": False}}).encode()
        + b"\n")
    reports, buf = [], b""
    async for chunk in process.stdout:
        *lines, buf = (buf + chunk).split(b"\n")
        reports += [json.loads(line) for line in lines]
        mine = [r for r in reports if r.get("parent_msg_id") == msg_id]
        if (any(r["msg_type"] == "execute_reply" for r in mine)
                and any(r["msg_type"] == "status"
                        and r["content"].get("execution_state") == "idle" for r in mine)
                and until in printed(reports)):
            break
    process.kill()
    return reports


async def test_warm_session_restores_a_started_ipykernel(spec, boot, run, backend, tmp_path):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    (folder / "data.txt").write_text("from the notebook folder")
    box = spec("python", volumes=[Volume(str(folder), "/home/nb", readonly=True)])
    path = socket_path("sess_warm1")
    first = await boot(box)
    # no template yet: the first session starts cold, a template is built meanwhile
    assert await backend.warm_session(first, box, "auto", path, "/home/nb", {}) is None
    builds = list(backend.warm._builds.values())
    assert builds
    await asyncio.wait_for(asyncio.gather(*builds), 300)
    # a box with a file of its own is not fresh: never replaced
    assert (await run(first, "sh", "-c", "echo mine > /root/mine"))[0] == 0
    assert await backend.warm_session(first, box, "auto", path, "/home/nb", {}) is None
    assert (await run(first, "cat", "/root/mine"))[1] == b"mine\n"

    handle = await boot(box)
    kind = await backend.warm_session(handle, box, "auto", path, "/home/nb", {"MINE": "42"})
    assert kind == "ipykernel"
    reports = await ask(backend, handle, path, "import os; print(os.getcwd(),"
                        " open('data.txt').read(), os.environ['MINE'])")
    assert reports[0]["type"] == "resumed"  # the listening agent's answer to a client
    assert reports[1]["type"] == "ready" and reports[1].get("attached")
    assert printed(reports) == "/home/nb from the notebook folder 42\n"
    replies = [r["content"] for r in reports if r.get("msg_type") == "execute_reply"]
    assert replies[0]["status"] == "ok" and replies[0]["execution_count"] == 1
    # a second box from the same template is its own interpreter
    other = await boot(box)
    assert await backend.warm_session(other, box, "auto", path, "/home/nb", {}) == "ipykernel"
    await ask(backend, other, path, "x = 'other'")
    reports = await ask(backend, handle, path, "print(globals().get('x'))")
    assert [r["content"]["text"] for r in reports if r.get("msg_type") == "stream"] == ["None\n"]
    assert backend.exits == []  # type: ignore[attr-defined]
    # the output of a forked child still reaches the kernel (its pipe moved off TCP)
    fork = ("import os, sys\npid = os.fork()\nif pid == 0:\n    print('from the child')\n"
            "    sys.stdout.flush()\n    os._exit(0)\nos.waitpid(pid, 0)")
    reports = await asyncio.wait_for(ask(backend, handle, path, fork, "from the child"), 30)
    assert "from the child" in printed(reports)
