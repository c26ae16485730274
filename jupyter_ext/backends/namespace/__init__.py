"""Boxes as Linux namespace sandboxes (bubblewrap in a user namespace)."""

from __future__ import annotations

from .backend import NamespaceBackend

__all__ = ["NamespaceBackend"]
