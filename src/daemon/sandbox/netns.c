/* netns.c: fresh namespaces made ahead by a thread of the daemon, so that making them is not in a launch's critical path: network namespaces (the costliest to make: every pernet subsystem's init) and, mapped, user namespaces.
 *
 * A network namespace made by unshare(CLONE_NEWNET) in a thread of a root daemon is what
 * CLONE_NEWNET at the init's clone makes: owned by the host's user namespace, only a
 * loopback interface. The thread brings that up, as the init does in a namespace of its
 * clone (a few hundred µs of the critical path otherwise, with the rtnl lock that a
 * namespace being made holds), steps back into the daemon's own namespace and keeps only
 * an fd; no process has been in it until an init joins it (setns) before it builds its
 * root.
 *
 * A user namespace is what the init's unshare(CLONE_NEWUSER) makes (a child of the
 * host's, owned by root, made with every capability), with the id map the daemon writes
 * for it: a thread cannot unshare one, so a helper clone (sharing the daemon's memory,
 * no signal at its exit, only raw system calls) is born in it, the thread writes its
 * uid and gid maps and opens it, and the helper exits. An init joins it (setns) once its
 * root is built, where it unshared one before, asked for its map and waited for the
 * answer: two wakeups of the daemon's main thread in the critical path. Only for inits
 * born in their cgroups (launcher.c: nothing to wait for before the cgroup namespace)
 * without a bridge (net.c's veth comes in while the init waits for its map).
 *
 * Every workload has its own host id range (workloads.c), so user namespaces are kept per
 * range: a few of each of the ranges launched lately (USER_RANGES, the least recently
 * launched giving way), where one range for all sent every launch of a building with
 * several workloads in turn down the slow path and threw the spares away each time.
 *
 * Each namespace is used once: the fd is handed to one launch and closed. Only for a root
 * daemon (setns needs CAP_SYS_ADMIN over the namespace's owner); otherwise, or when none
 * is ready, the init makes its own as before.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "build-config.h"
#include "osmose/util.h"
#include "daemon/sandbox/sandbox-internal.h"
#if HAVE_VALGRIND_H
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

#define NETNS_SPARES 2   /* launches in a row before one waits for the thread */
#define HELPER_STACK (16 * 1024)
#define USER_RANGES 4    /* id ranges (workloads) whose user namespaces are made ahead */

/* User namespaces mapped 0..count-1 to base.. on the host, made ahead for one range. */
typedef struct user_range {
        uint64_t base, count;
        uint64_t used;          /* when it was last asked for (the pool's clock) */
        int fds[NETNS_SPARES];
        size_t n;
} user_range;

struct osm_netns_pool {
        pid_t pid;              /* the process whose thread this is: a fork has none */
        pthread_t thread;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        bool quit, off;
        int fds[NETNS_SPARES];
        size_t n;
        /* user namespaces, per id range launched lately */
        bool user_off;
        user_range ranges[USER_RANGES];
        size_t n_ranges;
        uint64_t clock;         /* for user_range.used */
        void *stack;            /* the helper's */
};

/* A new network namespace as an fd, the calling thread back in home. -errno on failure;
 * -ENOTRECOVERABLE if the thread could not get back (it must then do nothing more). */
static int make_one(int home) {
        if (unshare(CLONE_NEWNET) < 0)
                return -errno;
        int e = 0;
        int fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                e = errno;
        else if (osm_sb_loopback_up(&e))
                fd = osm_close(fd);
        if (setns(home, CLONE_NEWNET) < 0) {
                osm_close(fd);
                return -ENOTRECOVERABLE;
        }
        return fd >= 0 ? fd : e ? -e : -EIO;
}

/* The helper, in the daemon's memory on its own stack: it waits, in its new user
 * namespace, until the thread has mapped and opened it (the pipe's EOF), and exits. Raw
 * system calls only, which touch nothing of the thread's (errno is set on failure only). */
