"""``%boxrun`` magics: boxes of a BoxRun server managed from any IPython kernel."""

from __future__ import annotations

from typing import Any

from .magics import BoxRunMagics
from .runner import shutdown


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext boxrun_kernel``: register ``%boxrun`` and ``%%boxrun``."""
    ipython.register_magics(BoxRunMagics(ipython))


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext boxrun_kernel``: end the cells' interpreters and the background work."""
    manager = ipython.magics_manager
    for kind in ("line", "cell"):
        manager.magics[kind].pop("boxrun", None)
    magics = manager.registry.pop("BoxRunMagics", None)
    if magics is not None:
        magics.commands.cells.close()
    shutdown()


__all__ = ["BoxRunMagics", "load_ipython_extension", "unload_ipython_extension"]
