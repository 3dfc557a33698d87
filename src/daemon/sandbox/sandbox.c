/* sandbox.c: build one isolated instance: clone into new namespaces, mount its root, drop privileges, exec. */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
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
#include <grp.h>
#include <unistd.h>

#include "osmose/util.h"
#include "daemon/sandbox/sandbox-internal.h"

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

#define DEFAULT_MEMORY (256ULL << 20)
#define DEFAULT_PIDS 256
#define DEFAULT_TMP (64ULL << 20)
#define DEFAULT_NOFILE 1024
#define DEFAULT_FSIZE (1ULL << 30)
#define SPAWN_TIMEOUT_MS 10000

/* Namespaces made at clone time. The cgroup namespace comes later, from the child,
 * once the parent has moved it into its cgroup: a cgroup namespace is rooted at the
 * cgroup its creator is in at that moment.
 *
 * When the daemon is root (the installed case) the user namespace comes last too: the
 * child builds the root as real root in mount, pid, net, ipc and uts namespaces owned
 * by the host's user namespace, and only then unshares its user namespace. So the
 * daemon's own paths need not be reachable by the unprivileged ids (a 0700 state dir
 * works), and the workload holds no capability over any of its namespaces but the user
 * one — it cannot unmount, remount or reconfigure its network even in theory. An
 * unprivileged daemon (trying Osmose out) must create the user namespace first. */
#define NS_FLAGS (CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS)

struct osm_sandbox {
        uint64_t uid_base, uid_count;
        bool privileged;          /* may write arbitrary id maps (root in the init user ns) */
        char *stage_dir;
        char *network;
        unsigned last_cap;
        osm_sandbox_limits defaults;
        osm_sandbox_features feat;
        osm_cg_host cg;
        osm_seccomp_cache seccomp;
        osm_net net;
        unsigned spawn_seq;
};

struct osm_sandbox_proc {
        pid_t pid;
        int pidfd;
        int sync_fd;
        bool reaped;
        osm_sandbox *sb;
        uint32_t net_addr;        /* leased address on the bridge, 0 if none */
        osm_cgroup *cg;
        osm_sandbox_features limits;
};

/* Messages from the sandbox's init (and its failed exec) to the daemon. */
enum { MSG_ERROR = 1, MSG_STARTED, MSG_EXIT, MSG_MAP_ME };
typedef struct sync_msg {
        int type;
        int err;      /* errno for MSG_ERROR */
        int status;   /* wait status for MSG_EXIT */
        char step[240];
} sync_msg;

/* ---- what the child does, prepared by the parent ---- */

typedef enum op_kind { OP_MKDIR, OP_MKFILE, OP_SYMLINK, OP_MOUNT, OP_BIND, OP_REMOUNT, OP_WRITE } op_kind;

/* One setup step. Paths are absolute host paths in the child's private mount namespace
 * before pivot_root; `shown` is how the step reads in an error ("mount /proc"). */
typedef struct op {
        op_kind kind;
        bool optional;            /* ENOENT is not an error (e.g. /proc/bus) */
        unsigned long flags;      /* mount flags; for OP_BIND: flags of the remount after */
        mode_t mode;
        const char *fstype;
        char *src;                /* mount source, symlink target, file content */
        char *dst;
        char *data;               /* mount data */
        const char *shown;
} op;

typedef struct child_ctx {
        const osm_sandbox_spec *spec;
        const osm_seccomp_prog *prog;
        int sync_fd;                /* child's end */
        int parent_fd;              /* parent's end, closed in the child */
        op *ops;
        size_t n_ops;
        char *root;                 /* the directory pivot_root goes to */
        const char *hostname;
        const char *cwd;
        const char *const *envp;
        uid_t uid;
        gid_t gid;
        bool privileged;            /* user namespace unshared late, see NS_FLAGS */
        bool cgroupns;
        unsigned last_cap;
        struct rlimit rl_nofile, rl_fsize, rl_nproc, rl_as;
        bool set_nproc, set_as;
} child_ctx;

/* ---- async-signal-safe helpers for the child (no malloc, no stdio, no locks) ----
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

static void send_msg(int fd, int type, int err, int status, const char *a, const char *b) {
        sync_msg m;
        memset(&m, 0, sizeof(m));
        m.type = type;
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

static OSM_NORETURN void child_fail(child_ctx *c, const char *step, const char *what, int err) {
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

static void run_op(child_ctx *c, const op *o) {
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
        if (r < 0 && !(o->optional && errno == ENOENT))
                child_fail(c, o->shown, NULL, errno);
}

static void bring_up_loopback(child_ctx *c) {
        int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (s < 0)
                child_fail(c, "socket", "(loopback)", errno);
        struct ifreq ifr;
        memset(&ifr, 0, sizeof(ifr));
        cat(ifr.ifr_name, sizeof(ifr.ifr_name), 0, "lo");
        if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
                child_fail(c, "SIOCGIFFLAGS", "lo", errno);
        ifr.ifr_flags |= IFF_UP;
        if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
                child_fail(c, "SIOCSIFFLAGS", "lo", errno);
        close(s);
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

/* Put fds 0-2 in place and close everything but the sync socket (moved to fd 3). */
static void setup_fds(child_ctx *c) {
        int want[3] = { c->spec->stdin_fd, c->spec->stdout_fd, c->spec->stderr_fd };
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
        for (int i = 0; i < 3; i++)
                if (dup2(tmp[i], i) < 0)
                        child_fail(c, "dup2", "stdio", errno);
        if (dup3(s, 3, O_CLOEXEC) < 0)
                child_fail(c, "dup3", "sync", errno);
        c->sync_fd = 3;
        if (syscall(SYS_close_range, 4U, ~0U, 0U) < 0) {
                for (int fd = 4; fd < 65536; fd++)
                        close(fd);
        }
}

