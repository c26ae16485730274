"""``network: true`` on gVisor: gVisor's own network stack (netstack, ``runsc
--network=sandbox``) in a network namespace of the box's own, out through slirp4netns.

A box's network is two host processes, each in a session of its own:

- the *holder* (:data:`HOLDER`, under ``unshare --net``) makes the namespace: loopback
  up with 169.254.0.1/16 on it, no IPv6 on new interfaces;
- slirp4netns (the namespace backend's command, :func:`..namespace.network.slirp_command`)
  gives it ``tap0``: 10.0.2.100/24, default route via 10.0.2.2, DNS at 10.0.2.3.

runsc then starts the sandbox in that namespace (the spec's ``linux.namespaces`` path),
copies its interfaces, addresses and routes into netstack, takes the address off the
host's ``tap0`` and reads and writes its frames through an AF_PACKET socket: the box's
packets are parsed by the Sentry and by slirp4netns (a user process under its own
seccomp filter), never by the host kernel's IP stack. Out of the box's reach: the
host's loopback (the box's 127.0.0.0/8 and ::1 are its own loopback; slirp4netns's
host alias 10.0.2.2 is refused, ``--disable-host-loopback``), link-local IPv4 (the
whole 169.254.0.0/16 is routed to the box's own loopback) and IPv6 (tap0 has none, and
slirp4netns forwards no IPv6). Box root has no ``CAP_NET_ADMIN`` in the Sentry and
cannot change addresses or routes.

The holder holds the write end of slirp4netns's exit pipe and ends with the sandbox
process (``tail --pid``), so the network ends with its box (stop, remove, the sandbox's
death, even while no server runs) and outlives a server restart as the sandbox does.
Both are found again from ``<box>/network.pids`` (pid and start time).

This runsc (20221219) refuses ``--network=sandbox`` "in root network namespace", which
it decides by ``/proc/sys/net/core/rmem_default`` existing: on this kernel it exists in
every network namespace. runsc therefore starts with an empty ``/proc/sys/net``, in a
mount namespace only the sandbox's start has (:data:`RUNSC_PREFIX`); the sandbox mounts
a /proc of its own.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

from ...core.errors import BoxRunError
from ...core.hostcmd import HOST_ENV, missing, tool
from ..namespace.commands import RESOLV_CONF
from ..namespace.metrics import net_bytes
from ..namespace.network import READY_TIMEOUT, slirp_command, slirp_ready

TOOLS = ("slirp4netns", "ip", "tail")
#: Runs as root under ``unshare --net``: sets up the new namespace, says ``ready``,
#: then reads the sandbox's host pid and lives as long as that process does (the exit
#: pipe of slirp4netns closes with it). EOF before a pid (the server gave up): it ends.
HOLDER = """set -e
echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6
ip link set lo up
ip addr add 169.254.0.1/16 dev lo
echo ready
read -r sandbox
case $sandbox in ''|*[!0-9]*) exit 1 ;; esac
exec tail -s 0.2 --pid="$sandbox" -f /dev/null </dev/null >/dev/null
"""
#: Runs runsc (the arguments) in a mount namespace of its own with nothing in
#: ``/proc/sys/net`` (see the module's docstring).
HIDE_NET_SYSCTLS = 'mount -t tmpfs -o ro,mode=0 boxrun /proc/sys/net && exec "$@"'
#: What ``/v1/info`` says of a gVisor box's network.
WORDS = ("network: true is gVisor's own network stack (netstack) in a network namespace"
         " of the box's own, out through slirp4netns (user-mode NAT); the host's loopback"
         " (127.0.0.0/8, ::1) and link-local addresses (169.254.0.0/16, fe80::/10) are"
         " out of reach; the host's other addresses are reached as from outside")
PIDS = "network.pids"
LOG = "network.log"
END_TIMEOUT = 2.0


def problem() -> str | None:
    """Why ``network: true`` cannot work on this host, if it cannot."""
    if lacking := missing(TOOLS):
        return f"missing host tools: {', '.join(lacking)} (packages slirp4netns, iproute2)"
    return None


def runsc(command: list[str]) -> list[str]:
    """The runsc command line ``command`` (up to its subcommand) with netstack on."""
    return [tool("unshare"), "--mount", "--propagation=private", "--", tool("sh"), "-c",
            HIDE_NET_SYSCTLS, "netstack", *command, "--network=sandbox"]  # the last counts


async def _spawn(box_dir: Path, mode: str, command: list[str], pass_fds: tuple[int, ...],
                 **stdio: int) -> asyncio.subprocess.Process:
    """``command`` as a host process of a session of its own, its stderr into the log."""
    with (box_dir / LOG).open(mode) as log:
        return await asyncio.create_subprocess_exec(
            *command, env=HOST_ENV, pass_fds=pass_fds, start_new_session=True,
            stderr=log, **stdio)


class Network:
    """A box's network being set up: its namespace (:attr:`netns`) and resolver file
    (:attr:`resolv_conf`) for the sandbox's spec; :meth:`bind` ties it to the sandbox."""

    def __init__(self, box_dir: Path, holder: asyncio.subprocess.Process) -> None:
        self.box_dir = box_dir
        self._holder = holder
        self.netns = f"/proc/{holder.pid}/ns/net"
        self.resolv_conf = box_dir / "resolv.conf"

    @classmethod
    async def start(cls, box_dir: Path) -> Network:
        """Make the namespace and bring slirp4netns up in it; RUNTIME_ERROR quoting
        their words if they fail (nothing is left running then)."""
        (box_dir / "resolv.conf").write_bytes(RESOLV_CONF)
        exit_r, exit_w = os.pipe()
        try:
            holder = await _spawn(
                box_dir, "wb", [tool("unshare"), "--net", "--", tool("sh"), "-c", HOLDER, "holder"],
                (exit_w,), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        except BaseException:
            os.close(exit_r)
            raise
        finally:
            os.close(exit_w)
        network = cls(box_dir, holder)
        try:
            await network._up(exit_r)
        except BaseException:
            await stop(box_dir)
            if holder.returncode is None:
                holder.kill()  # slirp4netns, if started, ends with it (its exit pipe)
            await holder.wait()
            raise
        finally:
            os.close(exit_r)
        return network

    async def _up(self, exit_r: int) -> None:
        """Wait for the holder; start slirp4netns and wait for it."""
        assert self._holder.stdout is not None
        if await asyncio.wait_for(self._holder.stdout.readline(), READY_TIMEOUT) != b"ready\n":
            raise self._failed()
        ready_r, ready_w = os.pipe()
        try:
            slirp = await _spawn(self.box_dir, "ab", slirp_command(self.netns, exit_r, ready_w),
                                 (exit_r, ready_w), stdin=asyncio.subprocess.DEVNULL,
                                 stdout=asyncio.subprocess.DEVNULL)
            pids = {"holder": self._holder.pid, "slirp4netns": slirp.pid}
            (self.box_dir / PIDS).write_text(json.dumps(
                {name: [pid, _started(pid)] for name, pid in pids.items()}))
        except BaseException:
            os.close(ready_r)
            raise
        finally:
            os.close(ready_w)
        if not await slirp_ready(ready_r):
            raise self._failed()

    def _failed(self) -> BoxRunError:
        words = (self.box_dir / LOG).read_text(errors="replace")[-2000:].strip()
        return BoxRunError("RUNTIME_ERROR", f"the box's network did not come up: {words}")

    def bind(self, sandbox: int) -> None:
        """From now on the network lives as long as host process ``sandbox`` does."""
        assert self._holder.stdin is not None
        self._holder.stdin.write(b"%d\n" % sandbox)
        self._holder.stdin.close()


def _stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` after the command's name (state first)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None


def _started(pid: int) -> str | None:
    """When host process ``pid`` started (clock ticks since boot), if it runs."""
    fields = _stat(pid)
    return fields[19] if fields and fields[0] != "Z" else None


def _pids(box_dir: Path) -> dict[str, int]:
    """The network processes of the box in ``box_dir`` that still run."""
    try:
        pids = json.loads((box_dir / PIDS).read_text())
    except (OSError, ValueError):
        return {}
    return {name: pid for name, (pid, started) in pids.items() if _started(pid) == started}


async def stop(box_dir: Path) -> None:
    """End the network of the box in ``box_dir`` (idempotent); returns once its
    processes are gone."""
    pids = _pids(box_dir)
    for pid in pids.values():
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = asyncio.get_running_loop().time() + END_TIMEOUT
    while any(_started(pid) for pid in pids.values()):
        if asyncio.get_running_loop().time() > deadline:
            raise BoxRunError("RUNTIME_ERROR", f"the network processes {pids} did not end")
        await asyncio.sleep(0.01)
    (box_dir / PIDS).unlink(missing_ok=True)


def counters(box_dir: Path) -> dict[str, int]:
    """Bytes the box in ``box_dir`` received and sent through its network (0 without)."""
    holder = _pids(box_dir).get("holder")
    found = net_bytes(holder) if holder is not None else {}
    return {"net_rx_bytes": 0, "net_tx_bytes": 0, **found}
