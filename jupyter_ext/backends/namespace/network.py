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
import subprocess

from ...core.boxlog import BoxLog
from ...core.errors import BoxRunError
from ...core.hostcmd import HOST_ENV, tool
from .adoption import Child
from .fdio import read_some

log = logging.getLogger(__name__)

READY_TIMEOUT = 10.0


def slirp_command(netns: str, exit_fd: int, ready_fd: int,
                  userns: str | None = None) -> list[str]:
    """slirp4netns giving the network namespace at path ``netns`` a tap (``tap0``,
    10.0.2.100/24 via 10.0.2.2, DNS 10.0.2.3) with the host's loopback refused; it
    writes ``1`` to ``ready_fd`` once up and ends when ``exit_fd`` (a pipe) closes."""
    return [
        tool("slirp4netns"), "--configure", "--mtu=65520", "--disable-host-loopback",
        "--enable-sandbox", "--enable-seccomp", f"--exit-fd={exit_fd}",
        f"--ready-fd={ready_fd}", "--netns-type=path",
        *([f"--userns-path={userns}"] if userns else []), netns, "tap0",
    ]


async def slirp_ready(ready_r: int) -> bool:
    """Whether slirp4netns said it is up on ``ready_r`` (which this closes) in time."""
    try:
        ready = await asyncio.wait_for(read_some(ready_r), READY_TIMEOUT)
    except asyncio.TimeoutError:
        ready = b""
    finally:
        os.close(ready_r)
    return ready == b"1"


class Slirp:
    """The slirp4netns process of one running box, started by this server. It ends when
    :meth:`stop` is called or its exit pipe closes: the box's holder keeps the pipe's
    write end (see :mod:`.adoption`), so it outlives the server as long as the box runs."""

    def __init__(self, proc: Child, stderr: int) -> None:
        self._proc = proc
        self._stderr = stderr
        self._drain: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, pid: int, exit_fd: int) -> Slirp:
        """Give the network namespace of box process ``pid`` a tap with outbound NAT;
        slirp4netns ends once every write end of the pipe ``exit_fd`` reads is closed."""
        ready_r, ready_w = os.pipe()
        err_r, err_w = os.pipe()
        rootless = os.geteuid() != 0
        command = slirp_command(f"/proc/{pid}/ns/net", exit_fd, ready_w,
                                f"/proc/{pid}/ns/user" if rootless else None)
        try:  # SIGPIPE stays ignored: its log pipe breaks when the server goes
            proc = Child(
                command, env=HOST_ENV, pass_fds=(exit_fd, ready_w), start_new_session=True,
                restore_signals=False, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=err_w)
        except BaseException:
            os.close(err_r)
            raise
        finally:
            os.close(ready_w)
            os.close(err_w)
        slirp = cls(proc, err_r)
        if not await slirp_ready(ready_r):
            await slirp.stop()
            err = (await read_some(err_r)).decode(errors="replace").strip()
            os.close(err_r)
            raise BoxRunError("RUNTIME_ERROR", f"the box's network did not come up: {err}")
        slirp._drain = asyncio.create_task(slirp._log(pid))
        return slirp

    async def _log(self, pid: int) -> None:
        """What slirp4netns says from now on, in the debug log."""
        box_log = BoxLog(log, f"slirp4netns of {pid}", level=logging.DEBUG)
        try:
            while chunk := await read_some(self._stderr):
                box_log.write(chunk)
            box_log.close()
        finally:
            os.close(self._stderr)

    def detach(self) -> None:
        """Stop following slirp4netns, leaving it running."""
        if self._drain is not None:
            self._drain.cancel()

    async def stop(self) -> None:
        """End slirp4netns."""
        if self._proc.poll() is None:
            self._proc.kill()
        await asyncio.to_thread(self._proc.wait)
        if self._drain is not None:
            await self._drain