static void exec_workload(child_ctx *c, int err_fd) {
        const char *const *argv = c->spec->argv;
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
                for (size_t i = 0; i < OSM_ARRAY_SIZE(dirs); i++) {
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

/* pid 1 of the sandbox: start the workload, forward signals, reap, report. */
static OSM_NORETURN void run_init(child_ctx *c) {
        static const int fwd[] = { SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 };
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGCHLD);
        for (size_t i = 0; i < OSM_ARRAY_SIZE(fwd); i++)
                sigaddset(&set, fwd[i]);
        sigprocmask(SIG_BLOCK, &set, NULL);
        /* pid 1 of a namespace drops signals that have the default action. */
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = noop_handler;
        for (size_t i = 0; i < OSM_ARRAY_SIZE(fwd); i++)
                sigaction(fwd[i], &sa, NULL);

        int ep[2];
        if (pipe2(ep, O_CLOEXEC) < 0)
                child_fail(c, "pipe2", NULL, errno);
        /* A raw clone, not fork(): glibc's fork() runs atfork handlers and takes malloc
         * locks, which a copy of a multithreaded daemon may find held forever. */
        pid_t child = (pid_t) syscall(SYS_clone, (unsigned long) SIGCHLD, NULL, NULL, NULL, NULL);
        if (child < 0)
                child_fail(c, "clone", "(workload)", errno);
        if (child == 0) {
                close(ep[0]);
                /* Handlers are reset by exec; ignored signals would stay ignored. */
                sa.sa_handler = SIG_DFL;
                for (size_t i = 0; i < OSM_ARRAY_SIZE(fwd); i++)
                        sigaction(fwd[i], &sa, NULL);
                close(c->sync_fd);
                exec_workload(c, ep[1]);
        }
        close(ep[1]);
        int e = 0;
        ssize_t n;
        while ((n = read(ep[0], &e, sizeof(e))) < 0 && errno == EINTR)
                ;
        close(ep[0]);
        if (n == sizeof(e)) {
                send_msg(c->sync_fd, MSG_ERROR, e, 0, "execve", c->spec->argv[0]);
                _exit(127);
        }
        send_msg(c->sync_fd, MSG_STARTED, 0, 0, NULL, NULL);

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
                        send_msg(c->sync_fd, MSG_EXIT, 0, st, NULL, NULL);
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

static int child_main(void *arg) {
        child_ctx *c = arg;
        close(c->parent_fd);
        wait_go(c);
        /* The skeleton's directories and files get their modes from here, not from the
         * daemon's umask (systemd units often run services with UMask=0077). */
        umask(022);

        if (!c->privileged && c->cgroupns && unshare(CLONE_NEWCGROUP) < 0)
                child_fail(c, "unshare", "CLONE_NEWCGROUP", errno);
        if (sethostname(c->hostname, strlen(c->hostname)) < 0)
                child_fail(c, "sethostname", NULL, errno);
        bring_up_loopback(c);
        /* Nothing we mount may propagate back to the host. */
        if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
                child_fail(c, "mount", "/ private", errno);
        for (size_t i = 0; i < c->n_ops; i++)
                run_op(c, &c->ops[i]);
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
                if (unshare(CLONE_NEWUSER) < 0)
                        child_fail(c, "unshare", "CLONE_NEWUSER", errno);
                send_msg(c->sync_fd, MSG_MAP_ME, 0, 0, NULL, NULL);
                wait_go(c);
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
        load_seccomp(c);
        run_init(c);
}

/* ---- parent side ---- */

static int ops_push(op **ops, size_t *n, size_t *cap, op o) {
        if (*n == *cap) {
                size_t nc = *cap ? *cap * 2 : 64;
                op *p = realloc(*ops, nc * sizeof(op));
                if (!p)
                        return -ENOMEM;
                *ops = p;
                *cap = nc;
        }
        (*ops)[(*n)++] = o;
        return 0;
}

static void ops_free(op *ops, size_t n) {
        for (size_t i = 0; i < n; i++) {
                free(ops[i].src);
                free(ops[i].dst);
                free(ops[i].data);
        }
        free(ops);
}

typedef struct builder {
        op *ops;
        size_t n, cap;
        int err;
        const char *root;   /* prefix of every dst */
} builder;

static char *dupcat(const char *a, const char *b) {
        char *s = NULL;
        return asprintf(&s, "%s%s", a, b ? b : "") < 0 ? NULL : s;
}

/* Add a step; dst is a path inside the sandbox ("/proc"), src a host path or content. */
static void add(builder *b, op_kind k, const char *src, const char *dst, const char *fstype,
                unsigned long flags, const char *data, mode_t mode, bool optional, const char *shown) {
        if (b->err)
                return;
        op o = { .kind = k, .optional = optional, .flags = flags, .mode = mode, .fstype = fstype, .shown = shown };
        o.dst = dupcat(b->root, dst);
        o.src = src ? strdup(src) : NULL;
        o.data = data ? strdup(data) : NULL;
        if (!o.dst || (src && !o.src) || (data && !o.data)) {
                free(o.dst);
                free(o.src);
                free(o.data);
                b->err = -ENOMEM;
                return;
        }
        if (ops_push(&b->ops, &b->n, &b->cap, o) < 0) {
                free(o.dst);
                free(o.src);
                free(o.data);
                b->err = -ENOMEM;
        }
}

/* mkdir -p of the parents of path (inside), then the path itself as a dir or file. */
static void add_mountpoint(builder *b, const char *path, bool dir) {
        char buf[4096];
        snprintf(buf, sizeof(buf), "%s", path);
        for (char *p = buf + 1; *p; p++)
                if (*p == '/') {
                        *p = 0;
                        add(b, OP_MKDIR, NULL, buf, NULL, 0, NULL, 0755, false, "mkdir");
                        *p = '/';
                }
        add(b, dir ? OP_MKDIR : OP_MKFILE, NULL, buf, NULL, 0, NULL, dir ? 0755 : 0644, false,
            dir ? "mkdir" : "create mount point");
}

/* A path inside the sandbox: absolute, no "..", no "//", not "/" itself. */
static bool inside_path_ok(const char *p) {
        if (!p || p[0] != '/' || p[1] == 0 || strlen(p) > 1024)
                return false;
        for (const char *s = p; *s; s++)
                if (*s == '/' && (s[1] == '/' || (s[1] == '.' && (s[2] == '/' || s[2] == 0)) ||
                                  (s[1] == '.' && s[2] == '.' && (s[3] == '/' || s[3] == 0))))
                        return false;
        return p[strlen(p) - 1] != '/';
}

static bool name_ok(const char *n) {
        size_t l = n ? strlen(n) : 0;
        if (l == 0 || l > 64 || strcmp(n, ".") == 0 || strcmp(n, "..") == 0)
                return false;
        for (size_t i = 0; i < l; i++)
                if (!((n[i] >= 'a' && n[i] <= 'z') || (n[i] >= 'A' && n[i] <= 'Z') ||
                      (n[i] >= '0' && n[i] <= '9') || n[i] == '.' || n[i] == '_' || n[i] == '-'))
                        return false;
        return true;
}

/* The mount points every root needs: made in the minimal root, or in the skeleton that
 * is laid over a bundle's rootfs. */
static void add_skeleton(builder *b, const osm_sandbox_spec *spec, const struct stat *bind_st) {
        static const char *const dirs[] = { "/proc", "/dev", "/tmp", "/data", "/run", "/etc" };
        for (size_t i = 0; i < OSM_ARRAY_SIZE(dirs); i++)
                add(b, OP_MKDIR, NULL, dirs[i], NULL, 0, NULL, 0755, false, "mkdir");
        for (size_t i = 0; i < spec->n_binds; i++)
                add_mountpoint(b, spec->binds[i].target, S_ISDIR(bind_st[i].st_mode));
}

static void add_etc(builder *b, const char *hostname) {
        char hosts[512];
        snprintf(hosts, sizeof(hosts), "127.0.0.1\tlocalhost\n::1\tlocalhost\n127.0.1.1\t%s\n", hostname);
        add(b, OP_WRITE, "root:x:0:0:root:/data:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
            "/etc/passwd", NULL, 0, NULL, 0644, false, "write /etc/passwd");
        add(b, OP_WRITE, "root:x:0:\nnogroup:x:65534:\n", "/etc/group", NULL, 0, NULL, 0644, false,
            "write /etc/group");
        add(b, OP_WRITE, hosts, "/etc/hosts", NULL, 0, NULL, 0644, false, "write /etc/hosts");
        add(b, OP_WRITE, "passwd: files\ngroup: files\nhosts: files\n", "/etc/nsswitch.conf", NULL, 0,
            NULL, 0644, false, "write /etc/nsswitch.conf");
}

/* Build the list of setup steps for spec. root_out is where pivot_root goes. */
static int build_ops(const osm_sandbox *sb, const osm_sandbox_spec *spec, const struct stat *bind_st,
                     const char *hostname, uint64_t tmp_size, builder *b, char **root_out) {
        char data[128];
        const char *stage = sb->stage_dir;
        b->root = "";
        add(b, OP_MOUNT, "tmpfs", stage, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m", 0, false,
            "mount tmpfs on the stage");
        _cleanup_free_ char *root = NULL;
        if (!spec->root) {
                /* The minimal root: the stage tmpfs itself, made read-only at the end. */
                root = strdup(stage);
                if (!root)
                        return -ENOMEM;
                b->root = root;
                add(b, OP_MKDIR, NULL, "/usr", NULL, 0, NULL, 0755, false, "mkdir");
                add(b, OP_BIND, "/usr", "/usr", NULL, MS_RDONLY | MS_NOSUID | MS_NODEV, NULL, 0, false,
                    "bind /usr");
                /* merged-/usr: /bin, /lib… are symlinks into /usr on the host. */
                static const char *const links[] = { "bin", "sbin", "lib", "lib32", "lib64", "libx32" };
                for (size_t i = 0; i < OSM_ARRAY_SIZE(links); i++) {
                        char host[32], target[32], inside[32];
                        snprintf(host, sizeof(host), "/%s", links[i]);
                        snprintf(target, sizeof(target), "usr/%s", links[i]);
                        struct stat st;
                        if (stat(host, &st) < 0 || !S_ISDIR(st.st_mode))
                                continue;
                        snprintf(inside, sizeof(inside), "/%s", links[i]);
                        add(b, OP_SYMLINK, target, inside, NULL, 0, NULL, 0, false, "symlink");
                }
                add_skeleton(b, spec, bind_st);
                add_etc(b, hostname);
                if (spec->network && sb->net.bridge) {
                        /* Name resolution as the host has it. */
                        _cleanup_free_ char *resolv = NULL;
                        if (osm_read_file("/etc/resolv.conf", 8192, &resolv, NULL) == 0)
                                add(b, OP_WRITE, resolv, "/etc/resolv.conf", NULL, 0, NULL, 0644, false,
                                    "write /etc/resolv.conf");
                }
        } else {
                /* A bundle's rootfs: overlaid read-only with a skeleton on top that holds
                 * the mount points. The skeleton wins over the bundle, so a bundle cannot
                 * turn /proc or /data into a symlink that sends our mounts elsewhere. */
                _cleanup_free_ char *skel = dupcat(stage, "/skel");
                root = dupcat(stage, "/root");
                if (!skel || !root)
                        return -ENOMEM;
                add(b, OP_MKDIR, NULL, skel, NULL, 0, NULL, 0755, false, "mkdir skeleton");
                add(b, OP_MKDIR, NULL, root, NULL, 0, NULL, 0755, false, "mkdir root");
                b->root = skel;
                add_skeleton(b, spec, bind_st);
                b->root = "";
                _cleanup_free_ char *opts = NULL;
                if (asprintf(&opts, "lowerdir=%s:%s", skel, spec->root) < 0)
                        return -ENOMEM;
                if (strchr(spec->root, ',') || strchr(spec->root, ':'))
                        return -EINVAL;   /* cannot be expressed in overlay options */
                add(b, OP_MOUNT, "overlay", root, "overlay", MS_RDONLY | MS_NOSUID | MS_NODEV, opts, 0,
                    false, "mount overlay of the bundle rootfs");
                b->root = root;
        }

        add(b, OP_MOUNT, "proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, 0, false,
            "mount /proc");
        /* Read-only where a process could otherwise reach kernel knobs (they belong to
         * host root and are not writable from the user namespace anyway). */
        static const char *const proc_ro[] = { "/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus" };
        for (size_t i = 0; i < OSM_ARRAY_SIZE(proc_ro); i++) {
                _cleanup_free_ char *src = dupcat(b->root, proc_ro[i]);
                if (!src)
                        return -ENOMEM;
                add(b, OP_BIND, src, proc_ro[i], NULL, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, 0,
                    true, "protect /proc");
        }

        /* Kernel information a workload has no business reading: /dev/null over the
         * files, an empty read-only tmpfs over the directories (as other runtimes do). */
        static const char *const proc_null[] = { "/proc/kcore", "/proc/keys", "/proc/timer_list",
                                                 "/proc/sched_debug", "/proc/latency_stats", "/proc/kallsyms" };
        for (size_t i = 0; i < OSM_ARRAY_SIZE(proc_null); i++)
                add(b, OP_BIND, "/dev/null", proc_null[i], NULL, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL,
                    0, true, "mask /proc");
        static const char *const proc_dirs[] = { "/proc/acpi", "/proc/scsi", "/proc/asound" };
        for (size_t i = 0; i < OSM_ARRAY_SIZE(proc_dirs); i++)
                add(b, OP_MOUNT, "tmpfs", proc_dirs[i], "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                    "size=0", 0, true, "mask /proc");

        /* /dev: a small tmpfs with the harmless nodes bind-mounted from the host (mknod
         * is refused in a user namespace), a private devpts and the granted devices. */
        add(b, OP_MOUNT, "tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=64k", 0, false,
            "mount /dev");
        static const char *const nodes[] = { "/dev/null", "/dev/zero", "/dev/full", "/dev/random",
                                             "/dev/urandom", "/dev/tty" };
        for (size_t i = 0; i < OSM_ARRAY_SIZE(nodes); i++) {
                add(b, OP_MKFILE, NULL, nodes[i], NULL, 0, NULL, 0666, false, "create");
                add(b, OP_BIND, nodes[i], nodes[i], NULL, MS_NOSUID | MS_NOEXEC, NULL, 0, false, "bind device");
        }
        for (size_t i = 0; i < spec->n_devices; i++) {
                add(b, OP_MKFILE, NULL, spec->devices[i], NULL, 0, NULL, 0600, false, "create");
                add(b, OP_BIND, spec->devices[i], spec->devices[i], NULL, MS_NOSUID | MS_NOEXEC, NULL, 0, false,
                    "bind granted device");
        }
        add(b, OP_MKDIR, NULL, "/dev/pts", NULL, 0, NULL, 0755, false, "mkdir");
        add(b, OP_MOUNT, "devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=620",
            0, false, "mount /dev/pts");
        add(b, OP_SYMLINK, "pts/ptmx", "/dev/ptmx", NULL, 0, NULL, 0, false, "symlink");
        add(b, OP_MKDIR, NULL, "/dev/shm", NULL, 0, NULL, 01777, false, "mkdir");
        snprintf(data, sizeof(data), "mode=1777,size=%llu", (unsigned long long) tmp_size);
        add(b, OP_MOUNT, "tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, data, 0, false,
            "mount /dev/shm");
        add(b, OP_SYMLINK, "/proc/self/fd", "/dev/fd", NULL, 0, NULL, 0, false, "symlink");
        add(b, OP_SYMLINK, "/proc/self/fd/0", "/dev/stdin", NULL, 0, NULL, 0, false, "symlink");
        add(b, OP_SYMLINK, "/proc/self/fd/1", "/dev/stdout", NULL, 0, NULL, 0, false, "symlink");
        add(b, OP_SYMLINK, "/proc/self/fd/2", "/dev/stderr", NULL, 0, NULL, 0, false, "symlink");
        add(b, OP_REMOUNT, NULL, "/dev", NULL, MS_RDONLY | MS_NOSUID | MS_NOEXEC, NULL, 0, false,
            "remount /dev read-only");

        add(b, OP_MOUNT, "tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, data, 0, false,
            "mount /tmp");
        if (spec->data_dir)
                add(b, OP_BIND, spec->data_dir, "/data", NULL, MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, 0, false,
                    "bind /data");
        for (size_t i = 0; i < spec->n_binds; i++)
                add(b, OP_BIND, spec->binds[i].source, spec->binds[i].target, NULL,
                    MS_NOSUID | MS_NODEV | (spec->binds[i].writable ? 0 : MS_RDONLY), NULL, 0, false,
                    "bind");
        if (!spec->root)
                add(b, OP_REMOUNT, NULL, "", NULL, MS_RDONLY | MS_NOSUID | MS_NODEV, NULL, 0, false,
                    "remount the root read-only");
        *root_out = steal_pointer(&root);
        return b->err;
}

static uint64_t pick(uint64_t v, uint64_t def) {
        return v ? v : def;
}

static void set_rlim(struct rlimit *rl, uint64_t v) {
        rl->rlim_cur = rl->rlim_max = v == UINT64_MAX ? RLIM_INFINITY : (rlim_t) v;
}

static int write_proc(pid_t pid, const char *file, const char *s) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/%s", (int) pid, file);
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        size_t n = strlen(s);
        ssize_t w = write(fd, s, n);
        if (w < 0)
                return -errno;
        return (size_t) w == n ? 0 : -EIO;
}

static void set_err(char *err, size_t errlen, const char *fmt, ...) OSM_PRINTF(3, 4);
static void set_err(char *err, size_t errlen, const char *fmt, ...) {
        if (!err || !errlen)
                return;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
}

/* clone3 with the namespaces and a pidfd; clone(2) where clone3 is missing. With cgfd
 * >= 0 the child is born in that cgroup v2 directory (CLONE_INTO_CGROUP: no migration,
 * which would wait for an RCU grace period); *into_cg says whether that happened (a
 * kernel < 5.7 or a refused cgroup falls back to a plain clone, and the caller moves
 * the child). Returns the pid in the parent; the child runs fn and never returns. */
static pid_t clone_sandbox(int (*fn)(void *), void *arg, unsigned long ns, int cgfd, bool *into_cg, int *pidfd) {
        struct clone_args ca;
        memset(&ca, 0, sizeof(ca));
        ca.flags = ns | CLONE_PIDFD;
        ca.pidfd = (uint64_t) (uintptr_t) pidfd;
        ca.exit_signal = SIGCHLD;
        long pid = -1;
        *into_cg = false;
        if (cgfd >= 0) {
                ca.flags |= CLONE_INTO_CGROUP;
                ca.cgroup = (uint64_t) cgfd;
                pid = syscall(SYS_clone3, &ca, sizeof(ca));
                if (pid >= 0)
                        *into_cg = true;
                ca.flags &= ~(uint64_t) CLONE_INTO_CGROUP;
                ca.cgroup = 0;
        }
        if (pid < 0)
                pid = syscall(SYS_clone3, &ca, sizeof(ca));
        if (pid < 0 && errno == ENOSYS) {
                /* Same argument order for the first three on every architecture. */
                pid = syscall(SYS_clone, (ns | CLONE_PIDFD | SIGCHLD), NULL, pidfd,
                              NULL, NULL);
                if (pid < 0 && errno == EINVAL) {
                        *pidfd = -1;
                        pid = syscall(SYS_clone, (ns | SIGCHLD), NULL, NULL, NULL, NULL);
                }
        }
        if (pid == 0)
                _exit(fn(arg));
        return (pid_t) pid;
}

static void kill_and_reap(pid_t pid, int pidfd) {
        if (pidfd >= 0)
                syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
        else
                kill(pid, SIGKILL);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                ;
}

static uint64_t mono_us(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000ULL + (uint64_t) ts.tv_nsec / 1000;
}

/* Map uid/gid 0..count-1 inside to uid_base… on the host (privileged), or 0 to the
 * daemon's own ids (unprivileged: the only map it may write). */
static int write_maps(pid_t pid, bool privileged, const osm_sandbox *sb) {
        char map[128];
        int r;
        if (privileged) {
                snprintf(map, sizeof(map), "0 %llu %llu\n", (unsigned long long) sb->uid_base,
                         (unsigned long long) sb->uid_count);
                r = write_proc(pid, "uid_map", map);
                if (r == 0)
                        r = write_proc(pid, "gid_map", map);
                return r;
        }
        snprintf(map, sizeof(map), "0 %u 1\n", (unsigned) geteuid());
        r = write_proc(pid, "uid_map", map);
        if (r == 0)
                r = write_proc(pid, "setgroups", "deny");
        snprintf(map, sizeof(map), "0 %u 1\n", (unsigned) getegid());
        if (r == 0)
                r = write_proc(pid, "gid_map", map);
        return r;
}

static int send_go(osm_sandbox_proc *p) {
        return write(p->sync_fd, "g", 1) == 1 ? 0 : -errno;
}

/* Wait for a message of type want from the child; an error message, the child's death
 * or the deadline fail with err filled in. */
static int wait_msg(osm_sandbox_proc *p, int want, uint64_t deadline, char *err, size_t errlen) {
        struct pollfd pfd = { .fd = p->sync_fd, .events = POLLIN };
        for (;;) {
                uint64_t now = mono_us();
                int left = now >= deadline ? 0 : (int) ((deadline - now) / 1000);
                int pr = poll(&pfd, 1, left);
                if (pr < 0 && errno == EINTR)
                        continue;
                if (pr <= 0) {
                        set_err(err, errlen, "the sandbox did not start within %d ms", SPAWN_TIMEOUT_MS);
                        return -ETIMEDOUT;
                }
                sync_msg m;
                ssize_t n = recv(p->sync_fd, &m, sizeof(m), 0);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n == (ssize_t) sizeof(m) && m.type == want)
                        return 0;
                if (n == (ssize_t) sizeof(m) && m.type == MSG_ERROR) {
                        m.step[sizeof(m.step) - 1] = 0;
                        set_err(err, errlen, "%s: %s", m.step, strerror(m.err));
                        return m.err > 0 ? -m.err : -EIO;
                }
                set_err(err, errlen, "the sandbox's init died while starting");
                return -ECHILD;
        }
}

void osm_sandbox_spec_init(osm_sandbox_spec *spec) {
        memset(spec, 0, sizeof(*spec));
        spec->stdin_fd = spec->stdout_fd = spec->stderr_fd = -1;
}

static int check_spec(const osm_sandbox *sb, const osm_sandbox_spec *spec, struct stat *bind_st, char *err,
                      size_t errlen) {
        if (!name_ok(spec->name)) {
                set_err(err, errlen, "invalid instance name");
                return -EINVAL;
        }
        size_t n = 0;
        while (spec->argv && spec->argv[n])
                n++;
        if (n == 0 || n > OSM_SANDBOX_MAX_ARGS || !*spec->argv[0]) {
                set_err(err, errlen, "argv: empty or more than %d arguments", OSM_SANDBOX_MAX_ARGS);
                return -EINVAL;
        }
        if (spec->n_binds > OSM_SANDBOX_MAX_BINDS || spec->n_devices > OSM_SANDBOX_MAX_DEVICES) {
                set_err(err, errlen, "too many bind mounts or devices");
                return -E2BIG;
        }
        static const char *const reserved[] = { "/proc", "/dev", "/tmp", "/data", "/usr", "/etc" };
        for (size_t i = 0; i < spec->n_binds; i++) {
                const osm_sandbox_bind *bd = &spec->binds[i];
                if (!bd->source || bd->source[0] != '/' || !inside_path_ok(bd->target)) {
                        set_err(err, errlen, "bind %zu: source must be absolute, target absolute without '..'", i);
                        return -EINVAL;
                }
                for (size_t r = 0; r < OSM_ARRAY_SIZE(reserved); r++) {
                        size_t l = strlen(reserved[r]);
                        if (strncmp(bd->target, reserved[r], l) == 0 &&
                            (bd->target[l] == 0 || bd->target[l] == '/')) {
                                set_err(err, errlen, "bind %s: inside a reserved directory", bd->target);
                                return -EINVAL;
                        }
                }
                if (stat(bd->source, &bind_st[i]) < 0) {
                        int e = errno;
                        set_err(err, errlen, "bind %s: %s", bd->source, strerror(e));
                        return -e;
                }
        }
        for (size_t i = 0; i < spec->n_devices; i++) {
                struct stat st;
                const char *d = spec->devices[i];
                if (!d || strncmp(d, "/dev/", 5) != 0 || !inside_path_ok(d) || strchr(d + 5, '/') ||
                    stat(d, &st) < 0 || !(S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode))) {
                        set_err(err, errlen, "device %s: not a device node directly under /dev", d ? d : "(null)");
                        return -EINVAL;
                }
        }
        if (spec->root) {
                struct stat st;
                if (spec->root[0] != '/' || stat(spec->root, &st) < 0 || !S_ISDIR(st.st_mode)) {
                        set_err(err, errlen, "root %s: not a directory", spec->root);
                        return -ENOTDIR;
                }
        }
        if (spec->cwd && !(spec->cwd[0] == '/')) {
                set_err(err, errlen, "cwd must be absolute");
                return -EINVAL;
        }
        if (spec->hostname && (strlen(spec->hostname) == 0 || strlen(spec->hostname) > 63)) {
                set_err(err, errlen, "hostname: 1 to 63 characters");
                return -EINVAL;
        }
        uint64_t count = sb->privileged ? sb->uid_count : 1;
        if (spec->uid >= count || spec->gid >= count) {
                set_err(err, errlen, "uid/gid %u/%u outside the mapped range of %llu ids", (unsigned) spec->uid,
                        (unsigned) spec->gid, (unsigned long long) count);
                return -ERANGE;
        }
        if (spec->network && sb->net.bridge && !sb->privileged) {
                set_err(err, errlen, "network: joining bridge %s needs a privileged osmosed", sb->net.bridge);
                return -EPERM;
        }
        return 0;
}

