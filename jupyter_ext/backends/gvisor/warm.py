"""Warm interpreters on gVisor: per image, a checkpoint of a box whose ipykernel is
already started and listening (a *template*), from which a fresh box's first session is
restored instead of started. Starting ipykernel under the Sentry takes over a second
(file-heavy imports); a restore takes a few tenths.

A template lives in ``<state>/gvisor/.warm/<key>/`` (a :class:`.checkpoint.Checkpoint`),
``key`` naming the image's manifest digest and how the template is made (the agent's
files, :data:`TEMPLATE_CWD`, :data:`PREPARE`), then the disk size (a restored box's disk
image is a copy of the template's): a rebuilt image or a new server's agent makes a new
one, and the others are deleted when it is made. The first session on an image starts
cold and builds the template in the background; a template that fails to restore is
deleted (the session starts cold, and the next one builds anew).

A box is restored only while it is *fresh*: this server booted it and started no command
(nor file transfer) in it since (what a server-made box is between its start and its
first session); while none of its volumes is below a folder of gVisor's own
(:data:`RESTORED_DIRS`) or covers the template's files (:data:`TEMPLATE_FILES`); and
while the server's state shows through none of its volumes (the tmpfs covering it in a
box is the Sentry's, and a restore adds none: the box would see the state). Its volumes
(the notebook's folder) are added at the restore: the box sees them through its root
filesystem. The interpreter and its agent then move into the session's folder and take
its environment (a kernel restarted later starts there too), and its socket moves to the
session's own path (where a restarted server looks for it).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import secrets
import shutil
import time
from dataclasses import replace
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from ...core.errors import BoxRunError
from ...core.hostcmd import run_checked, tool
from ...images.oci import read_layout
from ...sessions.commands import SOCKET_DIR, agent_command
from ...sessions.install import AGENT_HOME, agent_files, install_agent
from ..diskimage import IMAGE, MOUNTPOINT, has_disk, make_disk
from ..execfiles import EXEC_DEFAULT_ENV, collect
from .checkpoint import Checkpoint, checkpoint, restore
from .spares import Shape, Spares

if TYPE_CHECKING:
    from ..base import BoxSpec
    from .backend import GvisorBackend

log = logging.getLogger(__name__)

#: Folders on filesystems of the Sentry's own (gVisor's tmpfs on /tmp, /dev and its
#: /dev/shm, /proc, /sys): a restore brings them back from the checkpoint as they were,
#: and a volume added below one is not there (runsc's restore always puts the saved tmpfs
#: back on /tmp; only a box whose /tmp is a mount of the host's could see one), so such
#: boxes start cold.
RESTORED_DIRS = ("/tmp", "/dev", "/proc", "/sys")
#: The template's interpreter starts in (and its agent stays in until a session moves
#: it): the Sentry's memory, below no volume. A restored Sentry keeps what it knew of
#: the working folders of the template's processes, and does not see a volume added
#: below one (found by trying: with /root, no volume below /root was seen; the home and
#: the files the interpreter makes there do not matter).
TEMPLATE_CWD = "/dev/shm"
#: Folders the template's processes run from or keep files open in (the agent's, and
#: IPython's in its home, /root): a volume on one, or above one, would hide them.
TEMPLATE_FILES = (AGENT_HOME, f"{EXEC_DEFAULT_ENV['HOME']}/.ipython")
#: The interpreter kept warm, and where its agent listens in the template.
KIND = "ipykernel"
TEMPLATE_SESSION = f"{SOCKET_DIR}/sessions/warm-template"
#: Seconds a template's interpreter has to start, and a restored one to answer.
BUILD_TIMEOUT = 120.0
ANSWER_TIMEOUT = 30.0
#: Runs in the box (``python3 -I -S -c TUNE FROM TO CODE [MOVE]``): moves the agent's
#: session folder FROM to TO, then has the interpreter listening there run CODE silently
#: (not counted, not in its history), prints its ``execute_reply`` content and, if it
#: succeeded, sends the agent the request MOVE (JSON). The holder of the socket keeps
#: running and takes the session's relay next.
TUNE = """\
import json, os, socket, sys
src, dst, code = sys.argv[1:4]
if src != dst:
    os.makedirs(os.path.dirname(dst), 0o700, exist_ok=True)
    os.rename(src, dst)
