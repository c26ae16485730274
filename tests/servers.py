"""Real ``boxrun serve`` processes for the tests: a socket, and TCP with a token."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

#: The backends the API contract, kernel and hostile-box suites each run on in full.
BACKENDS = ("namespace", "gvisor")


def default_backend() -> str:
    """The backend of servers whose test does not choose one: ``$BOXRUN_TEST_BACKEND``,
    else the namespace sandbox (not ``auto``: it would probe in every test server)."""
    return os.environ.get("BOXRUN_TEST_BACKEND", "namespace")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """``boxrun serve`` on ``state_dir``'s socket and on a loopback port with ``token``,
    on ``backend`` (default: :func:`default_backend`)."""

    def __init__(self, state_dir: Path, images_dir: Path, token: str = "test-token",
                 env: dict[str, str] | None = None, port: int | None = None,
                 backend: str | None = None) -> None:
        self.state_dir = state_dir
        self.images_dir = images_dir
        self.token = token
        self.port = port or free_port()
        self.backend = backend or default_backend()
        self.env = {**os.environ, "BOXRUN_IMAGES_DIR": str(images_dir),
                    "BOXRUN_BACKEND": self.backend, "BOXRUN_SSE_KEEPALIVE": "1", **(env or {})}
        self.proc: subprocess.Popen[str] | None = None
        self.log = state_dir.parent / f"{state_dir.name}-server.log"

    @property
    def socket(self) -> str:
        return str(self.state_dir / "boxrun.sock")

    @property
    def url(self) -> str:
        """The TCP URL with the token as basic-auth password, as the SDK takes it."""
        return f"http://:{self.token}@127.0.0.1:{self.port}"

    @property
    def socket_url(self) -> str:
        return "http+unix://" + self.socket

    def command(self, *extra: str) -> list[str]:
        return [sys.executable, "-m", "jupyter_ext.standalone", "serve",
                "--state-dir", str(self.state_dir), "--port", str(self.port), *extra]

    def start(self, *extra: str, timeout: float = 30) -> ServerProcess:
        """Start and wait until the socket answers."""
        with self.log.open("a") as out:
            # the token in the environment, not on the command line that ps shows
            self.proc = subprocess.Popen(self.command(*extra),
                                         env={**self.env, "BOXRUN_TOKEN": self.token},
                                         stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}:\n{self.log.read_text()}")
            if self._listening():
                with self.http() as client:
                    if client.get("/v1/info").status_code == 200:
                        return self
            time.sleep(0.05)
        raise RuntimeError(f"server did not come up:\n{self.log.read_text()}")

    def _listening(self) -> bool:
        with socket.socket(socket.AF_UNIX) as probe:
            try:
                probe.connect(self.socket)
            except OSError:
                return False
        return True

    def http(self) -> httpx.Client:
        """A raw HTTP client over the socket."""
        return httpx.Client(transport=httpx.HTTPTransport(uds=self.socket),
                            base_url="http://localhost", timeout=60)

    def tcp(self, **kw) -> httpx.Client:
        """A raw HTTP client over TCP, without credentials unless given."""
        return httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=60, **kw)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` and wait for the process to end."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(30)

    def stop(self) -> None:
        """Stop gracefully (SIGTERM)."""
        self.kill(signal.SIGTERM)
