"""The BoxRun server core shared by the Jupyter extension and ``boxrun serve``."""

from __future__ import annotations

import asyncio
import fcntl
import os
from pathlib import Path
from typing import Any

from tornado.httpserver import HTTPServer
from tornado.netutil import bind_unix_socket
from tornado.web import Application
from traitlets import Bool, Enum, Float, Instance, Int, List, Type, Unicode, default
from traitlets.config import LoggingConfigurable

from .backends.base import Backend
from .backends.select import CHOICES, choose, probe_later
from .core.errors import BoxRunError
from .core.manager import BoxManager
from .core.quota import DEFAULT_MAX_OUTPUT
from .core.resources import Ledger, filesystem_gb
from .core.snapshots import DEFAULT_MAX_SNAPSHOT_BYTES, SnapshotManager
from .core.volumes import VolumePolicy, default_roots
from .images.store import ImageStore
from .sessions.link import DEFAULT_MAX_MESSAGE
from .sessions.manager import SessionManager
from .store.db import Store
from .store.sessions import SessionStore
from .store.snapshots import SnapshotStore


def _env_ceiling(log: Any, name: str, fallback: int) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return fallback
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        log.warning("ignoring %s=%r: not a positive integer; using %d", name, raw, fallback)
        return fallback
    return value