s = socket.socket(socket.AF_UNIX)
s.connect(dst + "/agent.sock")
f = s.makefile("rwb")
msg_id = "boxrun-warm-" + os.urandom(8).hex()
f.write(json.dumps({"op": "send", "channel": "shell", "msg_type": "execute_request",
    "msg_id": msg_id, "metadata": {}, "buffers": [],
    "content": {"code": code, "silent": True, "store_history": False,
                "user_expressions": {}, "allow_stdin": False, "stop_on_error": False}
    }).encode() + b"\\n")
f.flush()
reply = idle = None
for line in f:
    r = json.loads(line)
    if r.get("type") == "dead":
        sys.exit("the interpreter ended: " + str(r.get("reason")))
    if r.get("type") != "message" or r.get("parent_msg_id") != msg_id:
        continue
    if r["msg_type"] == "execute_reply":
        reply = r["content"]
    elif r["msg_type"] == "status" and r["content"].get("execution_state") == "idle":
        idle = True
    if reply is not None and idle:
        break
if reply is not None and reply.get("status") == "ok" and len(sys.argv) > 4:
    f.write(sys.argv[4].encode() + b"\\n")
    f.flush()
print(json.dumps(reply))
"""


#: Run silently in the template's kernel before its checkpoint. ipykernel's IOPub thread
#: listens on a TCP port of 127.0.0.1 for the output of forked children; this runsc
#: cannot save a TCP listener being polled ("endpoint still has waiters upon save"), so
#: the pipe moves to an ipc socket (children forked later connect there), and the kernel
#: then runs its first cell's code paths once.
PREPARE = f"""\
def _boxrun_prepare():
    import os, threading, zmq
    from zmq.eventloop.zmqstream import ZMQStream
    iopub = get_ipython().kernel.iopub_thread
    address = "ipc://{SOCKET_DIR}/iopub-pipe-%d.sock" % os.getpid()
    moved = threading.Event()

    def move():
        if iopub._pipe_in is not None:
            iopub._pipe_in.close()
        pipe_in = iopub.socket.context.socket(zmq.PULL)
        pipe_in.linger = 0
        pipe_in.bind(address)
        iopub._pipe_in = ZMQStream(pipe_in, iopub.io_loop)
        iopub._pipe_in.on_recv(iopub._handle_pipe_msg)
        moved.set()

    def pipe_out():
        context = zmq.Context()
        out = context.socket(zmq.PUSH)
        out.linger = 3000
        out.connect(address)
        return context, out

    iopub.io_loop.add_callback(move)
    if not moved.wait(10):
        raise RuntimeError("the IOPub pipe did not move")
    iopub._setup_pipe_out = pipe_out
_boxrun_prepare()
del _boxrun_prepare
"""
#: :data:`PREPARE` for a live interpreter before a snapshot of its box: unless its pipe
#: moved already (a warm start, or an earlier snapshot).
PREPARE_ONCE = (f"import os as _boxrun_os\n"
                f"if not _boxrun_os.path.exists('{SOCKET_DIR}/iopub-pipe-%d.sock'"
                f" % _boxrun_os.getpid()):\n"
                + "".join(f"    {line}\n" for line in PREPARE.splitlines())
                + "del _boxrun_os\n")


def _making_hash() -> str:
    """A digest of how a template is made: the agent's files, where it starts, its
    preparation."""
    digest = hashlib.sha256()
    for name, source in [*agent_files(), ("cwd", TEMPLATE_CWD.encode()),
                         ("prepare", PREPARE.encode())]:
        digest.update(name.encode() + b"\0" + source + b"\0")
    return digest.hexdigest()


def _keeps_cold(guest: str) -> bool:
    """Whether a volume at ``guest`` keeps its box from a warm start: it would not be seen
    (below :data:`RESTORED_DIRS`) or would hide the template's files."""
    path = PurePosixPath(guest)
    return (any(path.is_relative_to(folder) for folder in RESTORED_DIRS)
            or any(PurePosixPath(held).is_relative_to(path) for held in TEMPLATE_FILES))


def _key(image_digest: str, agent: str) -> str:
    """A template's key, without its disk size (a box's disk image is the template's)."""
    return hashlib.sha256(f"{image_digest} {agent}".encode()).hexdigest()[:32]


