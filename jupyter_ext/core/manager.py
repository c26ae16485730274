"""The BoxManager: box lifecycle, resource accounting, execs, files and events."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Sequence
from contextlib import aclosing, asynccontextmanager
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..backends.base import Backend, BoxSpec, Process, Terminal
from ..store.db import Store
from .errors import BoxRunError
from .events import EventBus, replay
from .execs import ExecRun, finalize
from .lifecycle import Lifecycle
from .metrics import MetricsSampler
from .models import Box, BoxRequest, Event, Exec, ExecRequest, new_id, now, parse_time
from .quota import DEFAULT_MAX_OUTPUT, OutputQuota
from .resources import Ledger
from .volumes import VolumePolicy

if TYPE_CHECKING:
    from ..images.store import ImageStore
    from .snapshots import SnapshotManager

log = logging.getLogger(__name__)

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_ACTIVE = ("creating", "running")
#: ``error_code`` of a box whose sandbox ended by itself (its init died).
BOX_DIED = "BOX_DIED"
#: Characters of a backend's reason kept in a dead box's ``error_message``.
MAX_REASON = 500
#: ``error_message`` of an exec that ran when its server went away.
EXEC_ORPHANED = "the server restarted while this exec ran"


class BoxManager:
    """Owns every box of one state dir; the API handlers' only entry point."""

    def __init__(
        self, store: Store, backend: Backend, images: ImageStore, ledger: Ledger,
        volumes: VolumePolicy, keepalive: float = 15.0,
        max_output_bytes: int = DEFAULT_MAX_OUTPUT,
    ) -> None:
        self.store = store
        self.backend = backend
        self.images = images
        self.ledger = ledger
        ledger.holders = lambda: (b for b in self.boxes.values() if b.status in _ACTIVE)
        self.volumes = volumes
        self.keepalive = keepalive
        #: Output bytes stored per exec (and per session); past it, live only.
        self.max_output_bytes = max_output_bytes
        #: Why this backend runs, in words (``/v1/info``); set by whoever chose it.
        self.backend_reason = ""
        self.bus = EventBus()
        self.lifecycle = Lifecycle(self.bus)
        self.metrics = MetricsSampler(self)
        self.boxes: dict[str, Box] = {}
        self.runs: dict[str, ExecRun] = {}
        self._lock = asyncio.Lock()
        self._box_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        #: Called with a box about to stop and why, before its processes are killed
        #: (sessions).
        self.stop_hooks: list[Callable[[Box, str], Awaitable[None]]] = []
        #: The snapshots of this state dir (set by whoever opens the manager).
        self.snapshots: SnapshotManager | None = None
        self._deaths: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        backend.on_exit = self._on_exit

    # --- start-up and shut-down ---------------------------------------------------------

    async def open(self) -> None:
        """Load the boxes, adopt those the last server left running, finalise the execs
        it left running, then let the backend delete what no box owns."""
        self._loop = asyncio.get_running_loop()
        await self.backend.open()
        for box in await self.store.boxes():
            self.boxes[box.id] = box
            if box.status in _ACTIVE:
                await self._adopt(box)
        for ex in await self.store.running_execs():
            ex.status, ex.finished_at, ex.error_message = "failed", now(), EXEC_ORPHANED
            seq = await self.store.next_seq(ex.id)
            await finalize(self.store, self.bus, ex, seq, {"exit_code": None, "error": EXEC_ORPHANED})
        await self.backend.prune({b.boxlite_id for b in self.boxes.values() if b.boxlite_id})

    async def _adopt(self, box: Box) -> None:
        """Take over ``box``, active when the last server went away; if its sandbox is
        gone (or it was still being created) it becomes ``stopped``, saying why."""
        handle, adopted = box.boxlite_id, False
        try:
            if handle and box.status == "running":
                adopted = await self.backend.adopt(handle)
            if handle and not adopted:
                await self.backend.stop(handle)  # nothing of it may run on
        except Exception:  # noqa: BLE001 - a box that cannot be adopted is stopped
            log.exception("adopting box %s failed", box.id)
        if adopted:
            self.ledger.reserve(box.cpu, box.memory_mb)
            log.info("box %s still runs: adopted", box.id)
            return
        why = ("its sandbox was gone when the server started again" if box.status == "running" else
               "the server went away while the box was being created")
        box.status, box.stopped_at = "stopped", now()
        box.error_code, box.error_message = BOX_DIED, f"the box died: {why}"
        await self.store.put_box(box)
        self.lifecycle.publish("died", box)

    async def close(self, stop_boxes: bool = False) -> None:
        """Finish every exec and release the backend; running boxes keep running for
        the next server to adopt, unless ``stop_boxes``."""
        runs = [r.task for r in self.runs.values() if r.task]
        if not stop_boxes:  # the command's pipes end with this server
            for run in self.runs.values():
                run.stop("failed", EXEC_ORPHANED)
        for task in runs:
            task.cancel()
        await asyncio.gather(*runs, *self._deaths, return_exceptions=True)
        if stop_boxes:
            for box in list(self.boxes.values()):
                if box.status in _ACTIVE:
                    await self._stop(box)
        await self.backend.close()

    # --- boxes ----------------------------------------------------------------------

    def list_boxes(self, status: str | None = None) -> list[Box]:
        """Boxes, newest first, optionally only those with ``status``."""
        boxes = reversed(self.boxes.values())
        if status in (None, "", "all"):
            return list(boxes)
        return [b for b in boxes if b.status == status]

    def get_box(self, id_or_name: str) -> Box:
        """A box by id, else by name; BOX_NOT_FOUND otherwise."""
        box = self.boxes.get(id_or_name)
        if box is None:
            box = next((b for b in self.boxes.values() if b.name == id_or_name), None)
        if box is None:
            raise BoxRunError("BOX_NOT_FOUND", f"no box with id or name '{id_or_name}'")
        return box

    def _spec(self, box: Box) -> BoxSpec:
        _, layout = self.backend.resolve_image(self.images, box.image)
        volumes = [replace(v, host_path=self.volumes.resolve(v.host_path))
                   for v in box.volume_specs()]
        return BoxSpec(
            box_id=box.id, name=box.name, image=box.image, oci_layout=layout,
            cpu=box.cpu, memory_mb=box.memory_mb, disk_size_gb=box.disk_size_gb,
            network=box.network, workdir=box.workdir, env=box.env or {}, volumes=volumes,
        )

    async def create_box(self, req: BoxRequest) -> Box:
        """Create and boot a box; on any failure nothing of it is left. The box's lock is
        held until then: a stop or removal asked meanwhile (by name, say) comes after."""
        disk_size_gb = self.ledger.disk_for(req.disk_size_gb)
        for vol in req.volumes or []:
            self.volumes.resolve(vol["host_path"])
        ref, _ = self.backend.resolve_image(self.images, req.image)
        async with self._lock:
            if req.name is not None and any(b.name == req.name for b in self.boxes.values()):
                raise BoxRunError("NAME_ALREADY_EXISTS", f"a box named '{req.name}' already exists")
            self.ledger.reserve(req.cpu, req.memory_mb)
            box = Box(
                id=new_id("box"), name=req.name, status="creating", image=ref, cpu=req.cpu,
                memory_mb=req.memory_mb, disk_size_gb=disk_size_gb, network=req.network,
                workdir=req.workdir, env=req.env, volumes=req.volumes, snapshot=req.snapshot,
            )
            lock = self._box_locks[box.id]
            await lock.acquire()  # at once: no one else knows the box yet
            self.boxes[box.id] = box
        try:
            await self.store.put_box(box)
            spec = self._spec(box)
            if req.snapshot is not None:  # a fork: created running
                assert self.snapshots is not None
                with self.lifecycle.timed(box.id, "fork_ms"):
                    box.boxlite_id = await self.snapshots.fork(spec, req.snapshot)
                self.lifecycle.publish("created", box,
                                       snapshot=self.snapshots.find(req.snapshot).to_json())
            else:
                with self.lifecycle.timed(box.id, "create_ms"):
                    box.boxlite_id = await self.backend.create(spec)
                self.lifecycle.publish("created", box)
                with self.lifecycle.timed(box.id, "boot_ms"):
                    await self.backend.start(box.boxlite_id, spec)
            box.status, box.started_at = "running", now()
            await self.store.put_box(box)
        except BaseException as exc:
            self.lifecycle.failed(box, exc)
            await asyncio.shield(self._discard(box))
            raise
        finally:
            lock.release()
            if box.id not in self.boxes:  # discarded: waiters hold the lock itself
                self._box_locks.pop(box.id, None)
        self.lifecycle.publish("started", box)
        return box

    async def _discard(self, box: Box) -> None:
        self.boxes.pop(box.id, None)
        self.ledger.release(box.cpu, box.memory_mb)
        if box.boxlite_id:
            try:
                await self.backend.remove(box.boxlite_id)
            except Exception:  # noqa: BLE001 - the original error is what matters
                log.exception("cleaning up box %s failed", box.id)
        await self.store.delete_box(box.id)

    @asynccontextmanager
    async def locked(self, box: Box) -> AsyncIterator[None]:
        """Hold ``box``'s lock; BOX_NOT_FOUND if the box went away while this waited (its
        creation failed, or it was removed)."""
        async with self._box_locks[box.id]:
            if self.boxes.get(box.id) is not box:
                raise BoxRunError("BOX_NOT_FOUND", f"no box with id or name '{box.id}'")
            yield

    async def start_box(self, id_or_name: str) -> Box:
        """Boot a stopped box with its disk as it was."""
        box = self.get_box(id_or_name)
        async with self.locked(box):
            if box.status in _ACTIVE:
                raise BoxRunError("BOX_ALREADY_RUNNING", f"box {box.id} is already running")
            async with self._lock:
                self.ledger.reserve(box.cpu, box.memory_mb)
            try:
                with self.lifecycle.timed(box.id, "boot_ms"):
                    await self.backend.start(box.boxlite_id or "", self._spec(box))
            except BoxRunError as err:
                self.ledger.release(box.cpu, box.memory_mb)
                self.lifecycle.failed(box, err)
                await self.store.put_box(box)
                raise
            await self._mark_running(box)
            self.lifecycle.publish("started", box)
            return box

    async def _mark_running(self, box: Box) -> None:
        box.status, box.started_at, box.stopped_at = "running", now(), None
        box.error_code = box.error_message = None
        await self.store.put_box(box)

    async def replace_state(self, box: Box, why: str, sessions_end: str | None,
                            change: Callable[[str, BoxSpec], Awaitable[None]]) -> None:
        """Put ``box`` in another state with ``change(handle, spec)`` (a snapshot's
        restore), running: its execs end saying ``why``, and so do its sessions with
        ``sessions_end`` unless that is ``None`` (their processes are restored too); a
        stopped box is booted. A box the failure left without a sandbox is ``stopped``."""
        async with self.locked(box):
            running = box.status == "running"
            for run in [r for r in self.runs.values() if r.exec.box_id == box.id]:
                run.stop("failed", f"{why} while the command ran")
            if running and sessions_end is not None:
                for hook in self.stop_hooks:
                    await hook(box, sessions_end)
            if not running:
                async with self._lock:
                    self.ledger.reserve(box.cpu, box.memory_mb)
            try:
                await change(box.boxlite_id or "", self._spec(box))
            except BaseException:
                if box.boxlite_id not in await self.backend.running():
                    self.ledger.release(box.cpu, box.memory_mb)
                    if running:
                        box.status, box.stopped_at = "stopped", now()
                        await self.store.put_box(box)
                        self.lifecycle.publish("stopped", box)
                raise
            if not running:
                await self._mark_running(box)

    async def stop_box(self, id_or_name: str) -> Box:
        """Stop a running box, keeping its disk."""
        box = self.get_box(id_or_name)
        async with self.locked(box):
            if box.status not in _ACTIVE:
                raise BoxRunError("BOX_NOT_RUNNING", f"box {box.id} is not running")
            await self._stop(box)
            return box

    async def _stop(self, box: Box, died: str | None = None) -> None:
        """Stop ``box``: asked to, or (``died`` saying why) because its sandbox ended."""
        why = "the box was stopped" if died is None else "the box died"
        detail = f": {died}" if died else ""
        runs = [r for r in self.runs.values() if r.exec.box_id == box.id]
        for run in runs:
            run.stop("failed", f"{why} while the command ran{detail}")
        for hook in self.stop_hooks:
            await hook(box, why + detail)
        await self.backend.stop(box.boxlite_id or "")
        await asyncio.gather(*(r.task for r in runs if r.task), return_exceptions=True)
        self.ledger.release(box.cpu, box.memory_mb)
        box.status, box.stopped_at = "stopped", now()
        await self.store.put_box(box)
        self.lifecycle.publish("stopped" if died is None else "died", box)

    def _on_exit(self, handle: str, reason: str) -> None:
        """``Backend.on_exit``: the sandbox of box ``handle`` ended by itself (from any
        thread)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._mourn, handle, reason)

    def _mourn(self, handle: str, reason: str) -> None:
        task = asyncio.ensure_future(self._died(handle, reason))
        self._deaths.add(task)
        task.add_done_callback(self._deaths.discard)

    async def _died(self, handle: str, reason: str) -> None:
        """A running box whose sandbox ended becomes ``stopped`` with BOX_DIED and why;
        its execs and sessions end saying so and its resources are released."""
        box = next((b for b in self.boxes.values() if b.boxlite_id == handle), None)
        if box is None:
            return
        async with self._box_locks[box.id]:
            if self.boxes.get(box.id) is not box or box.status != "running":
                return
            reason = reason[:MAX_REASON]
            log.warning("box %s died: %r", box.id, reason)
            box.error_code, box.error_message = BOX_DIED, f"the box died: {reason}"
            await self._stop(box, reason)

    async def remove_box(self, id_or_name: str, force: bool = False,
                         keep_snapshots: bool = False) -> None:
        """Delete a box, its disk, execs, events and (unless ``keep_snapshots``)
        snapshots; a running one only with ``force``."""
        box = self.get_box(id_or_name)
        async with self.locked(box):
            if box.status in _ACTIVE:
                if not force:
                    raise BoxRunError(
                        "BOX_ALREADY_RUNNING", f"box {box.id} is running; stop it or use force=true"
                    )
                await self._stop(box)
            if box.boxlite_id:
                await self.backend.remove(box.boxlite_id)
            if self.snapshots is not None and not keep_snapshots:
                await self.snapshots.forget_box(box.id)
            # the row goes first: while it exists the name stays taken (a create checks
            # self.boxes, and the database's UNIQUE name would fail it with a 500)
            await self.store.delete_box(box.id)
            self.boxes.pop(box.id, None)
            self.lifecycle.publish("removed", box)
        self._box_locks.pop(box.id, None)

    async def gc(self, older_than: float) -> int:
        """Remove boxes stopped more than ``older_than`` seconds ago; how many."""
        cutoff = datetime.now(timezone.utc) - timedelta(seconds=older_than)
        old = [
            b for b in list(self.boxes.values())
            if b.status == "stopped" and parse_time(b.stopped_at or b.created_at) < cutoff
        ]
        for box in old:
            await self.remove_box(box.id)
        return len(old)

    # --- execs ----------------------------------------------------------------------

    def _running(self, id_or_name: str) -> Box:
        box = self.get_box(id_or_name)
        if box.status != "running":
            raise BoxRunError("BOX_NOT_RUNNING", f"box {box.id} is not running")
        return box

    async def start_exec(self, id_or_name: str, req: ExecRequest) -> Exec:
        """Start a command in a running box; returns at once with the exec running."""
        box = self._running(id_or_name)
        workdir = req.workdir or box.workdir
        process = await self.backend.exec(box.boxlite_id or "", req.cmd, _env(box, req.env), workdir)
        ex = Exec(
            id=new_id("exec"), box_id=box.id, status="running", cmd=req.cmd,
            env=req.env, workdir=req.workdir, timeout_ms=req.timeout_ms,
        )
        await self.store.put_exec(ex)
        run = ExecRun(self.store, self.bus, ex, process, OutputQuota(self.max_output_bytes),
                      stop_at_limit=req.on_output_limit == "stop")
        self.runs[ex.id] = run
        run.start()
        assert run.task is not None
        run.task.add_done_callback(lambda _: self.runs.pop(ex.id, None))
        return ex

    async def list_execs(self, id_or_name: str) -> list[Exec]:
        """The execs of a box, newest first."""
        return await self.store.execs(self.get_box(id_or_name).id)

    async def get_exec(self, id_or_name: str, exec_id: str) -> Exec:
        """One exec of a box; EXEC_NOT_FOUND otherwise."""
        run = self.runs.get(exec_id)
        box = self.get_box(id_or_name)
        if run is not None and run.exec.box_id == box.id:
            return run.exec
        ex = await self.store.get_exec(box.id, exec_id)
        if ex is None:
            raise BoxRunError("EXEC_NOT_FOUND", f"no exec '{exec_id}' in box {box.id}")
        return ex

    async def cancel_exec(self, id_or_name: str, exec_id: str) -> Exec:
        """Kill a running exec; it ends ``canceled``."""
        ex = await self.get_exec(id_or_name, exec_id)
        run = self.runs.get(ex.id)
        if run is None or ex.status != "running":
            raise BoxRunError("EXEC_ALREADY_FINISHED", f"exec {ex.id} already finished ({ex.status})")
        run.stop("canceled", "canceled by request")
        assert run.task is not None
        await asyncio.shield(run.task)
        return run.exec

    async def events(
        self, id_or_name: str, exec_id: str, after: int = -1
    ) -> AsyncIterator[Event | None]:
        """Every event of an exec with ``seq > after``, stored then live, each once and in
        order, ending with ``exit`` (at once when the exec is finished and ``after`` is at
        or past it); ``None`` stands for a keep-alive."""
        await self.get_exec(id_or_name, exec_id)

        def pending() -> list[Event]:
            run = self.runs.get(exec_id)
            return run.log.pending if run else []

        async def ended() -> bool:  # its run is gone once its exit event is stored
            return exec_id not in self.runs and (
                await self.get_exec(id_or_name, exec_id)).status != "running"

        stream = replay(self.bus, exec_id, lambda seq: self.store.events(exec_id, seq), pending,
                        after, self.keepalive, lambda event: event.event == "exit", ended)
        async with aclosing(stream):
            async for event in stream:
                yield event

    async def attach(
        self, id_or_name: str, cmd: Sequence[str], env: dict[str, str], cols: int, rows: int
    ) -> Terminal:
        """Start ``cmd`` on a new terminal in a running box, in its working directory."""
        box = self._running(id_or_name)
        return await self.backend.attach(
            box.boxlite_id or "", cmd, _env(box, env), box.workdir, cols, rows)

    async def spawn(
        self, id_or_name: str, cmd: Sequence[str], env: dict[str, str], workdir: str | None
    ) -> Process:
        """Start ``cmd`` with a stdin in a running box (a session's interpreter)."""
        box = self._running(id_or_name)
        return await self.backend.exec(
            box.boxlite_id or "", cmd, _env(box, env), workdir or box.workdir, stdin=True)

    async def warm_session(self, id_or_name: str, kind: str, path: str, cwd: str | None,
                           env: dict[str, str]) -> str | None:
        """Have the backend restore a session's interpreter listening on ``path`` in a
        fresh running box (see :meth:`Backend.warm_session`); its kind, or None."""
        box = self._running(id_or_name)
        return await self.backend.warm_session(box.boxlite_id or "", self._spec(box), kind,
                                               path, cwd or box.workdir, _env(box, env))

    # --- files ----------------------------------------------------------------------

    async def upload(self, id_or_name: str, dest: str, chunks: AsyncIterable[bytes]) -> None:
        """Write a file into a running box."""
        box = self._running(id_or_name)
        await self.backend.upload(box.boxlite_id or "", dest, chunks)

    def download(self, id_or_name: str, path: str) -> AsyncIterator[bytes]:
        """Read a file from a running box."""
        box = self._running(id_or_name)
        return self.backend.download(box.boxlite_id or "", path)

    # --- convenience ----------------------------------------------------------------

    async def run(self, req: BoxRequest, cmd: ExecRequest) -> dict[str, Any]:
        """Create a box, run one command to its end, collect its output, remove the box."""
        box = await self.create_box(req)
        try:
            ex = await self.start_exec(box.id, cmd)
            run = self.runs.get(ex.id)
            if run is not None and run.task is not None:
                await asyncio.shield(run.task)
            out: dict[str, list[str]] = {"stdout": [], "stderr": []}
            async for event in self.events(box.id, ex.id):
                if event is not None and event.stream in out:
                    out[event.stream].append(event.data)
            ex = await self.get_exec(box.id, ex.id)
            return {
                "exit_code": ex.exit_code,
                "stdout": "".join(out["stdout"]),
                "stderr": "".join(out["stderr"]),
                "error_message": ex.error_message,
            }
        finally:
            await asyncio.shield(self.remove_box(box.id, force=True))

    def info(self) -> dict[str, Any]:
        """The server's limits, usage and backend."""
        counts = {s: sum(b.status == s for b in self.boxes.values()) for s in ("creating", "running", "stopped")}
        return {
            **self.ledger.figures(),
            "max_disk_gb": self.ledger.max_disk_gb,
            **self.ledger.disk_figures(sum(b.disk_size_gb for b in self.boxes.values())),
            "volume_roots": list(self.volumes.roots),
            "backend": self.backend.name,
            "isolation": self.backend.isolation,
            "backend_reason": self.backend_reason,
            "limitations": self.backend.limitations,
            "limits": self.backend.limits,
            "box_uid_ranges": self.backend.box_uid_ranges,
            "boxes": counts,
            "version": __version__,
        }


def _env(box: Box, env: dict[str, str] | None) -> dict[str, str]:
    """A command's environment: the defaults, the box's, then its own."""
    return {"PATH": DEFAULT_PATH, "HOME": "/root", "HOSTNAME": box.name or box.id,
            **(box.env or {}), **(env or {})}
