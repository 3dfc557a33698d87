/* spawn.c: the parent side of making a sandbox: check the spec, clone into new namespaces, cgroups, id maps, the start handshake; then signal, reap, account. */
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <pthread.h>
#include <stddef.h>
#include <time.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif

#include "osmose/util.h"
#include "daemon/sandbox/sandbox-internal.h"

void osm_sb_heap_now(uintptr_t heap_start, void **heap, size_t *len) {
        uintptr_t brk_end = (uintptr_t) sbrk(0);
        *heap = NULL;
        *len = 0;
        if (heap_start && brk_end != (uintptr_t) -1 && brk_end > heap_start) {
                uintptr_t page = (uintptr_t) sysconf(_SC_PAGESIZE);
                uintptr_t lo = heap_start & ~(page - 1);
                *heap = (void *) lo;
                *len = ((brk_end + page - 1) & ~(page - 1)) - lo;
        }
}

static void set_rlim(struct rlimit *rl, uint64_t v) {
        rl->rlim_cur = rl->rlim_max = v == UINT64_MAX ? RLIM_INFINITY : (rlim_t) v;
}

static int write_proc(pid_t pid, const char *file, const char *s) {
        char dir[32];
        snprintf(dir, sizeof(dir), "/proc/%d", (int) pid);
        return osm_sb_write_attr(dir, file, s);
}

static pid_t clone_now(int (*fn)(void *), void *arg, unsigned long ns, int cgfd, bool *into_cg, int *pidfd) {
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

/* Every clone of the daemon's runs under this lock: an init cloned ahead is cloned without
 * the malloc heap (osm_sb_clone_bare), which the child of every other clone reads. */
static pthread_mutex_t clone_lock = PTHREAD_MUTEX_INITIALIZER;

pid_t osm_sb_clone(int (*fn)(void *), void *arg, unsigned long ns, int cgfd, bool *into_cg, int *pidfd) {
        pthread_mutex_lock(&clone_lock);
        pid_t pid = clone_now(fn, arg, ns, cgfd, into_cg, pidfd);
        int e = errno;
        pthread_mutex_unlock(&clone_lock);
        errno = e;
        return pid;
}

pid_t osm_sb_clone_bare(void *heap, size_t heap_len, int (*fn)(void *), void *arg, unsigned long ns, int *pidfd) {
        pthread_mutex_lock(&clone_lock);
        /* The child gets no copy of the heap at all: none of its page tables copied, and
         * none of the daemon's heap pages made copy-on-write, on which the daemon's next
         * write to each would fault (most of the ~85 page faults of its main thread a
         * launch, in perf). (AddressSanitizer's runtime may keep state there.) */
        bool bare = false;
#if !defined(__SANITIZE_ADDRESS__)
        bare = heap && madvise(heap, heap_len, MADV_DONTFORK) == 0;
#endif
        bool into_cg;
        pid_t pid = clone_now(fn, arg, ns, -1, &into_cg, pidfd);
        int e = errno;
        if (bare)
                (void) madvise(heap, heap_len, MADV_DOFORK);
        pthread_mutex_unlock(&clone_lock);
        errno = e;
        return pid;
}

/* Signal a child of ours by its pidfd, or by its pid where there is none or the kernel
 * (or valgrind) lacks pidfd_send_signal: an unreaped child keeps its pid, so the pid is
 * safe to use. 0 or -errno. */
static int signal_child(pid_t pid, int pidfd, int sig) {
        if (pidfd >= 0 && syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0) == 0)
                return 0;
        if (pidfd >= 0 && errno != ENOSYS)
                return -errno;
        return kill(pid, sig) < 0 ? -errno : 0;
}

int osm_sb_open_mntns(pid_t pid) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/ns/mnt", (int) pid);
        return open(path, O_RDONLY | O_CLOEXEC);
}

void osm_sb_kill_and_reap(pid_t pid, int pidfd) {
        (void) signal_child(pid, pidfd, SIGKILL);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                ;
}

static uint64_t mono_us(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000ULL + (uint64_t) ts.tv_nsec / 1000;
}

static uint32_t since(uint64_t t0) {
        uint64_t d = mono_us() - t0;
        return d ? (uint32_t) OSM_MIN(d, (uint64_t) UINT32_MAX) : 1;
}

