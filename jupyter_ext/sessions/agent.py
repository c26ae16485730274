"""The session agent: runs in the box and speaks Jupyter messages as JSON lines (stdlib only).

``python3 -u agent.py KIND`` reads requests from stdin and writes reports to stdout, one
JSON object a line (docs/sessions.md); ``KIND --listen PATH`` keeps it running detached,
served on a Unix socket (``agent_listen.py``). KIND ``ipykernel`` starts an ipykernel on ``ipc``
sockets in ``SOCKETS`` and relays its messages (pyzmq comes with ipykernel); KIND
``python`` runs the code itself (``agent_python.py``). Anything printed to fd 1 by
user code or children goes to stderr, which the server logs.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
import uuid
from base64 import b64decode, b64encode
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
#: Where the kernel's ipc sockets go: a tmpfs (``commands.SOCKET_DIR``).
SOCKETS = "/dev/shm/.boxrun"
#: Channel of each socket of the kernel, in the ``*_port`` order of the connection file.
CHANNELS = ("shell", "iopub", "stdin", "control", "hb")
#: Starts the kernel as ``agent_kernel.start`` does (its file is the last argument).
LAUNCH = "import runpy, sys; runpy.run_path(sys.argv.pop(), run_name='agent_kernel')['start']()"
#: Options of the kernel, for a short cell round trip (on gVisor's ptrace platform each
#: of these cost more than the rest of a trivial cell): its history is kept in memory
#: (IPython's default writes every cell to a SQLite file on the box's disk, from a thread
#: of its own), and it sends a reply without sleeping 0.5 ms first (a client waits for
#: ``status: idle``, which follows the cell's output, anyway: docs/sessions.md).
KERNEL_OPTIONS = ("--HistoryManager.hist_file=:memory:", "--Kernel._execute_sleep=0")
#: Milliseconds between looks at the kernel's process (and at every socket) while busy.
POLL_MS = 200
#: The pid cache (``pidcache.c``), preloaded into the agent and its kernel; each drops it
#: from its environment at start (:func:`drop_preload`), so nothing they run inherits it.
PIDCACHE = os.path.join(HERE, "pidcache.so")


def preloaded(env: dict[str, str]) -> dict[str, str]:
    """``env`` with the pid cache preloaded, unless something else is (or it is missing)."""
    if "LD_PRELOAD" in env or not os.path.exists(PIDCACHE):
        return env
    return {**env, "LD_PRELOAD": PIDCACHE}


def drop_preload() -> None:
    """Take the pid cache (loaded already) out of this process's environment."""
    if os.environ.get("LD_PRELOAD") == PIDCACHE:
        del os.environ["LD_PRELOAD"]


def death_reason(code: int) -> str:
    """Why an interpreter ended, from its exit code (negative or 128+N: signal N)."""
    sig = -code if code < 0 else code - 128 if code > 128 else 0
    if sig == signal.SIGKILL:
        return "killed (SIGKILL) — out of memory in the box?"
    if sig:
        return f"killed by signal {signal.Signals(sig).name}"
    return f"exited with {code}"


def message(channel: str, msg_type: str, content: dict[str, Any], parent_msg_id: str | None,
            metadata: dict[str, Any] | None = None, buffers: list[str] | None = None,
            msg_id: str | None = None) -> dict[str, Any]:
    """The ``message`` report of one Jupyter message (``buffers`` base64)."""
    return {"type": "message", "channel": channel, "msg_type": msg_type,
            "msg_id": msg_id or uuid.uuid4().hex, "parent_msg_id": parent_msg_id,
            "content": content, "metadata": metadata or {}, "buffers": buffers or []}


class Transport:
    """Requests from stdin, reports to the original stdout (fd 1 then points to stderr)."""

    def __init__(self) -> None:
        self._out = os.fdopen(os.dup(1), "w", encoding="utf-8")
        os.dup2(2, 1)
        sys.stdout = sys.stderr
        self._lock = threading.Lock()
        self._buf = b""

    def report(self, *reports: dict[str, Any]) -> None:
        """Write report lines, in one write: each write wakes the reader."""
        lines = "".join(json.dumps(report, default=str) + "\n" for report in reports)
        with self._lock:
            self._out.write(lines)
            self._out.flush()

    def read(self) -> list[dict[str, Any]] | None:
        """The requests of the next chunk of stdin (blocks); ``None`` at end of input."""
        chunk = os.read(0, 1 << 16)
        if not chunk:
            return None
        *lines, self._buf = (self._buf + chunk).split(b"\n")
        return [json.loads(line) for line in lines if line.strip()]

    def reexec(self) -> None:
        """Replace this process with a fresh agent on the same transport."""
        os.dup2(self._out.fileno(), 1)
        os.execv(sys.executable, [sys.executable, "-u", *sys.argv])


