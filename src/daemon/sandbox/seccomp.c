/* seccomp.c: the sandbox's syscall policy, built with libseccomp once per policy and kept as BPF. */
#include <errno.h>
#include <linux/netlink.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <seccomp.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "osmose/util.h"
#include "daemon/sandbox/sandbox-internal.h"

/*
 * Default action: EPERM, not KILL. A workload that calls something outside the policy
 * gets an error it can report ("bpf: Operation not permitted" in its log) instead of
 * dying without a trace, and the escape tests can tell "refused by the filter" from
 * "crashed". Nothing is gained by killing: a refused call has no effect either way.
 * Exceptions: a syscall from a foreign ABI (i386 on x86_64, arm on arm64 without
 * compat32, x32) kills the process — there is no legitimate reason for it and the
 * numbers mean different things there; clone3 gets ENOSYS so that libc falls back to
 * clone(2), whose flags we can inspect (clone3 takes a struct pointer BPF cannot read).
 */

/* Everything a normal program needs. Names unknown on an architecture are skipped
 * (e.g. "open" on arm64, "mmap2" on x86_64). Deliberately absent: ptrace, mount and
 * the new mount API, pivot_root, chroot, module loading, bpf, keyctl/add_key/
 * request_key, unshare, setns, kexec, reboot, swap, acct, perf_event_open, userfaultfd,
 * process_vm_*, open_by_handle_at, personality, quotactl, syslog, ioperm/iopl, clock
 * and time setting, sethostname/setdomainname, mknod, io_uring, kcmp, pidfd_getfd,
 * fanotify, lookup_dcookie, vhangup, uselib, nfsservctl. */
static const char *const allowed[] = {
        "_llseek", "_newselect", "accept", "accept4", "access", "alarm", "arch_prctl",
        "ARM_breakpoint", "ARM_cacheflush", "ARM_get_tls", "ARM_set_tls", "ARM_usr26",
        "ARM_usr32", "bind", "brk", "cacheflush", "capget", "capset", "chdir", "chmod",
        "chown", "chown32", "clock_getres", "clock_getres_time64", "clock_gettime",
        "clock_gettime64", "clock_nanosleep", "clock_nanosleep_time64", "close",
        "close_range", "connect", "copy_file_range", "creat", "dup", "dup2", "dup3",
        "epoll_create", "epoll_create1", "epoll_ctl", "epoll_pwait", "epoll_pwait2",
        "epoll_wait", "eventfd", "eventfd2", "execve", "execveat", "exit", "exit_group",
        "faccessat", "faccessat2", "fadvise64", "fadvise64_64", "fallocate", "fchdir",
        "fchmod", "fchmodat", "fchown", "fchown32", "fchownat", "fcntl", "fcntl64",
        "fdatasync", "fgetxattr", "flistxattr", "flock", "fork", "fremovexattr",
        "fsetxattr", "fstat", "fstat64", "fstatat64", "fstatfs", "fstatfs64", "fsync",
        "ftruncate", "ftruncate64", "futex", "futex_time64", "futex_waitv", "futimesat",
        "get_mempolicy", "get_robust_list", "get_thread_area", "getcpu", "getcwd",
        "getdents", "getdents64", "getegid", "getegid32", "geteuid", "geteuid32",
        "getgid", "getgid32", "getgroups", "getgroups32", "getitimer", "getpeername",
        "getpgid", "getpgrp", "getpid", "getppid", "getpriority", "getrandom",
        "getresgid", "getresgid32", "getresuid", "getresuid32", "getrlimit", "getrusage",
        "getsid", "getsockname", "getsockopt", "gettid", "gettimeofday", "getuid",
        "getuid32", "getxattr", "inotify_add_watch", "inotify_init", "inotify_init1",
        "inotify_rm_watch", "io_cancel", "io_destroy", "io_getevents", "io_pgetevents",
        "io_pgetevents_time64", "io_setup", "io_submit", "ioctl", "ipc", "kill",
        "landlock_add_rule", "landlock_create_ruleset", "landlock_restrict_self",
        "lchown", "lchown32", "lgetxattr", "link", "linkat", "listen", "listxattr",
        "llistxattr", "lremovexattr", "lseek", "lsetxattr", "lstat", "lstat64",
        "madvise", "membarrier", "memfd_create", "mincore", "mkdir", "mkdirat", "mlock",
        "mlock2", "mlockall", "mmap", "mmap2", "mprotect", "mq_getsetattr", "mq_notify",
        "mq_open", "mq_timedreceive", "mq_timedreceive_time64", "mq_timedsend",
        "mq_timedsend_time64", "mq_unlink", "mremap", "msgctl", "msgget", "msgrcv",
        "msgsnd", "msync", "munlock", "munlockall", "munmap", "nanosleep", "newfstatat",
        "open", "openat", "openat2", "pause", "pidfd_open", "pidfd_send_signal", "pipe",
        "pipe2", "pkey_alloc", "pkey_free", "pkey_mprotect", "poll", "ppoll",
        "ppoll_time64", "prctl", "pread64", "preadv", "preadv2", "prlimit64", "pselect6",
        "pselect6_time64", "pwrite64", "pwritev", "pwritev2", "read", "readahead",
        "readlink", "readlinkat", "readv", "recv", "recvfrom", "recvmmsg",
        "recvmmsg_time64", "recvmsg", "remap_file_pages", "removexattr", "rename",
        "renameat", "renameat2", "restart_syscall", "rmdir", "rseq", "rt_sigaction",
        "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn",
        "rt_sigsuspend", "rt_sigtimedwait", "rt_sigtimedwait_time64",
        "rt_tgsigqueueinfo", "sched_get_priority_max", "sched_get_priority_min",
        "sched_getaffinity", "sched_getattr", "sched_getparam", "sched_getscheduler",
        "sched_rr_get_interval", "sched_rr_get_interval_time64", "sched_setaffinity",
        "sched_yield", "seccomp", "select", "semctl", "semget", "semop",
        "semtimedop", "semtimedop_time64", "send", "sendfile", "sendfile64", "sendmmsg",
        "sendmsg", "sendto", "set_mempolicy", "set_robust_list", "set_thread_area",
        "set_tid_address", "set_tls", "setfsgid", "setfsgid32", "setfsuid", "setfsuid32",
        "setgid", "setgid32", "setgroups", "setgroups32", "setitimer", "setpgid",
        "setpriority", "setregid", "setregid32", "setresgid", "setresgid32", "setresuid",
        "setresuid32", "setreuid", "setreuid32", "setsid", "setsockopt", "setuid",
        "setuid32", "setxattr", "shmat", "shmctl", "shmdt", "shmget", "shutdown",
        "sigaction", "sigaltstack", "signal", "signalfd", "signalfd4", "sigpending",
        "sigprocmask", "sigreturn", "sigsuspend", "socketcall", "socketpair",
        "splice", "stat", "stat64", "statfs", "statfs64", "statx", "symlink",
        "symlinkat", "sync_file_range", "sync_file_range2", "syncfs", "sysinfo",
        "tee", "tgkill", "time", "timer_create", "timer_delete", "timer_getoverrun",
        "timer_gettime", "timer_gettime64", "timer_settime", "timer_settime64",
        "timerfd_create", "timerfd_gettime", "timerfd_gettime64", "timerfd_settime",
        "timerfd_settime64", "times", "tkill", "truncate", "truncate64", "ugetrlimit",
        "umask", "uname", "unlink", "unlinkat", "utime", "utimensat", "utimensat_time64",
        "utimes", "vfork", "vmsplice", "wait4", "waitid", "waitpid", "write", "writev",
};

