/* probe.c: runs inside a sandbox and tries to escape it, one attempt per TAP-like line ("ok - NAME: detail"). */
#include <dirent.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/sysmacros.h>
#include <errno.h>
#include <linux/netlink.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/keyctl.h>
#include <linux/capability.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/*
 * Usage:
 *   probe escape SECRET HOSTPID TCPPORT ABSTRACT [--no-tty]
 *                                                  every escape attempt, one line each
 *                                                  (--no-tty: stdin is not a terminal)
 *   probe forkbomb LIMIT                           fork until refused; report how many
 *   probe memhog MIB                               touch MIB MiB (expects to be killed)
 *   probe sleep                                    sleep until killed
 *   probe int80 | x32                              a syscall through a foreign ABI (killed)
 *   probe connect PATH                             say "ping" on a Unix socket, print the answer
 *   probe tcp ADDR PORT                            connect over TCP, print the outcome
 * Each line is "ok - NAME: detail" when the sandbox held, "not ok - NAME: detail" when
 * the attempt succeeded. The driver checks that every expected NAME is there.
 */

static int n_fail;

static void report(bool held, const char *name, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void report(bool held, const char *name, const char *fmt, ...) {
        va_list ap;
        printf("%s - %s: ", held ? "ok" : "not ok", name);
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        putchar('\n');
        fflush(stdout);
        if (!held)
                n_fail++;
}

/* An attempt held if it failed with one of the listed errnos (0-terminated). */
static bool failed_with(long r, int e, const int *ok) {
        if (r >= 0)
                return false;
        for (; *ok; ok++)
                if (e == *ok)
                        return true;
        return false;
}

#define EXPECT(name, call, ...)                                                                    \
        do {                                                                                       \
                errno = 0;                                                                         \
                long r_ = (long) (call);                                                           \
                int e_ = errno;                                                                    \
                static const int ok_[] = { __VA_ARGS__, 0 };                                       \
                report(failed_with(r_, e_, ok_), name, "%s -> %ld (%s)", #call, r_, strerror(e_)); \
        } while (0)

static void read_host_files(const char *secret) {
        char path[4096];
        EXPECT("read-host-file", open(secret, O_RDONLY), ENOENT, EACCES);
        snprintf(path, sizeof(path), "/proc/1/root%s", secret);
        EXPECT("read-host-file-via-proc1-root", open(path, O_RDONLY), ENOENT, EACCES);
        snprintf(path, sizeof(path), "/../../../..%s", secret);
        EXPECT("read-host-file-via-dotdot", open(path, O_RDONLY), ENOENT, EACCES);
        EXPECT("read-host-shadow", open("/etc/shadow", O_RDONLY), ENOENT, EACCES);
        EXPECT("read-host-ssh-dir", open("/root/.ssh", O_RDONLY), ENOENT, EACCES);
        /* A chroot-style escape needs chroot, which is not there. */
        EXPECT("chroot", chroot("/tmp"), EPERM);
        EXPECT("open-by-handle", syscall(SYS_open_by_handle_at, AT_FDCWD, NULL, O_RDONLY), EPERM);
}

static void write_root(void) {
        EXPECT("write-root-create", open("/probe-was-here", O_WRONLY | O_CREAT, 0644), EROFS, EACCES);
        EXPECT("write-root-mkdir", mkdir("/probe-dir", 0755), EROFS, EACCES);
        EXPECT("write-usr", open("/usr/bin/probe-was-here", O_WRONLY | O_CREAT, 0644), EROFS, EACCES, ENOENT);
        EXPECT("write-etc", open("/etc/passwd", O_WRONLY | O_APPEND), EROFS, EACCES, ENOENT);
        EXPECT("write-dev", open("/dev/probe", O_WRONLY | O_CREAT, 0644), EROFS, EACCES);
        EXPECT("write-proc-sys", open("/proc/sys/kernel/hostname", O_WRONLY), EROFS, EACCES);
        EXPECT("write-sysrq-trigger", open("/proc/sysrq-trigger", O_WRONLY), EROFS, EACCES, ENOENT);
        /* The writable places are where they should be. */
        int fd = open("/tmp/probe", O_WRONLY | O_CREAT, 0600);
        report(fd >= 0, "tmp-writable", "open /tmp/probe -> %d", fd);
        if (fd >= 0)
                close(fd);
        fd = open("/data/probe", O_WRONLY | O_CREAT, 0600);
        report(fd >= 0, "data-writable", "open /data/probe -> %d (%s)", fd, fd < 0 ? strerror(errno) : "");
        if (fd >= 0)
                close(fd);
        /* noexec on /tmp: a downloaded binary cannot run. */
        fd = open("/tmp/x", O_WRONLY | O_CREAT, 0755);
        if (fd >= 0) {
                (void) !write(fd, "#!/bin/sh\n", 10);
                close(fd);
        }
        char *argv[] = { "/tmp/x", NULL };
        EXPECT("exec-from-tmp", execve("/tmp/x", argv, NULL), EACCES);
}

static void see_host_processes(pid_t hostpid) {
        DIR *d = opendir("/proc");
        int n = 0, maxpid = 0;
        struct dirent *e;
        while (d && (e = readdir(d))) {
                int pid = atoi(e->d_name);
                if (pid > 0) {
                        n++;
                        if (pid > maxpid)
                                maxpid = pid;
                }
        }
        if (d)
                closedir(d);
        report(d && n <= 3 && maxpid < 100, "see-host-processes", "%d processes visible in /proc, highest pid %d", n,
               maxpid);
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d", (int) hostpid);
        if (hostpid > 3)
                EXPECT("see-host-pid", access(path, F_OK), ENOENT);
        else
                report(true, "see-host-pid", "host pid %d too small to tell (skipped)", (int) hostpid);
        EXPECT("signal-host-pid", kill(hostpid, 0), ESRCH);
        report(getpid() == 2, "pid-namespace", "getpid() = %d (the sandbox's init is 1)", (int) getpid());
}

static void reach_network(int port, const char *abstract) {
        /* Only loopback exists. */
        struct if_nameindex *ifs = if_nameindex();
        int nif = 0;
        bool only_lo = true;
        for (struct if_nameindex *i = ifs; i && i->if_index; i++, nif++)
                if (strcmp(i->if_name, "lo") != 0)
                        only_lo = false;
        if (ifs)
                if_freenameindex(ifs);
        report(ifs && only_lo && nif == 1, "network-interfaces", "%d interfaces, only lo: %d", nif, only_lo);

        static const char *const addrs[] = { "1.1.1.1", "10.0.0.1", "192.168.1.1", "169.254.169.254" };
        for (size_t i = 0; i < sizeof(addrs) / sizeof(addrs[0]); i++) {
                int s = socket(AF_INET, SOCK_STREAM, 0);
                struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(80) };
                inet_pton(AF_INET, addrs[i], &a.sin_addr);
                char name[64];
                snprintf(name, sizeof(name), "reach-%s", addrs[i]);
                EXPECT(name, connect(s, (struct sockaddr *) &a, sizeof(a)), ENETUNREACH, EHOSTUNREACH, EACCES, EPERM);
                close(s);
        }
        int s6 = socket(AF_INET6, SOCK_DGRAM, 0);
        struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_port = htons(53) };
        inet_pton(AF_INET6, "2001:4860:4860::8888", &a6.sin6_addr);
        EXPECT("reach-ipv6", connect(s6, (struct sockaddr *) &a6, sizeof(a6)), ENETUNREACH, EHOSTUNREACH, EADDRNOTAVAIL,
               EACCES, EPERM);
        close(s6);
        /* The host's loopback is another namespace's: its listener is not here. */
        int s = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in lo = { .sin_family = AF_INET, .sin_port = htons((uint16_t) port) };
        inet_pton(AF_INET, "127.0.0.1", &lo.sin_addr);
        EXPECT("reach-host-loopback", connect(s, (struct sockaddr *) &lo, sizeof(lo)), ECONNREFUSED);
        close(s);
        /* Abstract Unix sockets are per network namespace. */
        int u = socket(AF_UNIX, SOCK_STREAM, 0);
        struct sockaddr_un un = { .sun_family = AF_UNIX };
        size_t al = strlen(abstract);
        memcpy(un.sun_path + 1, abstract, al);
        EXPECT("reach-host-abstract-socket",
               connect(u, (struct sockaddr *) &un, (socklen_t) (offsetof(struct sockaddr_un, sun_path) + 1 + al)),
               ECONNREFUSED);
        close(u);
        EXPECT("raw-socket", socket(AF_PACKET, SOCK_RAW, 0), EPERM, EAFNOSUPPORT);
        /* Socket families beyond unix, inet, inet6 and netlink-route are refused. */
        EXPECT("socket-alg", socket(AF_ALG, SOCK_SEQPACKET, 0), EPERM, EPERM);
        EXPECT("socket-netlink-audit", socket(AF_NETLINK, SOCK_RAW, NETLINK_AUDIT), EPERM, EPERM);
        int nl = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
        report(nl >= 0, "socket-netlink-route-allowed", "netlink route for getaddrinfo -> %d (%s)", nl,
               nl < 0 ? strerror(errno) : "ok");
        if (nl >= 0)
                close(nl);
}