/* The host id range of an instance: its own, or the sandbox's whole range. */
static uint64_t spec_uid_base(const osm_sandbox *sb, const osm_sandbox_spec *spec) {
        return spec->uid_count ? spec->uid_base : sb->uid_base;
}

static uint64_t spec_uid_count(const osm_sandbox *sb, const osm_sandbox_spec *spec) {
        return spec->uid_count ? spec->uid_count : sb->uid_count;
}

/* Map uid/gid 0..count-1 inside to uid_base… on the host (privileged), or 0 to the
 * daemon's own ids (unprivileged: the only map it may write). */
int osm_sb_write_id_map(pid_t pid, uint64_t base, uint64_t count) {
        char map[128];
        snprintf(map, sizeof(map), "0 %llu %llu\n", (unsigned long long) base, (unsigned long long) count);
        int r = write_proc(pid, "uid_map", map);
        return r == 0 ? write_proc(pid, "gid_map", map) : r;
}

static int write_maps(pid_t pid, bool privileged, const osm_sandbox *sb, const osm_sandbox_spec *spec) {
        char map[128];
        int r;
        if (privileged)
                return osm_sb_write_id_map(pid, spec_uid_base(sb, spec), spec_uid_count(sb, spec));
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
static int wait_msg(osm_sandbox_proc *p, int want, uint64_t deadline, sync_msg *out, osm_error *err) {
        struct pollfd pfd = { .fd = p->sync_fd, .events = POLLIN };
        for (;;) {
                uint64_t now = mono_us();
                int left = now >= deadline ? 0 : (int) ((deadline - now) / 1000);
                int pr = poll(&pfd, 1, left);
                if (pr < 0 && errno == EINTR)
                        continue;
                if (pr <= 0)
                        return osm_error_set(err, -ETIMEDOUT, 0, "the sandbox did not start within %d ms", SPAWN_TIMEOUT_MS);
                sync_msg m;
                ssize_t n = recv(p->sync_fd, &m, sizeof(m), 0);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n == (ssize_t) sizeof(m) && m.type == want) {
                        if (out)
                                *out = m;
                        return 0;
                }
                if (n == (ssize_t) sizeof(m) && m.type == MSG_ERROR) {
                        m.step[sizeof(m.step) - 1] = 0;
                        return osm_error_set(err, m.err > 0 ? -m.err : -EIO, 0, "%s: %s", m.step, strerror(m.err));
                }
                return osm_error_set(err, -ECHILD, 0, "the sandbox's init died while starting");
        }
}

/* ---- the plan of an init cloned ahead (launcher.c), sent on its sync socket ---- */

/* A bump allocator over a buffer: the plan's (child.c's osm_sb_plan_mem: the init
 * receives the plan at the same address; one launch writes into it at a time), or the
 * mapping of the steps an init runs ahead (osm_sb_ops_pack). */
typedef struct plan_buf {
        unsigned char *data;
        size_t cap, used;
} plan_buf;

static pthread_mutex_t plan_lock = PTHREAD_MUTEX_INITIALIZER;

/* n bytes of the buffer, 16-aligned; NULL when it is full. */
static void *plan_alloc(plan_buf *pb, size_t n) {
        size_t at = (pb->used + 15) & ~(size_t) 15;
        if (at > pb->cap || n > pb->cap - at)
                return NULL;
        pb->used = at + n;
        return pb->data + at;
}

static bool plan_str(plan_buf *pb, const char *s, const char **out) {
        *out = NULL;
        if (!s)
                return true;
        size_t n = strlen(s) + 1;
        char *d = plan_alloc(pb, n);
        if (d)
                memcpy(d, s, n);
        *out = d;
        return d != NULL;
}

static bool plan_mstr(plan_buf *pb, const char *s, char **out) {
        const char *d;
        bool ok = plan_str(pb, s, &d);
        *out = (char *) d;
        return ok;
}

static bool plan_strv(plan_buf *pb, const char *const *v, const char *const **out) {
        size_t n = 0;
        while (v[n])
                n++;
        const char **d = plan_alloc(pb, (n + 1) * sizeof *d);
        *out = d;
        if (!d)
                return false;
        for (size_t k = 0; k < n; k++)
                if (!plan_str(pb, v[k], &d[k]))
                        return false;
        d[n] = NULL;
        return true;
}