/* Namespace flags a sandboxed process may not pass to clone(2). */
static const uint64_t clone_ns_flags[] = {
        CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID,
        CLONE_NEWNET, CLONE_NEWCGROUP,
};

/* Add the architectures of the policy to ctx. On arm64 with compat32 the 32-bit ARM
 * ABI is added; everything else foreign hits the bad-arch action (kill). */
static int add_arches(scmp_filter_ctx ctx, unsigned policy) {
        if (!(policy & OSM_SECCOMP_COMPAT32))
                return 0;
#if defined(__aarch64__)
        int r = seccomp_arch_add(ctx, SCMP_ARCH_ARM);
        return r == -EEXIST ? 0 : r;
#else
        /* A 32-bit ABI for bundles is only offered where gateways need it (armhf
         * bundles on arm64). On x86_64 i386 stays denied. */
        return -EOPNOTSUPP;
#endif
}

/* Foreign ABIs kill the whole process; where libseccomp cannot tell whether the kernel
 * knows SECCOMP_RET_KILL_PROCESS (old kernels, qemu-user), the thread. */
static int set_badarch(scmp_filter_ctx ctx) {
        int r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
        if (r < 0)
                r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL);
        return r;
}

/* Export ctx as BPF into a malloc'd sock_fprog. libseccomp 2.5 only exports to an fd,
 * so go through a memfd. */
static int export_bpf(scmp_filter_ctx ctx, struct sock_fprog *out) {
        _cleanup_close_ int fd = memfd_create("osmose-seccomp", MFD_CLOEXEC);
        if (fd < 0)
                return -errno;
        int r = seccomp_export_bpf(ctx, fd);
        if (r < 0)
                return r;
        struct stat st;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (st.st_size <= 0 || st.st_size % sizeof(struct sock_filter) != 0 ||
            st.st_size / sizeof(struct sock_filter) > BPF_MAXINSNS)
                return -E2BIG;
        struct sock_filter *f = malloc(st.st_size);
        if (!f)
                return -ENOMEM;
        if (pread(fd, f, st.st_size, 0) != st.st_size) {
                free(f);
                return -EIO;
        }
        out->filter = f;
        out->len = st.st_size / sizeof(struct sock_filter);
        return 0;
}

