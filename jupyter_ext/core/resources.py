"""Resource ceilings and the atomic ledger of what running boxes reserve."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import BoxRunError, validation


def free_disk_gb(path: str | Path) -> int:
    """Whole GiB free for unprivileged users on the filesystem of ``path`` (or of its
    nearest existing parent)."""
    folder = Path(path)
    while not folder.exists():
        folder = folder.parent
    info = os.statvfs(folder)
    return info.f_bavail * info.f_frsize >> 30


@dataclass
class Ledger:
    """CPU and memory reserved by boxes that are creating or running, and the ceiling on
    one box's disk (``None``: none).

    Callers serialise :meth:`reserve` with the manager's lock, so a check and its
    reservation can never be split by another create.
    """

    max_cpu: int
    max_memory_mb: int
    max_disk_gb: int | None = None
    cpu: int = 0
    memory_mb: int = 0

    def reserve(self, cpu: int, memory_mb: int) -> None:
        """Reserve ``cpu`` and ``memory_mb`` or raise RESOURCE_EXCEEDED."""
        if self.cpu + cpu > self.max_cpu or self.memory_mb + memory_mb > self.max_memory_mb:
            raise BoxRunError(
                "RESOURCE_EXCEEDED",
                f"not enough free resources for {cpu} cpu and {memory_mb} MB: "
                f"{self.max_cpu - self.cpu} cpu and {self.max_memory_mb - self.memory_mb} MB "
                f"of {self.max_cpu} cpu and {self.max_memory_mb} MB are free",
            )
        self.cpu += cpu
        self.memory_mb += memory_mb

    def release(self, cpu: int, memory_mb: int) -> None:
        """Give back a reservation."""
        self.cpu -= cpu
        self.memory_mb -= memory_mb

    def check_disk(self, disk_size_gb: int) -> None:
        """VALIDATION_ERROR if one box may not have a disk of ``disk_size_gb``."""
        if self.max_disk_gb is not None and disk_size_gb > self.max_disk_gb:
            raise validation(f"'disk_size_gb' must be at most {self.max_disk_gb} on this server "
                             f"(c.BoxRunServer.max_disk_gb); {disk_size_gb} was asked for")