/* A deep copy of ops[0..n) into the buffer. */
static bool plan_ops(plan_buf *pb, const op *src, size_t n, op **out) {
        op *ops = plan_alloc(pb, n * sizeof *ops + 1);
        *out = ops;
        bool ok = ops != NULL;
        for (size_t k = 0; ok && k < n; k++) {
                const op *o = &src[k];
                ops[k] = *o;
                ok = plan_str(pb, o->fstype, &ops[k].fstype) && plan_mstr(pb, o->src, &ops[k].src) &&
                     plan_mstr(pb, o->dst, &ops[k].dst) && plan_mstr(pb, o->data, &ops[k].data) &&
                     plan_str(pb, o->shown, &ops[k].shown);
        }
        return ok;
}

static size_t str_room(const char *s) {
        return s ? strlen(s) + 1 + 15 : 0;
}

int osm_sb_ops_pack(const op *ops, size_t n, osm_sb_ahead *out) {
        size_t len = n * sizeof *ops + 1 + 15;
        for (size_t k = 0; k < n; k++)
                len += str_room(ops[k].fstype) + str_room(ops[k].src) + str_room(ops[k].dst) +
                       str_room(ops[k].data) + str_room(ops[k].shown);
        void *mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (mem == MAP_FAILED)
                return -errno;
#if defined(__SANITIZE_ADDRESS__)
        /* A new mapping may take the addresses of an ended thread's stack, whose poisoned
         * shadow AddressSanitizer keeps: the mapping is all ours. */
        ASAN_UNPOISON_MEMORY_REGION(mem, len);
#endif
        plan_buf pb = { .data = mem, .cap = len };
        op *copy;
        if (!plan_ops(&pb, ops, n, &copy)) {
                munmap(mem, len);
                return -E2BIG;
        }
        /* Read only from here on, in the daemon and in every init that copies it. */
        (void) mprotect(mem, len, PROT_READ);
        *out = (osm_sb_ahead) { .ops = copy, .n = n, .mem = mem, .len = len };
        return 0;
}

void osm_sb_ahead_clear(osm_sb_ahead *a) {
        if (a->mem)
                munmap(a->mem, a->len);
        *a = (osm_sb_ahead) { 0 };
}

static bool plan_filter(plan_buf *pb, const struct sock_fprog *f, struct sock_fprog *out) {
        out->len = f->len;
        out->filter = plan_alloc(pb, f->len * sizeof *f->filter + 1);
        if (out->filter)
                memcpy(out->filter, f->filter, f->len * sizeof *f->filter);
        return out->filter != NULL;
}

/* A deep copy of c into the plan, its fds by their place in the message (fds[], *n_fds);
 * false if it does not fit. c->common is not copied: it points into the list made once
 * (osm_sb_ahead), at the same address in the init, a copy of the daemon. */
static bool plan_write(osm_sb_plan *plan, const child_ctx *c, int *fds, size_t *n_fds) {
        plan_buf b = { .data = plan->data, .cap = PLAN_MAX - offsetof(osm_sb_plan, data) }, *pb = &b;
        pthread_sigmask(SIG_SETMASK, NULL, &plan->mask);
        plan->unshare_net = c->netns_fd < 0;
        child_ctx *d = &plan->ctx;
        *d = *c;
        const int want[PLAN_FDS] = { c->stdio_fd[0], c->stdio_fd[1], c->stdio_fd[2], c->netns_fd, c->userns_fd };
        *n_fds = 0;
        for (int k = 0; k < PLAN_FDS; k++) {
                plan->fd_index[k] = want[k] >= 0 ? (int) *n_fds : -1;
                if (want[k] >= 0)
                        fds[(*n_fds)++] = want[k];
        }
        d->sync_fd = d->parent_fd = d->netns_fd = d->userns_fd = -1;
        d->heap = NULL;
        osm_seccomp_prog *prog = plan_alloc(pb, sizeof *prog);
        d->prog = prog;
        bool ok = prog && plan_ops(pb, c->ops, c->n_ops, &d->ops) &&
                  plan_filter(pb, &c->prog->allow, &prog->allow) &&
                  plan_filter(pb, &c->prog->deny, &prog->deny) && plan_strv(pb, c->argv, &d->argv) &&
                  plan_strv(pb, c->envp, &d->envp) && plan_mstr(pb, c->root, &d->root) &&
                  plan_str(pb, c->hostname, &d->hostname) && plan_str(pb, c->cwd, &d->cwd);
        plan->size = offsetof(osm_sb_plan, data) + pb->used;
        return ok;
}

