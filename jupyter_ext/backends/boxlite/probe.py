"""The boot probe: boot one micro-VM in a scratch home to learn whether they boot here.

``python -m jupyter_ext.backends.boxlite.probe STATE_DIR OCI_LAYOUT`` boots a box of
the layout under ``STATE_DIR/boxlite-probe`` and records the verdict in STATE_DIR's
:class:`~.verdict.VerdictStore`; :func:`probe` runs it as a child process, which dies
with its parent and takes its micro-VM with it.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import shutil
import signal
import sys
from pathlib import Path

from ...core.errors import BoxRunError
from ..base import BoxSpec
from .backend import BoxliteBackend
from .verdict import Verdict, VerdictStore

log = logging.getLogger(__name__)

#: The child's own boot timeout is the backend's; this bounds everything else too.
PROBE_TIMEOUT = 300.0
PR_SET_PDEATHSIG = 1


def scratch_dir(state_dir: Path) -> Path:
    """Where the probe's BoxLite home lives while it runs."""
    return state_dir / "boxlite-probe"


async def probe(state_dir: Path, layout: Path, timeout: float = PROBE_TIMEOUT) -> Verdict | None:
    """Run the probe in a child process; the verdict it recorded, if it reached one."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", __name__, str(state_dir), str(layout),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, start_new_session=True)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except BaseException:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
        raise
    finally:
        shutil.rmtree(scratch_dir(state_dir), ignore_errors=True)
    if proc.returncode != 0:
        log.warning("the micro-VM boot probe failed: %s", out.decode(errors="replace")[-2000:])
    return VerdictStore(state_dir).get()


async def _boot(state_dir: Path, layout: Path) -> int:
    scratch = scratch_dir(state_dir)
    shutil.rmtree(scratch, ignore_errors=True)
    backend = BoxliteBackend(scratch, verdicts=VerdictStore(state_dir))
    spec = BoxSpec(box_id="boot-probe", name=None, image="boot-probe", oci_layout=layout,
                   cpu=1, memory_mb=256, disk_size_gb=1, network=False, workdir="/")
    await backend.open()
    try:
        handle = await backend.create(spec)
        try:
            await backend.start(handle, spec)
        except BoxRunError as err:
            print(err.message, flush=True)
            return 0 if backend.verdicts.get() else 1
        finally:
            await backend.remove(handle)
    finally:
        await backend.close()
    print("a micro-VM booted", flush=True)
    return 0


def main() -> int:
    """Entry point of the child process."""
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() == 1:  # the parent is already gone
        return 1
    state_dir, layout = (Path(arg) for arg in sys.argv[1:3])
    return asyncio.run(_boot(state_dir, layout))


if __name__ == "__main__":
    sys.exit(main())
