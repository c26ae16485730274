"""The BoxLite backend for real, up to the boot, and the glue around it.

On hosts where micro-VMs do not boot (a nested VM without nested virtualisation)
the boot itself fails; what a booted box does is in test_boxlite_contract.py.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

boxlite = pytest.importorskip("boxlite")

from jupyter_ext.backends.base import BoxSpec, Volume  # noqa: E402
from jupyter_ext.backends.boxlite import options  # noqa: E402
from jupyter_ext.backends.boxlite.backend import BoxliteBackend  # noqa: E402
from jupyter_ext.backends.boxlite.errors import boot_excerpt, to_boxrun  # noqa: E402
from jupyter_ext.backends.boxlite.process import VmProcess  # noqa: E402
from jupyter_ext.backends.boxlite.terminal import VmTerminal  # noqa: E402
from jupyter_ext.backends.boxlite.verdict import VerdictStore, host_key, kvm_problem  # noqa: E402
from jupyter_ext.core.errors import BoxRunError  # noqa: E402

from ..conftest import BuiltImages  # noqa: E402

BOOT_BOUND = 90  # seconds; the hypervisor gives up after about 20


def processes_under(folder: Path) -> list[str]:
    """Command lines of the processes (shims, VMMs) that mention ``folder``."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(folder) in text:
            found.append(text)
    return found


async def code_of(awaitable) -> BoxRunError:
    with pytest.raises(BoxRunError) as err:
        await awaitable
    return err.value


@pytest.fixture
async def backend(state_dir: Path, built_images: BuiltImages) -> AsyncIterator[BoxliteBackend]:
    """An open BoxLite backend; afterwards no box, box folder or process of it is left."""
    started = time.monotonic()
    backend = BoxliteBackend(state_dir, built_images.store)
    await backend.open()
    print(f"BoxLite runtime started in {time.monotonic() - started:.2f} s")
    yield backend
    for info in await backend.runtime.list_info():
        await backend.remove(info.id)
    await backend.close()
    assert not processes_under(backend.home)
    assert not list((backend.home / "boxes").glob("*"))


async def test_create_registers_the_box_from_the_oci_layout(
    backend: BoxliteBackend, spec: Callable[..., BoxSpec], tmp_path: Path
) -> None:
    box = spec("python", cpu=1, memory_mb=256, disk_size_gb=2, env={"A": "1"},
               volumes=(Volume(str(tmp_path), "/data", True),))
    handle = await backend.create(box)
    info = await backend.runtime.get_info(handle)
    assert (info.id, info.name, info.cpus, info.memory_mib) == (handle, box.box_id, 1, 256)
    assert info.image == f"rootfs:{box.oci_layout}" and info.state.status == "configured"
    assert "disabled" in str(info.network)
    assert handle not in await backend.running()
    await backend.remove(handle)
    await backend.remove(handle)  # idempotent
    assert await backend.runtime.get_info(handle) is None


async def test_a_box_that_is_not_running_refuses_work(
    backend: BoxliteBackend, spec: Callable[..., BoxSpec]
) -> None:
    handle = await backend.create(spec())
    await backend.stop(handle)  # not booted: nothing to stop
    for call in (backend.exec(handle, ["true"], {}, "/"), backend.metrics(handle),
                 backend.attach(handle, ["/bin/sh"], {}, "/", 80, 24),
                 anext(backend.download(handle, "/etc/hostname"))):
        assert "not running" in (await code_of(call)).message
    assert (await code_of(backend.start("../etc", spec()))).code == "RUNTIME_ERROR"


async def test_a_registry_image_that_cannot_be_pulled(
    backend: BoxliteBackend, spec: Callable[..., BoxSpec]
) -> None:
    box = replace(spec(), image="alpine:3.20", oci_layout=None)
    handle = await backend.create(box)
    started = time.monotonic()
    err = await code_of(backend.start(handle, box))
    assert err.code == "IMAGE_PULL_FAILED" and "alpine:3.20" in err.message
    assert time.monotonic() - started < 10
    assert backend.verdicts.get() is None, "a pull failure says nothing about booting"


