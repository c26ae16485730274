"""Builds an image into the server's store with ``boxrun image build``, reporting progress."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path

from ..client import BoxUnavailable
from .api import Server

#: A tqdm line of ``boxrun image build``: ``debian: installing...   38%|███▊      | 00:13``.
LINE = re.compile(r"^(?P<caption>.*?)\s+(?P<percent>\d+)%\|")
OnProgress = Callable[[int, str], None]


async def images_dir(server: Server) -> Path:
    """The folder of the server's image store: where its images are, else where a server
    with our environment keeps them (``$BOXRUN_IMAGES_DIR``, else next to its socket)."""
    images = await server.get("/v1/images")
    if images:
        return Path(images[0]["oci_layout"]).parent.parent
    if os.environ.get("BOXRUN_IMAGES_DIR"):
        return Path(os.environ["BOXRUN_IMAGES_DIR"])
    if server.client.where.startswith("/"):  # the socket of <state_dir>
        return Path(server.client.where).parent / "images"
    state = os.environ.get("BOXRUN_STATE_DIR") or os.path.expanduser("~/.boxrun")
    return Path(state) / "images"


async def build_image(server: Server, name: str, on_progress: OnProgress) -> str:
    """Build image ``name`` in a ``boxrun image build`` process (so the kernel stays free);
    its last line. :class:`BoxUnavailable` with the command's own words if it fails."""
    folder = await images_dir(server)
    on_progress(0, f"building {name} in {folder}")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "jupyter_ext.standalone", "image", "build", name,
        env={**os.environ, "BOXRUN_IMAGES_DIR": str(folder)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    lines: list[str] = []
    pending = ""
    try:
        while chunk := (await proc.stderr.read(4096)).decode(errors="replace"):
            *complete, pending = re.split(r"[\r\n]", pending + chunk)
            for line in filter(None, complete):
                match = LINE.match(line)
                if match:
                    on_progress(int(match["percent"]), match["caption"].strip())
                elif not line.startswith("[boxrun"):
                    lines.append(line)
        out = (await proc.stdout.read()).decode(errors="replace").strip()
        if await proc.wait() != 0:
            problem = "\n".join(lines[-10:] + [pending]).strip()
            raise BoxUnavailable(f"building image {name} failed: "
                                 f"{problem.removeprefix('boxrun: ') or f'exit {proc.returncode}'}")
    except asyncio.CancelledError:
        proc.terminate()
        await proc.wait()
        raise
    return out.splitlines()[-1] if out else f"built {name}"
