"""Benchmark of a real BoxRun server against bare baselines: latency, SSE throughput, req/s."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from bench_http import Service, create_box, remove_box, run_exec
from bench_util import Row, RssSampler, arguments, median, percentile, report, status_kb, timed_ms

BWRAP = ["bwrap", "--ro-bind", "/", "/", "--unshare-all", "--", "true"]
TRUE = ["true"]


@dataclass(frozen=True)
class Plan:
    """How much each scenario does."""

    boxes: int  # create -> first exec samples
    execs: int  # exec round trips in one box
    sse_bytes: int  # stdout volume streamed over SSE (a multiple of 100)
    sse_limit_s: float  # give up streaming after this long
    list_boxes: int  # boxes existing while wrk hits GET /v1/boxes
    wrk_seconds: int
    spawns: int  # bare bwrap spawns


FULL = Plan(boxes=20, execs=200, sse_bytes=100_000_000, sse_limit_s=120, list_boxes=20,
            wrk_seconds=5, spawns=50)
QUICK = Plan(boxes=3, execs=20, sse_bytes=20_000_000, sse_limit_s=20, list_boxes=5,
             wrk_seconds=1, spawns=10)


def say(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def bwrap_spawns(plan: Plan) -> list[float]:
    return timed_ms(lambda: subprocess.run(BWRAP, check=True, timeout=30), plan.spawns)


def create_to_first_exec(client: httpx.Client, plan: Plan) -> list[float]:
    """Milliseconds from POST /v1/boxes to the exit event of a first ``true``."""
    times = []
    for _ in range(plan.boxes):
        t0 = time.perf_counter()
        box_id = create_box(client)
        run_exec(client, box_id, TRUE)
        times.append((time.perf_counter() - t0) * 1000)
        remove_box(client, box_id)
    return times


def exec_round_trips(client: httpx.Client, box_id: str, runs: int) -> list[float]:
    """Milliseconds of POST exec + SSE to exit for ``true``, after a short warm-up."""
    timed_ms(lambda: run_exec(client, box_id, TRUE), 5)
    return timed_ms(lambda: run_exec(client, box_id, TRUE), runs)


def stream_command(nbytes: int) -> list[str]:
    """A shell command printing ``nbytes`` of 100-byte lines of 'z' (99 per line)."""
    return ["sh", "-c", f"yes {'z' * 99} | head -c {nbytes}"]


def pipe_mb_s(nbytes: int) -> float:
    """MB/s of the bare command read from a pipe on the host."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(stream_command(nbytes), stdout=subprocess.PIPE)
    assert proc.stdout is not None
    total = 0
    while chunk := os.read(proc.stdout.fileno(), 1 << 20):
        total += len(chunk)
    proc.wait(30)
    if total != nbytes:
        raise RuntimeError(f"pipe read {total} of {nbytes} bytes")
    return total / 1e6 / (time.perf_counter() - t0)


@dataclass
class SseFigures:
    mb_s: float
    peak_rss_mb: float
    idle_rss_mb: float
    wire_mb: float
    complete: bool


def sse_throughput(server: Service, client: httpx.Client, box_id: str, plan: Plan) -> SseFigures:
    """Stream ``plan.sse_bytes`` of stdout over SSE; payload MB/s and the server's peak RSS."""
    idle = status_kb(server.pid, "VmRSS") / 1024
    with RssSampler(server.pid) as rss:
        t0 = time.perf_counter()
        result = run_exec(client, box_id, stream_command(plan.sse_bytes), count=b"z",
                          deadline=time.monotonic() + plan.sse_limit_s)
        elapsed = time.perf_counter() - t0
    payload = result.counted * 100 / 99
    complete = result.exit_data is not None and result.counted == plan.sse_bytes * 99 // 100
    return SseFigures(payload / 1e6 / elapsed, rss.peak_kb / 1024, idle, result.wire_bytes / 1e6,
                      complete)