static void kernel_interfaces(void) {
        EXPECT("ptrace-attach-init", ptrace(PTRACE_ATTACH, 1, NULL, NULL), EPERM);
        EXPECT("ptrace-traceme", ptrace(PTRACE_TRACEME, 0, NULL, NULL), EPERM);
        EXPECT("process-vm-readv", syscall(SYS_process_vm_readv, 1, NULL, 0, NULL, 0, 0), EPERM);
        EXPECT("mount-tmpfs", mount("tmpfs", "/mnt", "tmpfs", 0, NULL), EPERM);
        EXPECT("remount-root-rw", mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND, NULL), EPERM);
        EXPECT("umount-proc", umount2("/proc", MNT_DETACH), EPERM);
        EXPECT("pivot-root", syscall(SYS_pivot_root, "/tmp", "/tmp"), EPERM);
        EXPECT("fsopen", syscall(SYS_fsopen, "tmpfs", 0), EPERM);
        EXPECT("open-tree", syscall(SYS_open_tree, AT_FDCWD, "/", 0), EPERM);
        EXPECT("init-module", syscall(SYS_init_module, NULL, 0, ""), EPERM);
        int nul = open("/dev/null", O_RDONLY);
        EXPECT("finit-module", syscall(SYS_finit_module, nul, "", 0), EPERM);
        close(nul);
        EXPECT("delete-module", syscall(SYS_delete_module, "ext4", 0), EPERM);
        union bpf_attr attr;
        memset(&attr, 0, sizeof(attr));
        attr.map_type = BPF_MAP_TYPE_ARRAY;
        attr.key_size = 4;
        attr.value_size = 4;
        attr.max_entries = 1;
        EXPECT("bpf", syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof(attr)), EPERM);
        EXPECT("keyctl", syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0), EPERM);
        EXPECT("add-key", syscall(SYS_add_key, "user", "probe", "x", 1, KEY_SPEC_PROCESS_KEYRING), EPERM);
        EXPECT("request-key", syscall(SYS_request_key, "user", "probe", NULL, 0), EPERM);
        EXPECT("perf-event-open", syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0), EPERM);
        EXPECT("userfaultfd", syscall(SYS_userfaultfd, 0), EPERM);
        EXPECT("io-uring-setup", syscall(SYS_io_uring_setup, 1, NULL), EPERM);
        EXPECT("kexec-load", syscall(SYS_kexec_load, 0, 0, NULL, 0), EPERM);
        EXPECT("reboot", syscall(SYS_reboot, 0xfee1dead, 672274793, 0x4321fedc, NULL), EPERM);
        EXPECT("mknod-device", mknod("/tmp/sda", S_IFBLK | 0600, makedev(8, 0)), EPERM);
        struct timespec ts = { 0, 0 };
        EXPECT("clock-settime", clock_settime(CLOCK_REALTIME, &ts), EPERM);
        EXPECT("syslog", syscall(SYS_syslog, 3, NULL, 0), EPERM);
        EXPECT("swapon", syscall(SYS_swapon, "/tmp/x", 0), EPERM);
