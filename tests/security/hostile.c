/*
 * hostile: what code in a box tries, for tests/security (built static on the host,
 * uploaded into the box).
 *
 *   hostile syscalls          one line per attempt: NAME ERRNO (0: it worked)
 *   hostile scan STOPFILE     until STOPFILE exists, watch /proc for processes with
 *                             host credentials (an unmapped uid shows as 65534) and
 *                             try to PTRACE_SEIZE them; prints "seen N seized M"
 *   hostile listen PORT       accept connections on 0.0.0.0:PORT for 20 s
 *   hostile connect IP PORT   prints "connected" or the errno of a TCP connect (3 s;
 *                             IPv4, or IPv6 with an optional %INTERFACE)
 *   hostile reroute IP        tries to route IP (a link-local address) through the
 *                             box's network (netlink: delete the unreachable route
 *                             and the address on lo that keep 169.254.0.0/16 out of
 *                             reach, add IP/32 via 10.0.2.2); one line per attempt:
 *                             NAME ERRNO (0: it worked)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <linux/rtnetlink.h>
#include <linux/perf_event.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <dirent.h>
#include <net/if.h>
#include <time.h>
#include <unistd.h>

#define X32_SYSCALL_BIT 0x40000000

static void report(const char *name, long result) {
    printf("%s %d\n", name, result < 0 ? errno : 0);
    fflush(stdout);
}

static int syscalls(void) {
    report("unshare_user", syscall(SYS_unshare, CLONE_NEWUSER));
    report("unshare_x32", syscall(X32_SYSCALL_BIT | 272, CLONE_NEWUSER));
    long pid = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
    if (pid == 0)
        _exit(0);
    if (pid > 0)
        waitpid(pid, NULL, 0);
    report("clone_newuser", pid);
    report("clone3", syscall(SYS_clone3, NULL, 0));
    struct io_uring_params params = {0};
    report("io_uring_setup", syscall(SYS_io_uring_setup, 1, &params));
    report("add_key", syscall(SYS_add_key, "user", "boxrun", "x", 1, -2 /* process keyring */));
    report("keyctl", syscall(SYS_keyctl, 0 /* GET_KEYRING_ID */, -2, 1));
    report("mount", mount("none", "/tmp", "tmpfs", 0, NULL));
    report("userfaultfd", syscall(SYS_userfaultfd, 0));
    report("bpf", syscall(SYS_bpf, 0, NULL, 0));
    struct perf_event_attr attr = {.type = PERF_TYPE_SOFTWARE, .size = sizeof attr,
                                   .config = PERF_COUNT_SW_CPU_CLOCK};
    report("perf_event_open", syscall(SYS_perf_event_open, &attr, 0, -1, -1, 0));
    int ns = open("/proc/1/ns/net", O_RDONLY);
    report("setns", ns < 0 ? -1 : syscall(SYS_setns, ns, 0));
    report("socket_raw", socket(AF_INET, SOCK_RAW, IPPROTO_ICMP));
    report("socket_packet", socket(AF_PACKET, SOCK_RAW, 0));
    report("init_module", syscall(SYS_init_module, NULL, 0, ""));
    report("reboot", syscall(SYS_reboot, 0, 0, 0, NULL));
    return 0;
}

static int scan(const char *stopfile) {
    int seen = 0, seized = 0;
    time_t end = time(NULL) + 600;
    pid_t self = getpid();
    printf("scanning\n");
    fflush(stdout);
    char known[65536] = {0}; /* pids already reported */
    while (time(NULL) < end && access(stopfile, F_OK) != 0) {
        DIR *proc = opendir("/proc");
        struct dirent *entry;
        while (proc && (entry = readdir(proc)) != NULL) {
            pid_t pid = atoi(entry->d_name);
            if (pid <= 0 || pid == self)
                continue;
            char path[64], buf[4096];
            snprintf(path, sizeof path, "/proc/%d/status", pid);
            int fd = open(path, O_RDONLY);
            if (fd < 0)
                continue;
            ssize_t n = read(fd, buf, sizeof buf - 1);
            close(fd);
            if (n <= 0)
                continue;
            buf[n] = 0;
            char *uid = strstr(buf, "\nUid:");
            int real = -1;
            if (uid == NULL || sscanf(uid, "\nUid: %d", &real) != 1 || real != 65534)
                continue;
            if (pid < 65536 && !known[pid]) {
                known[pid] = 1;
                seen++;
                char exe[256] = "?";
                snprintf(path, sizeof path, "/proc/%d/exe", pid);
                ssize_t len = readlink(path, exe, sizeof exe - 1);
                exe[len > 0 ? len : 1] = 0;
                printf("foreign %d %s\n", pid, exe);
            }
            if (ptrace(PTRACE_SEIZE, pid, 0, 0) == 0) {
                seized++;
                ptrace(PTRACE_DETACH, pid, 0, 0);
            }
        }
        if (proc)
            closedir(proc);
    }
    printf("seen %d seized %d\n", seen, seized);
    return 0;
}

