"""The backend contract: what the manager asks of a sandbox technology.

A backend knows nothing about the database, the API or resource accounting; the
:class:`~jupyter_ext.core.manager.BoxManager` does all of that and calls a backend
only to act on sandboxes. Every method may raise
:class:`~jupyter_ext.core.errors.BoxRunError` (usually ``RUNTIME_ERROR`` or
``IMAGE_PULL_FAILED``) with a message a user can act on; anything else it raises is
reported as ``RUNTIME_ERROR`` with the exception's text.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from ..core.errors import BoxRunError

if TYPE_CHECKING:
    from ..images.store import ImageStore


@dataclass(frozen=True)
class Volume:
    """A host directory shown in the box."""

    host_path: str
    guest_path: str
    readonly: bool = False


@dataclass(frozen=True)
class BoxSpec:
    """Everything a backend needs to build and boot one box.

    ``image`` is the resolved reference (what the API reports); ``oci_layout`` is the
    image store's OCI layout directory for it, or ``None`` when the backend is to
    fetch ``image`` from a registry itself.
    """

    box_id: str
    name: str | None
    image: str
    oci_layout: Path | None
    cpu: int
    memory_mb: int
    disk_size_gb: int
    network: bool
    workdir: str
    env: Mapping[str, str] = field(default_factory=dict)
    volumes: Sequence[Volume] = ()

    @property
    def hostname(self) -> str:
        """The box's hostname: its name, else its id."""
        return self.name or self.box_id


class Process(abc.ABC):
    """A command running in a box.

    ``stdout`` and ``stderr`` yield raw chunks as the command writes them and end at
    EOF. Read both concurrently; a reader that stops reading stalls the command once
    the pipe fills, which is how back-pressure reaches the box.
    """

    stdout: AsyncIterator[bytes]
    stderr: AsyncIterator[bytes]

    @abc.abstractmethod
    async def write_stdin(self, data: bytes) -> None:
        """Send ``data`` to the command's stdin (only if started with ``stdin=True``)."""

    @abc.abstractmethod
    async def close_stdin(self) -> None:
        """Close the command's stdin."""

    @abc.abstractmethod
    async def wait(self) -> int:
        """Wait for the command to end; its exit code (128+N when killed by signal N)."""

    @abc.abstractmethod
    def kill(self) -> None:
        """Kill the command and everything it started in the foreground. Idempotent."""


class Terminal(abc.ABC):
    """An interactive command on a pseudo-terminal in a box (its controlling terminal).

    Output is what the terminal shows (the command's stdout and stderr, echoed input);
    input is what a user types. :meth:`kill` must be called once the terminal is no
    longer used, even after the command has ended: it releases the terminal.
    """

    @abc.abstractmethod
    async def read(self) -> bytes:
        """The next output chunk; ``b""`` once the command has ended and its output is read."""

    @abc.abstractmethod
    async def write(self, data: bytes) -> None:
        """Type ``data``; dropped once the command has ended."""

    @abc.abstractmethod
    async def resize(self, cols: int, rows: int) -> None:
        """Set the terminal's size; the command gets ``SIGWINCH``."""

    @abc.abstractmethod
    async def wait(self) -> int:
        """Wait for the command to end; its exit code (128+N when killed by signal N)."""

    @abc.abstractmethod
    def kill(self) -> None:
        """Kill the command and every process of its session; release the terminal.
        Idempotent."""