/* Create the data dir if missing and give it to the sandbox's uid. */
static int prepare_data_dir(const osm_sandbox *sb, const osm_sandbox_spec *spec, char *err, size_t errlen) {
        if (!spec->data_dir)
                return 0;
        if (mkdir(spec->data_dir, 0700) < 0 && errno != EEXIST) {
                int e = errno;
                set_err(err, errlen, "data dir %s: %s", spec->data_dir, strerror(e));
                return -e;
        }
        struct stat st;
        if (lstat(spec->data_dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
                set_err(err, errlen, "data dir %s: not a directory", spec->data_dir);
                return -ENOTDIR;
        }
        if (sb->privileged) {
                uid_t u = (uid_t) (sb->uid_base + spec->uid);
                gid_t g = (gid_t) (sb->uid_base + spec->gid);
                if ((st.st_uid != u || st.st_gid != g) && chown(spec->data_dir, u, g) < 0) {
                        int e = errno;
                        set_err(err, errlen, "chown data dir: %s", strerror(e));
                        return -e;
                }
        }
        return 0;
}

int osm_sandbox_spawn(osm_sandbox *sb, const osm_sandbox_spec *spec, osm_sandbox_proc **out, char *err,
                      size_t errlen) {
        struct stat bind_st[OSM_SANDBOX_MAX_BINDS];
        int r, cgfd = -1;
        bool into_cg = false;
        set_err(err, errlen, "%s", "");
        if (!sb->feat.userns) {
                set_err(err, errlen, "sandboxes cannot be made on this host: %s", sb->feat.detail);
                return -EOPNOTSUPP;
        }
        r = check_spec(sb, spec, bind_st, err, errlen);
        if (r < 0)
                return r;
        r = prepare_data_dir(sb, spec, err, errlen);
        if (r < 0)
                return r;

        const osm_seccomp_prog *prog;
        r = osm_seccomp_get(&sb->seccomp, spec->compat32 ? OSM_SECCOMP_COMPAT32 : 0, &prog);
        if (r < 0) {
                set_err(err, errlen, "seccomp policy: %s", strerror(-r));
                return r;
        }

        osm_sandbox_limits lim = spec->limits;
        lim.memory = pick(lim.memory, sb->defaults.memory);
        lim.pids = pick(lim.pids, sb->defaults.pids);
        lim.cpu_percent = pick(lim.cpu_percent, sb->defaults.cpu_percent);
        lim.tmp_size = pick(lim.tmp_size, sb->defaults.tmp_size);
        lim.nofile = pick(lim.nofile, sb->defaults.nofile);
        lim.file_size = pick(lim.file_size, sb->defaults.file_size);

        const char *hostname = spec->hostname ? spec->hostname : "osmose";
        builder b = { 0 };
        child_ctx c = { 0 };
        _cleanup_free_ char *root = NULL;
        r = build_ops(sb, spec, bind_st, hostname, lim.tmp_size == UINT64_MAX ? DEFAULT_TMP : lim.tmp_size,
                      &b, &root);
        if (r < 0) {
                ops_free(b.ops, b.n);
                set_err(err, errlen, "preparing mounts: %s", strerror(-r));
                return r;
        }

        osm_sandbox_proc *p = calloc(1, sizeof(*p));
        if (!p) {
                ops_free(b.ops, b.n);
                return -ENOMEM;
        }
        p->pid = -1;
        p->sb = sb;
        p->pidfd = -1;
        p->sync_fd = -1;
        p->limits = sb->feat;
        p->limits.detail[0] = 0;
        char why[200] = "";
        r = osm_cg_create(&sb->cg, spec->name, lim.memory, lim.pids, lim.cpu_percent, &p->cg, why,
                          sizeof(why));
        if (r < 0)
                goto fail;
        p->limits.memory = p->cg->mode[OSM_CG_MEMORY] ? p->cg->mode[OSM_CG_MEMORY] : OSM_LIMIT_RLIMIT;
        p->limits.pids = p->cg->mode[OSM_CG_PIDS] ? p->cg->mode[OSM_CG_PIDS] : OSM_LIMIT_RLIMIT;
        p->limits.cpu = p->cg->mode[OSM_CG_CPU];
        p->limits.io = p->cg->mode[OSM_CG_IO];
        if (*why)
                snprintf(p->limits.detail, sizeof(p->limits.detail), "%s", why);

        int sv[2];
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
                r = -errno;
                set_err(err, errlen, "socketpair: %s", strerror(-r));
                goto fail;
        }
        p->sync_fd = sv[0];

        c.spec = spec;
        c.prog = prog;
        c.sync_fd = sv[1];
        c.parent_fd = sv[0];
        c.ops = b.ops;
        c.n_ops = b.n;
        c.root = root;
        c.hostname = hostname;
        c.cwd = spec->cwd ? spec->cwd : spec->data_dir ? "/data" : "/";
        static const char *const env_data[] = { "PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/data", "TERM=dumb", NULL };
        static const char *const env_root[] = { "PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/", "TERM=dumb", NULL };
        c.envp = spec->envp ? spec->envp : spec->data_dir ? env_data : env_root;
        c.uid = spec->uid;
        c.gid = spec->gid;
        c.privileged = sb->privileged;
        c.cgroupns = sb->feat.cgroupns;
        c.last_cap = sb->last_cap;
        set_rlim(&c.rl_nofile, lim.nofile);
        set_rlim(&c.rl_fsize, lim.file_size);
        /* RLIMIT_NPROC counts every process of the host uid, across instances that share
         * it: only a fallback where the pids controller is missing. Same for RLIMIT_AS,
         * which counts address space, not memory: a fallback for the memory controller. */
        c.set_nproc = p->limits.pids == OSM_LIMIT_RLIMIT && lim.pids != UINT64_MAX;
        set_rlim(&c.rl_nproc, lim.pids);
        c.set_as = p->limits.memory == OSM_LIMIT_RLIMIT && lim.memory != UINT64_MAX;
        set_rlim(&c.rl_as, lim.memory);

        cgfd = osm_cg_v2_dirfd(p->cg);
        p->pid = clone_sandbox(child_main, &c, sb->privileged ? NS_FLAGS : NS_FLAGS | CLONE_NEWUSER, cgfd, &into_cg,
                               &p->pidfd);
        int clone_errno = errno;
        cgfd = osm_close(cgfd);
        close(sv[1]);
        ops_free(b.ops, b.n);
        b.ops = NULL;
        b.n = 0;
        if (p->pid < 0) {
                r = -clone_errno;
                p->pidfd = -1;
                set_err(err, errlen, "clone: %s", strerror(clone_errno));
                goto fail;
        }

        /* Unprivileged, the child waits for "go" until its ids are mapped and it sits in
         * its cgroups. Privileged, "go" comes at once: it builds its root while we move it
         * into its cgroups (a cgroup v1 migration waits for an RCU grace period, several
         * ms: better spent in parallel), then it unshares its user namespace and asks
         * for its id map; the second "go" lets it drop privileges and exec. It makes its
         * cgroup namespace only after that, once it is surely in its cgroups. */
        uint64_t deadline = mono_us() + SPAWN_TIMEOUT_MS * 1000ULL;
        if (!sb->privileged) {
                r = write_maps(p->pid, false, sb);
                if (r < 0) {
                        set_err(err, errlen, "writing the id maps: %s", strerror(-r));
                        goto fail_kill;
                }
                r = osm_cg_attach(p->cg, p->pid, into_cg);
                if (r < 0) {
                        set_err(err, errlen, "joining the cgroup: %s", strerror(-r));
                        goto fail_kill;
                }
        }
        r = send_go(p);
        if (r < 0) {
                set_err(err, errlen, "sync: %s", strerror(-r));
                goto fail_kill;
        }
        if (sb->privileged) {
                r = osm_cg_attach(p->cg, p->pid, into_cg);
                if (r < 0) {
                        set_err(err, errlen, "joining the cgroup: %s", strerror(-r));
                        goto fail_kill;
                }
                if (spec->network && sb->net.bridge) {
                        r = osm_net_attach(&sb->net, p->pid, sb->spawn_seq++, &p->net_addr, err, errlen);
                        if (r < 0)
                                goto fail_kill;
                }
                r = wait_msg(p, MSG_MAP_ME, deadline, err, errlen);
                if (r < 0)
                        goto fail_kill;
                r = write_maps(p->pid, true, sb);
                if (r < 0) {
                        set_err(err, errlen, "writing the id maps: %s", strerror(-r));
                        goto fail_kill;
                }
                r = send_go(p);
                if (r < 0) {
                        set_err(err, errlen, "sync: %s", strerror(-r));
                        goto fail_kill;
                }
        }
        r = wait_msg(p, MSG_STARTED, deadline, err, errlen);
        if (r < 0)
                goto fail_kill;
        fcntl(p->sync_fd, F_SETFL, O_NONBLOCK);
        *out = p;
        return 0;

fail_kill:
        kill_and_reap(p->pid, p->pidfd);
        p->reaped = true;
fail:
        ops_free(b.ops, b.n);
        osm_sandbox_proc_free(p);
        return r;
}

