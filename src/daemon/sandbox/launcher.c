/* launcher.c: on a host whose controllers are in cgroup v1 hierarchies, threads of the daemon that wait in spare cgroups made ahead, each to clone one sandbox there: it is born in its cgroups, and no migration is in a launch's critical path.
 *
 * Why: a child joins a v1 cgroup by a migration (a write to cgroup.procs), and a migration
 * takes cgroup_threadgroup_rwsem for writing, which waits for an RCU grace period unless
 * another migration has just done so: on a quiet host, several ms per launch. cgroup v2
 * has CLONE_INTO_CGROUP; v1 has only inheritance: a task is born in the cgroups of the
 * thread that forks it. So a launcher thread moves itself (only itself: v1 "tasks") into
 * a spare cgroup of each v1 hierarchy ahead of time; a launch renames the spare to the
 * instance's name, writes its limits, and has the thread clone the sandbox's init. The
 * init is then in its cgroups, under its limits, from its first instruction, as with the
 * migration before its exec (spawn.c); the thread moves on into the next spare, and
 * removes the instance's directories once it has left them and the instance has ended.
 *
 * A root daemon's thread also clones the init ahead, once it sits in its spare: in its
 * pid, mount, ipc and uts namespaces (the network and user ones come from netns.c's made
 * ahead, or are made at the launch), in the spare's cgroups, holding nothing of the
 * daemon but its sync socket, waiting for its plan (child.c, osm_sb_prefork_main). A
 * launch then hands it its plan instead of asking the thread to clone: no clone3 and no
 * wakeup of a newborn task in the critical path. The plan comes as one message on its
 * sync socket (child.c, osm_sb_plan).
 *
 * While it waits, and once told (a byte on that socket, sent when no launch is building
 * its root: mounts in every namespace take one kernel lock in turn), it builds what every
 * minimal root begins with — the stage's tmpfs, /usr, /etc's fixed files, /proc and its
 * masks, /dev and its nodes — from a list made once (mounts.c, osm_sb_ahead). A plan of
 * a minimal root points to that list (every copy of the daemon has it) and the init
 * skips the steps it has built. A plan of a bundle's rootfs begins with a bare stage:
 * the built one is detached first.
 *
 * The init is a child of the launcher thread: the daemon's main thread reaps it (a thread
 * may wait for the children of the other threads of its process), and its parent-death
 * signal fires when that thread exits: the threads live as long as the manager, which
 * outlives every instance. A thread counts as a task in the instance's pids controller
 * until it has left (a few ms): the limit is never exceeded, the workload may briefly get
 * one task less. Only for instances without a group (tenants' instances, whose group
 * cgroups would count the thread too, take the migration path).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "osmose/util.h"
#include "daemon/sandbox/sandbox-internal.h"

#define LAUNCHER_SLOTS 2      /* launches within a grace period of each other */
#define LAUNCHER_GRAVES 16
#define LAUNCHER_STACK (256 * 1024)
/* Namespaces of an init cloned ahead: NS_FLAGS without the network one (joined or made at
 * the launch: a bridge's veth needs the init's own, made at the clone). */
#define PREFORK_NS (NS_FLAGS & ~(unsigned long) CLONE_NEWNET)

/* An ended instance's cgroup, and the mount namespace its init left (or -1): its mounts
 * go when the last reference does, a teardown that waits for RCU. */
typedef struct grave {
        osm_cgroup *cg;
        int mntns_fd;
} grave;

typedef enum slot_state {
        SLOT_ARMING,           /* the thread makes its next spare and moves into it */
        SLOT_READY,            /* it sits in its spare */
        SLOT_TAKEN,            /* a launch has its spare (renamed, limits written) */
        SLOT_CLONING,          /* asked to clone */
        SLOT_OFF,              /* it could not make a spare: not used again */
} slot_state;

