/*
 * hostile: what code in a box tries, for tests/security (built static on the host,
 * uploaded into the box).
 *
 *   hostile syscalls          one line per attempt: NAME ERRNO (0: it worked)
 *   hostile scan STOPFILE     until STOPFILE exists, watch /proc for processes with
 *                             host credentials (an unmapped uid shows as 65534) and
 *                             try to PTRACE_SEIZE them; prints "seen N seized M"
 *   hostile listen PORT       accept connections on 0.0.0.0:PORT for 20 s
 *   hostile connect IP PORT   prints "connected" or the errno of a TCP connect (3 s)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <linux/perf_event.h>
#include <arpa/inet.h>
#include <netinet/in.h>
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

static int connect_to(const char *ip, int port) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
    struct timeval timeout = {3, 0};
    setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    if (inet_pton(AF_INET, ip, &addr.sin_addr) != 1)
        return 2;
    if (connect(s, (struct sockaddr *)&addr, sizeof addr) == 0)
        printf("connected\n");
    else
        printf("errno %d\n", errno);
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
    fprintf(stderr, "usage: hostile syscalls | scan STOPFILE | listen PORT | connect IP PORT\n");
    return 2;
}
