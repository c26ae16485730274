"""The real ``boxrun`` command (``python -m jupyter_ext.standalone``) against a real server:
run with pipes (stdout and stderr apart) or in a pty (pexpect)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pexpect
import pytest

from ..servers import ServerProcess

BOXRUN = [sys.executable, "-m", "jupyter_ext.standalone"]


class Cli:
    """``boxrun`` with an environment that points it at one server."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("BOXRUN_")}
        self.env.update(env)

    def __call__(self, *args: str, timeout: float = 120, **kw: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*BOXRUN, *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout, **kw)

    def ok(self, *args: str) -> str:
        """Run, check the exit status is 0; the stdout."""
        done = self(*args)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done.stdout

    def spawn(self, *args: str, rows: int = 24, cols: int = 80) -> pexpect.spawn:
        """``boxrun`` in a pty of ``rows``×``cols``."""
        return pexpect.spawn(BOXRUN[0], [*BOXRUN[1:], *args], env=self.env,
                             dimensions=(rows, cols), timeout=30)


@pytest.fixture
def cli(server: ServerProcess) -> Cli:
    """``boxrun`` on the shared server's Unix socket (``BOXRUN_STATE_DIR``)."""
    return Cli({"BOXRUN_STATE_DIR": str(server.state_dir)})


@pytest.fixture
def box(cli: Cli) -> Iterator[str]:
    """A running debian box's name, removed after the test."""
    name = f"cli-{uuid.uuid4().hex[:8]}"
    cli.ok("create", "debian", "-n", name, "--cpu", "1", "-m", "256")
    yield name
    cli("rm", "-f", name)