class StateDirLock:
    """An exclusive lock on a state dir, naming the owner's pid for whoever else tries."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "server.pid"
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise STATE_DIR_BUSY naming the owner."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.read(fd, 32).decode().strip() or "unknown"
            os.close(fd)
            raise BoxRunError(
                "STATE_DIR_BUSY",
                f"the BoxRun state dir {self.path.parent} is owned by the BoxRun server "
                f"with pid {owner}; stop it, or use another state dir",
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        """Give the lock back."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class BoxRunServer(LoggingConfigurable):
    """Store, image store, backend and manager of one state dir, and its Unix socket."""

    state_dir = Unicode(help="Folder of BoxRun's state (database, socket, images, boxes). "
                        "Default: $BOXRUN_STATE_DIR or ~/.boxrun.").tag(config=True)
    db_path = Unicode(help="SQLite database. Default: $BOXRUN_DB or <state_dir>/boxrun.db."
                      ).tag(config=True)
    socket_path = Unicode(help="Unix socket served for the SDK and the kernel (mode 0600). "
                          "Default: $BOXRUN_SOCKET or <state_dir>/boxrun.sock; empty to "
                          "serve none.").tag(config=True)
    images_dir = Unicode(help="Local image store. Default: $BOXRUN_IMAGES_DIR or "
                         "<state_dir>/images.").tag(config=True)
    max_cpu = Int(help="The most cpu one box may have; with `cpu_overcommit`, the ceiling "
                  "of the cpu committed to running boxes. Default: $BOXRUN_MAX_CPU or the "
                  "host's cpu count.").tag(config=True)
    cpu_overcommit = Float(4.0, help="Running boxes' summed `cpu` (each box's ceiling and "
                           "weight, not a reservation) may exceed `max_cpu` by this many "
                           "times `max_cpu` (4: 5 x max_cpu in all; 0: every box reserves "
                           "its cpus). Memory is never over-committed.").tag(config=True)
    max_memory_mb = Int(help="Ceiling on the memory (MB) reserved by running boxes. "
                        "Default: $BOXRUN_MAX_MEMORY_MB or the host's memory.").tag(config=True)
    max_disk_gb = Int(help="Ceiling on one box's disk_size_gb; a create asking for more is "
                      "refused (422), and one asking for none gets the least of 8 and this. "
                      "Default: $BOXRUN_MAX_DISK_GB or the size (GiB) of the state dir's "
                      "filesystem (box disks are sparse: ceilings, not reservations)."
                      ).tag(config=True)
    volume_roots = List(Unicode(), help="Host folders (with everything inside them) that boxes "
                        "may mount as volumes; anything else is refused (422), and so are /, "
                        "/proc, /sys, /dev, /etc, /boot, /run, the state dir and the image "
                        "store whatever this says. Default: the server user's home and the "
                        "system temp dir, and Jupyter's root_dir in Jupyter.").tag(config=True)
    jupyter_root_dir = Unicode("", help="Jupyter's root_dir (set by the Jupyter extension; "
                               "part of the default volume_roots).")
    sse_keepalive = Float(15.0, help="Seconds between keep-alive comments on an idle SSE "
                          "stream. Default: $BOXRUN_SSE_KEEPALIVE or 15.").tag(config=True)
    max_output_bytes = Int(min=1, help="Output stored per exec and per session; past it the stored "
                           "stream says `truncated` and keeps nothing more (live subscribers "
                           "still see it). Default: $BOXRUN_MAX_OUTPUT_BYTES or 64 MiB."
                           ).tag(config=True)
    max_snapshot_bytes = Int(min=0, help="Bytes on disk all snapshots (under <state_dir>/"
                             "snapshots) may take together; a snapshot past it is refused "
                             "(422). Default: $BOXRUN_MAX_SNAPSHOT_BYTES or 32 GiB."
                             ).tag(config=True)
    max_message_bytes = Int(min=1, help="Longest message relayed from a session's interpreter; a "
                            "longer one is dropped and an error output says so. Default: "
                            "$BOXRUN_MAX_MESSAGE_BYTES or 8 MiB.").tag(config=True)
    backend = Enum(CHOICES, help="The sandbox backend: 'boxlite' (micro-VMs), 'gvisor' "
                   "(runsc user-space kernel), 'namespace' (bubblewrap sandbox) or 'auto' "
                   "(micro-VMs where they are known to boot, else gVisor where a probe "
                   "sandbox runs, else the namespace sandbox). Default: $BOXRUN_BACKEND or "
                   "auto.").tag(config=True)
    backend_class = Type(
        default_value=None, allow_none=True, klass="jupyter_ext.backends.base.Backend",
        help="A custom sandbox backend (a subclass of jupyter_ext.backends.base.Backend); "
             "overrides `backend` when set.",
    ).tag(config=True)
    warm_spares = Bool(True, help="On gVisor, keep one box per shape of kernel box in use "
                       "(image, disk, cpu, memory) restored from its image's warm template "
                       "and waiting, so that the next kernel's box and interpreter are ready "
                       "when it starts (about 150 MB of memory each while waiting; see "
                       "docs/sessions.md, Warm kernels).").tag(config=True)
    stop_boxes_on_exit = Bool(help="Stop every running box when the server stops. By default "
                              "boxes outlive the server (a restart, an upgrade, a crash) and "
                              "the next server on the state dir adopts them; commands running "
                              "when it stops end. Default: $BOXRUN_STOP_BOXES (1: stop) or "
                              "False.").tag(config=True)
    manager = Instance(BoxManager, allow_none=True)
    sessions = Instance(SessionManager, allow_none=True)

    @default("state_dir")
    def _state_dir(self) -> str:
        return os.environ.get("BOXRUN_STATE_DIR") or str(Path("~/.boxrun").expanduser())

    @default("db_path")
    def _db_path(self) -> str:
        return os.environ.get("BOXRUN_DB") or str(Path(self.state_dir) / "boxrun.db")

    @default("socket_path")
    def _socket_path(self) -> str:
        return os.environ.get("BOXRUN_SOCKET") or str(Path(self.state_dir) / "boxrun.sock")

    @default("images_dir")
    def _images_dir(self) -> str:
        return os.environ.get("BOXRUN_IMAGES_DIR") or str(Path(self.state_dir) / "images")

    @default("backend")
    def _backend(self) -> str:
        return os.environ.get("BOXRUN_BACKEND") or "auto"

    @default("stop_boxes_on_exit")
    def _stop_boxes_on_exit(self) -> bool:
        return os.environ.get("BOXRUN_STOP_BOXES", "") not in ("", "0")

    @default("sse_keepalive")
    def _sse_keepalive(self) -> float:
        return float(os.environ.get("BOXRUN_SSE_KEEPALIVE", "15"))

    @default("max_disk_gb")
    def _max_disk_gb(self) -> int:
        return _env_ceiling(self.log, "BOXRUN_MAX_DISK_GB", filesystem_gb(self.state_dir))

    @default("volume_roots")
    def _volume_roots(self) -> list[str]:
        return default_roots(self.jupyter_root_dir)

    @default("max_output_bytes")
    def _max_output_bytes(self) -> int:
        return _env_ceiling(self.log, "BOXRUN_MAX_OUTPUT_BYTES", DEFAULT_MAX_OUTPUT)

    @default("max_snapshot_bytes")
    def _max_snapshot_bytes(self) -> int:
        return _env_ceiling(self.log, "BOXRUN_MAX_SNAPSHOT_BYTES", DEFAULT_MAX_SNAPSHOT_BYTES)

    @default("max_message_bytes")
    def _max_message_bytes(self) -> int:
        return _env_ceiling(self.log, "BOXRUN_MAX_MESSAGE_BYTES", DEFAULT_MAX_MESSAGE)

    @default("max_cpu")
    def _max_cpu(self) -> int:
        return _env_ceiling(self.log, "BOXRUN_MAX_CPU", os.cpu_count() or 1)

    @default("max_memory_mb")
    def _max_memory_mb(self) -> int:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1 << 20)
        return _env_ceiling(self.log, "BOXRUN_MAX_MEMORY_MB", total)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._ready = asyncio.Event()
        self._error: BaseException | None = None
        self._lock = StateDirLock(Path(self.state_dir))
        self._http: HTTPServer | None = None
        self._store: Store | None = None
        self._probe: asyncio.Future[None] | None = None

    async def wait_ready(self) -> BoxManager:
        """The manager once :meth:`start` has opened it; its error if start failed."""
        await self._ready.wait()
        if self._error is not None:
            raise self._error
        assert self.manager is not None
        return self.manager

    async def start(self, socket_app: Application | None = None) -> BoxManager:
        """Lock the state dir, open everything, reconcile, serve the socket."""
        try:
            state = Path(self.state_dir)
            state.mkdir(parents=True, exist_ok=True, mode=0o700)
            state.chmod(0o700)
            self._lock.acquire()
            self._store = Store(Path(self.db_path))
            await self._store.open()
            images = ImageStore(Path(self.images_dir))
            selection = await choose(self.backend, state, images, self.backend_class)
            self.log.debug("BoxRun backend: %s (%s)", selection.backend_class.__name__,
                           selection.reason)
            backend: Backend = selection.backend_class(state_dir=state, images=images)
            backend.warm_spares = self.warm_spares
            ledger = Ledger(self.max_cpu, self.max_memory_mb, self.cpu_overcommit,
                            self.max_disk_gb, disk_path=state)
            volumes = VolumePolicy.make(self.volume_roots, state, self.images_dir)
            self.manager = BoxManager(self._store, backend, images, ledger, volumes,
                                      self.sse_keepalive, self.max_output_bytes)
            self.manager.backend_reason = selection.reason
            await self.manager.open()
            self.manager.snapshots = SnapshotManager(
                self.manager, SnapshotStore(self._store), state / "snapshots",
                self.max_snapshot_bytes)
            await self.manager.snapshots.open()
            self.sessions = SessionManager(self.manager, SessionStore(self._store),
                                           self.max_message_bytes)
            await self.sessions.open()
            self.manager.snapshots.prepare_hooks.append(self.sessions.snapshot_ready)
            self.manager.snapshots.restore_hooks.append(self.sessions.restore_ready)
            if socket_app is not None and self.socket_path:
                sock = bind_unix_socket(self.socket_path, mode=0o600)
                self._http = HTTPServer(socket_app, max_body_size=1 << 30)
                self._http.add_socket(sock)
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            await self.stop()
            raise
        if selection.probe_layout is not None:
            self._probe = asyncio.ensure_future(probe_later(state, selection.probe_layout))
        self._ready.set()
        return self.manager

    async def stop(self) -> None:
        """Stop serving, let go of the boxes (stop them with `stop_boxes_on_exit`),
        close the store, release the state dir."""
        if self._probe is not None:
            self._probe.cancel()
            await asyncio.gather(self._probe, return_exceptions=True)
            self._probe = None
        if self._http is not None:
            self._http.stop()
            self._http = None
            if self.socket_path and os.path.exists(self.socket_path):
                os.unlink(self.socket_path)
        if self.sessions is not None:
            await self.sessions.close()
            self.sessions = None
        if self.manager is not None:
            await self.manager.close(self.stop_boxes_on_exit)
            self.manager = None
        if self._store is not None:
            await self._store.close()
            self._store = None
        self._lock.release()