class WarmTemplates:
    """The templates of one gVisor backend, and the restores of fresh boxes from them."""

    def __init__(self, backend: GvisorBackend) -> None:
        self.backend = backend
        self.root = backend.boxes_dir / ".warm"
        self._builds: dict[str, asyncio.Task[Checkpoint]] = {}
        self._agent = _making_hash()
        self._locks: dict[str, asyncio.Lock] = {}
        self.spares = Spares(backend)

    def template(self, key: str) -> Checkpoint | None:
        """The built template ``key``, if any."""
        path = self.root / key
        return Checkpoint(path) if (path / "image").is_dir() else None

    async def close(self) -> None:
        """Cancel the templates being built and remove the spare boxes."""
        for task in self._builds.values():
            task.cancel()
        await asyncio.gather(*self._builds.values(), return_exceptions=True)
        await self.spares.close()

    def usable(self, spec: BoxSpec, kind: str) -> bool:
        """Whether a session of ``kind`` in a box of ``spec`` may be a warm one."""
        return (kind in ("auto", KIND) and spec.oci_layout is not None and not spec.network
                and not any(_keeps_cold(v.guest_path) for v in spec.volumes)
                and not self.backend.hidden(spec))

    def key(self, spec: BoxSpec) -> str:
        """The key of the template for boxes of ``spec`` (which has an image layout)."""
        assert spec.oci_layout is not None
        return (f"{_key(read_layout(spec.oci_layout).manifest_digest, self._agent)}"
                f"-{spec.disk_size_gb}")

    def shape(self, spec: BoxSpec) -> Shape | None:
        """The shape of a spare that can be box ``spec``; None if none can (its first
        session would start cold, or a volume is not a folder)."""
        if not self.usable(spec, KIND) or not all(os.path.isdir(v.host_path)
                                                   for v in spec.volumes):
            return None
        return Shape(self.key(spec), spec.cpu, spec.memory_mb, spec.workdir)

    async def session(self, handle: str, spec: BoxSpec, kind: str, path: str, cwd: str,
                      env: dict[str, str]) -> str | None:
        """Restore fresh box ``handle`` from its image's template, its interpreter
        listening on ``path`` (a session folder's ``agent.sock``) in ``cwd`` with ``env``;
        the interpreter's kind, or None when the session is to start cold (no template
        yet: one is built in the background)."""
        if not self.usable(spec, kind):
            return None
        key = self.key(spec)
        saved = self.template(key)
        if saved is None:
            self._build_later(key, spec)
            return None
        lock = self._locks.setdefault(handle, asyncio.Lock())
        try:
            async with lock:
                if not self._fresh(handle):
                    return None
                began = time.monotonic()
                spare = self.backend._running[handle].warm  # restored already
                if not spare:
                    await self.backend.stop(handle)
                try:
                    stopped = time.monotonic()
                    if not spare:
                        await restore(self.backend, handle, spec, saved)
                    restored = time.monotonic()
                    code = (f"import os as _o; _o.chdir({cwd!r}); _o.environ.update({env!r});"
                            f" get_ipython().history_manager.dir_hist[:] = [{cwd!r}]; del _o")
                    move = {"op": "move", "cwd": cwd, "env": env}
                    await self._tune(handle, TEMPLATE_SESSION, os.path.dirname(path), code,
                                     move)
                    moved = time.monotonic()
                    log.info("box %s: warm interpreter%s in %.0f ms (stop %.0f, restore %.0f,"
                             " move %.0f)", handle, " (a spare box)" if spare else "",
                             (moved - began) * 1000,
                             (stopped - began) * 1000, (restored - stopped) * 1000,
                             (moved - restored) * 1000)
                except BoxRunError as err:
                    log.warning("box %s: the warm template failed, starting cold: %s",
                                handle, err)
                    self._drop(key)
                    await self.reset(handle, spec)
                    return None
        finally:
            if not lock.locked():
                self._locks.pop(handle, None)
        if (shape := self.shape(spec)) is not None:
            self.spares.want(shape, spec, saved)
        return KIND

    async def reset(self, handle: str, spec: BoxSpec) -> None:
        """Start the box again as it was when fresh: an empty layer, its init alone."""
        await self.backend.stop(handle)
        box_dir = self.backend._box_dir(handle)
        if has_disk(box_dir):
            (box_dir / IMAGE).unlink()
            (box_dir / MOUNTPOINT).rmdir()
            await make_disk(box_dir, spec.disk_size_gb, 0, 0)
        else:
            upper = box_dir / "upper"
            await run_checked([tool("rm"), "-rf", "--", str(upper)], "emptying the box's layer")
            upper.mkdir(mode=0o700)
        await self.backend.start(handle, spec)

    def _fresh(self, handle: str) -> bool:
        """Whether the box has nothing of its own yet: booted by this server, no command
        (nor file transfer) started in it since."""
        sandbox = self.backend._running.get(handle)
        return sandbox is not None and sandbox.fresh

    async def _tune(self, handle: str, src: str, dst: str, code: str,
                    move: dict | None = None) -> dict:
        """Run :data:`TUNE` in the box (then ``move`` to the agent); the interpreter's
        execute_reply content."""
        process = await self.backend.exec(
            handle, ["python3", "-I", "-S", "-c", TUNE, src, dst, code,
                     *([json.dumps(move)] if move else [])], EXEC_DEFAULT_ENV, "/")
        out, err = await asyncio.wait_for(
            asyncio.gather(collect(process.stdout), collect(process.stderr)), ANSWER_TIMEOUT)
        if await process.wait() != 0:
            raise BoxRunError("RUNTIME_ERROR", "the warm interpreter did not answer: "
                              + err.decode(errors="replace").strip()[-500:])
        reply = json.loads(out)
        if not isinstance(reply, dict) or reply.get("status") != "ok":
            raise BoxRunError("RUNTIME_ERROR", f"the warm interpreter failed: {reply!r:.500}")
        return reply

    def _build_later(self, key: str, spec: BoxSpec) -> None:
        if key in self._builds:
            return
        task = asyncio.get_running_loop().create_task(self.build(key, spec))
        self._builds[key] = task
        task.add_done_callback(lambda _: self._builds.pop(key, None))

    async def build(self, key: str, spec: BoxSpec) -> Checkpoint:
        """Make template ``key``: a box of ``spec``'s image (no volumes, no network) whose
        interpreter started, ran a first silent cell and listens; checkpointed, removed."""
        self.root.mkdir(mode=0o700, exist_ok=True)
        box = replace(spec, box_id="warm-template", name=None, volumes=[], network=False)
        staging = self.root / f".build-{key}-{secrets.token_hex(4)}"
        handle = await self.backend.create(box, spare=False)
        try:
            await self.backend.start(handle, box)
            await install_agent(self.backend, handle)
            sock = f"{TEMPLATE_SESSION}/agent.sock"
            starter = await self.backend.exec(handle, agent_command(KIND, sock),
                                              EXEC_DEFAULT_ENV, TEMPLATE_CWD)
            out, err = await asyncio.wait_for(
                asyncio.gather(collect(starter.stdout), collect(starter.stderr)),
                BUILD_TIMEOUT)
            if await starter.wait() != 0 or b'"listening"' not in out:
                raise BoxRunError("RUNTIME_ERROR", "the template's interpreter did not start: "
                                  + err.decode(errors="replace").strip()[-500:])
            await self._tune(handle, TEMPLATE_SESSION, TEMPLATE_SESSION, PREPARE)
            await checkpoint(self.backend, handle, box, staging, leave_running=False)
            target = self.root / key
            staging.rename(target)
        except BaseException as err:
            log.warning("no warm template for %s: %r", spec.image, err)
            with contextlib.suppress(OSError):
                shutil.rmtree(staging)
            raise
        finally:
            await self.backend.remove(handle)
        self.prune()
        log.info("warm template for %s built (%d MB)", spec.image,
                 Checkpoint(target).size_bytes() >> 20)
        if (shape := self.shape(spec)) is not None:
            self.spares.want(shape, spec, Checkpoint(target))
        return Checkpoint(target)

    def prune(self) -> None:
        """Delete the templates of images no longer in the store, or of another agent."""
        keep = {_key(image.digest, self._agent) for image in self.backend.images.list()}
        for other in self.root.iterdir() if self.root.is_dir() else []:
            if (other.name.partition("-")[0] not in keep
                    and not other.name.startswith(".build-")):
                shutil.rmtree(other, ignore_errors=True)

    def _drop(self, key: str) -> None:
        shutil.rmtree(self.root / key, ignore_errors=True)