typedef struct launcher_slot {
        osm_launcher *l;
        pthread_t thread;
        bool started;
        slot_state state;
        osm_cgroup *spare;     /* READY: the spare it sits in */
        const osm_cgroup *left;/* the cgroup it is still in after a clone, until it has moved */
        grave graves[LAUNCHER_GRAVES];  /* to remove once it has left them */
        size_t n_graves;
        bool burying;          /* READY, removing graves (a launch prefers another slot) */
        /* the clone asked for, and its result */
        int (*fn)(void *);
        void *arg;
        unsigned long ns;
        int cgfd;
        sigset_t mask;         /* the caller's signal mask, for the child */
        bool done, into_cg;
        pid_t pid;
        int pidfd, err;
        uint64_t lim[3];       /* the limits written in the spare: memory, pids, cpu */
        bool has_pre;          /* READY: an init cloned ahead waits in the spare */
        bool asked_build;      /* …and has been told to build its root's common part */
        osm_prefork pre;
} launcher_slot;

struct osm_launcher {
        const osm_cg_host *host;
        bool prefork;          /* clone inits ahead (a root daemon) */
        uintptr_t heap_start;  /* the daemon's brk heap, which they unmap; 0 unknown */
        const op *ahead;       /* the steps they run before their plan comes */
        size_t n_ahead;
        unsigned rooting;      /* launches building their root now (osm_launcher_rooting) */
        uint64_t lim[3];       /* the limits to write in the next spares (the defaults) */
        pid_t pid;             /* the process whose threads these are: a fork has none */
        pthread_mutex_t lock;
        pthread_cond_t cond;
        bool quit;
        unsigned seq;
        launcher_slot slot[LAUNCHER_SLOTS];
};

/* Remove cgroups the thread has left: their instances have ended (osm_cg_destroy waits for
 * the last exiting tasks). Called without the lock. */
static void bury(grave *graves, size_t n) {
        for (size_t k = 0; k < n; k++) {
                osm_close(graves[k].mntns_fd);
                osm_cg_destroy(graves[k].cg);
        }
}

/* Make the next spare, with the limits lim[] (memory, pids, cpu) written if it can (else
 * none, and lim[] says so: all zero), and move the calling thread into it (leaving the
 * cgroup it was in). Returns it, or NULL (then the thread is back where the daemon is).
 * Without the lock. */
static osm_cgroup *arm(osm_launcher *l, unsigned seq, uint64_t lim[3]) {
        char name[64], why[200] = "";
        snprintf(name, sizeof name, ".spare-%d-%u", (int) getpid(), seq);
        osm_cgroup *cg = NULL;
        if (osm_cg_create(l->host, name, 0, 0, 0, &cg, why, sizeof why) < 0)
                cg = NULL;
        if (cg && osm_cg_limit(l->host, cg, lim[0], lim[1], lim[2]) < 0) {
                /* Written in part, maybe: a spare without any, as the launch will write. */
                osm_cg_destroy(cg);
                lim[0] = lim[1] = lim[2] = 0;
                if (osm_cg_create(l->host, name, 0, 0, 0, &cg, why, sizeof why) < 0)
                        cg = NULL;
        }
        if (cg && osm_cg_v1_joined(cg) && osm_cg_join_thread(l->host, cg) == 0)
                return cg;
        (void) osm_cg_leave_thread(l->host);
        osm_cg_destroy(cg);
        return NULL;
}

