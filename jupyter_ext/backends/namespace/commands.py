"""Command lines of the namespace backend, as pure functions.

A box is one process tree, started with :data:`~jupyter_ext.core.hostcmd.HOST_ENV`:

1. (root) ``unshare --mount`` + :mod:`.prepare`: in a mount namespace of the box's own,
   the box's disk image and idmapped mounts of the image and the volumes;
2. :meth:`UserNs.sandbox`: box root in new user, mount and network namespaces, running
   :data:`START_SCRIPT`: the writable layer over the image, loopback up;
3. bubblewrap: pid, ipc, uts and cgroup namespaces, the box's capabilities, the seccomp
   filter and no_new_privs, then ``boxrun-init`` (``init/boxrun-init.c``) as the box's
   first process, which starts every command the server asks for from inside the box.

Every value from a caller or a box is an argv element, never shell text.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ...core.hostcmd import tool
from ...images.userns import UserNs
from ..base import BoxSpec
from .seccomp import CAPABILITIES

#: Where ``boxrun-init`` is in the box (a read-only copy on bwrap's private /dev).
INIT_PATH = "/dev/.boxrun-init"

#: Runs (host binaries, as box root) in the box's new user, mount and network
#: namespaces, in ``boxes/``: mounts the writable layer over the image and the volumes'
#: sources (the arguments before ``--``) on ``/sys/volumes/N``, brings up loopback and
#: (``$3`` = 1) keeps the host's link-local and metadata addresses out of reach
#: whatever the box's outbound network, then becomes bwrap. Box root may not walk the
#: state dir above ``boxes/`` (0700), and bwrap resolves paths from ``/``, so what it
#: mounts is on a private tmpfs over ``/sys`` (bwrap gives the box no /sys).
START_SCRIPT = """set -e
box=$1 lower=$2 network=$3
shift 3
mount -t tmpfs -o mode=0755 boxrun /sys
mkdir /sys/root /sys/volumes
mount -t overlay overlay -o "userxattr,lowerdir=$lower,upperdir=$box/upper,workdir=$box/work" \
/sys/root
n=0
while [ "$1" != -- ]; do
  mkdir "/sys/volumes/$n"
  mount --rbind "$1" "/sys/volumes/$n"
  n=$((n + 1))
  shift
done
shift
ip link set lo up
if [ "$network" = 1 ]; then ip route add unreachable 169.254.0.0/16; fi
exec "$@"
"""

#: Makes a box's disk directories (as the admin of its user namespace).
CREATE_SCRIPT = 'mkdir -p -- "$1/upper" "$1/work" && chown -R 0:0 "$1" && chmod 700 "$1"'

#: The box's resolver with a network of its own: slirp4netns's DNS forwarder.
RESOLV_CONF = b"nameserver 10.0.2.3\n"

def hidden_in(spec: BoxSpec, secrets: Sequence[str | Path]) -> list[str]:
    """Where in a box of ``spec`` ``secrets`` (host folders: the server's state dir and
    image store) would show through one of its volumes."""
    guests = []
    for volume in spec.volumes:
        host = os.path.realpath(volume.host_path).rstrip("/")
        for secret in map(os.path.realpath, secrets):
            if secret.startswith(host + "/"):
                guests.append(volume.guest_path.rstrip("/") + secret[len(host):])
    return guests


def bwrap_args(
    spec: BoxSpec, volumes: Sequence[tuple[str, str, bool]], fds: dict[str, int],
    hidden: Sequence[str] = (),
) -> list[str]:
    """bwrap's arguments; the new root is /sys/root (see :data:`START_SCRIPT`).

    ``volumes`` are (source, guest path, read-only), ``hidden`` guest folders an empty
    read-only tmpfs covers (see :func:`hidden_in`); ``fds``
    holds the descriptors of ``info``, ``seccomp``, ``init`` (the binary), ``ctl`` and,
    with a network, ``resolv``.
    """
    args = [
        tool("bwrap"), "--bind", "/sys/root", "/", "--proc", "/proc", "--dev", "/dev",
        "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup",
        "--hostname", spec.hostname, "--cap-drop", "ALL",
        *(arg for cap in CAPABILITIES for arg in ("--cap-add", cap)),
        "--info-fd", str(fds["info"]), "--seccomp", str(fds["seccomp"]),
        "--perms", "0555", "--ro-bind-data", str(fds["init"]), INIT_PATH,
    ]
    if spec.network:
        args += ["--perms", "0644", "--file", str(fds["resolv"]), "/etc/resolv.conf"]
    for index, (_, guest, readonly) in enumerate(volumes):
        args += ["--ro-bind" if readonly else "--bind", f"/sys/volumes/{index}", guest]
    for guest in hidden:
        args += ["--perms", "0000", "--tmpfs", guest, "--remount-ro", guest]
    return [*args, "--", INIT_PATH, str(fds["ctl"]), spec.hostname, spec.workdir]


def start_command(
    userns: UserNs, slot: int, layer: str, rootfs: str, spec: BoxSpec,
    volumes: Sequence[tuple[str, str, bool]], fds: dict[str, int], hidden: Sequence[str] = (),
) -> list[str]:
    """Steps 2 and 3 of the box's process tree (see the module's docstring)."""
    script = [tool("sh"), "-c", START_SCRIPT, "start", layer, rootfs, "1" if spec.network else "0",
              *(source for source, _, _ in volumes), "--"]
    return [*userns.sandbox(slot), *script, *bwrap_args(spec, volumes, fds, hidden)]
