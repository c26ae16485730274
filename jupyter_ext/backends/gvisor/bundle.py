"""The OCI runtime spec (``config.json``) of a gVisor box, as a pure function."""

from __future__ import annotations

from collections.abc import Sequence

from ..base import BoxSpec
from ..namespace.cgroups import PIDS_MAX
from ..namespace.seccomp import CAPABILITIES

#: The box's first process: keeps the sandbox up from start to stop and reaps the
#: processes orphaned in it (runsc exec starts every command beside it).
INIT = ["/bin/sh", "-c", 'trap "exit 0" TERM; while :; do sleep 86400 & wait; done']
#: What every process started by the sandbox (its init) has in its environment.
INIT_ENV = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
CPU_PERIOD = 100_000
#: Processes a box may have at once (RLIMIT_NPROC: fork fails with EAGAIN). Lower than
#: the namespace backend's: on the ptrace platform every box process is a host stub
#: process, and near 1024 of them the Sentry fails to make host threads and dies.
PROCS_MAX = 256
#: Host tasks of a sandbox (its cgroup): the stubs, the Sentry's and the gofer's threads.
HOST_PIDS_MAX = 8 * PIDS_MAX


def _mount(destination: str, kind: str, source: str, options: Sequence[str]) -> dict:
    return {"destination": destination, "type": kind, "source": source, "options": list(options)}


def config(spec: BoxSpec, cgroup: str | None, hidden: Sequence[str] = ()) -> dict:
    """The spec of ``spec``'s sandbox: root is ``rootfs/`` of the bundle (the box's
    writable layer over the image), limits in ``cgroup`` (None: no cgroup), the
    volumes bound, and the guest folders ``hidden`` covered by an empty read-only tmpfs
    (the server's state showing through a volume)."""
    mounts = [
        _mount("/proc", "proc", "proc", []),
        _mount("/dev", "tmpfs", "tmpfs", ["nosuid", "strictatime", "mode=755", "size=65536k"]),
        _mount("/dev/pts", "devpts", "devpts", ["nosuid", "noexec", "newinstance",
                                                "ptmxmode=0666", "mode=0620"]),
        _mount("/dev/shm", "tmpfs", "shm", ["nosuid", "noexec", "nodev", "mode=1777"]),
        _mount("/sys", "sysfs", "sysfs", ["nosuid", "noexec", "nodev", "ro"]),
    ]
    for volume in spec.volumes:
        mounts.append(_mount(volume.guest_path, "bind", volume.host_path,
                             ["rbind", "nosuid", "nodev", "ro" if volume.readonly else "rw"]))
    for guest in hidden:
        mounts.append(_mount(guest, "tmpfs", "tmpfs", ["ro", "mode=000", "size=4k"]))
    caps = list(CAPABILITIES)
    linux: dict = {
        "namespaces": [{"type": kind} for kind in ("pid", "ipc", "uts", "mount", "network")],
    }
    if cgroup is not None:
        linux["cgroupsPath"] = cgroup
        linux["resources"] = {
            "memory": {"limit": spec.memory_mb << 20},
            "cpu": {"quota": spec.cpu * CPU_PERIOD, "period": CPU_PERIOD},
            "pids": {"limit": HOST_PIDS_MAX},
        }
    return {
        "ociVersion": "1.0.2",
        "process": {
            "user": {"uid": 0, "gid": 0},
            "args": INIT,
            "env": INIT_ENV,
            "cwd": "/",
            "capabilities": {name: caps for name in ("bounding", "effective", "permitted")},
            "noNewPrivileges": True,
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1048576, "soft": 1048576},
                        {"type": "RLIMIT_NPROC", "hard": PROCS_MAX, "soft": PROCS_MAX}],
        },
        "root": {"path": "rootfs", "readonly": False},
        "hostname": spec.hostname,
        "mounts": mounts,
        "linux": linux,
    }
