"""The backends side by side in one run: a real ``boxrun serve`` on each of namespace and
gVisor, against a local process (and a local ipykernel) doing the same.

    python bench/bench_backends.py [--quick] [--images-dir DIR] [--backends namespace,gvisor]

Rows: create → first exec of ``true``; exec ``true`` round trip (POST + SSE to exit; also
its 90th percentile); trivial cell round trip (also its 90th percentile) and kernel start
→ first result (the BoxRun kernel against a local ``python3`` ipykernel started and run
in turns with it; on gVisor restored from its image's warm template, and the first kernel
on the image, cold); ``pip install`` of a small local wheel; a CPU-bound Python loop (the
host's Debian ``python3`` locally); 100 MB of stdout over SSE (against a host pipe).
Medians.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from bench_http import Service, read_events, remove_box, run_exec, start_exec
from bench_kernel import BOXRUN, LOCAL, Samples, measure_kernels, warm_up
from bench_kernel import Plan as KernelPlan
from bench_server import pipe_mb_s, stream_command
from bench_util import arguments, median, percentile, timed_ms

BACKENDS = ("namespace", "gvisor")
BOX = {"image": "python", "cpu": 1, "memory_mb": 1024}
TRUE = ["true"]
#: About a second of pure Python on this host's cores.
LOOP = "s = 0\nfor i in range(12_000_000): s += i * i\nprint(s % 7)"
#: The local interpreter of the loop: the host's Debian python3, the build the images
#: have (a venv's may be another build: pyenv's ran this loop 1.6 times slower).
HOST_PYTHON = shutil.which("python3", path="/usr/bin") or sys.executable


@dataclass(frozen=True)
class Plan:
    """How much each scenario does."""

    boxes: int  # create -> first exec samples
    execs: int  # exec round trips in one box
    cells: int  # trivial cells per kernel
    starts: int  # kernel starts per kernel kind
    installs: int  # pip installs
    loops: int  # CPU-bound loops
    sse_bytes: int  # stdout streamed over SSE (a multiple of 100)


FULL = Plan(boxes=5, execs=50, cells=100, starts=3, installs=3, loops=3, sse_bytes=100_000_000)
QUICK = Plan(boxes=2, execs=10, cells=20, starts=1, installs=1, loops=1, sse_bytes=10_000_000)


def say(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def small_wheel(folder: Path) -> Path:
    """A pure-Python wheel of one module, written by hand (no build backend needed)."""
    name = "boxrun_bench_pkg"
    files = {f"{name}.py": b"VALUE = 42\n",
             f"{name}-1.0.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\n"
                                               "Version: 1.0\n".encode(),
             f"{name}-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: bench\n"
                                            b"Root-Is-Purelib: true\nTag: py3-none-any\n"}
    record = "".join(f"{path},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},{len(data)}\n"
                     for path, data in files.items())
    files[f"{name}-1.0.dist-info/RECORD"] = (record + f"{name}-1.0.dist-info/RECORD,,\n").encode()
    wheel = folder / f"{name}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
    return wheel


def pip_command(wheel: str, target: str) -> list[str]:
    return ["python3", "-m", "pip", "install", "-q", "--no-index", "--no-deps",
            "--disable-pip-version-check", "--target", target, wheel]


def exec_ms(client: httpx.Client, box_id: str, cmd: list[str]) -> float:
    """Milliseconds of one exec, POST to the exit event (fails on a non-zero exit)."""
    started = time.perf_counter()
    run_exec(client, box_id, cmd)
    return (time.perf_counter() - started) * 1000


def create_box(client: httpx.Client) -> str:
    reply = client.post("/v1/boxes", json=BOX)
    if reply.status_code != 201:
        raise RuntimeError(f"box create failed: {reply.status_code} {reply.text[:500]}")
    return reply.json()["id"]


def create_to_first_exec(client: httpx.Client) -> float:
    started = time.perf_counter()
    box_id = create_box(client)
    run_exec(client, box_id, TRUE)
    elapsed = (time.perf_counter() - started) * 1000
    remove_box(client, box_id)
    return elapsed


def sse_mb_s(client: httpx.Client, box_id: str, nbytes: int) -> float:
    """Payload MB/s of ``nbytes`` of stdout read over the exec's SSE stream."""
    started = time.perf_counter()
    exec_id = start_exec(client, box_id, stream_command(nbytes))
    result = read_events(client, f"/v1/boxes/{box_id}/exec/{exec_id}/events", b"z",
                         time.monotonic() + 300)
    if result.counted != nbytes * 99 // 100:
        raise RuntimeError(f"SSE carried {result.counted * 100 // 99} of {nbytes} bytes")
    return nbytes / 1e6 / (time.perf_counter() - started)


