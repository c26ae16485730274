"""Where the BoxRun server is, and starting ``boxrun serve`` when none answers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx

from ...core.errors import BoxRunError

#: How long a client command waits for a server it started.
START_TIMEOUT = 60.0


@dataclass(frozen=True)
class Endpoint:
    """A server: its Unix socket (``None`` on TCP), base URL and token."""

    url: str
    socket: str | None = None
    token: str | None = None
    state_dir: str | None = None

    def http(self, timeout: float | None = 60) -> httpx.Client:
        """An HTTP client to the server, with the token if one is set."""
        headers = {"Authorization": f"token {self.token}"} if self.token else {}
        transport = httpx.HTTPTransport(uds=self.socket) if self.socket else None
        return httpx.Client(base_url=self.url, transport=transport, headers=headers,
                            timeout=timeout)

    def ws_url(self, path: str) -> str:
        """The WebSocket URL of ``path``."""
        return "ws" + self.url.removeprefix("http") + path

    def describe(self) -> str:
        return self.socket or self.url


def state_dir(env: Mapping[str, str]) -> str:
    """``$BOXRUN_STATE_DIR``, else ``~/.boxrun``, as ``boxrun serve`` decides it."""
    return env.get("BOXRUN_STATE_DIR") or os.path.join(os.path.expanduser("~"), ".boxrun")


def endpoint(env: Mapping[str, str] = os.environ) -> Endpoint:
    """The server to talk to: ``$BOXRUN_URL``, else ``$BOXRUN_HOST``/``$BOXRUN_PORT``
    (TCP, with ``$BOXRUN_TOKEN``), else the Unix socket (``$BOXRUN_SOCKET``, else
    ``<state dir>/boxrun.sock``)."""
    token = env.get("BOXRUN_TOKEN", "").strip() or None
    if url := env.get("BOXRUN_URL", "").strip():
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise BoxRunError("VALIDATION_ERROR", f"BOXRUN_URL must be http(s)://HOST:PORT, "
                              f"not {url!r}")
        token = parts.password or token  # http://:TOKEN@host:port, as the SDK takes it
        netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
        return Endpoint(urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", "")),
                        token=token)
    if env.get("BOXRUN_HOST") or env.get("BOXRUN_PORT"):
        host = env.get("BOXRUN_HOST") or "127.0.0.1"
        return Endpoint(f"http://{host}:{env.get('BOXRUN_PORT') or '9090'}", token=token)
    state = state_dir(env)
    return Endpoint("http://localhost", socket=env.get("BOXRUN_SOCKET")
                    or os.path.join(state, "boxrun.sock"), token=token, state_dir=state)


def answers(target: Endpoint) -> bool:
    """Whether a BoxRun server answers ``GET /v1/info`` there (any status: a refused
    token still means a server is there, and the command will say so)."""
    try:
        with target.http(timeout=5) as http:
            http.get("/v1/info")
    except (httpx.TransportError, OSError):
        return False
    return True


def ensure_server(target: Endpoint) -> None:
    """Start ``boxrun serve`` in the background when nothing answers on the socket."""
    if answers(target):
        return
    if target.socket is None or target.state_dir is None:
        raise BoxRunError("UNREACHABLE", f"no BoxRun server answers at {target.url}")
    Path(target.state_dir).mkdir(mode=0o700, parents=True, exist_ok=True)
    log_path = Path(target.state_dir) / "serve.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "jupyter_ext.standalone", "serve"],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                cwd=target.state_dir, start_new_session=True)
    print(f"boxrun: no server on {target.socket}: started `boxrun serve` in the background "
          f"(pid {proc.pid}, log {log_path})", file=sys.stderr, flush=True)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if answers(target):
            return
        if proc.poll() is not None and proc.returncode != 0 and not answers(target):
            tail = log_path.read_text(errors="replace").splitlines()[-5:]
            raise BoxRunError("UNREACHABLE", "`boxrun serve` exited with status "
                              f"{proc.returncode}:\n  " + "\n  ".join(tail))
        time.sleep(0.1)
    raise BoxRunError("UNREACHABLE", f"`boxrun serve` did not answer on {target.socket} within "
                      f"{START_TIMEOUT:.0f} s (log: {log_path})")
