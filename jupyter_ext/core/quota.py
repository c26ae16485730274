"""How much output of one exec or session the server stores (docs/api.md, Output limits)."""

from __future__ import annotations

from typing import Any

#: Default of ``BoxRunServer.max_output_bytes``.
DEFAULT_MAX_OUTPUT = 64 << 20


class OutputQuota:
    """Bytes one exec or session may still store; once a write does not fit, it is
    ``exceeded`` and stores nothing more (live subscribers still get the output)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.stored = 0
        self.exceeded = False

    def take(self, size: int) -> int:
        """How many of ``size`` more bytes may be stored; fewer than ``size`` (or 0 once
        exceeded) marks the quota exceeded."""
        allowed = 0 if self.exceeded else max(0, min(size, self.limit - self.stored))
        self.stored += allowed
        self.exceeded = self.exceeded or allowed < size
        return allowed

    def admit(self, size: int) -> bool:
        """Whether all of ``size`` more bytes may be stored (and count them); a refusal
        marks the quota exceeded."""
        fits = not self.exceeded and self.stored + size <= self.limit
        if fits:
            self.stored += size
        self.exceeded = not fits
        return fits

    def notice(self) -> dict[str, Any]:
        """The payload of the ``truncated`` event."""
        return {"stored_bytes": self.stored, "max_output_bytes": self.limit}


def utf8_size(text: str) -> int:
    """The length of ``text`` in UTF-8 (without encoding it when it is ASCII)."""
    return len(text) if text.isascii() else len(text.encode())


def utf8_head(text: str, size: int) -> str:
    """The longest start of ``text`` of at most ``size`` UTF-8 bytes, whole characters."""
    return text[:size] if text.isascii() else text.encode()[:size].decode(errors="ignore")
