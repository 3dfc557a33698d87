/* child.c: the sandbox's child side: what runs after clone (mounts, pivot_root, dropping privileges, exec).
 *
 * The child is a copy of a multithreaded daemon with one thread: only async-signal-safe
 * calls belong here. So this file includes no <stdio.h>, no <stdlib.h>, no log.h and no
 * jansson (nor osmose/util.h, which brings <stdlib.h>): no printf, no logging, no
 * allocation after clone. Everything it needs was prepared by the parent (spawn.c,
 * mounts.c) in a child_ctx; errors go back to the parent as a sync_msg. */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "daemon/sandbox/sandbox-child.h"

/* Keep it so: a header that brings stdio, malloc or jansson in fails the build. */
#if defined(_STDIO_H) || defined(_STDLIB_H) || defined(JANSSON_H)
#error "child.c runs after clone: no stdio, no allocation, no jansson here"
#endif

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#ifndef SECBIT_NOROOT
#define SECBIT_NOROOT (1 << 0)
#define SECBIT_NOROOT_LOCKED (1 << 1)
#define SECBIT_NO_SETUID_FIXUP (1 << 2)
#define SECBIT_NO_SETUID_FIXUP_LOCKED (1 << 3)
#define SECBIT_KEEP_CAPS_LOCKED (1 << 5)
#define SECBIT_NO_CAP_AMBIENT_RAISE (1 << 6)
#define SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED (1 << 7)
#endif
#ifndef CLOSE_RANGE_UNSHARE
#define CLOSE_RANGE_UNSHARE (1U << 1)
#endif

/* ---- async-signal-safe helpers (no malloc, no stdio, no locks) ----
 *
 * The child is a copy of a multithreaded daemon with one thread. Beyond malloc and
 * stdio, beware of glibc's credential wrappers (setgroups, setresuid, setresgid…): in a
 * process glibc believes multithreaded they signal every other thread and wait for it
 * (the setxid broadcast) — threads that do not exist here. Use the raw syscalls. */

static size_t cat(char *buf, size_t size, size_t used, const char *s) {
        while (s && *s && used + 1 < size)
                buf[used++] = *s++;
        buf[used] = 0;
        return used;
}

/* When the root was built (the init's own copy: it is a process of its own). */
static uint64_t root_built_us;
/* How many of its steps an init cloned ahead had built before its plan came. */
static unsigned ahead_built;

static uint64_t mono_us(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000ULL + (uint64_t) ts.tv_nsec / 1000;
}

static void send_msg(int fd, int type, int err, int status, const char *a, const char *b) {
        sync_msg m;
        memset(&m, 0, sizeof(m));
        m.type = type;
        m.root_us = root_built_us;
        m.ahead = ahead_built;
        m.err = err;
        m.status = status;
        size_t u = cat(m.step, sizeof(m.step), 0, a);
        if (b) {
                u = cat(m.step, sizeof(m.step), u, " ");
                cat(m.step, sizeof(m.step), u, b);
        }
        while (send(fd, &m, sizeof(m), MSG_NOSIGNAL) < 0 && errno == EINTR)
                ;
}

static __attribute__((noreturn)) void child_fail(child_ctx *c, const char *step, const char *what, int err) {
        send_msg(c->sync_fd, MSG_ERROR, err, 0, step, what);
        _exit(1);
}

/* Current per-mount flags of path, as mount(2) flags: a remount in a user namespace must
 * keep the flags the kernel locked (those inherited from the host mount). */
