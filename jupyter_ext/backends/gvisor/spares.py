"""Spare boxes on gVisor: for each shape of box whose warm session was asked for (image,
disk, cpu, memory), one box already restored from the image's warm template, waiting.
A box of that shape created next *is* the spare: its volumes are mounted into its running
sandbox (:mod:`.latemount`), and its first session only moves the interpreter in
(:meth:`.warm.WarmTemplates.session`). A restore takes most of a second of a kernel's
start; a spare takes it off that path, and the next spare is made in the background.

A spare is made only where a box's first session could be restored anyway
(:meth:`.warm.WarmTemplates.usable`) and every volume is a folder; it is a box of this
backend no box record owns, removed when the server stops (or by the next server's
prune). What a spare costs while it waits: the memory of a started ipykernel and a
Sentry (about 150 MB here), no cpu.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ...core.errors import BoxRunError
from .checkpoint import Checkpoint, restore

if TYPE_CHECKING:
    from ..base import BoxSpec
    from .backend import GvisorBackend

log = logging.getLogger(__name__)

#: Seconds after a spare was taken (or a template made) before the next one is made: the
#: new box's first cells go first.
DELAY = 3.0


@dataclass(frozen=True)
class Shape:
    """What a spare must share with a box to be it."""

    template: str  # the warm template's key (image, agent, disk size)
    cpu: int
    memory_mb: int
    workdir: str  # its init's


class Spares:
    """The spares of one gVisor backend: at most one ready, or being made, per shape."""

    def __init__(self, backend: GvisorBackend) -> None:
        self.backend = backend
        self._ready: dict[Shape, str] = {}
        self._making: dict[Shape, asyncio.Task[None]] = {}
        self._discards: set[asyncio.Task[None]] = set()

    def take(self, spec: BoxSpec) -> str | None:
        """The handle of a ready spare that can be box ``spec``, now no longer a spare;
        None if there is none."""
        shape = self.backend.warm.shape(spec) if self._ready else None
        handle = self._ready.pop(shape, None) if shape is not None else None
        sandbox = self.backend._running.get(handle or "")
        if handle is not None and (sandbox is None or not sandbox.spare):
            task = asyncio.get_running_loop().create_task(self._discard(handle))  # it died
            self._discards.add(task)
            task.add_done_callback(self._discards.discard)
            return None
        return handle

    def want(self, shape: Shape, spec: BoxSpec, saved: Checkpoint) -> None:
        """Have a spare of ``shape`` (of ``spec``'s image, made from template ``saved``)
        ready soon, unless one is ready or being made, or spares are off."""
        if not self.backend.warm_spares or shape in self._ready or shape in self._making:
            return
        task = asyncio.get_running_loop().create_task(self._make(shape, spec, saved))
        self._making[shape] = task
        task.add_done_callback(lambda _: self._making.pop(shape, None))

    async def _make(self, shape: Shape, spec: BoxSpec, saved: Checkpoint) -> None:
        await asyncio.sleep(DELAY)
        box = replace(spec, box_id="warm-spare", name=None, volumes=[], network=False)
        handle = await self.backend.create(box, spare=False)
        try:
            await restore(self.backend, handle, box, saved)
        except BaseException as err:
            await self.backend.remove(handle)
            if not isinstance(err, Exception):
                raise
            log.warning("no spare box for %s: %s", spec.image, err)
            return
        sandbox = self.backend._running[handle]
        sandbox.spare = sandbox.warm = True
        self._ready[shape] = handle
        log.info("a spare box of %s (cpu %d, memory %d MB) is ready", spec.image, shape.cpu,
                 shape.memory_mb)

    async def fit(self, handle: str, spec: BoxSpec) -> None:
        """Make spare ``handle`` box ``spec``: its volumes mounted."""
        sandbox = self.backend._running[handle]
        sandbox.spare = False
        await self.backend.mount_late(handle, spec.volumes)
        sandbox.fresh = True

    async def close(self) -> None:
        """Stop making spares; remove the ready ones."""
        for task in self._making.values():
            task.cancel()
        await asyncio.gather(*self._making.values(), *self._discards, return_exceptions=True)
        for handle in list(self._ready.values()):
            await self._discard(handle)
        self._ready.clear()

    async def _discard(self, handle: str) -> None:
        with contextlib.suppress(BoxRunError):
            await self.backend.remove(handle)
