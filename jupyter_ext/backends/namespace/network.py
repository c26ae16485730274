"""``network: true``: outbound access for a box's own network namespace through
slirp4netns (user-mode NAT, as rootless Podman does).

The box keeps its network namespace: it cannot bind host ports or see host
interfaces. slirp4netns forwards its connections from the host, with the host's
loopback refused (``--disable-host-loopback``); the host's link-local and metadata
addresses (169.254.0.0/16) are unreachable through a route that box root, without
``CAP_NET_ADMIN``, cannot change (see ``START_SCRIPT``). DNS goes to slirp4netns's
forwarder at 10.0.2.3.
"""

from __future__ import annotations

import asyncio
import logging
import os

from ...core.boxlog import BoxLog
from ...core.errors import BoxRunError
from ...core.hostcmd import HOST_ENV, tool
from .fdio import CHUNK, read_some

log = logging.getLogger(__name__)

READY_TIMEOUT = 10.0


class Slirp:
    """The slirp4netns process of one running box; it ends when :meth:`stop` is called
    or the server exits (its exit pipe closes)."""

    def __init__(self, proc: asyncio.subprocess.Process, exit_fd: int) -> None:
        self._proc = proc
        self._exit_fd = exit_fd
        self._drain: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, pid: int) -> Slirp:
        """Give the network namespace of box process ``pid`` a tap with outbound NAT."""
        exit_r, exit_w = os.pipe()
        ready_r, ready_w = os.pipe()
        rootless = os.geteuid() != 0
        command = [
            tool("slirp4netns"), "--configure", "--mtu=65520", "--disable-host-loopback",
            "--enable-sandbox", "--enable-seccomp", f"--exit-fd={exit_r}",
            f"--ready-fd={ready_w}", "--netns-type=path",
            *([f"--userns-path=/proc/{pid}/ns/user"] if rootless else []),
            f"/proc/{pid}/ns/net", "tap0",
        ]
        try:
            proc = await asyncio.create_subprocess_exec(
                *command, env=HOST_ENV, pass_fds=(exit_r, ready_w), start_new_session=True,
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE)
        finally:
            os.close(exit_r)
            os.close(ready_w)
        slirp = cls(proc, exit_w)
        try:
            ready = await asyncio.wait_for(read_some(ready_r), READY_TIMEOUT)
        except asyncio.TimeoutError:
            ready = b""
        finally:
            os.close(ready_r)
        if ready != b"1":
            await slirp.stop()
            assert proc.stderr is not None
            err = (await proc.stderr.read(4096)).decode(errors="replace").strip()
            raise BoxRunError("RUNTIME_ERROR", f"the box's network did not come up: {err}")
        slirp._drain = asyncio.create_task(slirp._log(pid))
        return slirp

    async def _log(self, pid: int) -> None:
        """What slirp4netns says from now on, in the debug log."""
        assert self._proc.stderr is not None
        box_log = BoxLog(log, f"slirp4netns of {pid}", level=logging.DEBUG)
        while chunk := await self._proc.stderr.read(CHUNK):
            box_log.write(chunk)
        box_log.close()

    async def stop(self) -> None:
        """End slirp4netns."""
        if self._exit_fd >= 0:
            os.close(self._exit_fd)
            self._exit_fd = -1
        if self._proc.returncode is None:
            self._proc.kill()
        await self._proc.wait()
        if self._drain is not None:
            await self._drain