pid_t osm_sandbox_proc_pid(const osm_sandbox_proc *p) {
        return p->pid;
}

int osm_sandbox_proc_pidfd(const osm_sandbox_proc *p) {
        return p->pidfd;
}

osm_cgroup *osm_sandbox_proc_cgroup(const osm_sandbox_proc *p) {
        for (int c = 0; p->cg && c < OSM_CG_N; c++)
                if (p->cg->path[c])
                        return p->cg;
        return NULL;
}

const osm_sandbox_features *osm_sandbox_proc_limits(const osm_sandbox_proc *p) {
        return &p->limits;
}

int osm_sandbox_proc_kill(osm_sandbox_proc *p, int sig) {
        if (p->reaped)
                return -ESRCH;
        if (p->pidfd >= 0)
                return syscall(SYS_pidfd_send_signal, p->pidfd, sig, NULL, 0) < 0 ? -errno : 0;
        return kill(p->pid, sig) < 0 ? -errno : 0;
}

int osm_sandbox_proc_reap(osm_sandbox_proc *p, osm_sandbox_exit *out) {
        if (p->reaped)
                return -ECHILD;
        int st;
        struct rusage ru;
        pid_t w;
        while ((w = wait4(p->pid, &st, WNOHANG, &ru)) < 0 && errno == EINTR)
                ;
        if (w < 0)
                return -errno;
        if (w == 0)
                return -EAGAIN;
        p->reaped = true;
        memset(out, 0, sizeof(*out));
        out->status = st;
        out->rusage = ru;
        sync_msg m;
        ssize_t n;
        while ((n = recv(p->sync_fd, &m, sizeof(m), MSG_DONTWAIT)) == (ssize_t) sizeof(m))
                if (m.type == MSG_EXIT)
                        out->status = m.status;
        out->oom_killed = osm_cg_oom_killed(p->cg);
        return 0;
}