#ifdef SYS_iopl
        EXPECT("iopl", syscall(SYS_iopl, 3), EPERM);
#endif
        EXPECT("personality", syscall(SYS_personality, 0x0400000 /* READ_IMPLIES_EXEC */), EPERM);
        EXPECT("open-dev-mem", open("/dev/mem", O_RDONLY), ENOENT);
        EXPECT("open-dev-sda", open("/dev/sda", O_RDONLY), ENOENT);
}

static bool no_tty_given;

static void terminal_injection(void) {
        char c = 'x';
        int m = open("/dev/ptmx", O_RDWR | O_NOCTTY);
        if (isatty(0)) {
                EXPECT("tiocsti-stdin", ioctl(0, TIOCSTI, &c), EPERM);
                /* The kernel reads the request as 32 bits: high bits must not fool the filter. */
                EXPECT("tiocsti-stdin-high-bits", syscall(SYS_ioctl, 0, (unsigned long) TIOCSTI | (1UL << 32), &c), EPERM);
                EXPECT("tioclinux", ioctl(0, TIOCLINUX, &c), EPERM);
        } else if (no_tty_given) {
                /* Run through osmosed, which never hands a terminal to a workload: the
                 * pty the probe opens itself below carries the TIOCSTI assertions. */
                report(true, "tiocsti-stdin", "no terminal given to the instance (stdin is not a tty)");
                report(true, "tiocsti-stdin-high-bits", "no terminal given to the instance");
                report(true, "tioclinux", "no terminal given to the instance");
        } else {
                report(false, "tiocsti-stdin", "stdin is not a terminal: the driver must pass one");
        }
        if (m >= 0) {
                /* The same on a terminal of its own: refused by the filter, high bits too. */
                EXPECT("tiocsti-own-pty-high-bits", syscall(SYS_ioctl, m, (unsigned long) TIOCSTI | (1UL << 32), &c),
                       EPERM);
        }
        if (m >= 0) {
                EXPECT("tiocsti-own-pty", ioctl(m, TIOCSTI, &c), EPERM);
                close(m);
        } else {
                report(false, "tiocsti-own-pty", "no pty available in the sandbox: %s", strerror(errno));
        }
        EXPECT("open-controlling-tty", open("/dev/tty", O_RDWR), ENXIO, EACCES, EPERM);
        report(getsid(0) == getpid() || getsid(0) == 1, "new-session", "sid %d, pid %d", (int) getsid(0), (int) getpid());
}

