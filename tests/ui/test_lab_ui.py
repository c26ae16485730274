"""Runs the lab extension's unit tests (Vitest) and end-to-end tests (Playwright in
Debian's headless Chromium against a real ``jupyter lab``) and asserts they pass."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "labextension"
BUILT = ROOT / "jupyter_ext" / "labextension"
UI_TESTS = Path(__file__).resolve().parent
CHROMIUM = os.environ.get("BOXRUN_UI_CHROMIUM", "/usr/bin/chromium")
#: ``BOXRUN_UI_TESTS=required`` (as in .ci/run) fails instead of skipping without Node.
REQUIRED = os.environ.get("BOXRUN_UI_TESTS", "") == "required"


def _need(condition: bool, reason: str) -> None:
    if not condition:
        if REQUIRED:
            pytest.fail(f"{reason} (BOXRUN_UI_TESTS=required)")
        pytest.skip(reason)


def _run(args: list[str], cwd: Path, timeout: float, env: dict[str, str] | None = None) -> None:
    """Run a command; fail the test with its output if it fails."""
    with subprocess.Popen(
        args, cwd=cwd, env=env, text=True, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    ) as proc:
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)  # the runner's teardown stops its servers
            out, _ = proc.communicate()
            pytest.fail(f"`{' '.join(args)}` in {cwd} took over {timeout} s:\n{out[-20000:]}")
    if proc.returncode != 0:
        pytest.fail(f"`{' '.join(args)}` in {cwd} exited {proc.returncode}:\n{out[-20000:]}")


def _npm_install(package: Path) -> None:
    """``npm ci`` from the lock file unless node_modules is there (cache first)."""
    if not (package / "node_modules").is_dir():
        _run(["npm", "ci", "--prefer-offline", "--no-audit", "--no-fund"], package, 900)


def _newest(*paths: Path) -> float:
    return max((f.stat().st_mtime for p in paths for f in p.rglob("*") if f.is_file()), default=0)


@pytest.fixture(scope="module")
def lab_extension() -> Path:
    """The lab extension built from this checkout's sources (rebuilt when stale)."""
    _need(shutil.which("node") is not None and shutil.which("npm") is not None,
          "Node.js and npm are needed to build and test the lab extension")
    _npm_install(SOURCE)
    marker = BUILT / "package.json"
    sources = _newest(SOURCE / "src", SOURCE / "style", SOURCE / "package.json")
    if not marker.exists() or marker.stat().st_mtime < sources:
        _run(["npm", "run", "build"], SOURCE, 600)
    return BUILT


@pytest.mark.timeout(300)
def test_unit(lab_extension: Path) -> None:
    """Vitest: API error parsing, SSE parsing, formatting, state updates."""
    _run(["npx", "--no-install", "vitest", "run"], SOURCE, 240)


@pytest.mark.timeout(1500)
def test_end_to_end(lab_extension: Path, images_dir: Path) -> None:
    """Playwright: the panel, creating/stopping/starting/removing boxes, exec output,
    errors, a terminal, both themes; screenshots in test-artifacts/."""
    _need(os.access(CHROMIUM, os.X_OK), f"no Chromium at {CHROMIUM}")
    _npm_install(UI_TESTS)
    env = {
        **os.environ,
        "BOXRUN_UI_PYTHON": sys.executable,
        "BOXRUN_UI_CHROMIUM": CHROMIUM,
        "BOXRUN_IMAGES_DIR": str(images_dir),
        "CI": "1",
    }
    _run(["npx", "--no-install", "playwright", "test"], UI_TESTS, 1400, env)