@pytest.mark.timeout(BOOT_BOUND + 60)
async def test_boot_failure_is_a_clear_runtime_error_and_remembered(
    backend: BoxliteBackend, spec: Callable[..., BoxSpec]
) -> None:
    if kvm_problem():
        pytest.skip(kvm_problem())
    box = spec()
    handle = await backend.create(box)
    shim_log = backend.box_dir(handle) / "shim.stderr"
    started = time.monotonic()
    attempt = asyncio.ensure_future(backend.start(handle, box))
    while not shim_log.exists() and not attempt.done():
        await asyncio.sleep(0.1)
    imported = time.monotonic() - started
    try:
        await asyncio.wait_for(attempt, BOOT_BOUND)
    except BoxRunError as err:
        failed = time.monotonic() - started
        print(f"image imported in {imported:.1f} s; boot failed after {failed:.1f} s")
        assert err.code == "RUNTIME_ERROR"
        assert "KVM_EXIT_INTERNAL_ERROR" in err.message and "shim.stderr" in err.message
        assert "nested virtualisation" in err.message and "--backend namespace" in err.message
    else:
        pytest.skip("a micro-VM booted: this host can run them (see test_boxlite_contract.py)")
    verdict = backend.verdicts.get()
    assert verdict is not None and not verdict.boots and "KVM" in verdict.reason
    assert backend.limitations and "do not boot" in backend.limitations[0]
    assert handle not in await backend.running()

    started = time.monotonic()
    again = await code_of(backend.start(handle, box))
    assert time.monotonic() - started < 1, "a remembered failure fails at once"
    assert "nested virtualisation" in again.message and str(backend.verdicts.path) in again.message
    await backend.remove(handle)
    assert not backend.box_dir(handle).exists() and not processes_under(backend.home)


