"""Benchmark of the BoxRun kernel against a local ipykernel: cell round trips and start-up."""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import httpx
from bench_http import Service, remove_box
from bench_util import Row, arguments, median, percentile, report, timed_ms
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager

LOCAL = "python3"
BOXRUN = "boxrun"
BOX = {"image": "python", "cpu": 1, "memory_mb": 1024}


@dataclass(frozen=True)
class Plan:
    """How much each scenario does."""

    cells: int  # trivial-cell round trips per kernel
    starts: int  # kernel start -> first result samples per kernel
    boxes: int  # box create samples


FULL = Plan(cells=300, starts=5, boxes=5)
QUICK = Plan(cells=30, starts=2, boxes=2)
#: Seconds the server is left idle before each BoxRun kernel start (as between a user's
#: kernels): on gVisor it makes the next spare box meanwhile.
IDLE = 6.0
#: What the server logs once a spare box is ready, and how long the first one may take.
SPARE_READY, SPARE_WAIT = "spare box of", 180.0


def say(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def trivial(kc: BlockingKernelClient) -> None:
    reply = kc.execute_interactive("1", timeout=60, output_hook=lambda msg: None)
    if reply["content"]["status"] != "ok":
        raise RuntimeError(f"cell failed: {reply['content']}")


def start_to_first_result(name: str, env: dict[str, str], cwd: str
                          ) -> tuple[float, KernelManager, BlockingKernelClient]:
    """Milliseconds from starting kernel ``name`` to a first cell's reply; the kernel."""
    t0 = time.perf_counter()
    km = KernelManager(kernel_name=name)
    km.start_kernel(env=env, cwd=cwd)
    kc = km.blocking_client()
    kc.start_channels()
    kc.wait_for_ready(timeout=180)
    trivial(kc)
    return (time.perf_counter() - t0) * 1000, km, kc


@dataclass
class Samples:
    """What was measured of one kind of kernel."""

    starts: list[float] = field(default_factory=list)
    cells: list[float] = field(default_factory=list)


def measure_kernels(env: dict[str, str], cwd: str, plan: Plan) -> dict[str, Samples]:
    """Start-up samples of both kernels, one of each in turn, each turn after
    :data:`IDLE` seconds (on gVisor the server makes the next spare box meanwhile, a
    second of both cores: not what a user meets); then cell round trips in the last two
    kernels started, :data:`IDLE` seconds later, one of each in turn. Taking turns puts
    both under the same load, which drifts on a shared host."""
    samples = {name: Samples() for name in (BOXRUN, LOCAL)}
    kernels: dict[str, tuple[KernelManager, BlockingKernelClient]] = {}
    for _ in range(plan.starts):
        for km, kc in kernels.values():
            kc.stop_channels()
            km.shutdown_kernel()
        time.sleep(IDLE)
        for name, got in samples.items():
            ms, km, kc = start_to_first_result(name, env, cwd)
            kernels[name] = km, kc
            got.starts.append(ms)
            say(f"{name}: start -> first result {ms:.0f} ms")
    time.sleep(IDLE)
    cells = {name: partial(trivial, kc) for name, (_, kc) in kernels.items()}
    for cell in cells.values():
        timed_ms(cell, 10)  # warm-up
    for _ in range(plan.cells):
        for name, cell in cells.items():
            samples[name].cells += timed_ms(cell, 1)
    for km, kc in kernels.values():
        kc.stop_channels()
        km.shutdown_kernel()
    return samples


def warm_up(env: dict[str, str], cwd: str, service: Service, backend: str) -> float:
    """Start a first BoxRun kernel, then, on gVisor, wait for the spare box its warm
    template leads to: the starts measured are those of a server in use. Milliseconds
    from the first kernel's start to its first result (cold: no template yet)."""
    ms, km, kc = start_to_first_result(BOXRUN, env, cwd)
    kc.stop_channels()
    km.shutdown_kernel()
    if backend != "gvisor":
        return ms
    deadline = time.monotonic() + SPARE_WAIT
    while SPARE_READY not in service.log.read_text() and time.monotonic() < deadline:
        time.sleep(0.5)
    say("a spare box is ready" if SPARE_READY in service.log.read_text()
        else f"no spare box after {SPARE_WAIT:.0f} s: starts are measured without")
    return ms


def box_creates(client: httpx.Client, plan: Plan) -> list[float]:
    """Milliseconds of ``POST /v1/boxes`` for the kernel's kind of box."""
    times = []
    for _ in range(plan.boxes):
        t0 = time.perf_counter()
        resp = client.post("/v1/boxes", json=BOX)
        times.append((time.perf_counter() - t0) * 1000)
        if resp.status_code != 201:
            raise RuntimeError(f"box create failed: {resp.status_code} {resp.text[:500]}")
        remove_box(client, resp.json()["id"])
    return times


def measure(plan: Plan, tmp: Path, images_dir: Path, backend: str,
            services: list[Service]) -> list[Row]:
    service = Service.boxrun(tmp / "state", images_dir, secrets.token_hex(8))
    service.env["BOXRUN_BACKEND"] = backend
    services.append(service.start())
    # in the server user's home (a volume root), not below /tmp: on gVisor a notebook
    # folder there starts cold (docs/sessions.md, Warm kernels)
    folder = Path(tempfile.mkdtemp(prefix="boxrun-bench-notebooks-", dir=Path.home()))
    folder.chmod(0o755)  # box root enters the mounted notebook folder
    env = {**os.environ, "BOXRUN_SOCKET": str(service.sock)}
    with service.client(timeout=300) as client:
        box_creates(client, Plan(0, 0, 1))  # the image's first use unpacks it
        creates = box_creates(client, plan)
    say(f"box create median {median(creates):.0f} ms")
    try:
        warm_up(env, str(folder), service, backend)
        samples = measure_kernels(env, str(folder), plan)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    box, local = samples[BOXRUN], samples[LOCAL]
    local_cell, local_start, create = median(local.cells), median(local.starts), median(creates)
    return [
        Row("trivial cell, median", median(box.cells), local_cell, "local", 2.5 * local_cell,
            unit="ms"),
        Row("trivial cell, p99", percentile(box.cells, 99), percentile(local.cells, 99),
            "local", unit="ms"),
        Row("kernel start -> first result", median(box.starts), local_start, "local",
            local_start, unit="ms"),
        Row("  of which box create", create, unit="ms"),
    ]


def main() -> int:
    parser = arguments(__doc__)
    parser.add_argument("--backend", default=os.environ.get("BOXRUN_BACKEND", "namespace"),
                        help="the server's backend (not auto: its background micro-VM boot "
                             "probe would compete with the measurements)")
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    tmp = Path(tempfile.mkdtemp(prefix="boxrun-bench-kernel-"))
    services: list[Service] = []
    started = time.monotonic()
    try:
        rows = measure(plan, tmp, args.images_dir, args.backend, services)
    except (RuntimeError, httpx.HTTPError, OSError) as err:
        say(f"FAILED: {err}")
        return 2
    finally:
        for service in services:
            service.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return report(rows, args.quick, started, args.strict,
                  f"baseline: a local '{LOCAL}' ipykernel, measured the same way in this run; "
                  "cells through jupyter_client execute_interactive, one of each kernel in "
                  "turn; the start target is no slower than local (issue 13); BoxRun kernels "
                  f"start on a server in use (a first kernel started before, {IDLE:.0f} s idle "
                  "before each turn of starts and before the cells)")


if __name__ == "__main__":
    sys.exit(main())