static int build_allow(unsigned policy, struct sock_fprog *out) {
        scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
        if (!ctx)
                return -ENOMEM;
        int r = set_badarch(ctx);
        /* A binary tree over the syscall numbers rather than one test after another: the
         * same answers (the rules are the same), in a few tests instead of up to three
         * hundred at every system call of the workload; and the kernel, which runs the
         * filter over every syscall number when it is loaded (to cache the constant
         * answers), loads it in a third of the time (~300 µs before, per launch). */
        if (r >= 0)
                r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
        if (r >= 0)
                r = add_arches(ctx, policy);
        for (size_t i = 0; r >= 0 && i < OSM_ARRAY_SIZE(allowed); i++) {
                int nr = seccomp_syscall_resolve_name(allowed[i]);
                if (nr == __NR_SCMP_ERROR)
                        continue;
                r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
                if (r == -EDOM || r == -EINVAL)  /* not on one of the arches: fine */
                        r = 0;
        }
        /* clone: allowed unless it asks for a namespace. Fork-like and thread-like
         * clones pass; CLONE_NEW* is refused (one rule per flag, since a rule's
         * conditions are AND-ed and "none of these bits" needs a masked compare to 0). */
        uint64_t ns_mask = 0;
        for (size_t i = 0; i < OSM_ARRAY_SIZE(clone_ns_flags); i++)
                ns_mask |= clone_ns_flags[i];
        if (r >= 0)
                r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
                                     SCMP_A0(SCMP_CMP_MASKED_EQ, ns_mask, 0));
        if (r >= 0)
                r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
        /* socket: the families a room program needs (and netlink route, which libc's
         * getaddrinfo asks for addresses); packet, alg, vsock, bluetooth and the rest of
         * the kernel's socket code stay out of reach (EPERM, the default). */
        static const int families[] = { AF_UNIX, AF_INET, AF_INET6 };
        for (size_t i = 0; r >= 0 && i < OSM_ARRAY_SIZE(families); i++)
                r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
                                     SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t) families[i]));
        if (r >= 0)
                r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 2,
                                     SCMP_A0(SCMP_CMP_EQ, AF_NETLINK), SCMP_A2(SCMP_CMP_EQ, NETLINK_ROUTE));
        /* sync(2) would make the host write back every filesystem: succeed, do nothing
         * (fsync, fdatasync and syncfs on the workload's own files still work). */
        if (r >= 0)
                r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(0), SCMP_SYS(sync), 0);
        if (r >= 0)
                r = export_bpf(ctx, out);
        seccomp_release(ctx);
        return r;
}

/* The denylist: default allow, refuse argument patterns inside allowed syscalls.
 * ioctl's request is an unsigned int in the kernel: compare only its low 32 bits, or
 * TIOCSTI | (1 << 32) would slip past a 64-bit comparison. */
static int build_deny(unsigned policy, struct sock_fprog *out) {
        static const unsigned long ioctls[] = { TIOCSTI, TIOCLINUX };
        scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
        if (!ctx)
                return -ENOMEM;
        int r = set_badarch(ctx);
        if (r >= 0)
                r = add_arches(ctx, policy);
        for (size_t i = 0; r >= 0 && i < OSM_ARRAY_SIZE(ioctls); i++)
                r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(ioctl), 1,
                                     SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffULL, ioctls[i]));
        if (r >= 0)
                r = export_bpf(ctx, out);
        seccomp_release(ctx);
        return r;
}

int osm_seccomp_get(osm_seccomp_cache *c, unsigned policy, const osm_seccomp_prog **out) {
        if (policy >= OSM_SECCOMP_N_POLICIES)
                return -EINVAL;
        if (!c->progs[policy]) {
                osm_seccomp_prog *p = calloc(1, sizeof(*p));
                if (!p)
                        return -ENOMEM;
                int r = build_allow(policy, &p->allow);
                if (r >= 0)
                        r = build_deny(policy, &p->deny);
                if (r < 0) {
                        free(p->allow.filter);
                        free(p);
                        return r;
                }
                c->progs[policy] = p;
        }
        *out = c->progs[policy];
        return 0;
}

void osm_seccomp_cache_clear(osm_seccomp_cache *c) {
        for (size_t i = 0; i < OSM_SECCOMP_N_POLICIES; i++) {
                if (!c->progs[i])
                        continue;
                free(c->progs[i]->allow.filter);
                free(c->progs[i]->deny.filter);
                free(c->progs[i]);
                c->progs[i] = NULL;
        }
}
