"""Resource ceilings and the atomic ledger of what running boxes reserve and commit.

Memory is reserved: the boxes' ``memory_mb`` never add up to more than the host has.
CPU is committed, not reserved: a box's ``cpu`` is its ceiling and its weight, so
mostly idle boxes (notebooks) share the cores; what is committed beyond the cores may
reach ``cpu_overcommit`` times them (0: every box reserves its cpus).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from .errors import BoxRunError, validation
from .models import Box

#: How many boxes a refusal suggests closing.
_SUGGESTED = 3
#: A box's disk (GiB) when its request names none (the API contract's default).
DEFAULT_DISK_GB = 8


def _statvfs(path: str | Path) -> os.statvfs_result:
    """``statvfs`` of the filesystem of ``path`` (or of its nearest existing parent)."""
    folder = Path(path)
    while not folder.exists():
        folder = folder.parent
    return os.statvfs(folder)


def filesystem_gb(path: str | Path) -> int:
    """Whole GiB of the filesystem of ``path`` (its size, not what is free: box disks are
    sparse, so they are ceilings that share the free space, not reservations)."""
    info = _statvfs(path)
    return info.f_blocks * info.f_frsize >> 30


@dataclass
class Ledger:
    """CPU committed and memory reserved by boxes that are creating or running, and the
    ceiling on one box's disk (``None``: none).

    Callers serialise :meth:`reserve` with the manager's lock, so a check and its
    reservation can never be split by another create.
    """

    max_cpu: int
    max_memory_mb: int
    #: Admit boxes while their summed ``cpu`` exceeds ``max_cpu`` by at most this many
    #: times ``max_cpu``.
    cpu_overcommit: float = 4.0
    max_disk_gb: int | None = None
    cpu: int = 0
    memory_mb: int = 0
    #: The boxes holding resources, for a refusal to name what could be closed.
    holders: Callable[[], Iterable[Box]] | None = None
    #: Where box disks live (the state dir): its filesystem's size is the disk ceiling.
    disk_path: Path | None = None

    @property
    def max_committed_cpu(self) -> int:
        """The ceiling of the summed ``cpu`` of admitted boxes."""
        return self.max_cpu + int(self.max_cpu * max(self.cpu_overcommit, 0))

    def reserve(self, cpu: int, memory_mb: int) -> None:
        """Commit ``cpu`` and reserve ``memory_mb``, or raise RESOURCE_EXCEEDED."""
        if cpu > self.max_cpu:
            raise BoxRunError(
                "RESOURCE_EXCEEDED",
                f"a box may have at most {self.max_cpu} cpu (this host's); {cpu} were asked for",
            )
        free_memory = self.max_memory_mb - self.memory_mb
        free_cpu = self.max_committed_cpu - self.cpu
        if memory_mb > free_memory or cpu > free_cpu:
            short = "memory" if memory_mb > free_memory else "cpu"
            raise BoxRunError(
                "RESOURCE_EXCEEDED",
                f"not enough free {short} for {cpu} cpu and {memory_mb} MB: "
                f"{free_memory} of {self.max_memory_mb} MB and {free_cpu} of "
                f"{self.max_committed_cpu} committable cpu ({self.max_cpu} cores "
                f"+ {self.cpu_overcommit:g}x over-commit) are free{self._suggestion(short)}",
            )
        self.cpu += cpu
        self.memory_mb += memory_mb

    def release(self, cpu: int, memory_mb: int) -> None:
        """Give back a reservation."""
        self.cpu -= cpu
        self.memory_mb -= memory_mb

    def figures(self) -> dict[str, float | int]:
        """``/v1/info``'s view: the ceilings, what is reserved and what is committed."""
        return {
            "max_cpu": self.max_cpu,
            "max_memory_mb": self.max_memory_mb,
            "used_cpu": self.cpu,
            "used_memory_mb": self.memory_mb,
            "reserved_memory_mb": self.memory_mb,
            "committed_cpu": self.cpu,
            "max_committed_cpu": self.max_committed_cpu,
            "cpu_overcommit": self.cpu_overcommit,
        }

    def disk_figures(self, used_gb: int) -> dict[str, int | None]:
        """``/v1/info``'s disk figures: ``used_gb`` (the boxes' summed ``disk_size_gb``)
        and the size and free GiB of the filesystem of :attr:`disk_path`."""
        if self.disk_path is None:
            return {"used_disk_gb": used_gb, "total_disk_gb": None, "free_disk_gb": None}
        info = _statvfs(self.disk_path)
        return {"used_disk_gb": used_gb, "total_disk_gb": info.f_blocks * info.f_frsize >> 30,
                "free_disk_gb": info.f_bavail * info.f_frsize >> 30}

    def _suggestion(self, short: str) -> str:
        """``; close …`` naming the boxes that hold the most of what is short."""
        boxes = list(self.holders()) if self.holders is not None else []
        if not boxes:
            return ""
        attr, unit = ("memory_mb", "MB") if short == "memory" else ("cpu", "cpu")
        biggest = sorted(boxes, key=lambda b: getattr(b, attr), reverse=True)[:_SUGGESTED]
        names = ", ".join(f"{b.name or b.id} ({getattr(b, attr)} {unit})" for b in biggest)
        more = f" or one of {len(boxes) - len(biggest)} more" if len(boxes) > len(biggest) else ""
        return f"; stop or remove a box to free some: {names}{more}"

    def disk_for(self, disk_size_gb: int | None) -> int:
        """The disk a box asking for ``disk_size_gb`` gets: that, or with ``None``
        :data:`DEFAULT_DISK_GB` within the ceiling; VALIDATION_ERROR above the ceiling."""
        if disk_size_gb is None:
            return DEFAULT_DISK_GB if self.max_disk_gb is None else max(
                1, min(DEFAULT_DISK_GB, self.max_disk_gb))
        if self.max_disk_gb is not None and disk_size_gb > self.max_disk_gb:
            raise validation(f"'disk_size_gb' must be at most {self.max_disk_gb} on this server "
                             f"(c.BoxRunServer.max_disk_gb); {disk_size_gb} was asked for")
        return disk_size_gb