/* Hand the init cloned ahead its plan: 0, or -errno (it is gone, or the plan too big). */
static int plan_send(osm_prefork *pre, const child_ctx *c) {
        int fds[PLAN_FDS];
        size_t n_fds;
        pthread_mutex_lock(&plan_lock);
        osm_sb_plan *plan = (osm_sb_plan *) osm_sb_plan_mem;
        if (!plan_write(plan, c, fds, &n_fds)) {
                pthread_mutex_unlock(&plan_lock);
                return -E2BIG;
        }
        union {
                char buf[CMSG_SPACE(sizeof fds)];
                struct cmsghdr align;
        } u;
        memset(&u, 0, sizeof u);
        struct iovec iov = { .iov_base = plan, .iov_len = plan->size };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        if (n_fds) {
                mh.msg_control = u.buf;
                mh.msg_controllen = CMSG_SPACE(n_fds * sizeof(int));
                struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
                cm->cmsg_level = SOL_SOCKET;
                cm->cmsg_type = SCM_RIGHTS;
                cm->cmsg_len = CMSG_LEN(n_fds * sizeof(int));
                memcpy(CMSG_DATA(cm), fds, n_fds * sizeof(int));
        }
        ssize_t n;
        while ((n = sendmsg(pre->sync_fd, &mh, MSG_NOSIGNAL)) < 0 && errno == EINTR)
                ;
        int r = n == (ssize_t) plan->size ? 0 : n < 0 ? -errno : -EIO;
        pthread_mutex_unlock(&plan_lock);
        return r;
}

void osm_sandbox_spec_init(osm_sandbox_spec *spec) {
        memset(spec, 0, sizeof(*spec));
        spec->stdin_fd = spec->stdout_fd = spec->stderr_fd = -1;
}

static int check_spec(const osm_sandbox *sb, const osm_sandbox_spec *spec, struct stat *bind_st, osm_error *err) {
        if (!osm_sb_name_ok(spec->name))
                return osm_error_set(err, -EINVAL, 0, "invalid instance name");
        size_t n = 0;
        while (spec->argv && spec->argv[n])
                n++;
        if (n == 0 || n > OSM_SANDBOX_MAX_ARGS || !*spec->argv[0])
                return osm_error_set(err, -EINVAL, 0, "argv: empty or more than %d arguments", OSM_SANDBOX_MAX_ARGS);
        if (spec->n_binds > OSM_SANDBOX_MAX_BINDS || spec->n_devices > OSM_SANDBOX_MAX_DEVICES)
                return osm_error_set(err, -E2BIG, 0, "too many bind mounts or devices");
        static const char *const reserved[] = { "/proc", "/dev", "/tmp", "/data", "/usr", "/etc" };
        for (size_t i = 0; i < spec->n_binds; i++) {
                const osm_sandbox_bind *bd = &spec->binds[i];
                if (!bd->source || bd->source[0] != '/' || !osm_sb_inside_path_ok(bd->target))
                        return osm_error_set(err, -EINVAL, 0, "bind %zu: source must be absolute, target absolute without '..'", i);
                for (size_t r = 0; r < OSM_ARRAY_SIZE(reserved); r++) {
                        size_t l = strlen(reserved[r]);
                        if (strncmp(bd->target, reserved[r], l) == 0 &&
                            (bd->target[l] == 0 || bd->target[l] == '/')) {
                                return osm_error_set(err, -EINVAL, 0, "bind %s: inside a reserved directory", bd->target);
                        }
                }
                if (stat(bd->source, &bind_st[i]) < 0) {
                        int e = errno;
                        return osm_error_set(err, -e, 0, "bind %s: %s", bd->source, strerror(e));
                }
        }
        for (size_t i = 0; i < spec->n_devices; i++) {
                struct stat st;
                const char *d = spec->devices[i];
                if (!d || strncmp(d, "/dev/", 5) != 0 || !osm_sb_inside_path_ok(d) || strchr(d + 5, '/') ||
                    stat(d, &st) < 0 || !(S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode))) {
                        return osm_error_set(err, -EINVAL, 0, "device %s: not a device node directly under /dev", d ? d : "(null)");
                }
        }
        if (spec->root) {
                struct stat st;
                if (spec->root[0] != '/' || stat(spec->root, &st) < 0 || !S_ISDIR(st.st_mode))
                        return osm_error_set(err, -ENOTDIR, 0, "root %s: not a directory", spec->root);
        }
        if (spec->cwd && !(spec->cwd[0] == '/'))
                return osm_error_set(err, -EINVAL, 0, "cwd must be absolute");
        if (spec->hostname && (strlen(spec->hostname) == 0 || strlen(spec->hostname) > 63))
                return osm_error_set(err, -EINVAL, 0, "hostname: 1 to 63 characters");
        if (spec->uid_count && (spec->uid_base < sb->uid_base || spec->uid_count > sb->uid_count ||
                                spec->uid_base - sb->uid_base > sb->uid_count - spec->uid_count)) {
                return osm_error_set(err, -ERANGE, 0, "uid range %llu+%llu outside [sandbox] uid-base/uid-count",
                        (unsigned long long) spec->uid_base, (unsigned long long) spec->uid_count);
        }
        if (spec->group && (!*spec->group || strlen(spec->group) > 40 ||
                            strspn(spec->group, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(spec->group))) {
                return osm_error_set(err, -EINVAL, 0, "invalid group name");
        }
        uint64_t count = sb->privileged ? spec_uid_count(sb, spec) : 1;
        if (spec->uid >= count || spec->gid >= count)
                return osm_error_set(err, -ERANGE, 0, "uid/gid %u/%u outside the mapped range of %llu ids", (unsigned) spec->uid,
                        (unsigned) spec->gid, (unsigned long long) count);
        if (spec->network && sb->net.bridge && !sb->privileged)
                return osm_error_set(err, -EPERM, 0, "network: joining bridge %s needs a privileged osmosed", sb->net.bridge);
        return 0;
}