static unsigned long mount_flags_of(const char *path) {
        struct statfs sf;
        unsigned long f = 0;
        if (statfs(path, &sf) < 0)
                return 0;
        if (sf.f_flags & ST_RDONLY)
                f |= MS_RDONLY;
        if (sf.f_flags & ST_NOSUID)
                f |= MS_NOSUID;
        if (sf.f_flags & ST_NODEV)
                f |= MS_NODEV;
        if (sf.f_flags & ST_NOEXEC)
                f |= MS_NOEXEC;
        if (sf.f_flags & ST_NOATIME)
                f |= MS_NOATIME;
        if (sf.f_flags & ST_NODIRATIME)
                f |= MS_NODIRATIME;
        if (sf.f_flags & ST_RELATIME)
                f |= MS_RELATIME;
        if (!(f & (MS_NOATIME | MS_RELATIME)))
                f |= MS_STRICTATIME;
        return f;
}

static int remount(const char *path, unsigned long add) {
        return mount(NULL, path, NULL, MS_REMOUNT | MS_BIND | mount_flags_of(path) | add, NULL);
}

/* One setup step: 0, or the errno it failed with. */
static int run_op(const op *o) {
        int r = 0;
        switch (o->kind) {
        case OP_MKDIR:
                r = mkdir(o->dst, o->mode);
                if (r < 0 && errno == EEXIST)
                        r = 0;
                break;
        case OP_MKFILE: {
                int fd = open(o->dst, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, o->mode);
                if (fd < 0)
                        r = -1;
                else
                        close(fd);
                break;
        }
        case OP_WRITE: {
                int fd = open(o->dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, o->mode);
                if (fd < 0)
                        r = -1;
                else {
                        size_t n = strlen(o->src);
                        if (write(fd, o->src, n) != (ssize_t) n)
                                r = -1;
                        close(fd);
                }
                break;
        }
        case OP_SYMLINK:
                r = symlink(o->src, o->dst);
                if (r < 0 && errno == EEXIST)
                        r = 0;
                break;
        case OP_MOUNT:
                r = mount(o->src, o->dst, o->fstype, o->flags, o->data);
                break;
        case OP_BIND:
                r = mount(o->src, o->dst, NULL, MS_BIND | MS_REC, NULL);
                if (r == 0 && o->flags)
                        r = remount(o->dst, o->flags);
                break;
        case OP_REMOUNT:
                r = remount(o->dst, o->flags);
                break;
        }
        return r < 0 && !(o->optional && errno == ENOENT) ? errno : 0;
}

/* Run ops[0..n), or fail on the first that fails, naming it. */
static void run_steps(child_ctx *c, const op *ops, size_t n) {
        for (size_t i = 0; i < n; i++) {
                int e = run_op(&ops[i]);
                if (e)
                        child_fail(c, ops[i].shown, NULL, e);
        }
}

/* Nothing we mount may propagate back to the host: made so before the first mount (by an
 * init cloned ahead, before the steps it runs ahead). */
static bool mounts_private;

static int make_mounts_private(void) {
        if (!mounts_private && mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
                return errno;
        mounts_private = true;
        return 0;
}

const char *osm_sb_loopback_up(int *err) {
        int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (s < 0) {
                *err = errno;
                return "socket (loopback)";
        }
        struct ifreq ifr;
        memset(&ifr, 0, sizeof(ifr));
        cat(ifr.ifr_name, sizeof(ifr.ifr_name), 0, "lo");
        const char *step = NULL;
        if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
                step = "SIOCGIFFLAGS lo";
        else {
                ifr.ifr_flags |= IFF_UP;
                if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
                        step = "SIOCSIFFLAGS lo";
        }
        *err = errno;
        close(s);
        return step;
}

/* Give up every privilege for good. Order matters: the bounding set and securebits need
 * CAP_SETPCAP, setgroups/setres[ug]id need CAP_SETGID/SETUID, so capabilities go last. */
static void drop_privileges(child_ctx *c) {
        if (prctl(PR_SET_SECUREBITS, SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP |
                                         SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED |
                                         SECBIT_NO_CAP_AMBIENT_RAISE |
                                         SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED) < 0)
                child_fail(c, "prctl", "PR_SET_SECUREBITS", errno);
        for (unsigned cap = 0; cap <= c->last_cap; cap++)
                if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
                        child_fail(c, "prctl", "PR_CAPBSET_DROP", errno);
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
                child_fail(c, "prctl", "PR_CAP_AMBIENT_CLEAR_ALL", errno);
        if (syscall(SYS_setresgid, c->gid, c->gid, c->gid) < 0)
                child_fail(c, "setresgid", NULL, errno);
        if (syscall(SYS_setresuid, c->uid, c->uid, c->uid) < 0)
                child_fail(c, "setresuid", NULL, errno);
        struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
        struct __user_cap_data_struct data[2];
        memset(data, 0, sizeof(data));
        if (syscall(SYS_capset, &hdr, data) < 0)
                child_fail(c, "capset", NULL, errno);
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                child_fail(c, "prctl", "PR_SET_NO_NEW_PRIVS", errno);
        /* The init is a copy of the daemon: non-dumpable, so that /proc/1 is not the
         * workload's to read or ptrace (and /proc/1/exe does not lead to osmosed). */
        if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
                child_fail(c, "prctl", "PR_SET_DUMPABLE", errno);
}

static void load_seccomp(child_ctx *c) {
        if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &c->prog->allow) < 0)
                child_fail(c, "seccomp", "(allowlist)", errno);
        if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &c->prog->deny) < 0)
                child_fail(c, "seccomp", "(denylist)", errno);
}

