"""Running mmdebstrap and turning what it prints into build progress."""

from __future__ import annotations

import asyncio
import os
import re
import signal
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import BoxRunError
from .recipes import Recipe, mmdebstrap_command

Progress = Callable[[str, float | None], None]

#: Share of the whole build that mmdebstrap's part takes; the rest is making the layout.
MMDEBSTRAP_SHARE = 0.9

_NEWLY_INSTALLED = re.compile(r"^\d+ upgraded, (\d+) newly installed")
_PACKAGE_EVENT = re.compile(r"^(Get:\d+ |Unpacking |Setting up )")


@dataclass(frozen=True)
class Stage:
    """A stage mmdebstrap announces with an ``I:`` line."""

    marker: str
    message: str
    start: float
    end: float
    #: Package lines (Get/Unpacking/Setting up) expected per package, 0 if not counted.
    events_per_package: int = 0


STAGES = (
    Stage("running apt-get update", "updating package lists", 0.0, 0.05),
    Stage("downloading packages", "downloading essential packages", 0.05, 0.3, 1),
    Stage("extracting archives", "extracting essential packages", 0.3, 0.35),
    Stage("installing essential packages", "installing essential packages", 0.35, 0.6, 2),
    Stage("installing remaining packages", "installing packages", 0.6, 0.92, 3),
    Stage("cleaning package lists", "cleaning up", 0.92, 0.95),
    Stage("creating tarball", "writing the root filesystem", 0.95, 1.0),
)


class ProgressParser:
    """Maps mmdebstrap's output lines to ``(message, fraction)`` updates.

    Fractions cover 0–1 of mmdebstrap's run and never go backwards.
    """

    def __init__(self) -> None:
        self.stage: Stage | None = None
        self.packages = 0
        self.events = 0
        self.fraction = 0.0

    def feed(self, line: str) -> tuple[str, float] | None:
        """The update ``line`` causes, if any."""
        if line.startswith("I: "):
            stage = next((s for s in STAGES if line[3:].startswith(s.marker)), None)
            if stage is None:
                return None
            self.stage, self.events = stage, 0
            return self._update(stage.start)
        stage = self.stage
        if stage is None or not stage.events_per_package:
            return None
        if match := _NEWLY_INSTALLED.match(line):
            self.packages = int(match.group(1))
        elif _PACKAGE_EVENT.match(line) and self.packages:
            self.events += 1
            done = min(1.0, self.events / (stage.events_per_package * self.packages))
            return self._update(stage.start + (stage.end - stage.start) * done)
        return None

    def _update(self, fraction: float) -> tuple[str, float]:
        self.fraction = max(self.fraction, fraction)
        assert self.stage is not None
        return self.stage.message, self.fraction


async def run_mmdebstrap(recipe: Recipe, target: Path, progress: Progress) -> None:
    """Build ``recipe`` into the tarball ``target``; IMAGE_PULL_FAILED on failure."""
    command = mmdebstrap_command(recipe, target)
    try:
        proc = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
    except FileNotFoundError as exc:
        raise BoxRunError("IMAGE_PULL_FAILED", "mmdebstrap is not installed") from exc
    parser, tail = ProgressParser(), deque(maxlen=15)
    assert proc.stderr is not None
    try:
        async for raw in proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            tail.append(line)
            if update := parser.feed(line):
                progress(update[0], update[1] * MMDEBSTRAP_SHARE)
        code = await proc.wait()
    finally:
        if proc.returncode is None:  # cancelled: stop apt and dpkg, mmdebstrap cleans up
            os.killpg(proc.pid, signal.SIGTERM)
            await proc.wait()
    if code != 0:
        details = "\n".join(tail)
        raise BoxRunError(
            "IMAGE_PULL_FAILED", f"building image {recipe.name!r} failed:\n{details}"
        )