/* Create the data dir if missing and give it to the sandbox's uid. */
static int prepare_data_dir(const osm_sandbox *sb, const osm_sandbox_spec *spec, osm_error *err) {
        if (!spec->data_dir)
                return 0;
        if (mkdir(spec->data_dir, 0700) < 0 && errno != EEXIST) {
                int e = errno;
                return osm_error_set(err, -e, 0, "data dir %s: %s", spec->data_dir, strerror(e));
        }
        struct stat st;
        if (lstat(spec->data_dir, &st) < 0 || !S_ISDIR(st.st_mode))
                return osm_error_set(err, -ENOTDIR, 0, "data dir %s: not a directory", spec->data_dir);
        if (sb->privileged) {
                uid_t u = (uid_t) (spec_uid_base(sb, spec) + spec->uid);
                gid_t g = (gid_t) (spec_uid_base(sb, spec) + spec->gid);
                if ((st.st_uid != u || st.st_gid != g) && chown(spec->data_dir, u, g) < 0) {
                        int e = errno;
                        return osm_error_set(err, -e, 0, "chown data dir: %s", strerror(e));
                }
        }
        return 0;
}

int osm_sandbox_spawn(osm_sandbox *sb, const osm_sandbox_spec *spec, osm_sandbox_proc **out, osm_error *err) {
        struct stat bind_st[OSM_SANDBOX_MAX_BINDS];
        int r, cgfd = -1, slot = -1;
        bool into_cg = false, cloned = false, rooting = false;
        osm_prefork pre = OSM_PREFORK_NONE;
        uint64_t t0 = mono_us();
        if (!sb->feat.userns)
                return osm_error_set(err, -EOPNOTSUPP, 0, "sandboxes cannot be made on this host: %s", sb->feat.detail);
        r = check_spec(sb, spec, bind_st, err);
        if (r < 0)
                return r;
        r = prepare_data_dir(sb, spec, err);
        if (r < 0)
                return r;

        const osm_seccomp_prog *prog;
        r = osm_seccomp_get(&sb->seccomp, spec->compat32 ? OSM_SECCOMP_COMPAT32 : 0, &prog);
        if (r < 0)
                return osm_error_set(err, r, 0, "seccomp policy: %s", strerror(-r));

        osm_sandbox_limits lim = spec->limits;
        lim.memory = osm_sb_pick(lim.memory, sb->defaults.memory);
        lim.pids = osm_sb_pick(lim.pids, sb->defaults.pids);
        lim.cpu_percent = osm_sb_pick(lim.cpu_percent, sb->defaults.cpu_percent);
        lim.tmp_size = osm_sb_pick(lim.tmp_size, sb->defaults.tmp_size);
        lim.nofile = osm_sb_pick(lim.nofile, sb->defaults.nofile);
        lim.file_size = osm_sb_pick(lim.file_size, sb->defaults.file_size);

        const char *hostname = spec->hostname ? spec->hostname : "osmose";
        builder b = { 0 };
        child_ctx c = { .netns_fd = -1, .userns_fd = -1 };
        _cleanup_free_ char *root = NULL;
        r = osm_sb_build_ops(sb, spec, bind_st, hostname, lim.tmp_size == UINT64_MAX ? DEFAULT_TMP : lim.tmp_size,
                      &b, &root);
        if (r < 0) {
                osm_sb_ops_free(b.ops, b.n);
                return osm_error_set(err, r, 0, "preparing mounts: %s", strerror(-r));
        }

        osm_sandbox_proc *p = calloc(1, sizeof(*p));
        if (!p) {
                osm_sb_ops_free(b.ops, b.n);
                return osm_error_set(err, -ENOMEM, 0, "out of memory");
        }
        p->pid = -1;
        p->sb = sb;
        p->pidfd = -1;
        p->sync_fd = -1;
        p->mntns_fd = -1;
        p->limits = sb->feat;
        p->limits.detail[0] = 0;
        char why[200] = "";
        char cgname[128];
        if (spec->group) {
                /* The group (a tenant) holds its instances' sum: its limits apply to all of
                 * them at once, in the kernel. Written at every spawn so a change applies. */
                osm_cgroup *grp = NULL;
                r = osm_cg_create(&sb->cg, spec->group, spec->group_limits.memory, spec->group_limits.pids,
                                  spec->group_limits.cpu_percent, &grp, why, sizeof(why));
                osm_cg_forget(grp);
                if (r < 0) {
                        osm_error_set(err, r, 0, "cgroup %s: %s", spec->group, strerror(-r));
                        goto fail;
                }
                snprintf(cgname, sizeof cgname, "%s/%s", spec->group, spec->name);
        } else {
                snprintf(cgname, sizeof cgname, "%s", spec->name);
                /* Made ahead, with a launcher thread in it that clones the init there. */
                p->cg = osm_launcher_take(sb->launcher, spec->name, lim.memory, lim.pids, lim.cpu_percent, &slot);
        }
        r = p->cg ? 0 : osm_cg_create(&sb->cg, cgname, lim.memory, lim.pids, lim.cpu_percent, &p->cg, why,
                                      sizeof(why));
        if (r < 0) {
                osm_error_set(err, r, 0, "cgroup %s: %s", cgname, strerror(-r));
                goto fail;
        }
        p->limits.memory = p->cg->mode[OSM_CG_MEMORY] ? p->cg->mode[OSM_CG_MEMORY] : OSM_LIMIT_RLIMIT;
        p->limits.pids = p->cg->mode[OSM_CG_PIDS] ? p->cg->mode[OSM_CG_PIDS] : OSM_LIMIT_RLIMIT;
        p->limits.cpu = p->cg->mode[OSM_CG_CPU];
        p->limits.io = p->cg->mode[OSM_CG_IO];
        if (*why)
                snprintf(p->limits.detail, sizeof(p->limits.detail), "%s", why);
        p->timing.cgroups = since(t0);

        c.argv = spec->argv;
        c.stdio_fd[0] = spec->stdin_fd;
        c.stdio_fd[1] = spec->stdout_fd;
        c.stdio_fd[2] = spec->stderr_fd;
        c.prog = prog;
        c.sync_fd = c.parent_fd = -1;
        c.common = b.common;
        c.n_common = b.n_common;
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
        osm_sb_heap_now(sb->heap_start, &c.heap, &c.heap_len);

        cgfd = osm_cg_v2_dirfd(p->cg);
        unsigned long ns = sb->privileged ? NS_FLAGS : NS_FLAGS | CLONE_NEWUSER;
        bool bridged = spec->network && sb->net.bridge;
        /* A network namespace made ahead, unless a bridge's veth goes into it (net.c
         * finds the namespace by the init's pid as soon as it is cloned). */
        c.netns_fd = bridged ? -1 : osm_netns_pool_take(sb->netns);
        if (c.netns_fd >= 0)
                ns &= ~(unsigned long) CLONE_NEWNET;
        /* A user namespace made ahead, mapped, for an init born in its cgroups (nothing to
         * wait for before its cgroup namespace) without a bridge's veth to wait for: it
         * joins it, without asking for a map and waiting for the answer. */
        if (slot >= 0 && cgfd < 0 && !bridged)
                c.userns_fd = osm_netns_pool_take_user(sb->netns, spec_uid_base(sb, spec), spec_uid_count(sb, spec));
        /* The init cloned ahead in the spare, if there is one (not for a bridge's veth,
         * which goes into a network namespace made at the clone): it gets its plan. */
        int clone_errno = 0;
        /* From here to its start this launch builds its root: the inits cloned ahead wait
         * with theirs. */
        osm_launcher_rooting(sb->launcher, true);
        rooting = true;
        if (slot >= 0 && cgfd < 0 && !bridged && osm_launcher_take_prefork(sb->launcher, slot, &pre)) {
                cloned = true;   /* the slot's thread has moved on */
                r = plan_send(&pre, &c);
                if (r == 0) {
                        p->pid = pre.pid;
                        p->pidfd = pre.pidfd;
                        p->sync_fd = pre.sync_fd;
                        p->mntns_fd = pre.mntns_fd;
                        osm_close(pre.mounts_fd);
                        p->timing.preforked = true;
                } else {
                        /* Killed while it waited, or a plan too big for one message: an
                         * init of our own instead, moved into the cgroups (the slot's
                         * thread is leaving them), which unshares its user namespace. */
                        osm_prefork_discard(&pre);
                        slot = -1;
                        c.userns_fd = osm_close(c.userns_fd);
                }
        }
        int sv[2] = { -1, -1 };
        if (!p->timing.preforked) {
                if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
                        r = -errno;
                        osm_error_set(err, r, 0, "socketpair: %s", strerror(-r));
                        cgfd = osm_close(cgfd);
                        c.netns_fd = osm_close(c.netns_fd);
                        c.userns_fd = osm_close(c.userns_fd);
                        goto fail;
                }
                p->sync_fd = sv[0];
                c.sync_fd = sv[1];
                c.parent_fd = sv[0];
                if (slot >= 0)
                        p->pid = osm_launcher_clone(sb->launcher, slot, osm_sb_child_main, &c, ns, cgfd, &into_cg,
                                                    &p->pidfd);
                else
                        p->pid = osm_sb_clone(osm_sb_child_main, &c, ns, cgfd, &into_cg, &p->pidfd);
                clone_errno = errno;
                cloned = true;
                osm_close(sv[1]);
        }
        p->timing.clone = since(t0);
        cgfd = osm_close(cgfd);
        c.netns_fd = osm_close(c.netns_fd);
        bool joins_userns = c.userns_fd >= 0;
        p->timing.userns_ahead = joins_userns;
        c.userns_fd = osm_close(c.userns_fd);
        osm_sb_ops_free(b.ops, b.n);
        b.ops = NULL;
        b.n = 0;
        if (p->pid < 0) {
                r = -clone_errno;
                p->pidfd = -1;
                osm_error_set(err, r, 0, "clone: %s", strerror(clone_errno));
                goto fail;
        }

        /* Unprivileged, the child waits for "go" until its ids are mapped and it sits in
         * its cgroups. Privileged, it waits for nothing: it builds its root from its
         * first instruction while we move it into its cgroups (a cgroup v1 migration waits for an RCU grace period, several
         * ms: better spent in parallel), then it unshares its user namespace and asks
         * for its id map (or joins one made ahead and mapped, netns.c, and asks nothing); the second
         * "go" lets it drop privileges and exec. It makes its
         * cgroup namespace only after that, once it is surely in its cgroups. */
        uint64_t deadline = mono_us() + SPAWN_TIMEOUT_MS * 1000ULL;
        if (!sb->privileged) {
                r = write_maps(p->pid, false, sb, spec);
                if (r < 0) {
                        osm_error_set(err, r, 0, "writing the id maps: %s", strerror(-r));
                        goto fail_kill;
                }
                r = osm_cg_attach(p->cg, p->pid, into_cg, slot >= 0);
                if (r < 0) {
                        osm_error_set(err, r, 0, "joining the cgroup: %s", strerror(-r));
                        goto fail_kill;
                }
                p->timing.joined = slot < 0 && osm_cg_v1_joined(p->cg) ? since(t0) : 0;
                r = send_go(p);
                if (r < 0) {
                        osm_error_set(err, r, 0, "sync: %s", strerror(-r));
                        goto fail_kill;
                }
        } else {
                r = osm_cg_attach(p->cg, p->pid, into_cg, slot >= 0);
                if (r < 0) {
                        osm_error_set(err, r, 0, "joining the cgroup: %s", strerror(-r));
                        goto fail_kill;
                }
                if (slot < 0 && osm_cg_v1_joined(p->cg)) {
                        p->timing.joined = since(t0);
                        struct pollfd ready = { .fd = p->sync_fd, .events = POLLIN };
                        p->timing.waited_for_join = poll(&ready, 1, 0) == 1;
                }
                if (spec->network && sb->net.bridge) {
                        r = osm_net_attach(&sb->net, p->pid, sb->spawn_seq++, &p->net_addr, err);
                        if (r < 0)
                                goto fail_kill;
                }
                if (!joins_userns) {
                        r = wait_msg(p, MSG_MAP_ME, deadline, NULL, err);
                        if (r < 0)
                                goto fail_kill;
                        p->timing.root = since(t0);
                        r = write_maps(p->pid, true, sb, spec);
                        if (r < 0) {
                                osm_error_set(err, r, 0, "writing the id maps: %s", strerror(-r));
                                goto fail_kill;
                        }
                        r = send_go(p);
                        if (r < 0) {
                                osm_error_set(err, r, 0, "sync: %s", strerror(-r));
                                goto fail_kill;
                        }
                }
        }
        sync_msg started;
        r = wait_msg(p, MSG_STARTED, deadline, &started, err);
        osm_launcher_rooting(sb->launcher, false);
        rooting = false;
        if (r < 0)
                goto fail_kill;
        p->timing.started = since(t0);
        /* Its mount namespace, held: the init's exit then does not wait for the teardown of
         * its mounts (an RCU grace period), which a launcher thread does once it has ended.
         * An init cloned ahead came with it. */
        if (p->mntns_fd < 0 && sb->launcher)
                p->mntns_fd = osm_sb_open_mntns(p->pid);
        p->timing.root_ahead = b.n_common && started.ahead == b.n_common;
        if (joins_userns && started.root_us > t0)
                p->timing.root = (uint32_t) OSM_MIN(started.root_us - t0, (uint64_t) UINT32_MAX);
        fcntl(p->sync_fd, F_SETFL, O_NONBLOCK);
        *out = p;
        return 0;