/* Close every fd from first on (one by one where close_range is missing). */
static void close_from(unsigned first) {
        if (syscall(SYS_close_range, first, ~0U, 0U) < 0) {
                for (int fd = (int) first; fd < 65536; fd++)
                        close(fd);
        }
}

/* Put fds 0-2 in place and close everything but the sync socket (moved to fd 3) and a
 * user namespace to join (fd 4). */
static void setup_fds(child_ctx *c) {
        int want[3] = { c->stdio_fd[0], c->stdio_fd[1], c->stdio_fd[2] };
        int tmp[3];
        int devnull = -1;
        for (int i = 0; i < 3; i++) {
                if (want[i] < 0) {
                        if (devnull < 0) {
                                devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
                                if (devnull < 0)
                                        child_fail(c, "open", "/dev/null", errno);
                        }
                        want[i] = devnull;
                }
                tmp[i] = fcntl(want[i], F_DUPFD_CLOEXEC, 10);
                if (tmp[i] < 0)
                        child_fail(c, "dup", "stdio", errno);
        }
        int s = fcntl(c->sync_fd, F_DUPFD_CLOEXEC, 10);
        if (s < 0)
                child_fail(c, "dup", "sync", errno);
        c->sync_fd = s;
        /* A user namespace to join later stays open, as fd 4. */
        int u = c->userns_fd >= 0 ? fcntl(c->userns_fd, F_DUPFD_CLOEXEC, 10) : -1;
        if (c->userns_fd >= 0 && u < 0)
                child_fail(c, "dup", "user namespace", errno);
        for (int i = 0; i < 3; i++)
                if (dup2(tmp[i], i) < 0)
                        child_fail(c, "dup2", "stdio", errno);
        if (dup3(s, 3, O_CLOEXEC) < 0)
                child_fail(c, "dup3", "sync", errno);
        c->sync_fd = 3;
        if (u >= 0) {
                if (dup3(u, 4, O_CLOEXEC) < 0)
                        child_fail(c, "dup3", "user namespace", errno);
                c->userns_fd = 4;
        }
        close_from(u >= 0 ? 5 : 4);
}