osm_sandbox_proc *osm_sandbox_proc_free(osm_sandbox_proc *p) {
        if (!p)
                return NULL;
        if (!p->reaped && p->pid > 0)
                kill_and_reap(p->pid, p->pidfd);
        osm_cg_destroy(p->cg);
        if (p->net_addr)
                osm_net_release(&p->sb->net, p->net_addr);
        osm_close(p->pidfd);
        osm_close(p->sync_fd);
        free(p);
        return NULL;
}

/* ---- the manager ---- */

const char *osm_limit_mode_name(osm_limit_mode m) {
        switch (m) {
        case OSM_LIMIT_RLIMIT: return "rlimit";
        case OSM_LIMIT_CGROUP1: return "cgroup1";
        case OSM_LIMIT_CGROUP2: return "cgroup2";
        default: return "none";
        }
}

/* Try the real thing once: a child in every namespace that makes a cgroup namespace and
 * loads the seccomp filter. Its exit code says what failed. */
enum { PROBE_CGROUPNS = 1, PROBE_SECCOMP = 2, PROBE_USERNS = 4 };
static const osm_seccomp_prog *probe_prog;
static int probe_child(void *arg) {
        const osm_seccomp_prog *prog = probe_prog;
        int res = 0;
        if (arg && unshare(CLONE_NEWUSER) < 0)
                return PROBE_USERNS;
        if (unshare(CLONE_NEWCGROUP) < 0)
                res |= PROBE_CGROUPNS;
        if (!prog || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
            syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog->allow) < 0)
                res |= PROBE_SECCOMP;
        return res;
}

