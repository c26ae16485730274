/*
 * boxrun-gvinit: the first process of a gVisor box.
 *
 * runsc starts it in the sandbox as
 *
 *     boxrun-gvinit WORKDIR
 *
 * with the box's host control folder bound at CTL_DIR (runsc --host-uds=create lets the
 * sandbox make Unix sockets there, never connect to host ones). It makes WORKDIR,
 * listens on CTL_DIR/sock, makes CTL_DIR/ready (the server deleted both before the
 * start: Unix sockets cannot be renamed there), covers CTL_DIR with an empty
 * read-only tmpfs (unmounting it would break the socket), unmounts its own binary and
 * drops CAP_SYS_ADMIN: nothing in the box sees or reaches them. The server connects once per
 * command; a relay process takes the connection, starts the command and carries
 * its stdio over the connection as frames: a type byte, a 4-byte big-endian length,
 * the payload. The relay is forked before the connection comes (a *spare* waiting in
 * accept, which tells the init when it took one, and the init forks the next): under
 * gVisor a fork costs milliseconds, which are then not on the command's way.
 *
 *   server -> box: 'R' the request (boxinit.h), first; 'W' cols and rows (2 bytes
 *                  each, big-endian), right after 'R' for a terminal, then on resize;
 *                  '0' stdin data (empty: close stdin); 'K' a signal number (1 byte)
 *                  for the command's session.
 *   box -> server: 'S' the command's pid (decimal) once it runs, or 'E' why it could
 *                  not be started; '1'/'2' stdout/stderr data (the terminal's output
 *                  is '1'; empty: end of that stream); 'X' the exit code (decimal,
 *                  128+N when killed by signal N).
 *
 * The relay ends once the command has ended and its output is sent; when the server
 * closes the connection first, the command's whole session is killed. A reader that
 * stops reading stalls the command (its pipes fill), which is how back-pressure works.
 *
 * Checkpoints: runsc cannot save a socket bound on the host ("Cannot save endpoint with
 * bound host socket"), so before one the server sends SIGUSR1 (runsc kill): the init
 * stops accepting, kills its relays (their commands go on without stdio; the server
 * sees them end), closes the listening socket and deletes CTL_DIR/ready and sock. After
 * a restore, SIGUSR2 has it listen again and make CTL_DIR/ready anew, through a
 * descriptor of CTL_DIR kept from before the folder was covered.
 *
 * On the host, the server starts each sandbox through this binary's other mode,
 *
 *     boxrun-gvinit reap RUNSC...
 *
 * which runs RUNSC (``runsc run --detach`` or ``runsc restore --detach``) under a
 * detached subreaper and exits with RUNSC's status. The sandbox and gofer processes
 * runsc leaves behind are orphaned to that subreaper, which reaps each as soon as it
 * ends and leaves once none is left: ``runsc delete`` (every stop) waits until the
 * sandbox process is gone, and a host's init may reap orphans only every second or so.
 */
#include "boxinit.h"

#include <linux/capability.h>
#include <poll.h>
#include <pty.h>
#include <stdint.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <termios.h>

#define CTL_DIR "/dev/.boxrun/ctl"
#define SELF "/dev/.boxrun/init"
#define HDR 5
#define MAX_REQUEST (1 << 17)
#define CHUNK 65536

static char *fields[MAX_FIELDS + 1];