static void proc_exe(void) {
        EXPECT("write-proc-self-exe", open("/proc/self/exe", O_WRONLY), ETXTBSY, EROFS, EACCES);
        EXPECT("write-proc-1-exe", open("/proc/1/exe", O_WRONLY), EACCES, EPERM, ETXTBSY, EROFS);
        EXPECT("read-proc-1-exe", open("/proc/1/exe", O_RDONLY), EACCES, EPERM);
        EXPECT("read-proc-1-environ", open("/proc/1/environ", O_RDONLY), EACCES, EPERM);
        EXPECT("read-proc-1-mem", open("/proc/1/mem", O_RDONLY), EACCES, EPERM);
}

static void capabilities(void) {
        struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
        struct __user_cap_data_struct d[2];
        memset(d, 0xff, sizeof(d));
        long r = syscall(SYS_capget, &h, d);
        bool none = r == 0 && !d[0].effective && !d[0].permitted && !d[0].inheritable && !d[1].effective &&
                    !d[1].permitted && !d[1].inheritable;
        report(none, "no-capabilities", "capget -> eff %x/%x prm %x/%x", d[0].effective, d[1].effective, d[0].permitted,
               d[1].permitted);
        memset(d, 0, sizeof(d));
        d[0].effective = d[0].permitted = 1u << CAP_SYS_ADMIN;
        EXPECT("capset-raise", syscall(SYS_capset, &h, d), EPERM);
        int bnd = 0;
        for (int c = 0; c <= 40; c++)
                if (prctl(PR_CAPBSET_READ, c, 0, 0, 0) == 1)
                        bnd++;
        report(bnd == 0, "bounding-set-empty", "%d capabilities left in the bounding set", bnd);
        EXPECT("ambient-raise", prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_NET_ADMIN, 0, 0), EPERM);
        report(prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1, "no-new-privs", "PR_GET_NO_NEW_PRIVS");
        EXPECT("no-new-privs-clear", prctl(PR_SET_NO_NEW_PRIVS, 0, 0, 0, 0), EINVAL, EPERM);
        EXPECT("unshare-user", unshare(CLONE_NEWUSER), EPERM);
        EXPECT("unshare-mount", unshare(CLONE_NEWNS), EPERM);
        EXPECT("clone-newuser", syscall(SYS_clone, (unsigned long) (CLONE_NEWUSER | SIGCHLD), NULL, NULL, NULL, NULL),
               EPERM);
        EXPECT("setns", syscall(SYS_setns, 0, 0), EPERM);
        /* Setuid binaries of the host /usr do not grant anything (nosuid, no_new_privs). */
        report(getuid() != 0 || geteuid() == getuid(), "uid", "uid %d euid %d", (int) getuid(), (int) geteuid());
}

