"""``%boxrun`` magics: boxes of a BoxRun server managed from any IPython kernel."""

from __future__ import annotations

from typing import Any


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext boxrun_kernel``: register ``%boxrun`` and ``%%boxrun``."""
    from .magics import BoxRunMagics  # here: the widgets import this package's runner

    ipython.register_magics(BoxRunMagics(ipython))


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext boxrun_kernel``: end the cells' interpreters and the background work."""
    from .runner import shutdown

    manager = ipython.magics_manager
    for kind in ("line", "cell"):
        manager.magics[kind].pop("boxrun", None)
    magics = manager.registry.pop("BoxRunMagics", None)
    if magics is not None:
        magics.commands.cells.close()
    shutdown()