/* Clone an init ahead, from the calling thread (in its spare): true if one waits in *pre. */
static bool prefork(osm_launcher *l, osm_prefork *pre) {
        /* Opened before the clone: poll() on it tells a mount or unmount in the daemon's
         * namespace since then, which the init's copy of the mount table would lack. */
        int mounts_fd = open("/proc/self/mounts", O_RDONLY | O_CLOEXEC);
        int sv[2];
        if (mounts_fd < 0 || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
                osm_close(mounts_fd);
                return false;
        }
        /* Room for a whole plan in one message. */
        int size = PLAN_MAX + 4096;
        (void) setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
        (void) setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
        osm_sb_birth b = { .sync_fd = sv[1], .parent_fd = sv[0] };
        osm_sb_heap_now(l->heap_start, &b.heap, &b.heap_len);
        b.ahead = l->ahead;
        b.n_ahead = l->n_ahead;
        int pidfd = -1;
        pid_t pid = osm_sb_clone_bare(b.heap, b.heap_len, osm_sb_prefork_main, &b, PREFORK_NS, &pidfd);
        close(sv[1]);
        if (pid < 0) {
                close(sv[0]);
                close(mounts_fd);
                return false;
        }
        *pre = (osm_prefork) { .pid = pid, .pidfd = pidfd, .sync_fd = sv[0], .mntns_fd = osm_sb_open_mntns(pid),
                               .mounts_fd = mounts_fd };
        return true;
}

void osm_prefork_discard(osm_prefork *pre) {
        if (pre->pid <= 0)
                return;
        osm_sb_kill_and_reap(pre->pid, pre->pidfd);
        osm_close(pre->pidfd);
        osm_close(pre->sync_fd);
        osm_close(pre->mntns_fd);
        osm_close(pre->mounts_fd);
        *pre = OSM_PREFORK_NONE;
}

/* The slot's init cloned ahead goes (its spare is taken for a clone or given up). Called
 * with the lock held: killing and reaping a process that only waits is quick. */
static void drop_prefork(launcher_slot *s) {
        if (!s->has_pre)
                return;
        s->has_pre = false;
        osm_prefork_discard(&s->pre);
}

/* Tell the slot's init to build the common part of its root now (child.c): one byte, the
 * plan comes later. Only while no launch builds its own: mounts in every namespace take
 * one lock of the kernel's in turn (namespace_sem), and a launch's come first. With the
 * lock held. */
