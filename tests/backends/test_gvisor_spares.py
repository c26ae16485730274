"""Spare boxes on gVisor, on real ``runsc`` sandboxes: once a warm template exists, a box
restored from it waits, and the next box of its shape is that box, its volumes mounted
into the running sandbox and its interpreter moved into its session."""

from __future__ import annotations

import asyncio

from jupyter_ext.backends.base import Volume
from jupyter_ext.backends.gvisor.checkpoint import checkpoint, create_from
from jupyter_ext.sessions.commands import socket_path

from . import test_gvisor
from .test_gvisor_checkpoint import ask, printed

# the gVisor backend fixtures and skip mark
backend, gv_state, pytestmark = test_gvisor.backend, test_gvisor.gv_state, test_gvisor.pytestmark


async def ready_spare(backend, timeout: float = 120) -> str:
    """The handle of the spare box once one is ready."""
    async with asyncio.timeout(timeout):
        while not backend.warm.spares._ready:
            await asyncio.sleep(0.1)
    return next(iter(backend.warm.spares._ready.values()))


async def test_the_next_box_of_a_shape_is_its_spare(spec, boot, run, backend, gv_state,
                                                     tmp_path):
    backend.warm_spares = True
    folder, out = tmp_path / "notebooks", tmp_path / "out"
    folder.mkdir()
    out.mkdir()
    (folder / "data.txt").write_text("from the notebook folder")
    box = spec("python", volumes=[Volume(str(folder), "/home/nb", readonly=True),
                                  Volume(str(out), "/srv/out")])
    path = socket_path("sess_spare1")
    first = await boot(box)
    assert await backend.warm_session(first, box, "auto", path, "/home/nb", {}) is None
    await asyncio.wait_for(asyncio.gather(*backend.warm._builds.values()), 300)

    spare = await ready_spare(backend)
    handle = await boot(box)
    assert handle == spare and not backend.warm.spares._ready
    assert await backend.warm_session(handle, box, "auto", path, "/home/nb", {"MINE": "7"}) \
        == "ipykernel"
    code = ("import os, socket\nprint(os.getcwd(), open('data.txt').read(), os.environ['MINE'])\n"
            "try:\n    open('new.txt', 'w')\nexcept OSError as e:\n    print(e.strerror)\n"
            "open('/srv/out/made.txt', 'w').write('by the box')\n")
    reports = await ask(backend, handle, path, code)
    assert printed(reports) == ("/home/nb from the notebook folder 7\n"
                                "Read-only file system\n")
    assert (out / "made.txt").read_text() == "by the box"
    assert not (folder / "new.txt").exists()
    # a box made from a checkpoint of it mounts its volumes late again: still read-only
    saved = await checkpoint(backend, handle, box, tmp_path / "ckpt")
    fork = await create_from(backend, box, saved)
    code, out, err = await run(fork, "sh", "-c", "cat /home/nb/data.txt; echo x > /home/nb/w")
    assert out == b"from the notebook folder"
    assert code != 0 and b"Read-only" in err and not (folder / "w").exists()

    # the next spare is made; a box of another shape is not it
    other = spec("python", cpu=2, volumes=box.volumes)
    spare = await ready_spare(backend)
    assert await boot(other) != spare
    assert spare in backend.warm.spares._ready.values()
    assert backend.exits == []  # type: ignore[attr-defined]
    await backend.close()  # the spare goes: no box record owns it
    assert not (gv_state / "gvisor" / spare).exists()


async def test_no_spares_unless_asked(spec, boot, backend, tmp_path):
    box = spec("python")
    first = await boot(box)
    assert await backend.warm_session(first, box, "auto", socket_path("sess_nospare"),
                                      "/root", {}) in (None, "ipykernel")
    await asyncio.wait_for(asyncio.gather(*backend.warm._builds.values()), 300)
    second = await boot(box)
    assert await backend.warm_session(second, box, "auto", socket_path("sess_nospare2"),
                                      "/root", {}) == "ipykernel"
    await asyncio.sleep(3)
    assert not backend.warm.spares._ready and not backend.warm.spares._making