class KernelRelay:
    """An ipykernel on ipc sockets, and the relay of its messages."""

    def __init__(self, transport: Transport) -> None:
        import zmq  # noqa: PLC0415 - only the ipykernel kind has it

        self.zmq = zmq
        self.transport = transport
        self.ctx = zmq.Context()
        self.key = uuid.uuid4().hex.encode()
        self.session = uuid.uuid4().hex
        os.makedirs(SOCKETS, mode=0o700, exist_ok=True)
        self.base = os.path.join(SOCKETS, f"kernel-{os.getpid()}")
        self.internal: set[str] = set()
        self.proc: subprocess.Popen[bytes] | None = None
        self.sockets: dict[str, Any] = {}

    def launch(self) -> None:
        """Start the kernel, connect, and report ``ready`` once it answers."""
        conn = {f"{name}_port": n for n, name in enumerate(CHANNELS, 1)}
        conn.update(transport="ipc", ip=self.base, key=self.key.decode(),
                    signature_scheme="hmac-sha256", kernel_name="python3")
        with open(self.base + ".json", "w") as f:
            json.dump(conn, f)
        env = preloaded({**os.environ, "JPY_PARENT_PID": str(os.getpid())})
        self.proc = subprocess.Popen(
            [sys.executable, "-c", LAUNCH, "-f", self.base + ".json", *KERNEL_OPTIONS,
             os.path.join(HERE, "agent_kernel.py")],
            stdin=subprocess.DEVNULL, env=env)
        ident = self.session.encode()
        kinds = {"shell": self.zmq.DEALER, "iopub": self.zmq.SUB, "stdin": self.zmq.DEALER,
                 "control": self.zmq.DEALER}
        for name, kind in kinds.items():
            sock = self.ctx.socket(kind)
            sock.linger = 0
            if kind == self.zmq.SUB:
                sock.setsockopt(self.zmq.SUBSCRIBE, b"")
            else:  # shell and stdin share the identity: input_request goes to it
                sock.setsockopt(self.zmq.IDENTITY, ident)
            sock.connect(f"ipc://{self.base}-{CHANNELS.index(name) + 1}")
            self.sockets[name] = sock
        self._wait_ready()

    def _wait_ready(self) -> None:
        """Ask for kernel_info until both its reply and an iopub message have arrived
        (iopub subscriptions are live only then); report ``ready`` with the reply."""
        poller = self.zmq.Poller()
        for name in ("shell", "iopub"):
            poller.register(self.sockets[name], self.zmq.POLLIN)
        reply, heard = None, False
        while reply is None or not heard:
            if self.proc is not None and self.proc.poll() is not None:
                self.transport.report({"type": "dead", "reason": death_reason(self.proc.returncode)})
                sys.exit(0)
            self.internal.add(self.send({"channel": "shell", "msg_type": "kernel_info_request"}))
            for sock, _ in poller.poll(100):
                msg = self.recv(sock)
                if msg["parent_msg_id"] in self.internal:
                    heard = heard or sock is self.sockets["iopub"]
                    if msg["msg_type"] == "kernel_info_reply":
                        reply = msg["content"]
        self.transport.report({"type": "ready", "kernel_info": reply})

    def _sign(self, parts: list[bytes]) -> bytes:
        return hmac.new(self.key, b"".join(parts), hashlib.sha256).hexdigest().encode()

    def send(self, req: dict[str, Any]) -> str:
        """Send a request's message to its channel; its msg_id."""
        msg_id = req.get("msg_id") or uuid.uuid4().hex
        header = {"msg_id": msg_id, "msg_type": req["msg_type"], "session": self.session,
                  "username": "boxrun", "version": "5.3",
                  "date": datetime.now(timezone.utc).isoformat()}
        parts = [json.dumps(p).encode() for p in
                 (header, {}, req.get("metadata") or {}, req.get("content") or {})]
        buffers = [b64decode(b) for b in req.get("buffers") or []]
        self.sockets[req["channel"]].send_multipart(
            [b"<IDS|MSG>", self._sign(parts), *parts, *buffers])
        return msg_id

    def recv(self, sock: Any, flags: int = 0) -> dict[str, Any]:
        """The next message of ``sock`` as a ``message`` report."""
        frames = sock.recv_multipart(flags)
        at = frames.index(b"<IDS|MSG>")
        header, parent, metadata, content = (json.loads(f) for f in frames[at + 2:at + 6])
        channel = next(name for name, s in self.sockets.items() if s is sock)
        return message(channel, header["msg_type"], content, parent.get("msg_id"), metadata,
                       [b64encode(bytes(b)).decode() for b in frames[at + 6:]],
                       header["msg_id"])

    def kill(self) -> None:
        """Kill the kernel and wait for it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def run(self) -> None:
        """Relay until stdin ends or the kernel dies."""
        self.launch()
        while self._relay():
            pass

    def _relay(self) -> bool:
        """Relay until the kernel is restarted (``True``), stdin ends or the kernel dies.

        Polls the sockets' file descriptors, which signal only that a socket may have
        become readable: a socket is read until it has nothing more whenever its
        descriptor signalled, after a send on it (which may take that signal), and
        after each quiet :data:`POLL_MS`. This costs a few system calls a message where
        ``zmq.Poller`` asks every socket twice a wait (docs/sessions.md)."""
        by_fd = {sock.getsockopt(self.zmq.FD): sock for sock in self.sockets.values()}
        poller = select.poll()
        for fd in (*by_fd, 0):
            poller.register(fd, select.POLLIN)
        due: set[Any] = set(self.sockets.values())
        checked = time.monotonic()
        while True:
            said = [msg for sock in due for msg in self.drain(sock)
                    if msg["parent_msg_id"] not in self.internal]
            if said:
                self.transport.report(*said)
            ready = poller.poll(POLL_MS)
            due = {by_fd[fd] for fd, _ in ready if fd != 0} if ready else set(by_fd.values())
            if any(fd == 0 for fd, _ in ready):
                requests = self.transport.read()
                if requests is None:
                    self.kill()
                    return False
                for req in requests:
                    if self.handle(req):
                        return True
                    if req["op"] == "send":
                        due.add(self.sockets[req["channel"]])
            now = time.monotonic()
            if ready and now - checked < POLL_MS / 1000:
                continue
            checked = now
            assert self.proc is not None
            if self.proc.poll() is not None:
                self.transport.report({"type": "dead", "reason": death_reason(self.proc.returncode)})
                return False

    def drain(self, sock: Any) -> Iterator[dict[str, Any]]:
        """The messages ``sock`` has now, as reports, without waiting for more."""
        while True:
            try:
                yield self.recv(sock, self.zmq.NOBLOCK)
            except self.zmq.Again:
                return

    def handle(self, req: dict[str, Any]) -> bool:
        """Carry out one request of the server; whether it restarted the kernel."""
        if req["op"] == "send":
            self.send(req)
        elif req["op"] == "interrupt" and self.proc is not None:
            self.proc.send_signal(signal.SIGINT)
        elif req["op"] == "move":  # a warm interpreter's session: its kernels' next start
            os.chdir(req["cwd"])
            os.environ.clear()
            os.environ.update(req["env"])
        elif req["op"] == "restart":
            self.kill()
            for sock in self.sockets.values():
                sock.close()
            self.launch()
            return True
        return False

def main() -> None:
    """Run the agent of the kind named on the command line (``KIND --listen PATH``: detached,
    on a Unix socket, see ``agent_listen.py``)."""
    sys.path.insert(0, HERE)
    drop_preload()
    if len(sys.argv) == 4 and sys.argv[2] == "--listen":
        from agent_listen import listen  # noqa: PLC0415 - uploaded next to this file

        listen(sys.argv[1], sys.argv[3])
        return
    transport = Transport()
    if sys.argv[1:] == ["ipykernel"]:
        KernelRelay(transport).run()
    else:
        from agent_python import Interpreter  # noqa: PLC0415 - uploaded next to this file

        Interpreter(transport).run()


if __name__ == "__main__":
    main()
