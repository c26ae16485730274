"""The commands that start a listening agent in a box and attach to it (docs/sessions.md).

They are ordinary execs with stdio, so they work on every backend. Warm kernels and
snapshots start an interpreter with :func:`agent_command` and attach a session to it
with :meth:`SessionManager.attach <.manager.SessionManager.attach>`, which runs
:func:`relay_command`.
"""

from __future__ import annotations

from .install import agent_dir

#: Where agents' sockets go in a box (the sessions' folders, the kernels' ipc sockets):
#: a tmpfs in every box. A socket bound on a gVisor box's disk is the host's (runsc
#: --host-uds=create), and runsc cannot checkpoint a box holding one. ``agent.py`` has
#: its own copy (it is uploaded alone).
SOCKET_DIR = "/dev/shm/.boxrun"
#: Exit status of the relay when nothing listens on its socket (the interpreter is gone).
RELAY_REFUSED = 3
#: The relay (``python3 -I -S -c RELAY PATH``): stdin to the socket, the socket to stdout;
#: it exits when the agent closes the connection, with RELAY_REFUSED if nothing listens
#: on the socket, and with 1 if connecting failed otherwise (gVisor can refuse a connect
#: with EPERM now and then: the server tries again).
RELAY = f"""\
import errno, os, socket, sys, threading
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
except OSError as e:
    sys.stderr.write("boxrun relay: " + sys.argv[1] + ": " + str(e) + "\\n")
    sys.exit({RELAY_REFUSED} if e.errno in (errno.ECONNREFUSED, errno.ENOENT) else 1)
def up():
    try:
        while data := os.read(0, 65536):
            s.sendall(data)
        s.shutdown(socket.SHUT_WR)
    except OSError:
        pass
threading.Thread(target=up, daemon=True).start()
while data := s.recv(65536):
    view = memoryview(data)
    while view:
        view = view[os.write(1, view):]
os._exit(0)
"""


#: Exit statuses of the claim (:func:`claim_command`).
CLAIM_GONE, CLAIM_TAKEN = 3, 4
#: The claim (``python3 -I -S -c CLAIM SOURCE PATH``): a new session's socket path as a link
#: to the socket of the interpreter of another session that the box carries, which it takes
#: once (an ``attached`` file beside that socket, made exclusively); CLAIM_GONE if no such
#: socket is there, CLAIM_TAKEN if a session took it before.
CLAIM = f"""\
import os, sys
source, path = sys.argv[1], sys.argv[2]
if not os.path.exists(source):
    sys.exit({CLAIM_GONE})
try:
    os.close(os.open(os.path.join(os.path.dirname(source), "attached"),
                     os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
except FileExistsError:
    sys.exit({CLAIM_TAKEN})
os.makedirs(os.path.dirname(path), 0o700, exist_ok=True)
os.symlink(source, path)
"""


def socket_path(session_id: str) -> str:
    """The socket of a session's agent in its box (in a folder of its own)."""
    return f"{SOCKET_DIR}/sessions/{session_id}/agent.sock"


def agent_command(kind: str, path: str) -> list[str]:
    """The exec that starts an interpreter of ``kind`` (``ipykernel`` or ``python``) listening
    on ``path`` in the box; it prints ``{"type": "listening", "pid"}`` and exits 0 once the
    socket takes clients (the interpreter runs on, detached). The agent's files must be in
    the box (:func:`.install.install_agent`)."""
    return ["python3", "-u", f"{agent_dir()}/agent.py", kind, "--listen", path]


def claim_command(source: str, path: str) -> list[str]:
    """The exec that makes ``path`` the way to the interpreter listening on ``source`` (see
    :data:`CLAIM`), so that a session re-attaches to it by its own :func:`socket_path`."""
    return ["python3", "-I", "-S", "-c", CLAIM, source, path]


def relay_command(path: str) -> list[str]:
    """The exec that attaches to the agent listening on ``path``: requests on its stdin,
    reports on its stdout (a ``ready`` greeting first, once the interpreter was ready)."""
    return ["python3", "-I", "-S", "-c", RELAY, path]