def wrk_rps(url: str, token: str, seconds: int) -> float:
    """Requests/s of ``wrk -t2 -c20`` on ``url``; fails if any response was not 2xx."""
    out = subprocess.run(["wrk", "-t2", "-c20", f"-d{seconds}s", "-H",
                          f"Authorization: token {token}", url],
                         capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if bad:
        raise RuntimeError(f"wrk on {url}: {bad[1]} non-2xx responses\n{out}")
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if found is None:
        raise RuntimeError(f"no Requests/sec in wrk output:\n{out}")
    return float(found[1])


def fill_boxes(client: httpx.Client, count: int) -> bytes:
    """Create boxes until ``count`` exist; the GET /v1/boxes body then."""
    existing = len(client.get("/v1/boxes").json())
    for _ in range(count - existing):
        create_box(client)
    resp = client.get("/v1/boxes")
    assert len(resp.json()) == count, resp.text[:300]
    return resp.content


def measure(plan: Plan, tmp: Path, images_dir: Path, services: list[Service]) -> list[Row]:
    """Run every scenario; ``services`` collects what was started, for the caller to stop."""
    token = secrets.token_urlsafe(16)
    say(f"bare bwrap spawns x{plan.spawns}")
    bwrap_med = median(bwrap_spawns(plan))
    say("starting boxrun serve")
    server = Service.boxrun(tmp / "state", images_dir, token)
    services.append(server)
    server.start()
    with server.client() as client:
        say(f"box create -> first exec x{plan.boxes}")
        first = create_to_first_exec(client, plan)
        box_id = create_box(client)
        say(f"exec round trips x{plan.execs}")
        trips = exec_round_trips(client, box_id, plan.execs)
        say(f"SSE {plan.sse_bytes / 1e6:.0f} MB (host pipe baseline first)")
        pipe = pipe_mb_s(plan.sse_bytes)
        sse = sse_throughput(server, client, box_id, plan)
        say(f"filling to {plan.list_boxes} boxes")
        list_body = fill_boxes(client, plan.list_boxes)
    bare = Service.bare_tornado(tmp, list_body, token)
    services.append(bare)
    bare.start()
    with bare.client() as client:
        say(f"bare tornado round trips x{plan.execs}")
        bare_trips = exec_round_trips(client, "box_bare", plan.execs)
    say(f"wrk {plan.wrk_seconds}s x2 (list body {len(list_body)} B)")
    bare_rps = wrk_rps(bare.tcp_url + "/v1/boxes", token, plan.wrk_seconds)
    rps = wrk_rps(server.tcp_url + "/v1/boxes", token, plan.wrk_seconds)
    sse_name = f"SSE stdout throughput, {plan.sse_bytes / 1e6:.0f} MB"
    if not sse.complete:
        sse_name += f" (INCOMPLETE after {plan.sse_limit_s:.0f}s)"
    return [
        Row(f"create->first exec median, {plan.boxes} boxes", median(first), bwrap_med,
            "bwrap spawn", 300, unit="ms"),
        Row("create->first exec p90", percentile(first, 90), bwrap_med, "bwrap spawn", unit="ms"),
        Row(f"exec `true` round trip median, {plan.execs} runs", median(trips), bwrap_med,
            "bwrap spawn", 30, unit="ms"),
        Row("  same, vs bare tornado POST+SSE", median(trips), median(bare_trips), "tornado",
            30, unit="ms"),
        Row("exec `true` round trip p99", percentile(trips, 99), percentile(bare_trips, 99),
            "tornado p99", unit="ms"),
        Row(sse_name, sse.mb_s, pipe, "host pipe", 50, lower_is_better=False, unit="MB/s"),
        Row(f"server peak RSS during SSE ({sse.wire_mb:.0f} MB on wire)", sse.peak_rss_mb,
            sse.idle_rss_mb, "idle", 200, unit="MB"),
        Row(f"GET /v1/boxes, {plan.list_boxes} boxes, wrk -t2 -c20", rps, bare_rps, "tornado",
            1000, lower_is_better=False, unit="req/s"),
    ]


def cleanup(services: list[Service], tmp: Path) -> None:
    """Remove every box, stop the servers, delete the temp dir unless something is mounted there."""
    for service in services:
        if service.proc is not None and service.proc.poll() is None and service.is_boxrun:
            try:
                with service.client(timeout=30) as client:
                    for box in client.get("/v1/boxes").json():
                        remove_box(client, box["id"])
            except (httpx.HTTPError, OSError, ValueError) as err:
                say(f"could not remove boxes: {err}")
    for service in reversed(services):
        service.stop()
    with open("/proc/self/mountinfo") as f:
        mounted = [line for line in f if str(tmp) in line]
    if mounted:
        say(f"left {tmp} in place: something is still mounted under it")
    else:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    parser = arguments(__doc__)
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    tmp = Path(tempfile.mkdtemp(prefix="boxrun-bench-"))
    services: list[Service] = []
    started = time.monotonic()
    try:
        rows = measure(plan, tmp, args.images_dir, services)
    except (RuntimeError, httpx.HTTPError, subprocess.SubprocessError, OSError) as err:
        say(f"FAILED: {err}")
        return 2
    finally:
        cleanup(services, tmp)
    return report(rows, args.quick, started, args.strict)


if __name__ == "__main__":
    sys.exit(main())