static void exec_workload(child_ctx *c, int err_fd) {
        const char *const *argv = c->argv;
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        int e;
        if (chdir(c->cwd) < 0) {
                e = errno;
                (void) !write(err_fd, &e, sizeof(e));
                _exit(127);
        }
        if (strchr(argv[0], '/')) {
                execve(argv[0], (char *const *) argv, (char *const *) c->envp);
                e = errno;
        } else {
                static const char *const dirs[] = { "/usr/local/bin/", "/usr/bin/", "/bin/" };
                e = ENOENT;
                for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
                        char path[4096];
                        size_t u = cat(path, sizeof(path), 0, dirs[i]);
                        cat(path, sizeof(path), u, argv[0]);
                        execve(path, (char *const *) argv, (char *const *) c->envp);
                        if (errno != ENOENT)
                                e = errno;
                }
        }
        (void) !write(err_fd, &e, sizeof(e));
        _exit(127);
}

static void noop_handler(int sig) {
        (void) sig;
}

typedef struct workload_args {
        child_ctx *c;
        int ep[2];
        const int *fwd;
        size_t n_fwd;
} workload_args;

/* The workload's side of the init's clone, on its own stack in the init's memory. */
static int workload_main(void *arg) {
        workload_args *a = arg;
        close(a->ep[0]);
        /* Handlers are reset by exec; ignored signals would stay ignored. (Its own copy of
         * the handlers: no CLONE_SIGHAND.) */
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = SIG_DFL;
        for (size_t i = 0; i < a->n_fwd; i++)
                sigaction(a->fwd[i], &sa, NULL);
        close(a->c->sync_fd);
        exec_workload(a->c, a->ep[1]);
        return 127;
}

/* pid 1 of the sandbox: start the workload, forward signals, reap, report. */
static __attribute__((noreturn)) void run_init(child_ctx *c) {
        static const int fwd[] = { SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 };
        const int sync_fd = c->sync_fd;   /* c may be in what goes below (a plan) */
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGCHLD);
        for (size_t i = 0; i < ARRAY_SIZE(fwd); i++)
                sigaddset(&set, fwd[i]);
        sigprocmask(SIG_BLOCK, &set, NULL);
        /* pid 1 of a namespace drops signals that have the default action. */
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = noop_handler;
        for (size_t i = 0; i < ARRAY_SIZE(fwd); i++)
                sigaction(fwd[i], &sa, NULL);

        workload_args wa = { .c = c, .fwd = fwd, .n_fwd = ARRAY_SIZE(fwd) };
        int *ep = wa.ep;
        if (pipe2(ep, O_CLOEXEC) < 0)
                child_fail(c, "pipe2", NULL, errno);
        /* Not fork(): glibc's fork() runs atfork handlers and takes malloc locks, which a
         * copy of a multithreaded daemon may find held forever. And not a copy either:
         * CLONE_VM | CLONE_VFORK, as posix_spawn does: the workload runs on a stack of its
         * own in the init's memory until it execs, the init waiting, so the memory of the
         * daemon that the init is a copy of is not copied once more (page tables of every
         * mapping) only to be thrown away by the exec. The fd table, the handlers and the
         * working directory stay the child's own copies. */
#if defined(__SANITIZE_ADDRESS__)
        /* Under AddressSanitizer, a second stack in the same memory breaks its bookkeeping
         * (it warns on the workload's stderr): a plain copy there, by the raw system call. */
        pid_t child = (pid_t) syscall(SYS_clone, SIGCHLD, NULL, NULL, NULL, NULL);
        if (child == 0)
                _exit(workload_main(&wa));
#else
        static char stack[64 * 1024] __attribute__((aligned(16)));
        pid_t child = clone(workload_main, stack + sizeof stack, CLONE_VM | CLONE_VFORK | SIGCHLD, &wa);
#endif
        if (child < 0)
                child_fail(c, "clone", "(workload)", errno);
        close(ep[1]);
        int e = 0;
        ssize_t n;
        while ((n = read(ep[0], &e, sizeof(e))) < 0 && errno == EINTR)
                ;
        close(ep[0]);
        if (n == sizeof(e)) {
                send_msg(c->sync_fd, MSG_ERROR, e, 0, "execve", c->argv[0]);
                _exit(127);
        }
        /* From here on the init touches nothing on the daemon's heap, nor c (what it uses
         * below is on the stack). Its copy of the heap goes: while the init shared those
         * pages, each first write of the daemon to one was a copy, and a flush of the TLB
         * of every CPU its threads ran on (an IPI; costly in a VM) — about a hundred per
         * run — and the init's exit has less to free. (ASan's runtime may keep state
         * there: left alone under it.) An init cloned ahead unmapped it at its birth. */
