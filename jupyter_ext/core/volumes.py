"""Which host folders a box may mount: inside an allowed root, never a system folder or the
server's own state."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .errors import BoxRunError, validation

#: Host folders no box mounts, nor anything inside them (``/`` itself only as a whole).
SYSTEM_DIRS = ("/proc", "/sys", "/dev", "/etc", "/boot", "/run")


def default_roots(jupyter_root: str = "") -> list[str]:
    """The server user's home and the system temp dir, and Jupyter's ``root_dir`` if any."""
    return [str(Path.home()), tempfile.gettempdir(), *([jupyter_root] if jupyter_root else [])]


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


@dataclass(frozen=True)
class VolumePolicy:
    """Allowed roots and always-refused folders, all as real paths."""

    roots: tuple[str, ...]
    refused: tuple[str, ...]

    @classmethod
    def make(cls, roots: Iterable[str], *state: str | Path) -> VolumePolicy:
        """The policy for ``roots`` on a server whose state lives in the folders ``state``
        (its state dir, its image store)."""
        return cls(tuple(os.path.realpath(r) for r in roots),
                   tuple(os.path.realpath(d) for d in (*SYSTEM_DIRS, *state)))

    def resolve(self, host_path: str) -> str:
        """The real path of ``host_path`` if a box may mount it.

        RUNTIME_ERROR if it does not exist (as the reference says); VALIDATION_ERROR
        naming the allowed roots if it is outside them, ``/``, a system folder or the
        state dir (or inside one of those).
        """
        if not os.path.exists(host_path):
            raise BoxRunError("RUNTIME_ERROR", f"volume host_path does not exist: {host_path}")
        real = os.path.realpath(host_path)
        shown = host_path if real == host_path else f"{host_path} (really {real})"
        if real == "/" or any(_inside(real, d) for d in self.refused):
            raise validation(f"volume host_path {shown} is a system or BoxRun state folder, "
                             f"which boxes never mount; {self.allowed()}")
        if not any(_inside(real, root) for root in self.roots):
            raise validation(f"volume host_path {shown} is outside the folders boxes may "
                             f"mount; {self.allowed()}")
        return real

    def allowed(self) -> str:
        """The allowed roots, in words."""
        roots = ", ".join(self.roots) or "none"
        return f"allowed roots (c.BoxRunServer.volume_roots): {roots}"
