/*
 * What the first processes of namespace boxes (boxrun-init.c) and gVisor boxes
 * (gvisor/init/boxrun-gvinit.c) share: the request that starts a command, starting it,
 * signalling its session, making a folder. Header-only: each init is one static binary.
 *
 * A request is NUL-terminated fields
 *
 *     "exec" TTY WORKDIR ARGC ARGV[0] ... ARGV[ARGC-1] ENV...
 *
 * (TTY "1" or "0"). The command leads a new session (with the terminal as its
 * controlling terminal), runs in WORKDIR with exactly ENV, and is found through ENV's
 * PATH; a missing command exits 127, as in a shell.
 */
#ifndef BOXINIT_H
#define BOXINIT_H

#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_FIELDS 65536

struct request {
    int tty;
    const char *workdir;
    long argc;
    char **argv; /* argc entries, then the environment, NULL-terminated */
    char **envp;
};

/* Split the request ``msg`` (``n`` bytes, msg[n] writable) into ``fields`` (room for
 * MAX_FIELDS + 1) and ``req``; -1 if it is malformed. */
static int parse_request(char *msg, size_t n, char **fields, struct request *req) {
    msg[n] = 0;
    int nfields = 0;
    for (char *p = msg; p < msg + n && nfields < MAX_FIELDS; p += strlen(p) + 1)
        fields[nfields++] = p;
    fields[nfields] = NULL;
    if (nfields < 5 || strcmp(fields[0], "exec") != 0)
        return -1;
    req->tty = strcmp(fields[1], "1") == 0;
    req->workdir = fields[2];
    req->argc = strtol(fields[3], NULL, 10);
    if (req->argc < 1 || req->argc > nfields - 4)
        return -1;
    req->argv = fields + 4;
    req->envp = fields + 4 + req->argc;
    return 0;
}

/* An init's signal dispositions, set once at its start: as after a fresh login (none
 * ignored, whatever its parent left), but SIGPIPE ignored, which run_command sets back.
 * So a command's start resets one disposition, not every one (a system call each,
 * costly under gVisor). */
static void init_signals(void) {
    for (int sig = 1; sig < NSIG; sig++)
        signal(sig, SIG_DFL);
    signal(SIGPIPE, SIG_IGN);
}

/* Called in a terminal's command once it leads its session, before it runs (NULL: no
 * such step). */
static void (*in_session)(void) = NULL;

/* In a forked child: lead a new session on ``stdio`` (stdin, stdout, stderr; or the
 * slave of a terminal, made the controlling one, with ``req->tty``), enter the working
 * folder (else write errno to ``err_fd`` and exit 126) and run ``args`` (the command's
 * argv, NULL-terminated). Touches no memory but its stack: it may run in a vfork()ed
 * child, sharing the caller's. */
static void run_command(const struct request *req, char **args, const int *stdio,
                        int err_fd) {
    signal(SIGPIPE, SIG_DFL); /* nothing ignored (see init_signals) */
    sigset_t all; /* unblocked only now: no handler of the caller's runs here */
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    setsid();
    for (int i = 0; i < 3; i++)
        dup2(stdio[req->tty ? 0 : i], i);
    if (req->tty) {
        ioctl(0, TIOCSCTTY, 0);
        if (in_session != NULL)
            in_session();
    }
    if (chdir(req->workdir) < 0) {
        int e = errno;
        if (write(err_fd, &e, sizeof e) < 0)
            _exit(126);
        _exit(126);
    }
    execvpe(args[0], args, req->envp);
    int e = errno;
    if (e == ENOENT && strchr(args[0], '/') == NULL)
        dprintf(2, "boxrun: %s: command not found\n", args[0]);
    else
        dprintf(2, "boxrun: %s: %s\n", args[0], strerror(e));
    _exit(e == ENOENT ? 127 : 126);
}

/* Start the command of ``req`` on ``stdio`` (see run_command): its pid; 0 if its
 * working folder is missing; -1 (errno set) if no process could be made. */
static pid_t start_command(const struct request *req, const int *stdio) {
    int err[2];
    char **args = calloc(req->argc + 1, sizeof *args);
    if (args == NULL || pipe2(err, O_CLOEXEC) < 0) {
        free(args);
        return -1;
    }
    memcpy(args, req->argv, req->argc * sizeof *args);
    /* vfork: no copy of this process's memory (under gVisor, copying an address space
     * is most of a command's start); a terminal's command runs in_session, which forks */
    pid_t pid = req->tty ? fork() : vfork();
    if (pid == 0)
        run_command(req, args, stdio, err[1]);
    int saved = errno;
    free(args);
    close(err[1]);
    int e = 0;
    ssize_t n = pid < 0 ? -1 : read(err[0], &e, sizeof e);
    close(err[0]);
    if (pid < 0) {
        errno = saved;
        return -1;
    }
    if (n != 0) {
        waitpid(pid, NULL, 0);
        return 0;
    }
    return pid;
}

/* Signal every process of the session ``sid`` (its leader's process group first). */
static void signal_session(pid_t sid, int sig) {
    kill(-sid, sig);
    DIR *proc = opendir("/proc");
    if (proc == NULL)
        return;
    struct dirent *entry;
    while ((entry = readdir(proc)) != NULL) {
        char path[64], stat[512];
        pid_t pid = (pid_t)atoi(entry->d_name);
        if (pid <= 0)
            continue;
        snprintf(path, sizeof path, "/proc/%d/stat", pid);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t n = read(fd, stat, sizeof stat - 1);
        close(fd);
        if (n <= 0)
            continue;
        stat[n] = 0;
        char *rest = strrchr(stat, ')');
        int ppid, pgrp, session;
        char state;
        if (rest && sscanf(rest + 1, " %c %d %d %d", &state, &ppid, &pgrp, &session) == 4 &&
            session == sid)
            kill(pid, sig);
    }
    closedir(proc);
}

/* mkdir -p ``path``; -1 on failure. */
static int make_dirs(const char *path) {
    char buf[4096];
    if (strlen(path) >= sizeof buf)
        return -1;
    strcpy(buf, path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(buf, 0755) < 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(buf, 0755) < 0 && errno != EEXIST ? -1 : 0;
}

/* SIGCHLD and the signals in ``also`` (may be NULL) as a non-blocking descriptor (their
 * delivery blocked), the init's dispositions set (init_signals), for its poll loop; -1
 * on failure. */
static int child_signalfd(const sigset_t *also) {
    sigset_t handled;
    if (also)
        handled = *also;
    else
        sigemptyset(&handled);
    sigaddset(&handled, SIGCHLD);
    sigprocmask(SIG_BLOCK, &handled, NULL);
    init_signals();
    return signalfd(-1, &handled, SFD_CLOEXEC | SFD_NONBLOCK);
}

#endif
