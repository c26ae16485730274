"""The kernel's box, opened while the kernel itself starts.

``python -m boxrun_kernel -f FILE`` calls :func:`begin` before importing ipykernel. When
nothing configures ``BoxRunKernel`` (no option but ``-f``, no IPython config file that
names it), a thread finds or creates the box the kernel's defaults describe and starts its
interpreter session, as the kernel itself would, while the kernel imports and sets itself
up. The kernel then :func:`claim`\\ s the result, or undoes it if its settings turn out
otherwise. Stdlib only.
"""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import os
import socket
import sys
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from . import boxspec

#: The config files IPython's kernel app reads, and where (besides the profile).
CONFIG_FILES = ("ipython_config.py", "ipython_config.json", "ipython_kernel_config.py",
                "ipython_kernel_config.json")
CONFIG_DIRS = (os.path.join(sys.prefix, "etc", "ipython"), "/usr/local/etc/ipython",
               "/etc/ipython")
#: Seconds any one call may take (creating a box may unpack its image first).
TIMEOUT = 300.0

#: ``(server, spec)`` the early box was opened for, and its future ``(box, session record,
#: whether the box was created)``.
Plan = tuple[tuple[str, str], dict[str, Any]]
Early = tuple[dict[str, Any], dict[str, Any], bool]
_started: tuple[Plan, concurrent.futures.Future[Early]] | None = None


class ServerError(Exception):
    """The server's error answer, in its words."""


def begin(argv: list[str]) -> None:
    """Start opening the box of a kernel run with ``argv``, if its defaults apply."""
    global _started
    if len(argv) != 3 or argv[1] != "-f" or _configured():
        return
    kernel = boxspec.kernel_id(argv[2])
    if not kernel:
        return
    server = boxspec.server_address()
    spec = {"name": boxspec.box_name(boxspec.BOX_NAME, kernel), "image": boxspec.IMAGE,
            "cpu": boxspec.CPU, "memory_mb": boxspec.MEMORY_MB, "network": False,
            "volumes": boxspec.notebook_volumes(os.getcwd(), boxspec.MOUNT)}
    future: concurrent.futures.Future[Early] = concurrent.futures.Future()
    threading.Thread(target=_open, args=(server, spec, future), name="boxrun-prestart",
                     daemon=True).start()
    _started = ((server, spec), future)


def claim() -> tuple[Plan, concurrent.futures.Future[Early]] | None:
    """What :func:`begin` started (once), if anything."""
    global _started
    started, _started = _started, None
    return started


def _configured() -> bool:
    """Whether an IPython config file the kernel would read names ``BoxRunKernel``."""
    profile = Path(os.environ.get("IPYTHONDIR") or Path.home() / ".ipython") / "profile_default"
    for folder in (str(profile), *CONFIG_DIRS):
        for name in CONFIG_FILES:
            try:
                if "BoxRunKernel" in (Path(folder) / name).read_text(errors="replace"):
                    return True
            except OSError:
                continue
    return False


def _open(server: tuple[str, str], spec: dict[str, Any],
          future: concurrent.futures.Future[Early]) -> None:
    try:
        future.set_result(_open_box(server, spec))
    except Exception as exc:  # noqa: BLE001 - the kernel opens the box itself then
        future.set_exception(exc)


def _open_box(server: tuple[str, str], spec: dict[str, Any]) -> Early:
    box, created = _call(server, "GET", f"/v1/boxes/{spec['name']}", missing_ok=True), False
    if box is None:
        box, created = _call(server, "POST", "/v1/boxes", spec), True
    elif box["status"] != "running":
        box = _call(server, "POST", f"/v1/boxes/{box['id']}:start")
    cwd = boxspec.session_cwd(box, os.getcwd())
    record = _call(server, "POST", f"/v1/boxes/{box['id']}/sessions",
                   {"kind": "auto", **({"cwd": cwd} if cwd else {})})
    return box, record, created


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("boxrun", timeout=TIMEOUT)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def _call(server: tuple[str, str], method: str, path: str, body: Any = None,
          missing_ok: bool = False) -> Any:
    url, unix = server
    headers = {"Content-Type": "application/json"}
    if url:
        parts = urlsplit(url)
        connection: http.client.HTTPConnection = http.client.HTTPConnection(
            parts.hostname or "localhost", parts.port, timeout=TIMEOUT)
        path = parts.path.rstrip("/") + path
        if parts.password:
            headers["Authorization"] = f"token {parts.password}"
    else:
        connection = _UnixConnection(unix)
    try:
        connection.request(method, path, json.dumps(body) if body is not None else None, headers)
        response = connection.getresponse()
        answer = json.loads(response.read() or b"null")
    finally:
        connection.close()
    if response.status == 404 and missing_ok:
        return None
    if response.status >= 400:
        raise ServerError((answer or {}).get("message", f"HTTP {response.status}"))
    return answer
