"""What box root may do: Docker's default capabilities and a seccomp filter after
Docker's default profile, compiled with libseccomp for bubblewrap's ``--seccomp``.

The filter allows by default and refuses, with ``EPERM``, the calls that reach kernel
code a container has no business with: new namespaces (nested user namespaces above
all), mounts, io_uring, the key store, userfaultfd, bpf, perf events, modules, kexec,
reboot, swap, accounting, the clock, file handles, and other processes' memory
placement. Syscalls of any other ABI than the host's (32-bit or x32) fail with
``ENOSYS``, so they cannot go round the list.
"""

from __future__ import annotations

import errno
import tempfile
from functools import cache

import pyseccomp as seccomp

#: Capabilities box root keeps: Docker's default set less ``CAP_NET_RAW`` (a raw or
#: packet socket would go round the box's routes) and the useless ``CAP_MKNOD``.
CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_SETGID", "CAP_SETUID",
    "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
    "CAP_AUDIT_WRITE",
)

DENIED = (
    # namespaces and mounts
    "unshare", "setns", "mount", "umount2", "pivot_root", "fsopen", "fsconfig", "fsmount",
    "fspick", "move_mount", "open_tree", "mount_setattr",
    # kernel subsystems with a long record of privilege escalations
    "io_uring_setup", "io_uring_enter", "io_uring_register", "keyctl", "add_key",
    "request_key", "userfaultfd", "bpf", "perf_event_open",
    # the host itself
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load",
    "reboot", "swapon", "swapoff", "acct", "syslog", "quotactl", "quotactl_fd",
    "lookup_dcookie", "nfsservctl", "uselib", "ustat", "sysfs", "_sysctl", "vhangup",
    "iopl", "ioperm", "open_by_handle_at", "settimeofday", "clock_settime", "clock_adjtime",
    "move_pages", "migrate_pages", "fanotify_init",
)

#: ``clone`` flags that make namespaces (``CLONE_NEWTIME`` is an exit signal bit there).
CLONE_NAMESPACES = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000,
                    0x40000000)
TIOCSTI, TIOCLINUX = 0x5412, 0x541C
AF_VSOCK = 40


@cache
def box_filter() -> bytes:
    """The compiled filter (classic BPF, as ``bwrap --seccomp`` reads it)."""
    refuse = seccomp.ERRNO(errno.EPERM)
    f = seccomp.SyscallFilter(seccomp.ALLOW)
    f.set_attr(seccomp.Attr.ACT_BADARCH, seccomp.ERRNO(errno.ENOSYS))
    f.set_attr(seccomp.Attr.CTL_NNP, 0)  # bubblewrap sets no_new_privs itself
    for name in DENIED:
        try:
            f.add_rule(refuse, name)
        except (OSError, ValueError):
            continue  # not a syscall of this architecture
    f.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")  # flags in memory: make libc use clone
    for flag in CLONE_NAMESPACES:
        f.add_rule(refuse, "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
    for request in (TIOCSTI, TIOCLINUX):
        f.add_rule(refuse, "ioctl", seccomp.Arg(1, seccomp.EQ, request))
    f.add_rule(refuse, "socket", seccomp.Arg(0, seccomp.EQ, AF_VSOCK))
    with tempfile.TemporaryFile() as out:
        f.export_bpf(out)
        out.seek(0)
        return out.read()