static void detect(osm_sandbox *sb, const char *cg_name) {
        osm_sandbox_features *f = &sb->feat;
        memset(f, 0, sizeof(*f));
        const osm_seccomp_prog *prog = NULL;
        int sr = osm_seccomp_get(&sb->seccomp, 0, &prog);
        int pidfd = -1;
        probe_prog = prog;
        bool into_cg;
        pid_t pid = clone_sandbox(probe_child, sb->privileged ? (void *) sb : NULL,
                                  sb->privileged ? NS_FLAGS : NS_FLAGS | CLONE_NEWUSER, -1, &into_cg, &pidfd);
        if (pid < 0) {
                snprintf(f->detail, sizeof(f->detail), "no user namespace: clone: %s", strerror(errno));
        } else {
                int st = 0;
                while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
                        ;
                f->pidfd = pidfd >= 0;
                int code = WIFEXITED(st) ? WEXITSTATUS(st) : 0xff;
                f->userns = !(code & PROBE_USERNS);
                if (!f->userns)
                        snprintf(f->detail, sizeof(f->detail), "no user namespace: unshare failed");
                f->cgroupns = !(code & PROBE_CGROUPNS);
                f->seccomp = sr == 0 && !(code & PROBE_SECCOMP);
                osm_close(pidfd);
        }
        osm_cg_host_detect(&sb->cg, cg_name);
        f->memory = sb->cg.mode[OSM_CG_MEMORY] ? sb->cg.mode[OSM_CG_MEMORY] : OSM_LIMIT_RLIMIT;
        f->pids = sb->cg.mode[OSM_CG_PIDS] ? sb->cg.mode[OSM_CG_PIDS] : OSM_LIMIT_RLIMIT;
        f->cpu = sb->cg.mode[OSM_CG_CPU];
        f->io = sb->cg.mode[OSM_CG_IO];
        if (!*f->detail && *sb->cg.why)
                snprintf(f->detail, sizeof(f->detail), "cgroups: %s", sb->cg.why);
        if (f->userns && !f->seccomp)
                snprintf(f->detail, sizeof(f->detail), "seccomp filters cannot be loaded");
}