static void inherited_fds(void) {
        DIR *d = opendir("/proc/self/fd");
        int dfd = d ? dirfd(d) : -1;
        char extra[256] = "";
        struct dirent *e;
        while (d && (e = readdir(d))) {
                int fd = atoi(e->d_name);
                if (e->d_name[0] == '.' || fd <= 2 || fd == dfd)
                        continue;
                size_t u = strlen(extra);
                snprintf(extra + u, sizeof(extra) - u, " %d", fd);
        }
        if (d)
                closedir(d);
        report(d && !*extra, "inherited-fds", "fds beyond 0-2:%s", *extra ? extra : " none");
        /* The driver leaves fds 3..20 open on the host side: none may be usable here. */
        int usable = 0;
        for (int fd = 3; fd < 64; fd++)
                if (fcntl(fd, F_GETFD) >= 0)
                        usable++;
        report(usable == 0, "inherited-fds-usable", "%d of fds 3..63 usable", usable);
}

static void hostname(void) {
        EXPECT("sethostname", sethostname("evil", 4), EPERM);
        EXPECT("setdomainname", setdomainname("evil", 4), EPERM);
        char h[64] = "";
        gethostname(h, sizeof(h));
        report(strcmp(h, "evil") != 0, "hostname-unchanged", "hostname is '%s'", h);
}

static void foreign_abi(void) {
        /* Denied syscalls answer EPERM, not kill: a workload can report them. */
        report(true, "alive-after-denials", "the probe still runs");
}

/* A syscall through a foreign ABI on x86_64 — the i386 entry (int 0x80) or an x32
 * number (bit 30 set): the filter answers by killing the process (SIGSYS). Prints only
 * if it survived. */
static int run_foreign_abi(bool x32) {
#if defined(__x86_64__)
        long r;
        if (x32)
                r = syscall(0x40000000L | SYS_getpid);
        else
                __asm__ volatile("int $0x80" : "=a"(r) : "a"(20L /* i386 getpid */) : "memory");
        printf("%s survived: %ld\n", x32 ? "x32" : "int80", r);
        fflush(stdout);
        return 1;
#else
        (void) x32;
        printf("not x86_64\n");
        return 77;
#endif
}

static int run_escape(int argc, char **argv) {
        if (argc < 6) {
                fprintf(stderr, "usage: probe escape SECRET HOSTPID TCPPORT ABSTRACT\n");
                return 2;
        }
        no_tty_given = argc > 6 && strcmp(argv[6], "--no-tty") == 0;
        read_host_files(argv[2]);
        write_root();
        see_host_processes((pid_t) atoi(argv[3]));
        reach_network(atoi(argv[4]), argv[5]);
        kernel_interfaces();
        terminal_injection();
        proc_exe();
        capabilities();
        inherited_fds();
        hostname();
        foreign_abi();
        printf("done %d\n", n_fail);
        fflush(stdout);
        return n_fail ? 1 : 0;
}

