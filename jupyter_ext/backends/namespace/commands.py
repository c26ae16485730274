"""Command lines of the namespace backend, as pure functions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ...images.userns import UserNs
from ..base import BoxSpec

#: Runs (host binaries) in the box's new user and mount namespaces, in ``boxes/``:
#: mounts the writable layer over the image and opens the host's DNS settings as fd 6,
#: then becomes bwrap. Box root may not walk the state dir above ``boxes/`` (0700), and
#: bwrap resolves paths by name, so the box's root is mounted on a private tmpfs over
#: ``/sys`` (never a volume; bwrap gives the box no /sys).
START_SCRIPT = """set -e
box=$1 lower=$2
shift 2
mount -t tmpfs -o mode=0755 boxrun /sys
mkdir /sys/root
mount -t overlay overlay -o "userxattr,lowerdir=$lower,upperdir=$box/upper,workdir=$box/work" \
/sys/root
if [ -r /etc/resolv.conf ]; then exec 6</etc/resolv.conf; else exec 6</dev/null; fi
exec "$@"
"""

#: Runs as host root in the box's own new mount namespace, in ``boxes/``: mounts the
#: box's disk image (``$1``) on ``$2``, makes its ``upper`` and ``work`` box root's
#: (``$3``, ``uid:gid``) on first use, then runs the rest. The mount dies with the box.
DISK_SCRIPT = """set -e
mount -o loop,nosuid,nodev,discard,noinit_itable "$1" "$2"
if [ ! -d "$2/upper" ]; then mkdir "$2/upper" "$2/work"; chown "$3" "$2/upper" "$2/work"; fi
shift 3
exec "$@"
"""

#: The box's first process (from the image): closes the descriptors bwrap used, sets
#: the hostname files, makes the working directory, reports ready and sleeps.
INIT_SCRIPT = """exec 6<&-
echo "$2" > /etc/hostname
printf '127.0.0.1\\tlocalhost\\n127.0.1.1\\t%s\\n::1\\tlocalhost\\n' "$2" > /etc/hosts
mkdir -p -- "$1" || exit 1
echo ready
exec sleep infinity >/dev/null 2>&1 </dev/null
"""

#: Runs an exec's command: enter its working directory, say so with a NUL on
#: stderr (which the server strips), exec the command.
EXEC_SCRIPT = 'cd -- "$1" 2>/dev/null || exit 1; unset OLDPWD; shift; printf "\\0" >&2; exec "$@"'

#: Makes a box's disk directories (as the admin of its user namespace).
CREATE_SCRIPT = 'mkdir -p -- "$1/upper" "$1/work" && chown -R 0:0 "$1" && chmod 700 "$1"'

#: Writes stdin to a file in the box, making its folder.
UPLOAD_SCRIPT = 'mkdir -p -- "$(dirname -- "$1")" && cat > "$1"'

EXEC_DEFAULT_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
}


def bwrap_args(spec: BoxSpec, info_fd: int) -> list[str]:
    """bwrap's arguments for ``spec``; the new root is /sys/root (see :data:`START_SCRIPT`)."""
    args = [
        "bwrap", "--bind", "/sys/root", "/", "--proc", "/proc", "--dev", "/dev",
        "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup",
        "--hostname", spec.hostname, "--cap-add", "ALL", "--die-with-parent",
        "--info-fd", str(info_fd),
    ]
    if spec.network:
        args += ["--file", "6", "/etc/resolv.conf"]
    else:
        args.append("--unshare-net")
    for volume in spec.volumes:
        bind = "--ro-bind" if volume.readonly else "--bind"
        args += [bind, volume.host_path, volume.guest_path]
    return [*args, "--", "/bin/sh", "-c", INIT_SCRIPT, "init", spec.workdir, spec.hostname]


def start_command(
    userns: UserNs, box_dir: str, rootfs: str, spec: BoxSpec, info_fd: int
) -> list[str]:
    """The box's whole process tree: namespaces, overlay mount, bwrap, init."""
    script = ["/bin/sh", "-c", START_SCRIPT, "start", box_dir, rootfs]
    return [*userns.sandbox(), *script, *bwrap_args(spec, info_fd)]


def exec_command(pid: int, cmd: Sequence[str], workdir: str) -> list[str]:
    """Run ``cmd`` in ``workdir`` in the namespaces and root of box process ``pid``."""
    enter = [
        "nsenter", f"--target={pid}", "--user", "--mount", "--pid", "--uts", "--ipc",
        "--net", "--cgroup", "--root", "--wdns=/", "--",
    ]
    return [*enter, "/bin/sh", "-c", EXEC_SCRIPT, "exec", workdir, *cmd]


def exec_env(hostname: str, env: Mapping[str, str]) -> dict[str, str]:
    """The exact environment of a command: defaults, then ``env``."""
    return {**EXEC_DEFAULT_ENV, "HOSTNAME": hostname, **env}