static int helper_main(void *arg) {
        const int *pfd = arg;
        char b;
        syscall(SYS_close, pfd[1]);   /* its copy of the write end: the EOF is the thread's */
        syscall(SYS_read, pfd[0], &b, 1);
        syscall(SYS_exit, 0);
        return 0;
}

/* A new user namespace with the id map, as an fd; -errno on failure. */
static int make_user(osm_netns_pool *p, uint64_t base, uint64_t count) {
        int pfd[2];
        if (pipe2(pfd, O_CLOEXEC) < 0)
                return -errno;
        /* No exit signal: the main thread's SIGCHLD is not woken; reaped with __WCLONE. */
        pid_t pid = clone(helper_main, (char *) p->stack + HELPER_STACK, CLONE_VM | CLONE_NEWUSER, pfd);
        int r = pid < 0 ? -errno : 0;
        int fd = -1;
        if (r == 0)
                r = osm_sb_write_id_map(pid, base, count);
        if (r == 0) {
                char path[64];
                snprintf(path, sizeof path, "/proc/%d/ns/user", (int) pid);
                fd = open(path, O_RDONLY | O_CLOEXEC);
                if (fd < 0)
                        r = -errno;
        }
        close(pfd[1]);   /* the helper's read returns: it exits */
        close(pfd[0]);
        if (pid > 0)
                while (waitpid(pid, NULL, __WCLONE) < 0 && errno == EINTR)
                        ;
        return r < 0 ? r : fd;
}

/* The entry of a range, or NULL. With the lock. */
static user_range *range_find(osm_netns_pool *p, uint64_t base, uint64_t count) {
        for (size_t k = 0; k < p->n_ranges; k++)
                if (p->ranges[k].base == base && p->ranges[k].count == count)
                        return &p->ranges[k];
        return NULL;
}

/* The range launched most lately of those short of spares, or NULL. With the lock. */
static user_range *range_to_fill(osm_netns_pool *p) {
        user_range *best = NULL;
        for (size_t k = 0; k < p->n_ranges; k++)
                if (p->ranges[k].n < NETNS_SPARES && (!best || p->ranges[k].used > best->used))
                        best = &p->ranges[k];
        return best;
}

/* A range asked for now: its entry, made if new (in place of the one launched least
 * lately, whose namespaces go). With the lock. */
static user_range *range_use(osm_netns_pool *p, uint64_t base, uint64_t count) {
        user_range *r = range_find(p, base, count);
        if (!r && p->n_ranges < USER_RANGES)
                r = &p->ranges[p->n_ranges++];
        else if (!r) {
                r = &p->ranges[0];
                for (size_t k = 1; k < p->n_ranges; k++)
                        if (p->ranges[k].used < r->used)
                                r = &p->ranges[k];
        }
        if (r->base != base || r->count != count) {
                for (size_t k = 0; k < r->n; k++)
                        osm_close(r->fds[k]);
                *r = (user_range) { .base = base, .count = count };
        }
        r->used = ++p->clock;
        return r;
}

static void *pool_main(void *arg) {
        osm_netns_pool *p = arg;
        int home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
        pthread_mutex_lock(&p->lock);
        if (home < 0)
                p->off = true;
        while (!p->quit && !(p->off && p->user_off)) {
                bool net = !p->off && p->n < NETNS_SPARES;
                user_range *want = net || p->user_off ? NULL : range_to_fill(p);
                if (!net && !want) {
                        pthread_cond_wait(&p->cond, &p->lock);
                        continue;
                }
                uint64_t base = want ? want->base : 0, count = want ? want->count : 0;
                pthread_mutex_unlock(&p->lock);
                int fd = net ? make_one(home) : make_user(p, base, count);
                pthread_mutex_lock(&p->lock);
                if (fd == -ENOTRECOVERABLE)
                        p->off = p->user_off = true;
                else if (net && fd < 0)
                        p->off = true;   /* refused here (a container): launches clone theirs */
                else if (net)
                        p->fds[p->n++] = fd;
                else if (fd < 0)
                        p->user_off = true;   /* inits unshare theirs */
                else if (!(want = range_find(p, base, count)) || want->n == NETNS_SPARES)
                        osm_close(fd);   /* that range gave way to another meanwhile */
                else
                        want->fds[want->n++] = fd;
        }
        pthread_mutex_unlock(&p->lock);
        osm_close(home);
        return NULL;
}

