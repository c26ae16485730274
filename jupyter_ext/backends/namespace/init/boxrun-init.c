/*
 * boxrun-init: the first process of a namespace box.
 *
 * bubblewrap starts it inside the box (box credentials, no_new_privs, the seccomp
 * filter, the box's capabilities) as
 *
 *     boxrun-init CTL_FD HOSTNAME WORKDIR
 *
 * where CTL_FD is one end of a SOCK_SEQPACKET socket pair whose other end the server
 * holds. It names the box (/etc/hostname, /etc/hosts), makes WORKDIR, writes "ready"
 * on stdout, and then starts every command the server asks for, so that no host
 * process ever enters the box. A request is one message on CTL_FD: NUL-terminated
 * fields
 *
 *     "exec" TTY WORKDIR ARGC ARGV[0] ... ARGV[ARGC-1] ENV...
 *
 * (TTY "1" or "0") with descriptors attached: a SOCK_SEQPACKET socket of this command
 * alone, then its stdin, stdout and stderr (TTY "0") or the slave of its terminal
 * (TTY "1"). The command leads a new session (with the terminal as its controlling
 * terminal), runs in WORKDIR with exactly ENV, and is found through ENV's PATH.
 * On the command's socket this process writes "S<pid>" once it runs, "E<message>" if
 * it could not be started, then "X<code>" when it ends (128+N: killed by signal N);
 * the server writes "K<signal>" to signal the command's whole session, and closing
 * the socket kills that session.
 *
 * Everything here runs with box credentials: what the server sends is data, and what
 * this process sends back is treated by the server as coming from a hostile box.
 *
 * The same binary, as
 *
 *     boxrun-init hold CTL_FD LISTEN_FD
 *
 * is the box's holder, a host process of the server's (never in the box): it keeps a
 * copy of the server's end of the control socket, CTL_FD, so that this process keeps
 * serving while no server runs, and sends it (SCM_RIGHTS) to every peer of its own uid
 * that connects to the listening Unix socket LISTEN_FD; it exits once the box's end of
 * the control socket is closed (the box ended). It never reads the control socket.
 */
#include "boxinit.h"

#include <linux/capability.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#define CTL 3
#define MAX_MSG (1 << 20)
#define MAX_FDS 4
#define MAX_JOBS 1024

struct job {
    pid_t pid; /* 0: free */
    int sock;  /* -1 once the server let go of it */
};

static struct job jobs[MAX_JOBS];
static char msg[MAX_MSG + 1];
static char *fields[MAX_FIELDS + 1];

static void die(const char *what) {
    fprintf(stderr, "boxrun-init: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* Keep in the bounding set only the capabilities bubblewrap left us, and no ambient
 * ones: exec then gives root what a container's root has, and nothing can win more. */
static void limit_caps(void) {
    struct __user_cap_header_struct head = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    if (syscall(SYS_capget, &head, data) < 0)
        die("capget");
    unsigned long long permitted =
        ((unsigned long long)data[1].permitted << 32) | data[0].permitted;
    for (int cap = 0; cap < 64; cap++)
        if (!(permitted & (1ULL << cap)) && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 &&
            errno != EINVAL)
            die("dropping a capability from the bounding set");
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
}

static void write_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0)
        return; /* a read-only or odd /etc: the box runs without */
    if (write(fd, text, strlen(text)) < 0)
        fprintf(stderr, "boxrun-init: writing %s: %s\n", path, strerror(errno));
    close(fd);
}

static void name_box(const char *hostname) {
    char text[512];
    snprintf(text, sizeof text, "%s\n", hostname);
    write_file("/etc/hostname", text);
    snprintf(text, sizeof text, "127.0.0.1\tlocalhost\n127.0.1.1\t%s\n::1\tlocalhost\n",
             hostname);
    write_file("/etc/hosts", text);
}

static void reply(int sock, const char *text) {
    if (sock >= 0)
        send(sock, text, strlen(text), MSG_DONTWAIT | MSG_NOSIGNAL);
}

static void close_fds(int *fds, int n) {
    for (int i = 0; i < n; i++)
        close(fds[i]);
}

static void start(char *request, size_t size, int *fds, int nfds) {
    int sock = nfds > 0 ? fds[0] : -1;
    struct request req;
    if (parse_request(request, size, fields, &req) < 0 || nfds != (req.tty ? 2 : 4)) {
        reply(sock, "Ebad request");
        close_fds(fds, nfds);
        return;
    }
    int slot = 0;
    while (slot < MAX_JOBS && jobs[slot].pid != 0)
        slot++;
    if (slot == MAX_JOBS) {
        reply(sock, "Etoo many processes in the box");
        close_fds(fds, nfds);
        return;
    }
    pid_t pid = start_command(&req, fds + 1);
    close_fds(fds + 1, nfds - 1);
    if (pid <= 0) {
        char text[4200];
        if (pid < 0)
            snprintf(text, sizeof text, "Ecannot start a process in the box: %s", strerror(errno));
        else
            snprintf(text, sizeof text, "Eno such directory in the box: %s", req.workdir);
        reply(sock, text);
        close(sock);
        return;
    }
    char text[32];
    snprintf(text, sizeof text, "S%d", pid);
    reply(sock, text);
    jobs[slot].pid = pid;
    jobs[slot].sock = sock;
}

