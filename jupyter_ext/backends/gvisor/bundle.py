"""The OCI runtime spec (``config.json``) of a gVisor box, as a pure function."""

from __future__ import annotations

from collections.abc import Sequence

from ..base import BoxSpec
from ..namespace.cgroups import PIDS_MAX
from ..namespace.seccomp import CAPABILITIES

#: Where the box's init (``boxrun-gvinit``) and its host control folder are bound; the
#: init unmounts both once it listens.
INIT, CTL = "/dev/.boxrun/init", "/dev/.boxrun/ctl"
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


def config(spec: BoxSpec, cgroup: str | None, init: str, ctl: str,
           hidden: Sequence[str] = (), netns: str | None = None,
           resolv_conf: str | None = None) -> dict:
    """The spec of ``spec``'s sandbox: root is ``rootfs/`` of the bundle (the box's
    writable layer over the image), limits in ``cgroup`` (None: no cgroup), the host
    binary ``init`` its first process with the host folder ``ctl`` for its socket, the
    volumes bound, and the guest folders ``hidden`` covered by an empty read-only tmpfs
    (the server's state showing through a volume). With ``netns`` (a path), the
    sandbox joins that network namespace and the host file ``resolv_conf`` is its
    ``/etc/resolv.conf``; without, it gets an empty one of its own."""
    mounts = [
        _mount("/proc", "proc", "proc", []),
        _mount("/dev", "tmpfs", "tmpfs", ["nosuid", "strictatime", "mode=755", "size=65536k"]),
        _mount("/dev/pts", "devpts", "devpts", ["nosuid", "noexec", "newinstance",
                                                "ptmxmode=0666", "mode=0620"]),
        _mount("/dev/shm", "tmpfs", "shm", ["nosuid", "noexec", "nodev", "mode=1777"]),
        _mount("/sys", "sysfs", "sysfs", ["nosuid", "noexec", "nodev", "ro"]),
        _mount(INIT, "bind", init, ["bind", "ro", "nosuid", "nodev"]),
        _mount(CTL, "bind", ctl, ["bind", "rw", "nosuid", "nodev", "noexec"]),
    ]
    for volume in spec.volumes:
        mounts.append(_mount(volume.guest_path, "bind", volume.host_path,
                             ["rbind", "nosuid", "nodev", "ro" if volume.readonly else "rw"]))
    for guest in hidden:
        mounts.append(_mount(guest, "tmpfs", "tmpfs", ["ro", "mode=000", "size=4k"]))
    if resolv_conf is not None:
        mounts.append(_mount("/etc/resolv.conf", "bind", resolv_conf, ["bind", "ro"]))
    caps = [*CAPABILITIES, "CAP_SYS_ADMIN"]  # the init's, to unmount; it then drops it
    linux: dict = {
        "namespaces": [*({"type": kind} for kind in ("pid", "ipc", "uts", "mount")),
                       {"type": "network", **({"path": netns} if netns else {})}],
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
            "args": [INIT, spec.workdir],
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