osm_netns_pool *osm_netns_pool_new(uint64_t uid_base, uint64_t uid_count) {
        osm_netns_pool *p = calloc(1, sizeof *p);
        if (!p)
                return NULL;
        p->pid = getpid();
        if (uid_count)
                range_use(p, uid_base, uid_count);
        p->stack = mmap(NULL, HELPER_STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
        if (p->stack == MAP_FAILED) {
                p->stack = NULL;
                p->user_off = true;
        }
        /* Valgrind ends the whole process at a clone that shares memory without being a
         * thread (the helper's): under it (bench/control.sh counts the daemon's
         * instructions with callgrind) inits unshare their user namespaces themselves. */
        if (RUNNING_ON_VALGRIND)
                p->user_off = true;
        pthread_mutex_init(&p->lock, NULL);
        pthread_cond_init(&p->cond, NULL);
        int r = osm_sb_thread_start(&p->thread, 64 * 1024, pool_main, p);
        if (r != 0) {
                pthread_cond_destroy(&p->cond);
                pthread_mutex_destroy(&p->lock);
                if (p->stack)
                        munmap(p->stack, HELPER_STACK);
                free(p);
                return NULL;
        }
        return p;
}

osm_netns_pool *osm_netns_pool_free(osm_netns_pool *p) {
        if (!p)
                return NULL;
        if (p->pid != getpid()) {
                free(p);   /* a forked copy: the thread and its namespaces are the parent's */
                return NULL;
        }
        pthread_mutex_lock(&p->lock);
        p->quit = true;
        pthread_cond_broadcast(&p->cond);
        pthread_mutex_unlock(&p->lock);
        pthread_join(p->thread, NULL);
        for (size_t k = 0; k < p->n; k++)
                osm_close(p->fds[k]);
        for (size_t r = 0; r < p->n_ranges; r++)
                for (size_t k = 0; k < p->ranges[r].n; k++)
                        osm_close(p->ranges[r].fds[k]);
        if (p->stack)
                munmap(p->stack, HELPER_STACK);
        pthread_cond_destroy(&p->cond);
        pthread_mutex_destroy(&p->lock);
        free(p);
        return NULL;
}

/* The oldest of fds first (none waits for long), or -1. With the lock. */
static int take_locked(osm_netns_pool *p, int *fds, size_t *n) {
        if (*n == 0)
                return -1;
        int fd = fds[0];
        for (size_t k = 1; k < *n; k++)
                fds[k - 1] = fds[k];
        (*n)--;
        pthread_cond_broadcast(&p->cond);
        return fd;
}

int osm_netns_pool_take(osm_netns_pool *p) {
        if (!p || p->pid != getpid())
                return -1;
        pthread_mutex_lock(&p->lock);
        int fd = take_locked(p, p->fds, &p->n);
        pthread_mutex_unlock(&p->lock);
        return fd;
}

int osm_netns_pool_take_user(osm_netns_pool *p, uint64_t uid_base, uint64_t uid_count) {
        if (!p || p->pid != getpid())
                return -1;
        pthread_mutex_lock(&p->lock);
        user_range *r = range_use(p, uid_base, uid_count);
        int fd = take_locked(p, r->fds, &r->n);
        pthread_cond_broadcast(&p->cond);   /* a new range wants its first ones */
        pthread_mutex_unlock(&p->lock);
        return fd;
}