static void ask_build(osm_launcher *l, launcher_slot *s) {
        if (!s->has_pre || s->asked_build || !l->n_ahead || l->rooting)
                return;
        s->asked_build = true;
        (void) send(s->pre.sync_fd, "b", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
}

void osm_launcher_set_limits(osm_launcher *l, uint64_t memory, uint64_t pids, uint64_t cpu_percent) {
        if (!l)
                return;
        pthread_mutex_lock(&l->lock);
        l->lim[0] = memory;
        l->lim[1] = pids;
        l->lim[2] = cpu_percent;
        pthread_mutex_unlock(&l->lock);
}

void osm_launcher_rooting(osm_launcher *l, bool begins) {
        if (!l)
                return;
        pthread_mutex_lock(&l->lock);
        if (begins)
                l->rooting++;
        else if (l->rooting && --l->rooting == 0)
                for (int k = 0; k < LAUNCHER_SLOTS; k++)
                        ask_build(l, &l->slot[k]);
        pthread_mutex_unlock(&l->lock);
}

static void *slot_main(void *arg) {
        launcher_slot *s = arg;
        osm_launcher *l = s->l;
        pthread_mutex_lock(&l->lock);
        while (!l->quit) {
                if (s->state == SLOT_CLONING) {
                        /* Only this thread's signal mask is the caller's while it clones. */
                        sigset_t all;
                        sigfillset(&all);
                        drop_prefork(s);
                        pthread_mutex_unlock(&l->lock);
                        pthread_sigmask(SIG_SETMASK, &s->mask, NULL);
                        s->pid = osm_sb_clone(s->fn, s->arg, s->ns, s->cgfd, &s->into_cg, &s->pidfd);
                        s->err = errno;
                        pthread_sigmask(SIG_SETMASK, &all, NULL);
                        pthread_mutex_lock(&l->lock);
                        s->left = s->spare;   /* now the instance's; it leaves it next */
                        s->spare = NULL;
                        s->done = true;
                        s->state = SLOT_ARMING;
                        pthread_cond_broadcast(&l->cond);
                        continue;
                }
                if (s->state == SLOT_ARMING) {
                        unsigned seq = ++l->seq;
                        uint64_t lim[3];
                        memcpy(lim, l->lim, sizeof lim);
                        pthread_mutex_unlock(&l->lock);
                        osm_cgroup *cg = arm(l, seq, lim);
                        osm_prefork pre;
                        bool has_pre = cg && l->prefork && prefork(l, &pre);
                        pthread_mutex_lock(&l->lock);
                        s->has_pre = has_pre;
                        s->asked_build = false;
                        memcpy(s->lim, lim, sizeof lim);
                        if (has_pre)
                                s->pre = pre;
                        ask_build(l, s);
                        grave graves[LAUNCHER_GRAVES];
                        size_t n = s->n_graves;
                        memcpy(graves, s->graves, n * sizeof *graves);
                        s->n_graves = 0;
                        s->left = NULL;
                        s->spare = cg;
                        s->state = cg ? SLOT_READY : SLOT_OFF;
                        pthread_cond_broadcast(&l->cond);
                        pthread_mutex_unlock(&l->lock);
                        bury(graves, n);
                        pthread_mutex_lock(&l->lock);
                        continue;
                }
                if (s->n_graves && !s->left && s->state != SLOT_TAKEN) {
                        /* Ended instances' cgroups it was never in: removed here, not in
                         * the caller's thread (five rmdirs on a v1 host). */
                        grave graves[LAUNCHER_GRAVES];
                        size_t n = s->n_graves;
                        memcpy(graves, s->graves, n * sizeof *graves);
                        s->n_graves = 0;
                        s->burying = true;
                        pthread_cond_broadcast(&l->cond);
                        pthread_mutex_unlock(&l->lock);
                        bury(graves, n);
                        pthread_mutex_lock(&l->lock);
                        s->burying = false;
                        continue;
                }
                pthread_cond_wait(&l->cond, &l->lock);
        }
        pthread_mutex_unlock(&l->lock);
        return NULL;
}

/* Remove the spares and ended cgroups that a daemon which died (SIGKILL, a crash) left in
 * the instances' parent: their names carry its pid. An empty cgroup is all they are. */
static void sweep(const osm_cg_host *host) {
        for (int c = 0; c < OSM_CG_N; c++) {
                if (host->mode[c] != OSM_LIMIT_CGROUP1 || !host->base[c])
                        continue;
                DIR *d = opendir(host->base[c]);
                struct dirent *de;
                while (d && (de = readdir(d))) {
                        const char *n = de->d_name;
                        if (strncmp(n, ".spare-", 7) != 0 && strncmp(n, ".ended-", 7) != 0)
                                continue;
                        long pid = strtol(n + 7, NULL, 10);
                        if (pid <= 0 || pid == getpid() || kill((pid_t) pid, 0) == 0 || errno != ESRCH)
                                continue;
                        char path[4096];
                        if ((size_t) snprintf(path, sizeof path, "%s/%s", host->base[c], n) < sizeof path)
                                (void) rmdir(path);
                }
                if (d)
                        closedir(d);
        }
}

osm_launcher *osm_launcher_new(const osm_cg_host *host, bool prefork_inits, uintptr_t heap_start,
                               const op *ahead, size_t n_ahead) {
        bool v1 = false;
        for (int c = 0; c < OSM_CG_N; c++)
                v1 = v1 || (host->mode[c] == OSM_LIMIT_CGROUP1 && host->base[c]);
        if (!v1)
                return NULL;   /* v2 only: CLONE_INTO_CGROUP does it */
        sweep(host);
        osm_launcher *l = calloc(1, sizeof *l);
        if (!l)
                return NULL;
        l->host = host;
        l->prefork = prefork_inits;
        l->heap_start = heap_start;
        l->ahead = ahead;
        l->n_ahead = n_ahead;
        l->pid = getpid();
        pthread_mutex_init(&l->lock, NULL);
        pthread_cond_init(&l->cond, NULL);
        /* A small stack: the init runs on a copy of it until its exec (child.c: a few KiB). */
        for (size_t k = 0; k < LAUNCHER_SLOTS; k++) {
                launcher_slot *s = &l->slot[k];
                s->l = l;
                s->state = SLOT_ARMING;
                s->started = osm_sb_thread_start(&s->thread, LAUNCHER_STACK, slot_main, s) == 0;
                if (!s->started)
                        s->state = SLOT_OFF;
        }
        return l;
}

int osm_sb_thread_start(pthread_t *t, size_t stack, void *(*fn)(void *), void *arg) {
        /* The thread takes no signal: they are the main thread's to handle. */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, stack);
        int r = pthread_create(t, &attr, fn, arg);
        pthread_attr_destroy(&attr);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        return -r;
}

