"""Boxes as BoxLite micro-VMs (needs the ``boxlite`` extra and a host that boots them)."""

from __future__ import annotations

from typing import Any

__all__ = ["BoxliteBackend"]


def __getattr__(name: str) -> Any:
    # Lazy, so that the host checks of .verdict work without boxlite installed.
    if name == "BoxliteBackend":
        from .backend import BoxliteBackend

        return BoxliteBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