/* Fork until refused. Children just wait; the count goes to stdout; then the children
 * are killed one by one (the probe itself exits 0). */
static int run_forkbomb(int argc, char **argv) {
        int limit = argc > 2 ? atoi(argv[2]) : 64;
        int max = limit * 4 + 100, n = 0, e = 0;
        pid_t *kids = calloc((size_t) max, sizeof(pid_t));
        if (!kids)
                return 3;
        for (int i = 0; i < max; i++) {
                pid_t p = fork();
                if (p == 0) {
                        pause();
                        _exit(0);
                }
                if (p < 0) {
                        e = errno;
                        break;
                }
                kids[n++] = p;
        }
        printf("forkbomb %d %s\n", n, e ? strerror(e) : "none");
        fflush(stdout);
        for (int i = 0; i < n; i++)
                kill(kids[i], SIGKILL);
        for (int i = 0; i < n; i++)
                waitpid(kids[i], NULL, 0);
        free(kids);
        return 0;
}

static int run_memhog(int argc, char **argv) {
        long mib = argc > 2 ? atol(argv[2]) : 1024;
        printf("memhog start\n");
        fflush(stdout);
        for (long i = 0; i < mib; i++) {
                char *p = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                if (p == MAP_FAILED) {
                        printf("memhog mmap failed after %ld MiB: %s\n", i, strerror(errno));
                        fflush(stdout);
                        return 3;
                }
                memset(p, 1, 1 << 20);
        }
        printf("memhog survived %ld MiB\n", mib);
        fflush(stdout);
        return 0;
}

static int run_connect(int argc, char **argv) {
        if (argc < 3)
                return 2;
        int s = socket(AF_UNIX, SOCK_STREAM, 0);
        struct sockaddr_un un = { .sun_family = AF_UNIX };
        snprintf(un.sun_path, sizeof(un.sun_path), "%s", argv[2]);
        char buf[64] = "";
        if (connect(s, (struct sockaddr *) &un, sizeof(un)) < 0) {
                printf("connect failed: %s\n", strerror(errno));
                return 1;
        }
        if (write(s, "ping", 4) != 4)
                return 1;
        ssize_t n = read(s, buf, sizeof(buf) - 1);
        buf[n > 0 ? n : 0] = 0;
        printf("connect answer: %s\n", buf);
        return 0;
}

static int run_tcp(int argc, char **argv) {
        if (argc < 4)
                return 2;
        int s = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t) atoi(argv[3])) };
        inet_pton(AF_INET, argv[2], &a.sin_addr);
        if (connect(s, (struct sockaddr *) &a, sizeof(a)) < 0) {
                printf("tcp failed: %s\n", strerror(errno));
                return 1;
        }
        char buf[64] = "";
        ssize_t n = read(s, buf, sizeof(buf) - 1);
        buf[n > 0 ? n : 0] = 0;
        printf("tcp answer: %s\n", buf);
        return 0;
}

int main(int argc, char **argv) {
        if (argc < 2)
                return 2;
        if (strcmp(argv[1], "int80") == 0 || strcmp(argv[1], "x32") == 0)
                return run_foreign_abi(strcmp(argv[1], "x32") == 0);
        if (strcmp(argv[1], "connect") == 0)
                return run_connect(argc, argv);
        if (strcmp(argv[1], "tcp") == 0)
                return run_tcp(argc, argv);
        if (strcmp(argv[1], "escape") == 0)
                return run_escape(argc, argv);
        if (strcmp(argv[1], "forkbomb") == 0)
                return run_forkbomb(argc, argv);
        if (strcmp(argv[1], "memhog") == 0)
                return run_memhog(argc, argv);
        if (strcmp(argv[1], "sleep") == 0) {
                for (;;)
                        pause();
        }
        if (strcmp(argv[1], "true") == 0)
                return 0;
        return 2;
}