osm_launcher *osm_launcher_free(osm_launcher *l) {
        if (!l)
                return NULL;
        if (l->pid != getpid()) {
                free(l);   /* a forked copy: the threads and spares are the parent's */
                return NULL;
        }
        pthread_mutex_lock(&l->lock);
        l->quit = true;
        pthread_cond_broadcast(&l->cond);
        pthread_mutex_unlock(&l->lock);
        for (size_t k = 0; k < LAUNCHER_SLOTS; k++) {
                launcher_slot *s = &l->slot[k];
                if (s->started)
                        pthread_join(s->thread, NULL);
                drop_prefork(s);
                /* A thread leaves its cgroups as it exits. */
                bury(s->graves, s->n_graves);
                osm_cg_destroy(s->spare);
        }
        pthread_cond_destroy(&l->cond);
        pthread_mutex_destroy(&l->lock);
        free(l);
        return NULL;
}

osm_cgroup *osm_launcher_take(osm_launcher *l, const char *name, uint64_t memory, uint64_t pids,
                              uint64_t cpu_percent, int *slot) {
        if (!l || l->pid != getpid())
                return NULL;   /* none, or in a fork of the process that has the threads */
        pthread_mutex_lock(&l->lock);
        launcher_slot *s = NULL;
        for (int pass = 0; pass < 2 && !s; pass++)
                for (size_t k = 0; k < LAUNCHER_SLOTS && !s; k++)
                        if (l->slot[k].state == SLOT_READY && (pass || !l->slot[k].burying))
                                s = &l->slot[k];
        /* The spare has the default limits already (written when it was made): only those
         * that differ are written now. A limit lifted would need writing as such, which
         * osm_cg_limit does not do (it writes finite limits): that launch makes a cgroup of
         * its own. */
        const uint64_t want[3] = { memory, pids, cpu_percent };
        uint64_t write[3] = { 0, 0, 0 };
        for (int k = 0; s && k < 3; k++) {
                if (want[k] == s->lim[k])
                        continue;
                if (osm_cg_unlimited(want[k]) && !osm_cg_unlimited(s->lim[k]))
                        s = NULL;
                else
                        write[k] = want[k];
        }
        if (s)
                s->state = SLOT_TAKEN;
        pthread_mutex_unlock(&l->lock);
        if (!s)
                return NULL;
        osm_cgroup *cg = s->spare;
        char spare_name[64];
        const char *slash = NULL;
        for (int c = 0; c < OSM_CG_N && !slash; c++)
                if (cg->procs[c])
                        slash = strrchr(cg->path[c], '/');
        snprintf(spare_name, sizeof spare_name, "%s", slash ? slash + 1 : "");
        int r = osm_cg_rename(cg, name);
        if (r == 0) {
                r = osm_cg_limit(l->host, cg, write[0], write[1], write[2]);
                if (r < 0)
                        (void) osm_cg_rename(cg, spare_name);
        }
        if (r < 0) {
                /* A directory of that name exists (an earlier daemon's), or a limit is
                 * refused: the spare stays for the next launch; this one migrates. */
                pthread_mutex_lock(&l->lock);
                s->state = SLOT_READY;
                pthread_mutex_unlock(&l->lock);
                return NULL;
        }
        *slot = (int) (s - l->slot);
        return cg;
}

