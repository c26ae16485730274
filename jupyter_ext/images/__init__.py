"""Locally built images: Debian root filesystems stored as OCI image layouts."""

from __future__ import annotations

from .store import ImageInfo, ImageStore
from .userns import UserNs

__all__ = ["ImageInfo", "ImageStore", "UserNs"]
