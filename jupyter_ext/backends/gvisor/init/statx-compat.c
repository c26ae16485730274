/*
 * statx-compat.so: statx() without the flag AT_NO_AUTOMOUNT, for gVisor boxes.
 *
 * This runsc (Debian's, 2022) answers statx with EINVAL when AT_NO_AUTOMOUNT is set,
 * and coreutils sets it: `ls -l`, `stat`, `du` and `cp -a` failed on every path in a
 * gVisor box ("Invalid argument"). The Sentry has no automount points, so the flag
 * means nothing there: this library, preloaded into every program of a gVisor box
 * through the image's /etc/ld.so.preload in the gVisor backend's copy of it
 * (gvisor/compat.py), drops it. Built without a C library of its own (-nostdlib):
 * `syscall` comes from the process's (glibc's; musl does not read ld.so.preload).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sys/syscall.h>

long syscall(long number, ...);
struct statx;

int statx(int dirfd, const char *path, int flags, unsigned int mask, struct statx *buf) {
    return (int)syscall(SYS_statx, dirfd, path, flags & ~AT_NO_AUTOMOUNT, mask, buf);
}