pid_t osm_launcher_clone(osm_launcher *l, int slot, int (*fn)(void *), void *arg, unsigned long ns, int cgfd,
                         bool *into_cg, int *pidfd) {
        launcher_slot *s = &l->slot[slot];
        pthread_mutex_lock(&l->lock);
        s->fn = fn;
        s->arg = arg;
        s->ns = ns;
        s->cgfd = cgfd;
        pthread_sigmask(SIG_SETMASK, NULL, &s->mask);
        s->done = false;
        s->state = SLOT_CLONING;
        pthread_cond_broadcast(&l->cond);
        while (!s->done)
                pthread_cond_wait(&l->cond, &l->lock);
        pid_t pid = s->pid;
        int err = s->err;
        *into_cg = s->into_cg;
        *pidfd = s->pidfd;
        pthread_mutex_unlock(&l->lock);
        errno = err;
        return pid;
}

bool osm_launcher_take_prefork(osm_launcher *l, int slot, osm_prefork *out) {
        launcher_slot *s = &l->slot[slot];
        pthread_mutex_lock(&l->lock);
        /* The host's mounts changed since it was cloned (a file system mounted where a
         * bundle or a data directory lives): it would not see them; a clone will. */
        struct pollfd mp = { .fd = s->has_pre ? s->pre.mounts_fd : -1, .events = POLLPRI };
        if (s->has_pre && poll(&mp, 1, 0) > 0 && (mp.revents & (POLLPRI | POLLERR)))
                drop_prefork(s);
        bool has = s->has_pre;
        if (has) {
                *out = s->pre;
                s->has_pre = false;
                /* As after a clone: the spare is the instance's; the thread moves on. */
                s->left = s->spare;
                s->spare = NULL;
                s->state = SLOT_ARMING;
                pthread_cond_broadcast(&l->cond);
        }
        pthread_mutex_unlock(&l->lock);
        return has;
}

void osm_launcher_release(osm_launcher *l, int slot) {
        launcher_slot *s = &l->slot[slot];
        pthread_mutex_lock(&l->lock);
        drop_prefork(s);
        s->left = s->spare;
        s->spare = NULL;
        s->state = SLOT_ARMING;
        pthread_cond_broadcast(&l->cond);
        pthread_mutex_unlock(&l->lock);
}

osm_cgroup *osm_launcher_retire(osm_launcher *l, osm_cgroup *cg, int *mntns_fd) {
        if (!l || !cg || l->pid != getpid())
                return cg;
        pthread_mutex_lock(&l->lock);
        for (;;) {
                launcher_slot *s = NULL;
                for (size_t k = 0; k < LAUNCHER_SLOTS && !s; k++)
                        if (l->slot[k].left == cg)
                                s = &l->slot[k];
                /* No thread in it: a thread that waits removes it all the same. */
                for (size_t k = 0; k < LAUNCHER_SLOTS && !s; k++)
                        if (l->slot[k].started && l->slot[k].state == SLOT_READY && !l->slot[k].left &&
                            l->slot[k].n_graves < LAUNCHER_GRAVES)
                                s = &l->slot[k];
                if (!s)
                        break;   /* the caller removes it */
                if (s->n_graves < LAUNCHER_GRAVES) {
                        /* Its name is free at once: a new instance of that name may
                         * start before the thread has left (a rename is cheap). */
                        char name[64];
                        snprintf(name, sizeof name, ".ended-%d-%u", (int) getpid(), ++l->seq);
                        (void) osm_cg_rename(cg, name);
                        s->graves[s->n_graves++] = (grave) { .cg = cg, .mntns_fd = *mntns_fd };
                        *mntns_fd = -1;
                        cg = NULL;
                        pthread_cond_broadcast(&l->cond);
                        break;
                }
                pthread_cond_wait(&l->cond, &l->lock);
        }
        pthread_mutex_unlock(&l->lock);
        return cg;
}
