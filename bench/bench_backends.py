"""Backend latency side by side (no server): create+start → first exec result, and the
round trip of ``true``, for each backend this host runs.

    python bench/bench_backends.py [--images-dir DIR] [--runs N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

from jupyter_ext.backends.base import Backend, BoxSpec
from jupyter_ext.backends.gvisor import GvisorBackend
from jupyter_ext.backends.namespace import NamespaceBackend
from jupyter_ext.images.store import ImageStore


async def _run(backend: Backend, handle: str, *cmd: str) -> int:
    process = await backend.exec(handle, cmd, {"PATH": "/usr/bin:/bin"}, "/")
    await asyncio.gather(*(_drain(s) for s in (process.stdout, process.stderr)))
    return await process.wait()


async def _drain(stream) -> None:
    async for _ in stream:
        pass


async def bench(cls: type[Backend], store: ImageStore, runs: int) -> tuple[float, float]:
    """Median create→first exec and median ``true`` round trip, in ms."""
    with tempfile.TemporaryDirectory(prefix="bench-backends-") as tmp:
        state = Path(tmp) / "state"
        state.mkdir(mode=0o700)
        backend = cls(state_dir=state, images=store)
        await backend.open()
        ref, layout = store.resolve("debian")
        spec = BoxSpec(box_id="bench", name=None, image=ref, oci_layout=layout, cpu=1,
                       memory_mb=512, disk_size_gb=1, network=False, workdir="/root")
        await backend.remove(await backend.create(spec))  # unpack the image once
        firsts, trips = [], []
        for _ in range(runs):
            started = time.perf_counter()
            handle = await backend.create(spec)
            await backend.start(handle, spec)
            assert await _run(backend, handle, "true") == 0
            firsts.append(time.perf_counter() - started)
            for _ in range(10):
                started = time.perf_counter()
                await _run(backend, handle, "true")
                trips.append(time.perf_counter() - started)
            await backend.remove(handle)
        await backend.close()
    return statistics.median(firsts) * 1000, statistics.median(trips) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images-dir", default=os.environ.get("BOXRUN_TEST_IMAGES"))
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    store = ImageStore(Path(args.images_dir))
    print(f"{'backend':<10} {'create→first exec':>18} {'exec true':>10}")
    for cls in (NamespaceBackend, GvisorBackend):
        first, trip = asyncio.run(bench(cls, store, args.runs))
        print(f"{cls.name:<10} {first:>15.0f} ms {trip:>7.1f} ms")


if __name__ == "__main__":
    main()
