"""``boxrun-gvinit``, the first process of every gVisor box (see ``boxrun-gvinit.c``),
built like the namespace box's init (``namespace/init/build.py``)."""

from __future__ import annotations

from pathlib import Path

from ...namespace.init import binary as _binary
from ...namespace.init.build import GVINIT


def binary() -> Path:
    """The built ``boxrun-gvinit``."""
    return _binary(GVINIT)