static void die(const char *what) {
    fprintf(stderr, "boxrun-gvinit: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* ---- the relay of one command ---- */

static int conn = -1;
static pid_t child;
static unsigned char out[HDR + CHUNK]; /* one frame on its way to the server */
static size_t out_len, out_off;

/* Make the pending frame: ``type``, and ``len`` bytes already at out + HDR. */
static void frame_in_place(unsigned char type, size_t len) {
    out[0] = type;
    out[1] = (unsigned char)(len >> 24);
    out[2] = (unsigned char)(len >> 16);
    out[3] = (unsigned char)(len >> 8);
    out[4] = (unsigned char)len;
    out_len = HDR + len;
    out_off = 0;
}

static void frame(unsigned char type, const char *text) {
    size_t len = strlen(text);
    memcpy(out + HDR, text, len);
    frame_in_place(type, len);
}

/* The server let go of the command (or the connection broke): end its session. */
static void abandon(void) {
    if (child > 0)
        signal_session(child, SIGKILL);
    _exit(0);
}

/* Write what can be written of the pending frame without blocking. */
static void flush(void) {
    while (out_off < out_len) {
        ssize_t n = send(conn, out + out_off, out_len - out_off, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            abandon();
        }
        out_off += (size_t)n;
    }
    out_len = out_off = 0;
}

/* Blocking: exactly ``len`` bytes from the server; -1 if it closed or failed. */
static int read_exact(void *buf, size_t len) {
    for (size_t got = 0; got < len;) {
        ssize_t n = read(conn, (char *)buf + got, len - got);
        if (n <= 0) {
            if (n < 0 && errno == EINTR)
                continue;
            return -1;
        }
        got += (size_t)n;
    }
    return 0;
}

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void set_size(int master, const unsigned char *p) {
    struct winsize size = {0};
    size.ws_col = (unsigned short)(p[0] << 8 | p[1]);
    size.ws_row = (unsigned short)(p[2] << 8 | p[3]);
    ioctl(master, TIOCSWINSZ, &size);
}

/* This Sentry's terminals do not turn typed control characters into signals (ISIG),
 * and tell their foreground process group only to processes of their session. So a
 * terminal's command first starts a "signaller" in its session (in_session, below):
 * for each VINTR, VQUIT or VSUSP character typed, the relay drops it and writes the
 * signal to the signaller, which sends it to the foreground group, as a kernel's line
 * discipline would. */
static int signaller[2] = {-1, -1};

static void start_signaller(void) {
    pid_t pid = fork();
    if (pid != 0) {
        if (pid > 0)
            waitpid(pid, NULL, 0);
        return;
    }
    if (fork() != 0)
        _exit(0); /* orphaned to this init: the command never waits for it */
    int from = signaller[0];
    DIR *fds = opendir("/proc/self/fd"); /* this Sentry has no close_range */
    struct dirent *entry;
    while (fds != NULL && (entry = readdir(fds)) != NULL) {
        int fd = atoi(entry->d_name);
        if (entry->d_name[0] != '.' && fd != 0 && fd != from && fd != dirfd(fds))
            close(fd);
    }
    if (fds != NULL)
        closedir(fds);
    int ignored[] = {SIGINT, SIGQUIT, SIGTSTP, SIGTTIN, SIGTTOU, SIGHUP};
    for (size_t i = 0; i < sizeof ignored / sizeof *ignored; i++)
        signal(ignored[i], SIG_IGN);
    unsigned char sig;
    while (read(from, &sig, 1) == 1) { /* fd 0: the terminal (killed with the session) */
        pid_t group = tcgetpgrp(0);
        if (group > 0)
            kill(-group, sig);
    }
    _exit(0);
}

/* Drop the signal characters from what is typed (``data``), signalling for each; the
 * new length. */
static size_t typed_signals(int master, unsigned char *data, size_t len) {
    struct termios mode;
    if (signaller[1] < 0 || tcgetattr(master, &mode) < 0 || !(mode.c_lflag & ISIG))
        return len;
    size_t kept = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char sig = 0;
        if (data[i] == mode.c_cc[VINTR])
            sig = SIGINT;
        else if (data[i] == mode.c_cc[VQUIT])
            sig = SIGQUIT;
        else if (data[i] == mode.c_cc[VSUSP])
            sig = SIGTSTP;
        if (sig && data[i] != _POSIX_VDISABLE && write(signaller[1], &sig, 1) == 1)
            continue;
        data[kept++] = data[i];
    }
    return kept;
}

static void fail(const char *message) {
    frame('E', message);
    fcntl(conn, F_SETFL, 0);
    flush();
    _exit(0);
}

static void relay(void) {
    static char request[MAX_REQUEST + 1];
    unsigned char head[HDR];
    if (read_exact(head, HDR) < 0 || head[0] != 'R' || be32(head + 1) > MAX_REQUEST ||
        read_exact(request, be32(head + 1)) < 0)
        fail("bad request");
    struct request req;
    if (parse_request(request, be32(head + 1), fields, &req) < 0)
        fail("bad request");

    int stdio[3], in = -1, sources[2] = {-1, -1}, master = -1;
    if (req.tty) {
        unsigned char size[HDR + 4];
        int slave;
        if (read_exact(size, sizeof size) < 0 || size[0] != 'W' || be32(size + 1) != 4)
            fail("bad request");
        if (openpty(&master, &slave, NULL, NULL, NULL) < 0)
            fail("cannot open a terminal in the box");
        fcntl(master, F_SETFD, FD_CLOEXEC);
        set_size(master, size + HDR);
        stdio[0] = slave;
        sources[0] = master;
        in = fcntl(master, F_DUPFD_CLOEXEC, 0); /* what is typed */
        if (pipe2(signaller, O_CLOEXEC) == 0)
            in_session = start_signaller;
        child = start_command(&req, stdio);
        close(slave);
        close(signaller[0]);
        fcntl(signaller[1], F_SETFL, O_NONBLOCK);
    } else {
        int pipes[3][2];
        for (int i = 0; i < 3; i++)
            if (pipe2(pipes[i], O_CLOEXEC) < 0)
                fail("cannot make pipes in the box");
        stdio[0] = pipes[0][0];
        stdio[1] = pipes[1][1];
        stdio[2] = pipes[2][1];
        child = start_command(&req, stdio);
        for (int i = 0; i < 3; i++)
            close(stdio[i]);
        in = pipes[0][1];
        sources[0] = pipes[1][0];
        sources[1] = pipes[2][0];
    }
    if (child <= 0) {
        char text[4200];
        if (child < 0)
            snprintf(text, sizeof text, "cannot start a process in the box: %s", strerror(errno));
        else
            snprintf(text, sizeof text, "no such directory in the box: %s", req.workdir);
        fail(text);
    }
    char text[32];
    snprintf(text, sizeof text, "%d", child);
    frame('S', text);
    fcntl(conn, F_SETFL, O_NONBLOCK);
    for (int i = 0; i < 2; i++)
        if (sources[i] >= 0)
            fcntl(sources[i], F_SETFL, O_NONBLOCK);
    if (in >= 0)
        fcntl(in, F_SETFL, O_NONBLOCK);

    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    int sigfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sigfd < 0)
        abandon();

    static unsigned char msg[HDR + CHUNK]; /* the frame being read from the server */
    size_t msg_len = 0, stdin_off = 0;
    int stdin_pending = 0, exit_code = -1, exit_sent = 0;
    for (;;) {
        flush();
        if (out_len == 0 && exit_code >= 0 && !exit_sent) {
            snprintf(text, sizeof text, "%d", exit_code);
            frame('X', text);
            exit_sent = 1;
            flush();
        }
        if (out_len == 0 && exit_sent && sources[0] < 0 && sources[1] < 0) {
            /* all said: wait for the server to let go, so that nothing it sent is
             * left unread (that would reset the connection under its last frames) */
            shutdown(conn, SHUT_WR);
            fcntl(conn, F_SETFL, 0);
            for (ssize_t n = 1; n > 0 || (n < 0 && errno == EINTR);)
                n = read(conn, msg, sizeof msg);
            _exit(0);
        }
        struct pollfd polls[5];
        int n = 0;
        polls[n++] = (struct pollfd){conn, (stdin_pending ? 0 : POLLIN) | (out_len ? POLLOUT : 0), 0};
        polls[n++] = (struct pollfd){sigfd, exit_code < 0 ? POLLIN : 0, 0};
        for (int i = 0; i < 2; i++)
            polls[n++] = (struct pollfd){out_len ? -1 : sources[i], POLLIN, 0};
        polls[n++] = (struct pollfd){stdin_pending ? in : -1, POLLOUT, 0};
        if (poll(polls, n, -1) < 0) {
            if (errno == EINTR)
                continue;
            abandon();
        }
        if (polls[1].revents) {
            struct signalfd_siginfo info;
            while (read(sigfd, &info, sizeof info) > 0)
                ;
            int status;
            if (waitpid(child, &status, WNOHANG) == child)
                exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        for (int i = 0; i < 2 && out_len == 0; i++) {
            if (!polls[2 + i].revents)
                continue;
            ssize_t got = read(sources[i], out + HDR, CHUNK);
            if (got < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            if (got <= 0) { /* EOF, or EIO: no process holds the terminal any more */
                close(sources[i]);
                sources[i] = -1;
                got = 0;
            }
            frame_in_place((unsigned char)('1' + i), (size_t)got);
        }
        if (stdin_pending && polls[4].revents) {
            size_t len = msg_len - HDR;
            ssize_t put = write(in, msg + HDR + stdin_off, len - stdin_off);
            if (put < 0 && errno != EAGAIN && errno != EINTR)
                stdin_off = len; /* the command closed its stdin: drop the rest */
            else if (put > 0)
                stdin_off += (size_t)put;
            if (stdin_off == len) {
                stdin_pending = 0;
                msg_len = 0;
            }
        }
        if (polls[0].revents & (POLLHUP | POLLERR) && !(polls[0].revents & POLLIN))
            abandon();
        if (!(polls[0].revents & POLLIN) || stdin_pending)
            continue;
        size_t want = msg_len < HDR ? HDR - msg_len : HDR + be32(msg + 1) - msg_len;
        ssize_t got = read(conn, msg + msg_len, want);
        if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR))
            abandon();
        if (got < 0)
            continue;
        msg_len += (size_t)got;
        if (msg_len == HDR && be32(msg + 1) > CHUNK)
            abandon(); /* not the server's */
        if (msg_len < HDR || msg_len < HDR + be32(msg + 1))
            continue;
        size_t len = msg_len - HDR;
        if (msg[0] == '0' && len > 0 && master >= 0) {
            len = typed_signals(master, msg + HDR, len);
            msg_len = HDR + len;
            if (len == 0) {
                msg_len = 0;
                continue;
            }
        }
        if (msg[0] == '0' && len > 0 && in >= 0) {
            stdin_pending = 1;
            stdin_off = 0;
            continue;
        }
        if (msg[0] == '0' && len == 0 && in >= 0) {
            close(in);
            in = -1;
        } else if (msg[0] == 'W' && len == 4 && master >= 0) {
            set_size(master, msg + HDR);
        } else if (msg[0] == 'K' && len == 1 && msg[HDR] > 0 && msg[HDR] < 65) {
            signal_session(child, msg[HDR]);
        }
        msg_len = 0;
    }
}

