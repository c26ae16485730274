/*
 * pidcache.so: getpid() answered from memory, for the box's interpreter and its agent.
 *
 * libzmq asks for the process id at every send and receive (its fork check), and
 * ipykernel and asyncio ask too: about 100 getpid calls a trivial cell, a third of the
 * box's system calls for it. On gVisor's ptrace platform each system call costs tens of
 * microseconds. The agent preloads this library (LD_PRELOAD) into the processes it
 * starts, and they drop the variable again, so nothing they start inherits it.
 *
 * The id is read once at load and again in the child after every fork() (an atfork
 * handler). Built without a C library of its own (-nostdlib): `syscall` and
 * `pthread_atfork` come from the process's, glibc or musl, so it loads in any image.
 * A child made by a raw clone() or vfork() sees its parent's id until it calls exec.
 * A gVisor restore keeps every process's id, and with it the cached one. The file is
 * installed once per box and never rewritten (sessions/install.py): rewriting a mapped
 * library in place kills the processes that map it.
 */
#include <sys/syscall.h>
#include <sys/types.h>

long syscall(long number, ...);
int pthread_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void));

static volatile pid_t cached;

static void refresh(void) { cached = (pid_t)syscall(SYS_getpid); }

__attribute__((constructor)) static void init(void) {
    refresh();
    if (pthread_atfork(0, 0, refresh) != 0)
        cached = 0; /* no way to learn of forks: always ask */
}

pid_t getpid(void) {
    pid_t pid = cached;
    return pid ? pid : (pid_t)syscall(SYS_getpid);
}
