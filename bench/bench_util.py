"""Shared helpers of the benchmark: statistics, the results table and an RSS sampler."""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


def percentile(values: list[float], pct: float) -> float:
    """The ``pct`` percentile of ``values`` (nearest rank)."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def median(values: list[float]) -> float:
    return statistics.median(values)


def timed_ms(fn: Callable[[], object], runs: int) -> list[float]:
    """Wall times of ``runs`` calls of ``fn``, in milliseconds."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return times


@dataclass
class Row:
    """One line of the results table; ``lower_is_better`` decides how the target reads."""

    metric: str
    value: float
    baseline: float | None = None
    baseline_label: str = ""
    target: float | None = None
    lower_is_better: bool = True
    unit: str = ""

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        return self.value <= self.target if self.lower_is_better else self.value >= self.target

    def cells(self) -> list[str]:
        base = "-" if self.baseline is None else f"{_num(self.baseline)} {self.baseline_label}".strip()
        ratio = "-" if not self.baseline else f"{self.value / self.baseline:.1f}x"
        target = "-" if self.target is None else f"{'<=' if self.lower_is_better else '>='} {_num(self.target)}"
        ok = {None: "-", True: "yes", False: "NO"}[self.met]
        return [self.metric, f"{_num(self.value)} {self.unit}".strip(), base, ratio, target, ok]


def _num(x: float) -> str:
    return f"{x:.0f}" if abs(x) >= 100 else f"{x:.2f}" if abs(x) < 10 else f"{x:.1f}"


def table(rows: list[Row]) -> str:
    """The rows as an aligned ``metric | value | baseline | ratio | target | ok`` table."""
    header = ["metric", "value", "baseline", "ratio", "target", "ok"]
    lines = [header] + [r.cells() for r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    fmt = [" | ".join(c.ljust(w) for c, w in zip(line, widths, strict=False)).rstrip() for line in lines]
    fmt.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(fmt)


def status_kb(pid: int, key: str) -> int:
    """A ``kB`` field of ``/proc/PID/status`` (``VmRSS``, ``VmHWM``), 0 if absent."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


@dataclass
class RssSampler:
    """Samples a process's VmRSS every ``interval`` seconds in a thread; keeps the peak."""

    pid: int
    interval: float = 0.02
    peak_kb: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> RssSampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()

    def _sample(self) -> None:
        try:
            self.peak_kb = max(self.peak_kb, status_kb(self.pid, "VmRSS"))
        except OSError:
            pass

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()


def report(rows: list[Row], quick: bool, started: float, strict: bool, footnote: str = "") -> int:
    """Print the table, ``footnote`` and which targets were missed; the exit code
    (1 when ``strict`` and a target was missed)."""
    print(table(rows))
    if footnote:
        print(f"\n{footnote}")
    missed = [r.metric.strip() for r in rows if r.met is False]
    print(f"\n{'quick' if quick else 'full'} run, {time.monotonic() - started:.0f}s; "
          + (f"targets missed: {', '.join(missed)}" if missed else "all targets met"))
    return 1 if missed and strict else 0


def arguments(description: str | None) -> argparse.ArgumentParser:
    """The options every benchmark takes: ``--quick``, ``--strict``, ``--images-dir``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="few iterations (CI smoke)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--images-dir", type=Path, default=Path(
        os.environ.get("BOXRUN_IMAGES_DIR", "/var/tmp/boxrun-test-images")))
    return parser