/* Drop CAP_SYS_ADMIN (needed only to unmount the control folder) for good. */
static void drop_sys_admin(void) {
    if (prctl(PR_CAPBSET_DROP, CAP_SYS_ADMIN, 0, 0, 0) < 0)
        die("dropping CAP_SYS_ADMIN");
    struct __user_cap_header_struct head = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    if (syscall(SYS_capget, &head, data) < 0)
        die("capget");
    for (int i = 0; i < 2; i++) {
        unsigned int bit = CAP_SYS_ADMIN / 32 == (unsigned)i ? 1u << (CAP_SYS_ADMIN % 32) : 0;
        data[i].effective &= ~bit;
        data[i].permitted &= ~bit;
        data[i].inheritable &= ~bit;
    }
    if (syscall(SYS_capset, &head, data) < 0)
        die("capset");
}

/* ---- the listener ---- */

static int ctl_dir = -1; /* CTL_DIR, opened before it was covered */
static int listener = -1;
#define MAX_RELAYS 1024
static pid_t relays[MAX_RELAYS];
static int relay_count;
static pid_t spare = -1;     /* the relay waiting for the next connection, if any */
static int took[2] = {-1, -1}; /* the spare writes a byte here once it has one */

/* Listen on CTL_DIR/sock (a stale one deleted first), then make CTL_DIR/ready. */
static int listen_ctl(void) {
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d/sock", ctl_dir);
    unlinkat(ctl_dir, "sock", 0);
    unlinkat(ctl_dir, "ready", 0);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    strcpy(addr.sun_path, path);
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(fd, 64) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    int ready = openat(ctl_dir, "ready", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (ready < 0) {
        close(fd);
        return -1;
    }
    close(ready);
    return fd;
}

static void forget_relay(pid_t pid) {
    for (int i = 0; i < relay_count; i++)
        if (relays[i] == pid) {
            relays[i] = relays[--relay_count];
            return;
        }
}

/* Before a checkpoint: nothing of the host's left open in the box (see above). */
static void let_go(void) {
    if (listener < 0)
        return;
    for (int i = 0; i < relay_count; i++)
        kill(relays[i], SIGKILL);
    while (relay_count > 0) {
        pid_t pid = waitpid(-1, NULL, 0);
        if (pid < 0 && errno != EINTR)
            break;
        forget_relay(pid);
    }
    relay_count = 0;
    spare = -1;
    char byte;
    while (read(took[0], &byte, 1) == 1)
        ;
    close(listener);
    listener = -1;
    unlinkat(ctl_dir, "ready", 0);
    unlinkat(ctl_dir, "sock", 0);
}

/* ---- on the host: the sandbox's reaper (see the top of this file) ---- */

static int reap(char **runsc) {
    int status[2];
    if (pipe2(status, O_CLOEXEC) < 0)
        die("pipe");
    pid_t reaper = fork();
    if (reaper < 0)
        die("fork");
    if (reaper > 0) { /* what the server waits for: RUNSC's exit status */
        close(status[1]);
        int code = 1;
        while (read(status[0], &code, sizeof code) < 0 && errno == EINTR)
            ;
        return code;
    }
    close(status[0]);
    int code = 126;
    pid_t pid = prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0 ? -1 : fork();
    if (pid == 0) {
        execvp(runsc[0], runsc);
        fprintf(stderr, "boxrun-gvinit: running %s: %s\n", runsc[0], strerror(errno));
        _exit(127);
    }
    if (pid < 0)
        fprintf(stderr, "boxrun-gvinit: starting the sandbox's reaper: %s\n", strerror(errno));
    int wstatus;
    while (pid > 0 && waitpid(pid, &wstatus, 0) < 0)
        if (errno != EINTR)
            pid = -1;
    if (pid > 0)
        code = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
    int null = open("/dev/null", O_RDWR | O_CLOEXEC); /* holds nothing of the server's */
    for (int fd = 0; fd < 3 && null >= 0; fd++)
        dup2(null, fd);
    if (write(status[1], &code, sizeof code) < 0)
        _exit(1);
    close(status[1]);
    for (;;)
        if (waitpid(-1, NULL, 0) < 0 && errno != EINTR)
            _exit(0); /* ECHILD: the sandbox and its gofer have ended */
}

/* Fork the spare relay (none past MAX_RELAYS: the init then takes connections itself). */
static void fork_spare(int sigfd) {
    if (listener < 0 || spare > 0 || relay_count >= MAX_RELAYS)
        return;
    pid_t pid = fork();
    if (pid > 0)
        relays[relay_count++] = spare = pid;
    if (pid != 0)
        return;
    close(sigfd);
    close(ctl_dir);
    close(took[0]);
    for (;;) {
        struct pollfd poll_listener = {listener, POLLIN, 0};
        if (poll(&poll_listener, 1, -1) < 0 && errno != EINTR)
            _exit(1);
        conn = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
        if (conn >= 0)
            break;
        if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
            _exit(1);
    }
    if (write(took[1], "", 1) != 1)
        _exit(1);
    close(took[1]);
    close(listener);
    relay();
}

int main(int argc, char **argv) {
    if (argc >= 3 && strcmp(argv[1], "reap") == 0)
        return reap(argv + 2);
    if (argc != 2) {
        fprintf(stderr, "usage: boxrun-gvinit WORKDIR\n"
                        "       boxrun-gvinit reap RUNSC...\n");
        return 2;
    }
    if (make_dirs(argv[1]) < 0)
        die("making the working directory");
    /* no process of the box may trace this one and take its descriptors */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    ctl_dir = open(CTL_DIR, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (ctl_dir < 0 || (listener = listen_ctl()) < 0)
        die("listening on " CTL_DIR "/sock");
    /* covered, not unmounted: the listening socket lives as long as its mount */
    if (mount("tmpfs", CTL_DIR, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
              "size=4k,mode=000") < 0 || umount2(SELF, MNT_DETACH) < 0)
        die("hiding the control folder");
    drop_sys_admin();
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null < 0)
        die("opening /dev/null");
    dup2(null, 0);
    dup2(null, 1);
    dup2(null, 2);
    close(null);

    sigset_t wakes;  /* SIGUSR1: let go of commands' stdio; SIGUSR2: listen again */
    sigemptyset(&wakes);
    sigaddset(&wakes, SIGUSR1);
    sigaddset(&wakes, SIGUSR2);
    int sigfd = child_signalfd(&wakes);
    if (sigfd < 0 || pipe2(took, O_CLOEXEC | O_NONBLOCK) < 0)
        die("signalfd");
    for (;;) {
        fork_spare(sigfd);
        struct pollfd polls[3] = {{sigfd, POLLIN, 0}, {spare > 0 ? -1 : listener, POLLIN, 0},
                                  {took[0], POLLIN, 0}};
        if (poll(polls, 3, -1) < 0) {
            if (errno == EINTR)
                continue;
            die("poll");
        }
        if (polls[0].revents) {
            struct signalfd_siginfo info;
            while (read(sigfd, &info, sizeof info) > 0) {
                if (info.ssi_signo == SIGUSR1)
                    let_go();
                else if (info.ssi_signo == SIGUSR2 && listener < 0)
                    listener = listen_ctl(); /* on failure the server sees no ready */
            }
            pid_t pid;
            while ((pid = waitpid(-1, NULL, WNOHANG)) > 0) {
                forget_relay(pid); /* relays, and every process orphaned in the box */
                if (pid == spare)
                    spare = -1;
            }
            continue; /* the listener may have changed */
        }
        if (polls[2].revents) { /* the spare took a connection: it is a relay now */
            char byte;
            while (read(took[0], &byte, 1) == 1)
                ;
            spare = -1;
            continue;
        }
        if (listener < 0 || !polls[1].revents)
            continue;
        conn = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
        if (conn < 0)
            continue;
        pid_t pid = relay_count < MAX_RELAYS ? fork() : -1;
        if (pid == 0) {
            close(listener);
            close(sigfd);
            close(ctl_dir);
            close(took[0]);
            close(took[1]);
            relay();
        }
        if (pid > 0)
            relays[relay_count++] = pid;
        close(conn);
    }
}
