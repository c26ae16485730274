"""Benchmark: the server's CPU cost of the live metrics stream with 20 running boxes."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from bench_http import Service, create_box
from bench_server import cleanup, say
from bench_util import Row, table

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def server_cpu_percent(pid: int, seconds: float) -> float:
    """The server's CPU use over the next ``seconds``, in percent of one core."""
    before, started = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return 100 * (cpu_seconds(pid) - before) / (time.monotonic() - started)


def subscribe(service: Service, interval: float, stop: threading.Event, counts: list[int]) -> None:
    """Read the all-boxes metrics stream until ``stop``; count its events."""
    with service.client(timeout=None) as client, client.stream(
            "GET", "/v1/metrics/events", params={"interval": interval}) as resp:
        for line in resp.iter_lines():
            if line.startswith("event: metrics"):
                counts[0] += 1
            if stop.is_set():
                return


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--boxes", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--images-dir", type=Path, default=Path(
        os.environ.get("BOXRUN_IMAGES_DIR", "/var/tmp/boxrun-test-images")))
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="boxrun-bench-metrics-"))
    server = Service.boxrun(tmp / "state", args.images_dir, "bench-token")
    server.env["BOXRUN_BACKEND"] = "namespace"
    rows: list[Row] = []
    try:
        server.start()
        with server.client() as client:
            for n in range(args.boxes):
                create_box(client)
                say(f"box {n + 1}/{args.boxes}")
        idle = server_cpu_percent(server.pid, args.seconds)
        for interval in (1.0, 0.2):
            stop, counts = threading.Event(), [0]
            reader = threading.Thread(target=subscribe, args=(server, interval, stop, counts))
            reader.start()
            time.sleep(1)  # the sampler's first tick
            busy = server_cpu_percent(server.pid, args.seconds)
            stop.set()
            reader.join(timeout=interval + 5)
            rows.append(Row(f"server CPU, metrics stream every {interval:g} s, {args.boxes} boxes",
                            busy, idle, "idle", target=None, unit="%"))
            per_sample = (busy - idle) / 100 * args.seconds / max(counts[0], 1) * 1000
            rows.append(Row(f"  cost per box sample ({counts[0]} samples)", per_sample, unit="ms"))
    except (RuntimeError, httpx.HTTPError, OSError) as err:
        say(f"FAILED: {err}")
        return 2
    finally:
        cleanup([server], tmp)
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