static int listen_on(int port) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (bind(s, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(s, 8) < 0) {
        perror("listen");
        return 1;
    }
    printf("listening\n");
    fflush(stdout);
    alarm(20);
    for (;;) {
        int c = accept(s, NULL, NULL);
        if (c >= 0) {
            printf("accepted\n");
            fflush(stdout);
            close(c);
        }
    }
}

/* Non-blocking, then poll: gVisor's connect ignores SO_SNDTIMEO (a SYN no one answers
 * would block it for the 127 s of TCP's retries). */
static int connect_to(const char *ip, int port) {
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
    struct sockaddr_in6 addr6 = {.sin6_family = AF_INET6, .sin6_port = htons(port)};
    char host[64];
    snprintf(host, sizeof host, "%s", ip);
    char *scope = strchr(host, '%');
    if (scope) {
        *scope = '\0';
        addr6.sin6_scope_id = if_nametoindex(scope + 1);
    }
    int v6 = strchr(host, ':') != NULL;
    if (v6 ? inet_pton(AF_INET6, host, &addr6.sin6_addr) != 1
           : inet_pton(AF_INET, host, &addr.sin_addr) != 1)
        return 2;
    int s = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), err = 0;
    socklen_t len = sizeof err;
    if (s < 0)
        err = errno;
    else if (connect(s, v6 ? (struct sockaddr *)&addr6 : (struct sockaddr *)&addr,
                     v6 ? sizeof addr6 : sizeof addr) < 0) {
        struct pollfd wait = {.fd = s, .events = POLLOUT};
        if (errno != EINPROGRESS)
            err = errno;
        else if (poll(&wait, 1, 3000) != 1)
            err = ETIMEDOUT;
        else
            getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len);
    }
    if (err == 0)
        printf("connected\n");
    else
        printf("errno %d\n", err);
    return 0;
}

/* A netlink route request of TYPE with BODY (LEN bytes) and IPv4 attributes. */
static void netlink(const char *name, unsigned short type, unsigned short flags,
                    const void *body, size_t len, const unsigned short *attrs,
                    const char *const *ips, int count) {
    struct {
        struct nlmsghdr head;
        char data[256];
    } req = {.head = {.nlmsg_type = type, .nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags}};
    memcpy(req.data, body, len);
    size_t at = NLMSG_ALIGN(len);
    for (int i = 0; i < count; i++) {
        struct rtattr *attr = (struct rtattr *)(req.data + at);
        attr->rta_type = attrs[i];
        attr->rta_len = RTA_LENGTH(4);
        inet_pton(AF_INET, ips[i], RTA_DATA(attr));
        at += RTA_ALIGN(attr->rta_len);
    }
    req.head.nlmsg_len = NLMSG_LENGTH(at);
    int s = socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE), err = errno;
    char reply[1024];
    if (s >= 0) {
        err = 0;
        if (send(s, &req, req.head.nlmsg_len, 0) < 0 || recv(s, reply, sizeof reply, 0) < 0)
            err = errno;
        else if (((struct nlmsghdr *)reply)->nlmsg_type == NLMSG_ERROR)
            err = -((struct nlmsgerr *)NLMSG_DATA(reply))->error;
        close(s);
    }
    printf("%s %d\n", name, err);
}

static int reroute(const char *ip) {
    struct rtmsg unreachable = {.rtm_family = AF_INET, .rtm_dst_len = 16,
                                .rtm_table = RT_TABLE_MAIN, .rtm_type = RTN_UNREACHABLE};
    const unsigned short dst[] = {RTA_DST, RTA_GATEWAY};
    const char *link_local[] = {"169.254.0.0"};
    netlink("delroute", RTM_DELROUTE, 0, &unreachable, sizeof unreachable, dst, link_local, 1);
    struct ifaddrmsg on_lo = {.ifa_family = AF_INET, .ifa_prefixlen = 16,
                              .ifa_index = if_nametoindex("lo")};
    const unsigned short local[] = {IFA_LOCAL, IFA_ADDRESS};
    const char *lo_address[] = {"169.254.0.1", "169.254.0.1"};
    netlink("deladdr", RTM_DELADDR, 0, &on_lo, sizeof on_lo, local, lo_address, 2);
    struct rtmsg via = {.rtm_family = AF_INET, .rtm_dst_len = 32, .rtm_table = RT_TABLE_MAIN,
                        .rtm_protocol = RTPROT_BOOT, .rtm_type = RTN_UNICAST};
    const char *route[] = {ip, "10.0.2.2"};
    netlink("newroute", RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, &via, sizeof via, dst,
            route, 2);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "syscalls") == 0)
        return syscalls();
    if (argc >= 3 && strcmp(argv[1], "scan") == 0)
        return scan(argv[2]);
    if (argc >= 4 && strcmp(argv[1], "connect") == 0)
        return connect_to(argv[2], atoi(argv[3]));
    if (argc >= 3 && strcmp(argv[1], "listen") == 0)
        return listen_on(atoi(argv[2]));
    if (argc >= 3 && strcmp(argv[1], "reroute") == 0)
        return reroute(argv[2]);
    fprintf(stderr, "usage: hostile syscalls | scan STOPFILE | listen PORT | connect IP PORT"
                    " | reroute IP\n");
    return 2;
}