static void set_limits_defaults(osm_sandbox *sb, const osm_sandbox_limits *d) {
        sb->defaults.memory = pick(d ? d->memory : 0, DEFAULT_MEMORY);
        sb->defaults.pids = pick(d ? d->pids : 0, DEFAULT_PIDS);
        sb->defaults.cpu_percent = pick(d ? d->cpu_percent : 0, UINT64_MAX);
        sb->defaults.tmp_size = pick(d ? d->tmp_size : 0, DEFAULT_TMP);
        sb->defaults.nofile = pick(d ? d->nofile : 0, DEFAULT_NOFILE);
        sb->defaults.file_size = pick(d ? d->file_size : 0, DEFAULT_FSIZE);
}

int osm_sandbox_reconfigure(osm_sandbox *sb, const osm_sandbox_options *opts) {
        if (!opts || (sb->privileged && opts->uid_count == 0) || opts->uid_base + opts->uid_count > UINT32_MAX)
                return -EINVAL;
        const char *net = opts->network ? opts->network : "none";
        if (strlen(net) >= IFNAMSIZ)
                return -EINVAL;
        char *network = strdup(net), *bridge = NULL;
        if (!network || (strcmp(net, "none") != 0 && *net && !(bridge = strdup(net)))) {
                free(network);
                return -ENOMEM;
        }
        free(sb->network);
        sb->network = network;
        free(sb->net.bridge);
        sb->net.bridge = bridge;   /* leases of running instances stay until they end */
        sb->uid_base = opts->uid_base;
        sb->uid_count = opts->uid_count;
        set_limits_defaults(sb, opts->defaults);
        return 0;
}