#if !defined(__SANITIZE_ADDRESS__)
        if (c->heap)
                munmap(c->heap, c->heap_len);
#endif
        c = NULL;
        send_msg(sync_fd, MSG_STARTED, 0, 0, NULL, NULL);

        for (;;) {
                siginfo_t si;
                int sig = sigwaitinfo(&set, &si);
                if (sig < 0)
                        continue;
                if (sig != SIGCHLD) {
                        kill(child, sig);
                        continue;
                }
                int st;
                pid_t p;
                while ((p = waitpid(-1, &st, WNOHANG)) > 0) {
                        if (p != child)
                                continue;
                        send_msg(sync_fd, MSG_EXIT, 0, st, NULL, NULL);
                        /* Leaving kills whatever is left in the pid namespace. */
                        _exit(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
                }
        }
}

static void wait_go(child_ctx *c) {
        char go;
        ssize_t n;
        while ((n = read(c->sync_fd, &go, 1)) < 0 && errno == EINTR)
                ;
        if (n != 1)
                _exit(1);   /* the parent gave up */
}

int osm_sb_child_main(void *arg) {
        child_ctx *c = arg;
        close(c->parent_fd);
        /* Unprivileged, the parent maps our ids and moves us into our cgroups first.
         * Privileged, there is nothing to wait for: the root is built at once (see
         * NS_FLAGS), and the parent's answer comes after MSG_MAP_ME. */
        if (!c->privileged)
                wait_go(c);
        /* The skeleton's directories and files get their modes from here, not from the
         * daemon's umask (systemd units often run services with UMask=0077). */
        umask(022);

        if (!c->privileged && c->cgroupns && unshare(CLONE_NEWCGROUP) < 0)
                child_fail(c, "unshare", "CLONE_NEWCGROUP", errno);
        /* A network namespace made ahead (netns.c), its loopback up already, instead of
         * one from the clone. */
        if (c->netns_fd >= 0) {
                if (setns(c->netns_fd, CLONE_NEWNET) < 0)
                        child_fail(c, "setns", "CLONE_NEWNET", errno);
                close(c->netns_fd);
                c->netns_fd = -1;
        } else {
                int e;
                const char *step = osm_sb_loopback_up(&e);
                if (step)
                        child_fail(c, step, NULL, e);
        }
        if (sethostname(c->hostname, strlen(c->hostname)) < 0)
                child_fail(c, "sethostname", NULL, errno);
        int e = make_mounts_private();
        if (e)
                child_fail(c, "mount", "/ private", e);
        run_steps(c, c->common, c->n_common);
        run_steps(c, c->ops, c->n_ops);
        /* pivot_root(".", "."): the old root ends up stacked on the new one and is
         * detached at once; no directory is needed for it. */
        if (chdir(c->root) < 0)
                child_fail(c, "chdir", "new root", errno);
        if (syscall(SYS_pivot_root, ".", ".") < 0)
                child_fail(c, "pivot_root", NULL, errno);
        if (umount2(".", MNT_DETACH) < 0)
                child_fail(c, "umount", "old root", errno);
        if (chdir("/") < 0)
                child_fail(c, "chdir", "/", errno);

        if (setrlimit(RLIMIT_NOFILE, &c->rl_nofile) < 0)
                child_fail(c, "setrlimit", "RLIMIT_NOFILE", errno);
        if (setrlimit(RLIMIT_FSIZE, &c->rl_fsize) < 0)
                child_fail(c, "setrlimit", "RLIMIT_FSIZE", errno);
        struct rlimit zero = { 0, 0 };
        if (setrlimit(RLIMIT_CORE, &zero) < 0)
                child_fail(c, "setrlimit", "RLIMIT_CORE", errno);
        if (c->set_nproc && setrlimit(RLIMIT_NPROC, &c->rl_nproc) < 0)
                child_fail(c, "setrlimit", "RLIMIT_NPROC", errno);
        if (c->set_as && setrlimit(RLIMIT_AS, &c->rl_as) < 0)
                child_fail(c, "setrlimit", "RLIMIT_AS", errno);

        setup_fds(c);
        if (setsid() < 0)
                child_fail(c, "setsid", NULL, errno);
        if (c->privileged) {
                /* Without this the host's supplementary groups (e.g. root's gid 0) would
                 * still open group-accessible host files. (Unprivileged, setgroups is
                 * denied and the groups are the daemon user's own.) */
                if (syscall(SYS_setgroups, 0, NULL) < 0)
                        child_fail(c, "setgroups", NULL, errno);
                if (c->userns_fd >= 0) {
                        /* Made ahead and mapped (netns.c): the same credentials as from
                         * the unshare below, every capability in it and none outside. */
                        if (setns(c->userns_fd, CLONE_NEWUSER) < 0)
                                child_fail(c, "setns", "CLONE_NEWUSER", errno);
                        close(c->userns_fd);
                        c->userns_fd = -1;
                        root_built_us = mono_us();
                } else {
                        if (unshare(CLONE_NEWUSER) < 0)
                                child_fail(c, "unshare", "CLONE_NEWUSER", errno);
                        root_built_us = mono_us();
                        send_msg(c->sync_fd, MSG_MAP_ME, 0, 0, NULL, NULL);
                        wait_go(c);
                }
                if (c->cgroupns && unshare(CLONE_NEWCGROUP) < 0)
                        child_fail(c, "unshare", "CLONE_NEWCGROUP", errno);
        }
        /* Everything but the handlers the init needs goes back to the default. */
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = SIG_DFL;
        for (int s = 1; s < NSIG; s++)
                if (s != SIGKILL && s != SIGSTOP)
                        sigaction(s, &sa, NULL);
        drop_privileges(c);
        /* If the daemon dies (SIGKILL, a crash), its sandboxes die with it, so that the
         * next start finds no orphans and starts them again under its supervision: the
         * init is killed, and with it its pid namespace. Set only now, as changing the
         * credentials clears it; a daemon that died before is seen by its socket. */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
                child_fail(c, "prctl", "PR_SET_PDEATHSIG", errno);
        struct pollfd alive = { .fd = c->sync_fd, .events = POLLIN };
        if (poll(&alive, 1, 0) == 1 && (alive.revents & (POLLHUP | POLLERR)))
                _exit(1);
        load_seccomp(c);
        run_init(c);
}