class Backend(abc.ABC):
    """A sandbox technology (BoxLite micro-VMs, Linux namespaces, a test fake).

    ``handle`` below is the backend's own id for a box, returned by :meth:`create`
    and reported to clients as ``boxlite_id``.
    """

    #: Short name shown in ``/v1/info`` (``"namespace"``, ``"boxlite"``).
    name: ClassVar[str]
    #: ``"vm"`` or ``"namespace"``: how strongly boxes are isolated from the host.
    isolation: ClassVar[str]
    #: What this host makes weaker than it should be, in words (shown in ``/v1/info``).
    limitations: list[str] = []
    #: How ``cpu`` and ``memory_mb`` are enforced (``/v1/info``): ``"vm"``,
    #: ``"cgroup v1"``, ``"cgroup v2"``, ``"rlimits"`` or ``"none"``.
    limits: str = "none"
    #: How many boxes may have host user ids of their own at once (``/v1/info``);
    #: None where the question does not arise (a VM) or boxes share one range.
    box_uid_ranges: int | None = None
    #: Set by the server (``BoxRunServer.warm_spares``): whether a backend that starts
    #: interpreters warm keeps a box ready ahead of the next (gVisor, see ``.gvisor.spares``).
    warm_spares: bool = False
    #: Set by the manager: called with a box's handle and why (in words) when a running
    #: box's sandbox ends without being asked to (its init died: out of memory, killed).
    on_exit: Callable[[str, str], None] | None = None

    def resolve_image(self, images: ImageStore, image: str) -> tuple[str, Path | None]:
        """The reference that will run for a requested ``image`` and its OCI layout in
        the local store (``None``: the backend pulls the reference itself).

        Raises ``IMAGE_PULL_FAILED`` at once when the image cannot be had. This default
        runs only the local store's images.
        """
        return images.resolve(image)

    async def open(self) -> None:
        """Prepare the backend for use (runtime start-up); called once, before
        :meth:`adopt`. It deletes no box: :meth:`prune` does."""

    async def close(self) -> None:
        """Let go of the boxes without stopping them: stop watching them and close what
        the backend holds of them; every running box keeps running for the next server
        to :meth:`adopt` (the manager stops them first when told to stop boxes on exit)."""

    async def adopt(self, handle: str) -> bool:
        """At start-up, take over box ``handle``, which the last server left running.

        True: its sandbox still runs and this backend now serves it (exec, files,
        metrics, :attr:`on_exit`); False: it is gone, and nothing of it runs (its disk
        stays). This default adopts nothing.
        """
        return False

    async def prune(self, keep: set[str]) -> None:
        """After adoption, delete the boxes of this backend (sandboxes, disks) whose
        handle is not in ``keep``: what a server that died mid-create left. This
        default has nothing to delete."""

    @abc.abstractmethod
    async def create(self, spec: BoxSpec) -> str:
        """Create the box's disk and configuration without booting it; its handle.

        If it fails it leaves nothing behind (directory, loop device, cgroup): the manager
        has no handle to remove. Once it returned, the manager calls :meth:`remove` when
        booting the new box fails.
        """

    @abc.abstractmethod
    async def start(self, handle: str, spec: BoxSpec) -> None:
        """Boot the box, keeping the disk it had. Returns once commands can run."""

    @abc.abstractmethod
    async def stop(self, handle: str) -> None:
        """Stop every process of the box, keeping its disk. Idempotent."""

    @abc.abstractmethod
    async def remove(self, handle: str) -> None:
        """Stop the box if needed and delete its disk and configuration. Idempotent."""

    @abc.abstractmethod
    async def running(self) -> set[str]:
        """Handles of the boxes whose sandbox is alive now (for reconciliation)."""

    @abc.abstractmethod
    async def exec(
        self,
        handle: str,
        cmd: Sequence[str],
        env: Mapping[str, str],
        workdir: str,
        stdin: bool = False,
    ) -> Process:
        """Start ``cmd`` in the running box with exactly ``env`` in ``workdir``.

        Raises ``RUNTIME_ERROR`` when the box is not running or the command cannot
        be started (a missing executable exits 127 instead, like a shell).
        """

    async def metrics(self, handle: str) -> dict[str, float | int | None]:
        """Usage of the running box, with any of the keys ``cpu_seconds`` (CPU time used
        since it started), ``memory_bytes``, ``memory_limit_bytes``, ``pids``,
        ``net_rx_bytes`` and ``net_tx_bytes``; the API reports missing ones as null.

        Raises ``RUNTIME_ERROR`` when the box is not running. This default knows nothing.
        """
        return {}

    async def warm_session(self, handle: str, spec: BoxSpec, kind: str, path: str, cwd: str,
                           env: dict[str, str]) -> str | None:
        """Make a session's interpreter of ``kind`` (or ``auto``) appear listening on
        ``path`` (an agent's socket, docs/sessions.md) in fresh running box ``handle``,
        in ``cwd`` with ``env``, faster than starting one; its kind, or None when the
        session is to be started as usual. This default never can."""
        return None

    async def attach(
        self,
        handle: str,
        cmd: Sequence[str],
        env: Mapping[str, str],
        workdir: str,
        cols: int,
        rows: int,
    ) -> Terminal:
        """Start ``cmd`` like :meth:`exec`, on a new ``cols`` x ``rows`` terminal that is
        its stdin, stdout, stderr and controlling terminal, in a new session.

        Raises ``RUNTIME_ERROR`` like :meth:`exec`. This default says the backend has no
        terminals.
        """
        raise BoxRunError("RUNTIME_ERROR", f"the {self.name} backend has no interactive terminals")

    @abc.abstractmethod
    async def upload(self, handle: str, dest: str, chunks: AsyncIterable[bytes]) -> None:
        """Write ``chunks`` to the file ``dest`` in the box, creating its folder."""

    @abc.abstractmethod
    def download(self, handle: str, path: str) -> AsyncIterator[bytes]:
        """Yield the content of the file ``path`` in the box.

        Raises ``RUNTIME_ERROR`` before the first chunk if it is not a readable file.
        """

    # --- snapshots (optional) -----------------------------------------------------------

    async def snapshot(self, handle: str, spec: BoxSpec, dest_dir: Path) -> bool:
        """Save running box ``handle`` (booted from ``spec``) into the new, empty folder
        ``dest_dir``; the box goes on running. Whether processes and their memory are in
        it (True) or only the disk (False).

        This default says the backend has no snapshots.
        """
        raise BoxRunError("RUNTIME_ERROR", f"the {self.name} backend has no snapshots")

    def snapshot_prepare(self, kind: str) -> str | None:
        """Python code a live interpreter of ``kind`` (a session) runs silently before a
        snapshot of its box, so that the snapshot can hold it; None: nothing to run."""
        return None

    async def restore(self, handle: str, spec: BoxSpec, snap_dir: Path) -> None:
        """Put box ``handle`` (running or stopped) in the state saved in ``snap_dir`` by
        :meth:`snapshot` of that box and leave it running: its disk as it was and, for a
        memory snapshot, its processes going on from there."""
        raise BoxRunError("RUNTIME_ERROR", f"the {self.name} backend has no snapshots")

    async def create_from_snapshot(self, spec: BoxSpec, snap_dir: Path) -> str:
        """A new running box (a fork) from the snapshot in ``snap_dir``, with its own copy
        of the saved disk; its handle. Leaves nothing behind when it fails."""
        raise BoxRunError("RUNTIME_ERROR", f"the {self.name} backend has no snapshots")


async def one_chunk(data: bytes) -> AsyncIterator[bytes]:
    """``data`` as the chunks :meth:`Backend.upload` takes."""
    yield data
