"""Boxes as gVisor sandboxes (``runsc``): a user-space kernel between each box and the host."""

from __future__ import annotations

from .backend import GvisorBackend

__all__ = ["GvisorBackend"]