async def test_images_resolve_locally_without_a_registry(
    backend: BoxliteBackend, built_images: BuiltImages, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = built_images.store
    await asyncio.wait_for(asyncio.shield(backend._registry), 10)
    assert backend.resolve_image(store, "python") == ("local/python", store.get("python").oci_layout)
    with pytest.raises(BoxRunError, match="no container registry"):
        backend.resolve_image(store, "ubuntu:24.04")


def test_images_come_from_the_registry_when_it_answers(built_images: BuiltImages) -> None:
    store = built_images.store
    assert options.resolve(store, "python", True) == ("python:3.12-slim", None)
    assert options.resolve(store, "ubuntu:24.04", True) == ("ubuntu:24.04", None)
    assert options.resolve(store, "local/python", True)[1] == store.get("python").oci_layout
    assert options.resolve(store, "debian", True)[0] == "local/debian"
    assert options.registry_reachable("http://127.0.0.1:9/v2/", 1) is False


def test_box_options_carry_the_spec(spec: Callable[..., BoxSpec]) -> None:
    opts = options.box_options(spec(cpu=2, memory_mb=300, disk_size_gb=3, workdir="/srv",
                                    env={"K": "v"}, network=True))
    assert (opts.cpus, opts.memory_mib, opts.disk_size_gb, opts.working_dir) == (2, 300, 3, "/srv")
    assert opts.env == [("K", "v")] and "enabled" in repr(opts.network)
    assert opts.rootfs_path and opts.image is None and not opts.auto_delete
    assert opts.detach, "a box's micro-VM must outlive the server, for the next one to adopt"
    pulled = options.box_options(replace(spec(), image="alpine:3.20", oci_layout=None))
    assert (pulled.image, pulled.rootfs_path) == ("alpine:3.20", None)
    assert "disabled" in repr(pulled.network)


def test_errors_keep_their_message() -> None:
    pull = to_boxrun(boxlite.StorageError("storage error: Failed to pull image 'x'"), "starting")
    assert (pull.code, pull.message) == ("IMAGE_PULL_FAILED",
                                         "starting: storage error: Failed to pull image 'x'")
    assert to_boxrun(boxlite.ImageError("bad layout"), "creating").code == "IMAGE_PULL_FAILED"
    engine = to_boxrun(boxlite.EngineError("engine died"), "starting box b")
    assert (engine.code, engine.message) == ("RUNTIME_ERROR", "starting box b: engine died")


def test_boot_excerpt_picks_the_error_lines(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    (tmp_path / "shim.stderr").write_text("[shim] T+0ms: main()\n[x ERROR vmm] KVM died\n\n")
    (tmp_path / "logs" / "console.log").write_text("".join(f"line {i}\n" for i in range(9)))
    assert boot_excerpt(tmp_path) == ("shim.stderr: [x ERROR vmm] KVM died; "
                                      "logs/console.log: line 5 | line 6 | line 7 | line 8")
    assert boot_excerpt(tmp_path / "missing") == ""


def test_verdicts_are_kept_per_kernel_and_boxlite_version(tmp_path: Path) -> None:
    store = VerdictStore(tmp_path)
    assert store.get() is None
    store.path.write_text(json.dumps({"other-kernel boxlite-0": {"boots": True}}))
    store.put(False, "no KVM")
    data = json.loads(store.path.read_text())
    assert set(data) == {"other-kernel boxlite-0", host_key()}
    assert (store.get().boots, store.get().reason) == (False, "no KVM")
    store.path.write_text("{not json")
    assert store.get() is None


class FakeExecution:
    """The parts of ``boxlite.Execution`` a process uses."""

    def __init__(self, exit_code: int) -> None:
        self.sent: list[bytes] = []
        self.closed = self.killed = False
        self.exit_code = exit_code

    async def _lines(self, *lines: str) -> AsyncIterator[str]:
        for line in lines:
            yield line

    def stdout(self) -> AsyncIterator[str]:
        return self._lines("out 1\n", "out 2\n")

    def stderr(self) -> AsyncIterator[str]:
        return self._lines("oops\n")

    def stdin(self) -> SimpleNamespace:
        async def send(data: bytes) -> None:
            self.sent.append(data)

        async def close() -> None:
            self.closed = True

        return SimpleNamespace(send_input=send, close=close)

    async def wait(self) -> SimpleNamespace:
        return SimpleNamespace(exit_code=self.exit_code)

    async def kill(self) -> None:
        self.killed = True


async def test_a_process_streams_bytes_and_maps_signals() -> None:
    execution = FakeExecution(-9)
    process = await VmProcess.start(execution, stdin=True)
    await process.write_stdin(b"data")
    await process.close_stdin()
    assert execution.sent == [b"data"] and execution.closed
    assert [c async for c in process.stdout] == [b"out 1\n", b"out 2\n"]
    assert [c async for c in process.stderr] == [b"oops\n"]
    process.kill()
    await asyncio.sleep(0)
    assert execution.killed and await process.wait() == 137 and await process.wait() == 137
    quiet = FakeExecution(0)
    assert await (await VmProcess.start(quiet, stdin=False)).wait() == 0 and quiet.closed


class FakeTtyExecution(FakeExecution):
    """An ``Execution`` started with ``tty=True``: what it shows, its resizes."""

    def __init__(self, exit_code: int, shown: tuple[str, ...] = ("$ ", "hi\r\n"),
                 stdin_gone: bool = False) -> None:
        super().__init__(exit_code)
        self.shown = shown
        self.sizes: list[tuple[int, int]] = []
        self.stdin_gone = stdin_gone
        self.resizable = True
        self.hang = asyncio.Event()

    def stdout(self) -> AsyncIterator[str]:
        return self._lines(*self.shown)

    def stderr(self) -> AsyncIterator[str]:
        return self._lines("warn\n")

    def stdin(self) -> SimpleNamespace:
        writer = super().stdin()
        if self.stdin_gone:
            async def gone(data: bytes) -> None:
                raise boxlite.BoxliteError("the process has exited")

            writer.send_input = gone
        return writer

    async def resize_tty(self, rows: int, cols: int) -> None:
        if not self.resizable:
            raise boxlite.BoxliteError("the process has exited")
        self.sizes.append((rows, cols))


async def read_all(terminal: VmTerminal) -> list[bytes]:
    chunks = []
    while chunk := await asyncio.wait_for(terminal.read(), 5):
        chunks.append(chunk)
    return chunks


async def test_a_terminal_shows_both_streams_types_resizes_and_maps_signals() -> None:
    execution = FakeTtyExecution(-9)
    terminal = await VmTerminal.start(execution, 100, 30)
    assert execution.sizes == [(30, 100)], "sized at once, rows first as BoxLite takes them"
    assert not execution.closed, "a terminal's stdin stays open for typing"
    await terminal.write(b"ls\r")
    await terminal.resize(120, 40)
    shown = await read_all(terminal)
    assert sorted(shown) == sorted([b"$ ", b"hi\r\n", b"warn\n"])
    assert shown.index(b"$ ") < shown.index(b"hi\r\n")
    assert await terminal.read() == b""
    assert execution.sent == [b"ls\r"] and execution.sizes[1:] == [(40, 120)]
    assert await terminal.wait() == 137
    terminal.kill()
    await asyncio.sleep(0)
    assert not execution.killed, "an ended command is not killed again"


async def test_typing_or_resizing_an_ended_terminal_is_dropped() -> None:
    execution = FakeTtyExecution(0, stdin_gone=True)
    terminal = await VmTerminal.start(execution, 80, 24)
    await terminal.write(b"too late\r")
    execution.resizable = False
    await terminal.resize(90, 30)
    await read_all(terminal)
    assert execution.sizes == [(24, 80)]
    terminal.kill()


async def test_kill_ends_a_terminal_that_shows_nothing() -> None:
    execution = FakeTtyExecution(0)

    async def silent() -> AsyncIterator[str]:
        await execution.hang.wait()
        yield "never"

    execution.stdout = silent  # type: ignore[method-assign]
    execution.stderr = silent  # type: ignore[method-assign]
    terminal = await VmTerminal.start(execution, 80, 24)
    reader = asyncio.ensure_future(terminal.read())
    await asyncio.sleep(0.05)
    assert not reader.done()
    terminal.kill()
    assert await asyncio.wait_for(reader, 2) == b""
    await asyncio.sleep(0)
    assert execution.killed and await terminal.read() == b""


async def test_attach_starts_the_command_on_a_tty_of_the_running_box(
    backend: BoxliteBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[tuple[str, dict]] = []
    execution = FakeTtyExecution(0)

    class Box:
        async def exec(self, cmd: str, **kw: object) -> FakeTtyExecution:
            started.append((cmd, kw))
            if cmd == "/missing":
                raise boxlite.ExecutionError("no such file")
            return execution

    async def running_box(handle: str, running: bool = False) -> Box:
        assert running, "a terminal needs a running box"
        return Box()

    monkeypatch.setattr(backend, "_box", running_box)
    terminal = await backend.attach("abc", ["/bin/sh", "-c", "exec bash"], {"TERM": "vt100"},
                                    "/root", 132, 43)
    assert started == [("/bin/sh", {"args": ["-c", "exec bash"], "env": [("TERM", "vt100")],
                                    "cwd": "/root", "tty": True})]
    assert execution.sizes == [(43, 132)]
    assert b"".join(await read_all(terminal))
    terminal.kill()
    err = await code_of(backend.attach("abc", ["/missing"], {}, "/", 80, 24))
    assert err.code == "RUNTIME_ERROR" and "/missing" in err.message


async def test_only_a_running_box_is_adopted_and_prune_keeps_owned_boxes(
    backend: BoxliteBackend, spec: Callable[..., BoxSpec]
) -> None:
    kept = await backend.create(spec())
    orphan = await backend.create(replace(spec(), box_id="box_orphan"))
    assert await backend.adopt(kept) is False, "registered but never booted: nothing runs"
    for bogus in ("0123456789abcdef0123456789", "../etc"):
        assert await backend.adopt(bogus) is False
    await backend.prune({kept})
    assert await backend.runtime.get_info(orphan) is None
    assert not backend.box_dir(orphan).exists()
    assert await backend.runtime.get_info(kept) is not None

