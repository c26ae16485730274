"""Snapshots on each backend in one run: take and restore a box idle, holding 100 MB and
holding 1 GB of Python objects (in a ``python`` session, as a notebook's interpreter),
and a BoxRun kernel's start from a warm snapshot against a local ipykernel's start.

    python bench/bench_snapshots.py [--quick] [--images-dir DIR] [--backends namespace,gvisor]

Rows per backend and state: snapshot time, its size on disk, restore time (the box
running again in that state), and whether the objects were there after the restore
(memory snapshots) or the interpreter was new (disk-only). Then kernel start → first
result: the BoxRun kernel (its first start in a fresh server makes the image's warm
template; the later ones start from it) against a local ``python3`` ipykernel.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path

import httpx
from bench_http import Service, remove_box
from bench_kernel import BOXRUN, LOCAL, measure_kernels, warm_up
from bench_kernel import Plan as KernelPlan
from bench_util import arguments, median

BACKENDS = ("namespace", "gvisor")
BOX = {"image": "python", "cpu": 1, "memory_mb": 3072}
#: Megabytes of Python objects (random bytes: nothing to compress or share) per state.
STATES = {"idle": 0, "100 MB": 100, "1 GB": 1024}


def say(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


class Interpreter:
    """A ``python`` session in a box, driven through the sessions API."""

    def __init__(self, client: httpx.Client, box_id: str) -> None:
        self.client, self.box_id = client, box_id
        reply = client.post(f"/v1/boxes/{box_id}/sessions", json={"kind": "python"})
        if reply.status_code != 201:
            raise RuntimeError(f"session: {reply.status_code} {reply.text[:300]}")
        self.path = f"/v1/boxes/{box_id}/sessions/{reply.json()['id']}"
        self.seen = -1

    def run(self, code: str) -> str:
        """Run ``code``; its result's text (or the error's)."""
        reply = self.client.post(self.path + "/messages", json={
            "channel": "shell", "msg_type": "execute_request", "content": {"code": code}})
        if reply.status_code != 202:
            raise RuntimeError(f"execute: {reply.status_code} {reply.text[:300]}")
        msg_id, text = reply.json()["msg_id"], ""
        with self.client.stream("GET", self.path + "/events",
                                headers={"Last-Event-ID": str(self.seen)}) as events:
            for line in events.iter_lines():
                if not line.startswith("data: "):
                    continue
                event = json.loads(line[6:])
                self.seen = max(self.seen, event["seq"])
                if event["msg_type"] == "dead":
                    raise RuntimeError(f"the interpreter died: {event['content']}")
                if event.get("parent_msg_id") != msg_id:
                    continue
                if event["msg_type"] == "execute_result":
                    text = event["content"]["data"]["text/plain"]
                elif event["msg_type"] == "error":
                    text = f"{event['content']['ename']}: {event['content']['evalue']}"
                elif event["msg_type"] == "execute_reply":
                    return text
        raise RuntimeError("the session's events ended before the reply")


def timed(client: httpx.Client, method: str, path: str, body: dict) -> tuple[float, dict]:
    """Seconds of one request and its JSON body (fails on an error status)."""
    started = time.perf_counter()
    reply = client.request(method, path, json=body)
    elapsed = time.perf_counter() - started
    if reply.status_code >= 300:
        raise RuntimeError(f"{method} {path}: {reply.status_code} {reply.text[:300]}")
    return elapsed, reply.json()


def measure_state(client: httpx.Client, megabytes: int, label: str) -> dict[str, float | str]:
    """Snapshot and restore of a new box whose interpreter holds ``megabytes``."""
    reply = client.post("/v1/boxes", json=BOX)
    if reply.status_code != 201:
        raise RuntimeError(f"box create: {reply.status_code} {reply.text[:300]}")
    box_id = reply.json()["id"]
    try:
        interp = Interpreter(client, box_id)
        interp.run(f"import os\nblob = [os.urandom(1 << 20) for _ in range({megabytes})]\n"
                   "mark = 41")
        took, snap = timed(client, "POST", f"/v1/boxes/{box_id}/snapshots", {"name": "bench"})
        interp.run("mark = 0")
        restored, _ = timed(client, "POST", f"/v1/boxes/{box_id}/snapshots/bench:restore", {})
        after = Interpreter(client, box_id) if not snap["memory"] else interp
        state = after.run("(mark + 1, len(blob))" if snap["memory"] else "'new interpreter'")
        say(f"{label}: snapshot {took:.2f} s, {snap['size_bytes'] / 1e6:.0f} MB, "
            f"restore {restored:.2f} s, after: {state}")
        return {"snapshot": took, "size": snap["size_bytes"] / 1e6, "restore": restored,
                "after": state, "memory": "yes" if snap["memory"] else "disk only"}
    finally:
        remove_box(client, box_id)


def measure_backend(backend: str, tmp: Path, images_dir: Path, starts: int,
                    services: list[Service]) -> tuple[dict[str, dict], list[float], list[float]]:
    """The snapshot rows of each state; BoxRun kernel starts (the first on its image,
    then from its warm template on gVisor) and local ipykernel starts, taken in turns."""
    service = Service.boxrun(tmp / backend / "state", images_dir, secrets.token_hex(8))
    service.env.update(BOXRUN_BACKEND=backend, BOXRUN_MAX_SNAPSHOT_BYTES=str(20 << 30))
    services.append(service.start())
    with service.client(timeout=600) as client:
        rows = {label: measure_state(client, mb, f"{backend}, {label}")
                for label, mb in STATES.items()}
    # in the server user's home, not below /tmp: on gVisor a notebook folder there starts
    # cold (docs/sessions.md, Warm kernels)
    notebooks = Path(tempfile.mkdtemp(prefix="boxrun-bench-notebooks-", dir=Path.home()))
    notebooks.chmod(0o755)  # box root enters the mounted notebook folder
    env = {**os.environ, "BOXRUN_SOCKET": str(service.sock)}
    try:
        first = warm_up(env, str(notebooks), service, backend)
        kernels = measure_kernels(env, str(notebooks), KernelPlan(cells=1, starts=starts,
                                                                  boxes=0))
    finally:
        shutil.rmtree(notebooks, ignore_errors=True)
    service.stop()
    return rows, [first, *kernels[BOXRUN].starts], kernels[LOCAL].starts


def main() -> int:
    parser = arguments(__doc__.splitlines()[0])
    parser.add_argument("--backends", default=",".join(BACKENDS))
    args = parser.parse_args()
    starts = 2 if args.quick else 4
    tmp = Path(tempfile.mkdtemp(prefix="boxrun-bench-snapshots-"))
    tmp.chmod(0o755)  # box root enters the mounted notebook folders
    services: list[Service] = []
    began = time.monotonic()
    lines = [f"{'backend':10} {'state':7} {'kind':10} {'snapshot s':>10} {'size MB':>8} "
             f"{'restore s':>9}  after restore"]
    kernel: dict[str, list[float]] = {}
    local: list[float] = []
    failed = False
    try:
        for backend in args.backends.split(","):
            try:
                rows, kernel[backend], local_starts = measure_backend(
                    backend, tmp, args.images_dir, starts, services)
                local += local_starts
            except (RuntimeError, httpx.HTTPError, OSError) as err:
                say(f"{backend} FAILED: {err}; its server's log ends:\n"
                    f"{services[-1].log.read_text()[-3000:] if services else ''}")
                failed = True
                continue
            lines += [f"{backend:10} {label:7} {r['memory']:10} {r['snapshot']:10.2f} "
                      f"{r['size']:8.0f} {r['restore']:9.2f}  {r['after']}"
                      for label, r in rows.items()]
    finally:
        for service in services:
            service.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print("\n".join(lines))
    if local:  # some backend measured
        print(f"\nkernel start -> first result (ms), local ipykernel: median {median(local):.0f}")
    for backend, samples in kernel.items():
        later = samples[1:] or samples
        print(f"  boxrun on {backend}: first {samples[0]:.0f}, then median {median(later):.0f}"
              f" ({median(later) / median(local):.1f}x local)")
    print(f"\n{'quick' if args.quick else 'full'} run, {time.monotonic() - began:.0f}s; "
          "each state in a box of its own; a BoxRun kernel's first start in a server makes "
          "the image's warm template where the backend has memory snapshots")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