_Alignas(64) unsigned char osm_sb_plan_mem[PLAN_MAX];

int osm_sb_prefork_main(void *arg) {
        const osm_sb_birth *b = arg;
        close(b->parent_fd);
#if !defined(__SANITIZE_ADDRESS__)
        /* Nothing of the daemon's heap is used from here on (this runs on a copy of the
         * launcher thread's stack; the plan comes into a static buffer): it goes now, so
         * that the daemon's writes to it while this init waits are not copies. */
        if (b->heap)
                munmap(b->heap, b->heap_len);
#endif
        /* Only the sync socket stays, as fd 3: the daemon's other fds (copies of its
         * sockets, databases and other instances' pipes) are not this init's to hold. */
        int sync_fd = b->sync_fd;
        if (sync_fd != 3) {
                if (dup3(sync_fd, 3, O_CLOEXEC) < 0)
                        _exit(1);
                sync_fd = 3;
        }
        for (int fd = 0; fd < 3; fd++)
                close(fd);
        close_from(4);
        /* Told to (a byte before the plan: no launch is building its root, launcher.c),
         * the steps every minimal root begins with, in this init's own mount namespace,
         * on the stage, until its plan comes: what is left of them is then the plan's to
         * run, as is a step that failed (it fails again there, and is told). */
        umask(022);
        size_t built = 0;
        char one;
        ssize_t len;
        while ((len = recv(sync_fd, &one, 1, MSG_PEEK | MSG_TRUNC)) < 0 && errno == EINTR)
                ;
        if (len <= 0)
                _exit(0);
        if (len == 1 && recv(sync_fd, &one, 1, 0) == 1 && b->n_ahead && make_mounts_private() == 0) {
                struct pollfd plan_in = { .fd = sync_fd, .events = POLLIN };
                while (built < b->n_ahead && poll(&plan_in, 1, 0) == 0 && run_op(&b->ahead[built]) == 0)
                        built++;
        }
        /* The plan, with its fds. EOF: the daemon dropped this init, or died. */
        osm_sb_plan *plan = (osm_sb_plan *) osm_sb_plan_mem;
        int fds[PLAN_FDS];
        union {
                char buf[CMSG_SPACE(sizeof fds)];
                struct cmsghdr align;
        } u;
        struct iovec iov = { .iov_base = osm_sb_plan_mem, .iov_len = sizeof osm_sb_plan_mem };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf };
        ssize_t n;
        while ((n = recvmsg(sync_fd, &mh, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR)
                ;
        if (n <= 0)
                _exit(0);
        size_t n_fds = 0;
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
                if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS && n_fds == 0) {
                        n_fds = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                        memcpy(fds, CMSG_DATA(cm), n_fds * sizeof(int));
                }
        child_ctx *c = &plan->ctx;
        c->sync_fd = sync_fd;
        c->parent_fd = -1;
        if ((size_t) n < sizeof *plan || plan->size != (size_t) n || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)))
                child_fail(c, "plan", "(truncated)", EMSGSIZE);
        int got[PLAN_FDS];
        for (int k = 0; k < PLAN_FDS; k++) {
                int i = plan->fd_index[k];
                got[k] = i >= 0 && (size_t) i < n_fds ? fds[i] : -1;
                if (i >= 0 && got[k] < 0)
                        child_fail(c, "plan", "(an fd is missing)", EBADF);
        }
        for (int k = 0; k < 3; k++)
                c->stdio_fd[k] = got[PLAN_FD_STDIN + k];
        c->netns_fd = got[PLAN_FD_NETNS];
        c->userns_fd = got[PLAN_FD_USERNS];
        c->heap = NULL;   /* gone already */
        /* A minimal root begins with the steps run ahead (its plan points to the same list,
         * this init's copy of it): the ones built are skipped. Other steps (a bundle's
         * rootfs) begin with a bare stage: the one built ahead goes, with all that is
         * mounted on it. */
        if (c->common == b->ahead && c->n_common == b->n_ahead) {
                c->common += built;
                c->n_common -= built;
                ahead_built = built;
        } else if (built && umount2(b->ahead[0].dst, MNT_DETACH) < 0)
                child_fail(c, "umount", "the stage built ahead", errno);
        sigprocmask(SIG_SETMASK, &plan->mask, NULL);
        if (plan->unshare_net && unshare(CLONE_NEWNET) < 0)
                child_fail(c, "unshare", "CLONE_NEWNET", errno);
        return osm_sb_child_main(c);
}

int osm_sb_probe_child(void *arg) {
        const osm_sb_probe *pr = arg;
        const osm_seccomp_prog *prog = pr->prog;
        int res = 0;
        if (pr->unshare_user && unshare(CLONE_NEWUSER) < 0)
                return PROBE_USERNS;
        if (unshare(CLONE_NEWCGROUP) < 0)
                res |= PROBE_CGROUPNS;
        if (!prog || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
            syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog->allow) < 0)
                res |= PROBE_SECCOMP;
        return res;
}
