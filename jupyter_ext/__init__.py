"""BoxRun for Jupyter: a Jupyter server extension that is a BoxRun sandbox server."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from .app import BoxRunExtension

    return [{"module": "jupyter_ext", "app": BoxRunExtension}]
