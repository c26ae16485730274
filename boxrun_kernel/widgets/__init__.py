"""Live ipywidgets of a BoxRun server: ``BoxMonitor`` (every box) and ``BoxInfo`` (one)."""

from __future__ import annotations

from .info import BoxInfo
from .monitor import BoxMonitor
from .progress import Progress

__all__ = ["BoxInfo", "BoxMonitor", "Progress"]