static void receive(void) {
    struct iovec iov = {msg, MAX_MSG};
    char control[CMSG_SPACE(MAX_FDS * sizeof(int))];
    struct msghdr hdr = {0};
    hdr.msg_iov = &iov;
    hdr.msg_iovlen = 1;
    hdr.msg_control = control;
    hdr.msg_controllen = sizeof control;
    ssize_t n = recvmsg(CTL, &hdr, MSG_CMSG_CLOEXEC);
    if (n == 0)
        exit(0); /* the server let go of the box */
    if (n < 0) {
        if (errno == EINTR || errno == EAGAIN)
            return;
        die("receiving a request");
    }
    int fds[MAX_FDS], nfds = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&hdr); c; c = CMSG_NXTHDR(&hdr, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
            for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
                int fd;
                memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
                if (nfds < MAX_FDS)
                    fds[nfds++] = fd;
                else
                    close(fd);
            }
    if (hdr.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
        reply(nfds ? fds[0] : -1, "Erequest too large");
        close_fds(fds, nfds);
        return;
    }
    start(msg, (size_t)n, fds, nfds);
}

static void reap(void) {
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (int i = 0; i < MAX_JOBS; i++) {
            if (jobs[i].pid != pid)
                continue;
            char text[32];
            int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            snprintf(text, sizeof text, "X%d", code);
            reply(jobs[i].sock, text);
            if (jobs[i].sock >= 0)
                close(jobs[i].sock);
            jobs[i].pid = 0;
            break;
        }
    }
}

static void serve_job(struct job *job) {
    char text[32];
    ssize_t n = recv(job->sock, text, sizeof text - 1, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) { /* the server let go of the command: end its session */
        signal_session(job->pid, SIGKILL);
        close(job->sock);
        job->sock = -1;
        return;
    }
    text[n] = 0;
    int sig = atoi(text + 1);
    if (text[0] == 'K' && sig > 0 && sig < 65)
        signal_session(job->pid, sig);
}

/* The holder (see the top of this file). */
static int hold(int ctl, int listener) {
    struct pollfd polls[2] = {{ctl, 0, 0}, {listener, POLLIN, 0}};
    for (;;) {
        if (poll(polls, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return 1;
        }
        if (polls[0].revents)
            return 0; /* hung up: the box ended */
        if (polls[1].revents & ~POLLIN)
            return 1;
        int conn = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
        if (conn < 0)
            continue;
        struct ucred peer;
        socklen_t len = sizeof peer;
        if (getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &peer, &len) == 0 &&
            peer.uid == geteuid()) {
            char byte = 'c';
            struct iovec iov = {&byte, 1};
            union {
                char buf[CMSG_SPACE(sizeof(int))];
                struct cmsghdr align;
            } control;
            memset(&control, 0, sizeof control);
            struct msghdr hdr = {0};
            hdr.msg_iov = &iov;
            hdr.msg_iovlen = 1;
            hdr.msg_control = control.buf;
            hdr.msg_controllen = sizeof control.buf;
            struct cmsghdr *c = CMSG_FIRSTHDR(&hdr);
            c->cmsg_level = SOL_SOCKET;
            c->cmsg_type = SCM_RIGHTS;
            c->cmsg_len = CMSG_LEN(sizeof(int));
            memcpy(CMSG_DATA(c), &ctl, sizeof ctl);
            sendmsg(conn, &hdr, MSG_DONTWAIT | MSG_NOSIGNAL);
        }
        close(conn);
    }
}

int main(int argc, char **argv) {
    if (argc == 4 && strcmp(argv[1], "hold") == 0)
        return hold(atoi(argv[2]), atoi(argv[3]));
    if (argc != 4) {
        fprintf(stderr, "usage: boxrun-init CTL_FD HOSTNAME WORKDIR\n"
                        "       boxrun-init hold CTL_FD LISTEN_FD\n");
        return 2;
    }
    limit_caps();
    int ctl = atoi(argv[1]);
    if (ctl != CTL && (dup2(ctl, CTL) < 0 || close(ctl) < 0))
        die("taking the control socket");
    if (syscall(SYS_close_range, CTL + 1, ~0U, 0) < 0)
        die("closing inherited descriptors");
    fcntl(CTL, F_SETFD, FD_CLOEXEC);
    name_box(argv[2]);
    if (make_dirs(argv[3]) < 0)
        die("making the working directory");
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null < 0)
        die("opening /dev/null");
    if (write(1, "ready\n", 6) != 6)
        die("reporting ready");
    dup2(null, 0);
    dup2(null, 1);
    close(null);

    int sigfd = child_signalfd(NULL);
    if (sigfd < 0)
        die("signalfd");

    static struct pollfd polls[MAX_JOBS + 2];
    static struct job *polled[MAX_JOBS + 2];
    for (;;) {
        int n = 0;
        polls[n++] = (struct pollfd){CTL, POLLIN, 0};
        polls[n++] = (struct pollfd){sigfd, POLLIN, 0};
        for (int i = 0; i < MAX_JOBS; i++)
            if (jobs[i].pid != 0 && jobs[i].sock >= 0) {
                polled[n] = &jobs[i];
                polls[n++] = (struct pollfd){jobs[i].sock, POLLIN, 0};
            }
        if (poll(polls, n, -1) < 0) {
            if (errno == EINTR)
                continue;
            die("poll");
        }
        if (polls[1].revents) {
            struct signalfd_siginfo info;
            while (read(sigfd, &info, sizeof info) > 0)
                ;
            reap();
        }
        for (int i = 2; i < n; i++)
            if (polls[i].revents && polled[i]->pid != 0 && polled[i]->sock == polls[i].fd)
                serve_job(polled[i]);
        if (polls[0].revents & (POLLIN | POLLHUP | POLLERR))
            receive();
    }
}
