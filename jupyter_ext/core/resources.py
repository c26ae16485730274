"""Resource ceilings and the atomic ledger of what running boxes reserve."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import BoxRunError


@dataclass
class Ledger:
    """CPU and memory reserved by boxes that are creating or running.

    Callers serialise :meth:`reserve` with the manager's lock, so a check and its
    reservation can never be split by another create.
    """

    max_cpu: int
    max_memory_mb: int
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