int osm_sandbox_new(const osm_sandbox_options *opts, osm_sandbox **out) {
        if (!opts || (opts->uid_count == 0 && geteuid() == 0) || opts->uid_base + opts->uid_count > UINT32_MAX)
                return -EINVAL;
        osm_sandbox *sb = calloc(1, sizeof(*sb));
        if (!sb)
                return -ENOMEM;
        set_limits_defaults(sb, opts->defaults);
        sb->uid_base = opts->uid_base;
        sb->uid_count = opts->uid_count;
        sb->privileged = geteuid() == 0;
        if (opts->stage_dir)
                sb->stage_dir = strdup(opts->stage_dir);
        else if (asprintf(&sb->stage_dir, "/tmp/.osmose-stage-%u", (unsigned) geteuid()) < 0)
                sb->stage_dir = NULL;
        sb->network = strdup(opts->network ? opts->network : "none");
        if (!sb->stage_dir || !sb->network) {
                osm_sandbox_free(sb);
                return -ENOMEM;
        }
        if (strcmp(sb->network, "none") != 0 && *sb->network) {
                sb->net.bridge = strdup(sb->network);
                if (!sb->net.bridge || strlen(sb->network) >= IFNAMSIZ) {
                        osm_sandbox_free(sb);
                        return -EINVAL;
                }
        }
        /* The stage is a mount point inside each sandbox's own mount namespace; on the
         * host it stays an empty directory, so mounting over it hides nothing a spec
         * could name as a source. */
        struct stat st;
        if ((mkdir(sb->stage_dir, 0755) < 0 && errno != EEXIST) || lstat(sb->stage_dir, &st) < 0 ||
            !S_ISDIR(st.st_mode) || st.st_uid != geteuid()) {
                osm_sandbox_free(sb);
                return -ENOTDIR;
        }
        sb->last_cap = CAP_LAST_CAP;
        char buf[16];
        _cleanup_close_ int fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
        ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
        if (n > 0) {
                buf[n] = 0;
                sb->last_cap = (unsigned) strtoul(buf, NULL, 10);
        }
        detect(sb, opts->cgroup_name ? opts->cgroup_name : "osmose");
        *out = sb;
        return 0;
}

osm_sandbox *osm_sandbox_free(osm_sandbox *sb) {
        if (!sb)
                return NULL;
        osm_cg_host_clear(&sb->cg);
        free(sb->net.bridge);
        osm_net_clear(&sb->net);
        osm_seccomp_cache_clear(&sb->seccomp);
        free(sb->stage_dir);
        free(sb->network);
        free(sb);
        return NULL;
}

const osm_sandbox_features *osm_sandbox_caps(const osm_sandbox *sb) {
        return &sb->feat;
}

json_t *osm_sandbox_features_json(const osm_sandbox_features *f) {
        json_t *o = json_object(), *lim = json_object(), *deg = json_array();
        if (!o || !lim || !deg) {
                json_decref(o);
                json_decref(lim);
                json_decref(deg);
                return NULL;
        }
        json_object_set_new(o, "userns", json_boolean(f->userns));
        json_object_set_new(o, "seccomp", json_boolean(f->seccomp));
        json_object_set_new(o, "pidfd", json_boolean(f->pidfd));
        json_object_set_new(o, "cgroupns", json_boolean(f->cgroupns));
        const struct {
                const char *name;
                osm_limit_mode m;
        } l[] = { { "memory", f->memory }, { "pids", f->pids }, { "cpu", f->cpu }, { "io", f->io } };
        for (size_t i = 0; i < OSM_ARRAY_SIZE(l); i++) {
                json_object_set_new(lim, l[i].name, json_string(osm_limit_mode_name(l[i].m)));
                if (l[i].m < OSM_LIMIT_CGROUP1)
                        json_array_append_new(deg, json_string(l[i].name));
        }
        json_object_set_new(o, "limits", lim);
        json_object_set_new(o, "degraded", deg);
        if (*f->detail)
                json_object_set_new(o, "detail", json_string(f->detail));
        return o;
}
