"""Whether gVisor sandboxes run on this host: fast checks, a real probe sandbox
(``runsc do true``, a few hundred ms) and the remembered verdict."""

from __future__ import annotations

import asyncio
import os
import platform
import shutil
import tempfile
from pathlib import Path

from ...core.hostcmd import HOST_ENV, SAFE_PATH
from ..verdict import Verdict, VerdictStore

#: Bounds the probe sandbox (it takes about 0.2 s here).
PROBE_TIMEOUT = 10.0


def runsc_path() -> str | None:
    """Where ``runsc`` is on the host's safe path, or ``None``."""
    return shutil.which("runsc", path=SAFE_PATH)


def host_problem() -> str | None:
    """The fast check: why gVisor certainly cannot run here, or ``None``."""
    if runsc_path() is None:
        return "runsc is not installed (apt-get install runsc)"
    return None


def rootless() -> bool:
    """Whether the server would run runsc ``--rootless`` (it is not root)."""
    return os.geteuid() != 0


def host_key() -> str:
    """What a verdict holds for: this kernel release, this runsc binary, root or not."""
    path = runsc_path()
    try:
        stat = os.stat(path) if path else None
    except OSError:
        stat = None
    binary = f"{path}@{stat.st_size}:{int(stat.st_mtime)}" if stat else "none"
    return f"{platform.release()} runsc={binary} {'rootless' if rootless() else 'root'}"


def verdicts(state_dir: Path) -> VerdictStore:
    """The gVisor verdicts of a state dir (``gvisor-verdict.json``)."""
    return VerdictStore(state_dir / "gvisor-verdict.json", host_key)


async def probe(state_dir: Path, timeout: float = PROBE_TIMEOUT) -> Verdict:
    """Run ``true`` in a throwaway sandbox (no network, as a box) and remember whether
    it ran."""
    path = runsc_path()
    if path is None:
        return verdicts(state_dir).put(False, "runsc is not installed")
    with tempfile.TemporaryDirectory(prefix="gvisor-probe-", dir=state_dir) as scratch:
        command = [path, f"--root={scratch}/runsc", "--network=none",
                   *(["--rootless"] if rootless() else []), "do", "true"]
        proc = await asyncio.create_subprocess_exec(
            *command, cwd=scratch, env={**HOST_ENV, "HOME": scratch},
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE, start_new_session=True)
        try:
            _, err = await asyncio.wait_for(proc.communicate(), timeout)
        except BaseException as exc:
            if proc.returncode is None:
                proc.kill()
            await proc.wait()
            if not isinstance(exc, TimeoutError):
                raise
            return verdicts(state_dir).put(False, f"a probe sandbox did not finish in {timeout:g} s")
    if proc.returncode != 0:
        last = err.decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
        return verdicts(state_dir).put(False, f"a probe sandbox failed (runsc exit "
                                              f"{proc.returncode}): {last[0][-300:]}")
    return verdicts(state_dir).put(True, "a probe sandbox ran")
