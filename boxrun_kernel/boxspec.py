"""The kernel's box as its settings describe it: where the server is, the box's defaults,
name and spec, and the notebook folder's volume (stdlib only: the kernel's early start
uses it before anything else is imported)."""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath
from typing import Any

IMAGE = "python"
CPU = 1
MEMORY_MB = 1024
BOX_NAME = "jupyter-{kernel_id}"
MOUNT = "ro"
#: Folders of the box a notebook folder is never mounted over (it goes to /root/work).
SYSTEM_DIRS = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib64", "/proc", "/run", "/sbin",
               "/sys", "/usr")


def server_address() -> tuple[str, str]:
    """``(url, socket)`` of the server: ``$BOXRUN_URL``, else ``$BOXRUN_SOCKET``, else
    ``$BOXRUN_STATE_DIR/boxrun.sock``, else ``~/.boxrun/boxrun.sock`` (the Jupyter
    server's own)."""
    state = os.environ.get("BOXRUN_STATE_DIR") or os.path.expanduser("~/.boxrun")
    socket = os.environ.get("BOXRUN_SOCKET") or os.path.join(state, "boxrun.sock")
    return os.environ.get("BOXRUN_URL", ""), socket


def kernel_id(connection_file: str) -> str:
    """The kernel's id from its connection file's name (``kernel-ID.json``); "" if none."""
    stem = Path(connection_file).stem if connection_file else ""
    return re.sub(r"[^A-Za-z0-9._-]", "-", stem.removeprefix("kernel-"))


def box_name(template: str, kernel: str) -> str:
    """The name of the kernel's box."""
    return template.format(kernel_id=kernel)[:63]


def notebook_volumes(cwd: str, mount: str) -> list[dict[str, Any]]:
    """The notebook folder ``cwd`` as the box's volume: at the same path (under /root/work
    for a system or top-level folder), read-only for ``ro``; none for ``off``."""
    if mount == "off":
        return []
    path = PurePosixPath(cwd)
    guest = cwd
    if len(path.parts) <= 2 or any(path.is_relative_to(d) for d in SYSTEM_DIRS):
        guest = "/root/work"
    return [{"host_path": cwd, "guest_path": guest, "readonly": mount == "ro"}]


def session_cwd(box: dict[str, Any], cwd: str) -> str | None:
    """Where the interpreter starts: the notebook folder, if the box has it as a volume."""
    return next((v["guest_path"] for v in box.get("volumes") or [] if v["host_path"] == cwd),
                None)