def local_ms(cmd: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return (time.perf_counter() - started) * 1000


def measure_backend(backend: str, plan: Plan, tmp: Path, images_dir: Path, wheel: Path,
                    services: list[Service], home: Path) -> tuple[dict[str, float], Samples]:
    """Every figure of one backend, through a server of its own; and the samples of the
    local ipykernel, measured in turns with this backend's kernel."""
    state = tmp / backend / "state"
    service = Service.boxrun(state, images_dir, secrets.token_hex(8))
    service.env["BOXRUN_BACKEND"] = backend
    service.env["HOME"] = str(home)  # a volume root outside /tmp (see below)
    services.append(service.start())
    figures: dict[str, float] = {}
    with service.client(timeout=300) as client:
        remove_box(client, create_box(client))  # the image's first use unpacks it
        figures["create"] = median([create_to_first_exec(client) for _ in range(plan.boxes)])
        box_id = create_box(client)
        timed_ms(lambda: run_exec(client, box_id, TRUE), 3)  # warm-up
        execs = [exec_ms(client, box_id, TRUE) for _ in range(plan.execs)]
        figures["exec"], figures["exec_p90"] = median(execs), percentile(execs, 90)
        reply = client.post(f"/v1/boxes/{box_id}/files/upload", data={"dest": f"/root/{wheel.name}"},
                            files={"file": (wheel.name, wheel.read_bytes())})
        reply.raise_for_status()
        figures["pip"] = median([exec_ms(client, box_id, pip_command(
            f"/root/{wheel.name}", f"/tmp/pip{i}")) for i in range(plan.installs)])
        figures["loop"] = median([exec_ms(client, box_id, ["python3", "-c", LOOP])
                                  for _ in range(plan.loops)]) / 1000
        figures["sse"] = sse_mb_s(client, box_id, plan.sse_bytes)
        remove_box(client, box_id)
    say(f"{backend}: {figures}")
    # gVisor restores kernels from a template only for notebook folders outside /tmp
    # (warm.RESTORED_DIRS): the folder is below /root, where Jupyter run as root serves
    notebooks = home / backend
    notebooks.mkdir()
    env = {**os.environ, "BOXRUN_SOCKET": str(service.sock)}
    figures["cold"] = warm_up(env, str(notebooks), service, backend)  # the first on its image
    kernels = measure_kernels(env, str(notebooks),
                              KernelPlan(cells=plan.cells, starts=plan.starts, boxes=0))
    box = kernels[BOXRUN]
    figures["start"], figures["cell"] = median(box.starts), median(box.cells)
    figures["cell_p90"] = percentile(box.cells, 90)
    service.stop()
    return figures, kernels[LOCAL]


def measure_local(plan: Plan, tmp: Path, wheel: Path, kernel: Samples) -> dict[str, float]:
    """The same work as local processes; ``kernel``: a local ``python3`` ipykernel's
    samples, taken in turns with the backends' kernels."""
    execs = [local_ms(TRUE) for _ in range(plan.execs)]
    figures = {"create": median([local_ms(TRUE) for _ in range(plan.boxes)]),
               "exec": median(execs), "exec_p90": percentile(execs, 90),
               "pip": median([local_ms([sys.executable, *pip_command(str(wheel), str(tmp / f"pip{i}"))[1:]])
                              for i in range(plan.installs)]),
               "loop": median([local_ms([HOST_PYTHON, "-c", LOOP]) for _ in range(plan.loops)]) / 1000,
               "sse": pipe_mb_s(plan.sse_bytes)}
    if kernel.starts:
        figures["start"] = figures["cold"] = median(kernel.starts)
        figures["cell"], figures["cell_p90"] = median(kernel.cells), percentile(kernel.cells, 90)
    return figures


#: (key, metric, unit, format) of each row.
ROWS: list[tuple[str, str, str, Callable[[float], str]]] = [
    ("create", "create -> first exec `true`", "ms", "{:.0f}".format),
    ("exec", "exec `true` round trip", "ms", "{:.1f}".format),
    ("exec_p90", "exec `true` round trip, 90th percentile", "ms", "{:.1f}".format),
    ("cell", "trivial cell round trip", "ms", "{:.2f}".format),
    ("cell_p90", "trivial cell round trip, 90th percentile", "ms", "{:.2f}".format),
    ("start", "kernel start -> first result", "ms", "{:.0f}".format),
    ("cold", "kernel start -> first result, first on its image", "ms", "{:.0f}".format),
    ("pip", "pip install of a small local wheel", "ms", "{:.0f}".format),
    ("loop", "CPU-bound Python loop", "s", "{:.2f}".format),
    ("sse", "stdout over SSE (host: a pipe)", "MB/s", "{:.0f}".format),
]


def table(columns: dict[str, dict[str, float]], sse_bytes: int) -> str:
    header = ["metric", *columns]
    lines = [header]
    for key, metric, unit, fmt in ROWS:
        name = f"{metric}, {sse_bytes // 1_000_000} MB" if key == "sse" else metric
        lines.append([f"{name} ({unit})", *(fmt(c[key]) if key in c else "-"
                                            for c in columns.values())])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    rows = [" | ".join(cell.ljust(width) if i == 0 else cell.rjust(width)
                       for i, (cell, width) in enumerate(zip(line, widths, strict=True)))
            for line in lines]
    rows.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(rows)


def main() -> int:
    parser = arguments(__doc__.splitlines()[0])
    parser.add_argument("--backends", default=",".join(BACKENDS))
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    tmp = Path(tempfile.mkdtemp(prefix="boxrun-bench-backends-"))
    tmp.chmod(0o755)  # box root enters the mounted notebook folders
    services: list[Service] = []
    home = Path(tempfile.mkdtemp(prefix="boxrun-bench-home-", dir="/root"))
    home.chmod(0o755)
    started = time.monotonic()
    columns: dict[str, dict[str, float]] = {}
    try:
        wheel = small_wheel(tmp)
        local = Samples()
        for backend in args.backends.split(","):
            try:
                columns[backend], kernel = measure_backend(backend, plan, tmp, args.images_dir,
                                                           wheel, services, home)
                local.starts += kernel.starts
                local.cells += kernel.cells
            except (RuntimeError, httpx.HTTPError, OSError) as err:
                say(f"{backend} FAILED: {err}")
                columns[backend] = {}
        columns["local"] = measure_local(plan, tmp, wheel, local)
    finally:
        for service in services:
            service.stop()
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(home, ignore_errors=True)
    print(table(columns, plan.sse_bytes))
    print(f"\n{'quick' if args.quick else 'full'} run, {time.monotonic() - started:.0f}s; "
          "medians; 'local' is a host process (a local python3 ipykernel for the kernel "
          "rows); box rows go through a real server (POST + SSE)")
    return 0 if all(columns.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
