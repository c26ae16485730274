"""The agent's listen mode: an interpreter that outlives its client (stdlib only, in the box).

``python3 -u agent.py KIND --listen PATH`` binds a Unix socket at PATH (0600, its folder
0700), prints ``{"type": "listening", "pid"}`` and exits; a detached holder process (its
own session, double-forked, stdio on /dev/null) keeps the socket and runs ``agent.py
KIND`` as its child on pipes (the stdio protocol of docs/sessions.md). The holder serves
one client at a time (a newer one takes over) and relays whole lines both ways. The
lines it sends a client are numbered; a client's first line ``{"op": "resume", "next":
N}`` asks again for those from N on that an earlier client may have lost with its relay
(the newest :data:`SENT_BYTES` are kept for that). A client is answered ``{"type":
"resumed", "next"}`` (the number of the next numbered line), greeted with the
interpreter's last ``ready`` (``"attached": true``) once one was delivered, and then gets
the lines asked again and the reports that came while no client was attached, the newest
:data:`KEEP_BYTES` of them (a note says how many were dropped). The child's stderr goes
to an attached client as ``{"type": "log", "text"}`` reports (dropped while detached).
A client's ``{"op": "close"}`` ends the interpreter. When it ends, the holder hands its
last reports and ``dead`` to a client (waiting up to :data:`LINGER` s for one), removes
the socket and exits.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque

from agent import HERE, death_reason, message, preloaded

#: Bytes of reports kept while no client is attached (the oldest go first).
KEEP_BYTES = 16 << 20
#: Bytes of the lines last sent to clients kept for a client that resumes after them.
SENT_BYTES = 4 << 20
#: Seconds a new client has to send its ``resume`` line before it is attached without.
RESUME_WAIT = 5.0
#: Seconds an ended interpreter's last reports wait for a client.
LINGER = 600.0
#: Seconds an interpreter has to end after ``close`` before it is killed.
CLOSE_GRACE = 1.0
#: Bytes of stderr sent in one ``log`` report.
LOG_CHUNK = 4096
#: Bytes read from the interpreter's reports at a time (the lines in them go out together).
READ_CHUNK = 1 << 16
_PARENT = re.compile(rb'"parent_msg_id": "([^"\\]{1,200})"')


def _line(report: dict) -> bytes:
    return json.dumps(report, default=str).encode() + b"\n"


class Holder:
    """Keeps the interpreter (``agent.py KIND`` on pipes) and serves clients on ``server``."""

    def __init__(self, kind: str, server: socket.socket, path: str) -> None:
        self.server, self.path = server, path
        self.lock = threading.Lock()
        self.client: socket.socket | None = None
        self.kept: deque[bytes] = deque()
        self.kept_bytes = 0
        self.dropped: list[bytes] = []  # the last dropped line, and how many
        self.dropped_count = 0
        self.sent: deque[tuple[int, bytes]] = deque()  # (number, line) of the last sent
        self.sent_bytes = 0
        self.number = 0  # of the next line sent
        self.ready: bytes | None = None  # the last ``ready`` report
        self.ready_delivered = False
        self.ended = False  # the interpreter's last report is in (a ``dead``)
        self.child = subprocess.Popen(
            [sys.executable, "-u", os.path.join(HERE, "agent.py"), kind],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True, env=preloaded(dict(os.environ)))

    # --- the interpreter's side ------------------------------------------------------

    def pump_reports(self) -> None:
        """Reports of the interpreter to the client (or kept) until it ends."""
        assert self.child.stdout is not None
        dead = False
        rest = b""  # a line cut short when the interpreter dies mid-line is dropped
        while chunk := self.child.stdout.read1(READ_CHUNK):  # type: ignore[attr-defined]
            *lines, rest = (rest + chunk).split(b"\n")
            if lines:
                lines = [line + b"\n" for line in lines]
                dead = dead or any(line.startswith(b'{"type": "dead"') for line in lines)
                self.deliver(lines)
        code = self.child.wait()
        if not dead:
            self.deliver([_line({"type": "dead", "reason": death_reason(code)})])
        with self.lock:
            self.ended = True
            if self.client is not None:
                self.finish()

    def pump_log(self) -> None:
        """The interpreter's stderr to the client as ``log`` reports (dropped if none)."""
        assert self.child.stderr is not None
        while chunk := self.child.stderr.read1(LOG_CHUNK):  # type: ignore[attr-defined]
            with self.lock:
                if self.client is not None:
                    self._send(_line({"type": "log", "text": chunk.decode("utf-8", "replace")}))

    def deliver(self, lines: list[bytes]) -> None:
        """Report lines to the client (in one send), or kept while there is none."""
        with self.lock:
            for line in lines:
                if line.startswith(b'{"type": "ready"'):
                    self.ready, self.ready_delivered = line, False
            if self.client is not None and self._send(*lines):
                self.ready_delivered = self.ready_delivered or any(
                    line is self.ready for line in lines)
                return
            self.kept.extend(lines)
            self.kept_bytes += sum(map(len, lines))
            while self.kept_bytes > KEEP_BYTES and len(self.kept) > 1:
                old = self.kept.popleft()
                self.kept_bytes -= len(old)
                if old is self.ready:  # the greeting tells it instead
                    self.ready_delivered = True
                    continue
                self.dropped, self.dropped_count = [old], self.dropped_count + 1

    def _send(self, *lines: bytes, numbered: bool = True) -> bool:
        """Send lines to the client (lock held), kept under the next numbers if
        ``numbered``; on failure the client is gone."""
        assert self.client is not None
        try:
            self.client.sendall(b"".join(lines))
        except OSError:
            self._drop_client()
            return False
        if numbered:
            for line in lines:
                self.sent.append((self.number, line))
                self.number += 1
                self.sent_bytes += len(line)
            while self.sent_bytes > SENT_BYTES and len(self.sent) > 1:
                self.sent_bytes -= len(self.sent.popleft()[1])
        return True

    def _drop_client(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None

    def finish(self) -> None:
        """The interpreter has ended and a client has its last reports: go (lock held)."""
        self._drop_client()
        for remove in (lambda: os.unlink(self.path), lambda: os.rmdir(os.path.dirname(self.path))):
            try:
                remove()
            except OSError:
                pass
        os._exit(0)

    def close(self) -> None:
        """End the interpreter: end of its input, then SIGKILL its process group."""
        assert self.child.stdin is not None
        try:
            self.child.stdin.close()
        except OSError:
            pass
        try:
            self.child.wait(CLOSE_GRACE)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(self.child.pid, signal.SIGKILL)
        except OSError:
            pass

    # --- the client's side -----------------------------------------------------------

    def serve(self) -> None:
        """Accept clients, one at a time, until the interpreter has ended and was told."""
        self.server.settimeout(5.0)
        deadline = None
        while True:
            if self.ended:
                deadline = deadline or time.monotonic() + LINGER
                if time.monotonic() > deadline:
                    with self.lock:
                        self.finish()
            try:
                conn, _ = self.server.accept()
            except socket.timeout:  # noqa: UP041 - TimeoutError only from Python 3.10
                continue
            threading.Thread(target=self.serve_client, args=(conn,), daemon=True).start()

    def serve_client(self, conn: socket.socket) -> None:
        """One client: its ``resume`` line (if its first line is one), then it is
        attached and its requests go to the interpreter until it goes."""
        first, rest = _first_line(conn)
        resume = _resume(first)
        if resume is None and first is not None:
            rest = first + b"\n" + rest  # a request, not a resume
        if self.attach(conn, resume.get("next") if resume else None):
            self.requests(conn, rest)

    def attach(self, conn: socket.socket, resume: object) -> bool:
        """Make ``conn`` the client: ``resumed``, the greeting, the lines from number
        ``resume`` on again, then the reports kept meanwhile; whether it is still there."""
        with self.lock:
            self._drop_client()
            self.client = conn
            again = ([(n, line) for n, line in self.sent if resume <= n]
                     if isinstance(resume, int) else [])
            first = again[0][0] if again else self.number
            if not self._send(_line({"type": "resumed", "next": first}), numbered=False):
                return False
            if (self.ready is not None and self.ready_delivered
                    and all(line is not self.ready for _, line in again)):
                greeting = json.loads(self.ready)
                if not self._send(_line({**greeting, "attached": True}), numbered=False):
                    return False
            if isinstance(resume, int) and 0 <= resume < first:  # gone from ``sent``
                self.dropped_count += first - resume
            for _, line in again:
                if not self._send(line, numbered=False):
                    return False
            if self.dropped_count:
                found = _PARENT.search(self.dropped[0][:400]) if self.dropped else None
                text = (f"[BoxRun dropped {self.dropped_count} messages of the interpreter "
                        "that came while no client had them]\n")
                note = message("iopub", "stream", {"name": "stderr", "text": text},
                               found.group(1).decode() if found else None)
                if not self._send(_line(note)):
                    return False
                self.dropped, self.dropped_count = [], 0
            while self.kept:
                line = self.kept[0]
                if not self._send(line):
                    return False
                self.kept.popleft()
                self.kept_bytes -= len(line)
                self.ready_delivered = self.ready_delivered or line is self.ready
            if self.ended:
                self.finish()
            return True

    def requests(self, conn: socket.socket, buf: bytes) -> None:
        """Whole request lines of one client (``buf`` first) to the interpreter, until
        it goes."""
        assert self.child.stdin is not None
        chunk = b""
        while True:
            *lines, buf = (buf + chunk).split(b"\n")
            for line in lines:
                if line.strip() == b'{"op": "close"}':
                    self.close()
                    return
                try:
                    self.child.stdin.write(line + b"\n")
                    self.child.stdin.flush()
                except (OSError, ValueError):
                    return  # the interpreter has gone: its reports say so
            try:
                chunk = conn.recv(1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                break
        with self.lock:
            if self.client is conn:
                self._drop_client()


def _first_line(conn: socket.socket) -> tuple[bytes | None, bytes]:
    """A client's first line (None if none came within :data:`RESUME_WAIT` s or it is
    overlong) and the bytes after it."""
    conn.settimeout(RESUME_WAIT)
    buf = b""
    try:
        while b"\n" not in buf and len(buf) < 4096:
            chunk = conn.recv(4096)
            if not chunk:
                break
            buf += chunk
    except OSError:
        pass
    conn.settimeout(None)
    line, newline, rest = buf.partition(b"\n")
    return (line, rest) if newline else (None, buf)


def _resume(line: bytes | None) -> dict | None:
    """The ``resume`` request ``line`` is, if it is one."""
    try:
        req = json.loads(line) if line is not None else None
    except ValueError:
        return None
    return req if isinstance(req, dict) and req.get("op") == "resume" else None


def listen(kind: str, path: str) -> None:
    """Bind ``path``, start the detached holder, say its pid, and return."""
    folder = os.path.dirname(path)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    os.chmod(folder, 0o700)
    if os.path.lexists(path):
        sys.exit(f"{path} exists: another agent listens there, or did")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        server.bind(path)
    finally:
        os.umask(old)
    server.listen(4)
    pids = os.pipe()
    if os.fork() == 0:  # the first child: a new session, then the holder
        os.close(pids[0])
        os.setsid()
        if os.fork() == 0:
            try:
                _detach()
                os.write(pids[1], str(os.getpid()).encode())
                os.close(pids[1])
                holder = Holder(kind, server, path)
                threading.Thread(target=holder.pump_reports, daemon=True).start()
                threading.Thread(target=holder.pump_log, daemon=True).start()
                holder.serve()
            finally:
                os._exit(1)
        os._exit(0)
    os.close(pids[1])
    server.close()
    pid = os.read(pids[0], 32).decode()
    os.wait()
    print(json.dumps({"type": "listening", "pid": int(pid), "path": path}))


def _detach() -> None:
    """Stdio on /dev/null: nothing of the starting exec's pipes is kept."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
