"""BoxLite's errors as BoxRun errors, and the log a micro-VM that failed to boot leaves."""

from __future__ import annotations

import asyncio
from pathlib import Path

import boxlite

from ...core.errors import BoxRunError
from .verdict import ADVICE

#: Files of ``<home>/boxes/<id>/`` that tell why a micro-VM died, most telling first.
BOOT_LOGS = ("shim.stderr", "logs/console.log")
EXCERPT_LINES = 4
EXCERPT_CHARS = 600


def to_boxrun(err: Exception, doing: str) -> BoxRunError:
    """``err`` as IMAGE_PULL_FAILED or RUNTIME_ERROR, its message kept after ``doing``."""
    if isinstance(err, BoxRunError):
        return err
    text = str(err).strip() or type(err).__name__
    # A registry pull that fails surfaces as a StorageError naming the pull.
    if isinstance(err, boxlite.ImageError) or "pull image" in text:
        return BoxRunError("IMAGE_PULL_FAILED", f"{doing}: {text}")
    return BoxRunError("RUNTIME_ERROR", f"{doing}: {text}")


def boot_excerpt(box_dir: Path) -> str:
    """The error lines (else the last lines) of each boot log of a box, in one line."""
    parts = []
    for name in BOOT_LOGS:
        try:
            lines = (box_dir / name).read_text(errors="replace").splitlines()
        except OSError:
            continue
        lines = [line.strip() for line in lines if line.strip()]
        errors = [line for line in lines if "ERROR" in line or "panic" in line]
        picked = (errors or lines)[-EXCERPT_LINES:]
        if picked:
            parts.append(f"{name}: " + " | ".join(picked))
    return "; ".join(parts)[-EXCERPT_CHARS:]


def is_boot_failure(err: BaseException) -> bool:
    """Whether ``err`` says the micro-VM itself did not come up (not the image, not us)."""
    return isinstance(err, (boxlite.EngineError, boxlite.TimeoutError, asyncio.TimeoutError))


def boot_failure(err: BaseException, box_dir: Path) -> tuple[BoxRunError, str]:
    """The RUNTIME_ERROR for a micro-VM that did not boot, and the reason to remember."""
    detail = str(err).strip() or "the micro-VM did not boot in time"
    excerpt = boot_excerpt(box_dir)
    if "KVM" in excerpt:
        cause = ("KVM could not run the micro-VM: this host is probably a nested VM whose "
                 "hypervisor does not support nested virtualisation")
    else:
        cause = "the micro-VM could not boot on this host"
    reason = f"{cause}. BoxLite says: {detail}" + (f" ({excerpt})" if excerpt else "")
    return BoxRunError("RUNTIME_ERROR", f"{reason}. {ADVICE}"), reason
