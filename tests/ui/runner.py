"""Running the UI tests' Node tools from pytest: Playwright in Debian's headless Chromium."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ..servers import ServerProcess

UI_TESTS = Path(__file__).resolve().parent
CHROMIUM = os.environ.get("BOXRUN_UI_CHROMIUM", "/usr/bin/chromium")
#: ``BOXRUN_UI_TESTS=required`` (as in .ci/run) fails instead of skipping without Node.
REQUIRED = os.environ.get("BOXRUN_UI_TESTS", "") == "required"


def need(condition: bool, reason: str) -> None:
    """Skip (fail when the UI tests are required) unless ``condition``."""
    if not condition:
        if REQUIRED:
            pytest.fail(f"{reason} (BOXRUN_UI_TESTS=required)")
        pytest.skip(reason)


def run(args: list[str], cwd: Path, timeout: float, env: dict[str, str] | None = None) -> None:
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


def npm_install(package: Path) -> None:
    """``npm ci`` from the lock file unless node_modules is there (cache first)."""
    if not (package / "node_modules").is_dir():
        run(["npm", "ci", "--prefer-offline", "--no-audit", "--no-fund"], package, 900)


def playwright(specs: list[str], env: dict[str, str], timeout: float) -> None:
    """Run ``specs`` of tests/ui with Playwright in Chromium; fail with its output."""
    need(shutil.which("node") is not None and shutil.which("npm") is not None,
         "Node.js and npm are needed for the browser tests")
    need(os.access(CHROMIUM, os.X_OK), f"no Chromium at {CHROMIUM}")
    npm_install(UI_TESTS)
    env = {**os.environ, "BOXRUN_UI_PYTHON": sys.executable, "BOXRUN_UI_CHROMIUM": CHROMIUM,
           "CI": "1", **env}
    run(["npx", "--no-install", "playwright", "test", *specs], UI_TESTS, timeout, env)


def dashboard_specs(server: ServerProcess, *specs: str) -> None:
    """Run dashboard ``specs`` against ``server``'s ``/ui`` over TCP with its token."""
    env = {"BOXRUN_DASH_URL": f"http://127.0.0.1:{server.port}/", "BOXRUN_DASH_TOKEN": server.token}
    playwright(list(specs), env, 600)