fail_kill:
        osm_sb_kill_and_reap(p->pid, p->pidfd);
        p->reaped = true;
fail:
        if (rooting)
                osm_launcher_rooting(sb->launcher, false);
        if (slot >= 0 && !cloned)
                osm_launcher_release(sb->launcher, slot);
        osm_sb_ops_free(b.ops, b.n);
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

const osm_sandbox_timing *osm_sandbox_proc_timing(const osm_sandbox_proc *p) {
        return &p->timing;
}

const osm_sandbox_features *osm_sandbox_proc_limits(const osm_sandbox_proc *p) {
        return &p->limits;
}

int osm_sandbox_proc_kill(osm_sandbox_proc *p, int sig) {
        if (p->reaped)
                return -ESRCH;
        return signal_child(p->pid, p->pidfd, sig);
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
                osm_sb_kill_and_reap(p->pid, p->pidfd);
        /* A launcher thread may still be leaving it: then it removes it. */
        osm_cg_destroy(osm_launcher_retire(p->sb->launcher, p->cg, &p->mntns_fd));
        osm_close(p->mntns_fd);
        if (p->net_addr)
                osm_net_release(&p->sb->net, p->net_addr);
        osm_close(p->pidfd);
        osm_close(p->sync_fd);
        free(p);
        return NULL;
}

