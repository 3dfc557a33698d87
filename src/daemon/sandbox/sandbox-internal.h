/* sandbox-internal.h: what the sandbox's own files share (the manager, spawning, mounts, seccomp, cgroups, network); not for other subsystems. */
#pragma once

#include <linux/filter.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "daemon/sandbox/sandbox-child.h"
#include "daemon/sandbox/sandbox.h"

/* ---- seccomp (seccomp.c) ---- */

enum {
        OSM_SECCOMP_COMPAT32 = 1 << 0,   /* also allow the 32-bit ABI (arm on arm64) */
        OSM_SECCOMP_N_POLICIES = 2,
};

typedef struct osm_seccomp_cache {
        osm_seccomp_prog *progs[OSM_SECCOMP_N_POLICIES];
} osm_seccomp_cache;

/* Compile (first time) or return the cached filter for policy flags. The program stays
 * owned by the cache. Returns 0 or -errno (-EOPNOTSUPP: compat32 asked on a host
 * without a 32-bit ABI). */
int osm_seccomp_get(osm_seccomp_cache *c, unsigned policy, const osm_seccomp_prog **out);
void osm_seccomp_cache_clear(osm_seccomp_cache *c);

/* ---- cgroups (cgroup.c) ---- */

typedef enum osm_cg_ctrl {
        OSM_CG_MEMORY,
        OSM_CG_PIDS,
        OSM_CG_CPU,
        OSM_CG_CPUACCT,   /* v1 only: CPU time accounting */
        OSM_CG_IO,        /* v1 blkio / v2 io: accounting */
        OSM_CG_N,
} osm_cg_ctrl;

/* Where each controller lives on this host. */
typedef struct osm_cg_host {
        osm_limit_mode mode[OSM_CG_N];
        char *base[OSM_CG_N];   /* the directory holding the instances' cgroups, or NULL */
        bool memsw;             /* v1 memory.memsw.limit_in_bytes exists (swap counted) */
        char why[200];          /* why something is missing */
} osm_cg_host;

struct osm_cgroup {
        osm_limit_mode mode[OSM_CG_N];
        char *path[OSM_CG_N];   /* the instance's own directory per controller, or NULL;
                                 * several may be equal (v2) */
        char *procs[OSM_CG_N];  /* path of cgroup.procs to join, NULL where shared */
};

/* Write value to dir/file (a cgroup attribute, a /proc file) in one write. 0 or -errno. */
int osm_sb_write_attr(const char *dir, const char *file, const char *value);

/* Detect the hierarchies, create "<own cgroup>/<name>" where writable. Fills host. */
void osm_cg_host_detect(osm_cg_host *host, const char *name);
void osm_cg_host_clear(osm_cg_host *host);

/* Create an instance cgroup and write its limits (memory bytes, pids, cpu percent; 0 or
 * UINT64_MAX mean unlimited). Controllers that fail are left out of the result and the
 * reason is appended to why. Returns 0 (possibly with no controller) or -ENOMEM. */
/* Free the handle without removing the directories (a group that outlives it). */
osm_cgroup *osm_cg_forget(osm_cgroup *cg);
/* Remove an (empty) group's directories: 0, or -EBUSY while instances are in it. */
int osm_cg_remove_group(const osm_cg_host *host, const char *name);
int osm_cg_create(const osm_cg_host *host, const char *name, uint64_t memory, uint64_t pids,
                  uint64_t cpu_percent, osm_cgroup **out, char *why, size_t whylen);
/* Put pid into every controller of cg but those it was born in (v2: CLONE_INTO_CGROUP;
 * v1: cloned by a launcher thread). 0 or -errno. */
int osm_cg_attach(const osm_cgroup *cg, pid_t pid, bool v2_done, bool v1_done);
/* A limit of 0 or UINT64_MAX is none: osm_cg_create and osm_cg_limit write nothing for it. */
static inline bool osm_cg_unlimited(uint64_t v) {
        return v == 0 || v == UINT64_MAX;
}
/* Write the limits of an instance (as osm_cg_create) into the directories of cg. 0 or -errno. */
int osm_cg_limit(const osm_cg_host *host, const osm_cgroup *cg, uint64_t memory, uint64_t pids, uint64_t cpu_percent);
/* Rename cg's directories (same parent) to name; on failure nothing is renamed. 0 or -errno. */
int osm_cg_rename(osm_cgroup *cg, const char *name);
/* Move the calling thread alone into cg's v1 directories (their "tasks"), or out of every
 * instance cgroup: back where the daemon is. 0 or -errno. A v1 migration waits for an
 * RCU grace period: launcher.c does it in its own threads, ahead of the launches. */
int osm_cg_join_thread(const osm_cg_host *host, const osm_cgroup *cg);
int osm_cg_leave_thread(const osm_cg_host *host);
/* Does cg have a v1 controller (a task joins it by a migration, not at its birth)? */
bool osm_cg_v1_joined(const osm_cgroup *cg);
/* An O_PATH fd of cg's v2 directory for CLONE_INTO_CGROUP, or -1 if it has none. */
int osm_cg_v2_dirfd(const osm_cgroup *cg);
/* Has the memory limit killed something? */
bool osm_cg_oom_killed(const osm_cgroup *cg);
/* Remove the directories (tasks must be gone; retries briefly) and free. NULL-safe. */
osm_cgroup *osm_cg_destroy(osm_cgroup *cg);

/* ---- launcher threads (launcher.c) ---- */

typedef struct osm_launcher osm_launcher;

/* Start the threads if a controller is in a v1 hierarchy of host (which must outlive the
 * launcher); NULL otherwise, or if they cannot be made (launches then migrate). With
 * prefork_inits (a root daemon) each thread also clones an init ahead into its spare,
 * cloned without the daemon's heap from heap_start (0: unknown), which runs
 * ahead[0..n_ahead) (osm_sb_ahead, which must outlive the launcher) once told to. */
osm_launcher *osm_launcher_new(const osm_cg_host *host, bool prefork_inits, uintptr_t heap_start,
                               const op *ahead, size_t n_ahead);

/* An init cloned ahead (osm_sb_prefork_main), waiting for its plan. */
typedef struct osm_prefork {
        pid_t pid;
        int pidfd;
        int sync_fd;            /* the daemon's end */
        int mntns_fd;           /* its mount namespace, or -1 */
        int mounts_fd;          /* the daemon's /proc/self/mounts, opened before its clone */
} osm_prefork;
#define OSM_PREFORK_NONE ((osm_prefork) { .pid = -1, .pidfd = -1, .sync_fd = -1, .mntns_fd = -1, .mounts_fd = -1 })
/* The slot's init cloned ahead, now the caller's (the slot's spare too: its thread moves
 * on, as after osm_launcher_clone); false if it has none (then clone as before). */
bool osm_launcher_take_prefork(osm_launcher *l, int slot, osm_prefork *out);
/* Kill and reap it, close its fds. */
void osm_prefork_discard(osm_prefork *pre);
/* The limits of the spares made from now on, those of most launches (the defaults): a
 * launch with the same writes none. NULL-safe. */
void osm_launcher_set_limits(osm_launcher *l, uint64_t memory, uint64_t pids, uint64_t cpu_percent);
/* A launch begins building its root (begins), or is past it: the inits cloned ahead build
 * the common part of theirs only while none is (NULL-safe). */
void osm_launcher_rooting(osm_launcher *l, bool begins);

/* Start a thread of the daemon's sandbox (a launcher slot, the namespace pool) with a stack of
 * that size and every signal blocked (signals are the main thread's): 0 or -errno. */
int osm_sb_thread_start(pthread_t *t, size_t stack, void *(*fn)(void *), void *arg);
/* Stop the threads and remove their spares. Every instance must have been freed. */
osm_launcher *osm_launcher_free(osm_launcher *l);
/* A spare cgroup with a thread in it, renamed to name (directly under the instances'
 * parent) and with the limits written; *slot says whose. NULL if none is ready or it
 * cannot be used (the caller makes the cgroup itself, osm_cg_create). The caller owns the
 * result; it passes it to osm_launcher_retire when the instance has ended. */
osm_cgroup *osm_launcher_take(osm_launcher *l, const char *name, uint64_t memory, uint64_t pids,
                              uint64_t cpu_percent, int *slot);
/* Clone as osm_sb_clone does, from the thread of slot: the child is born in its cgroups. */
pid_t osm_launcher_clone(osm_launcher *l, int slot, int (*fn)(void *), void *arg, unsigned long ns, int cgfd,
                         bool *into_cg, int *pidfd);
/* A spare taken but not cloned from (the launch failed first): its thread moves on. */
void osm_launcher_release(osm_launcher *l, int slot);
/* An ended instance's cgroup: if a thread is still in it, that thread removes it once it
 * has left (returns NULL), and closes *mntns_fd (set to -1); else returns cg for the
 * caller to destroy, *mntns_fd still the caller's. */
osm_cgroup *osm_launcher_retire(osm_launcher *l, osm_cgroup *cg, int *mntns_fd);

/* ---- network (net.c) ---- */

typedef struct osm_net {
        char *bridge;           /* the operator's bridge (config "network"); NULL: none */
        uint32_t *leases;       /* IPv4 addresses in use (host order) */
        size_t n_leases;
} osm_net;

/* Give pid's network namespace an eth0 on the bridge: a veth pair (host end enslaved to
 * the bridge, up), the next free address of the bridge's subnet, a default route via
 * the bridge's address. The pair goes away with the namespace. Returns 0 with *addr
 * leased (release it with osm_net_release), or -errno with err set. */
int osm_net_attach(osm_net *net, pid_t pid, unsigned seq, uint32_t *addr, osm_error *err);
void osm_net_release(osm_net *net, uint32_t addr);
void osm_net_clear(osm_net *net);

/* ---- network namespaces made ahead (netns.c) ---- */

typedef struct osm_netns_pool osm_netns_pool;

/* Start the thread that keeps fresh network namespaces ready, and user namespaces with
 * the id map 0 uid_base uid_count, for a privileged (root) sandbox, whose inits are cloned
 * without a user namespace and so may join them (setns); NULL if it cannot start. A
 * namespace it cannot make turns that kind off for good. */
osm_netns_pool *osm_netns_pool_new(uint64_t uid_base, uint64_t uid_count);
osm_netns_pool *osm_netns_pool_free(osm_netns_pool *p);
/* An fd (O_CLOEXEC) of a network namespace nothing has been in, now the caller's to
 * close; -1 if none is ready (the clone then makes one). */
int osm_netns_pool_take(osm_netns_pool *p);
/* The same for a user namespace mapped 0 uid_base uid_count, which no process is in; -1
 * if none is ready (the init then unshares one). The pool keeps some ready for each of
 * the few ranges asked for lately: a new range is made ahead from its first ask on. */
int osm_netns_pool_take_user(osm_netns_pool *p, uint64_t uid_base, uint64_t uid_count);

/* The steps every minimal root begins with (the stage's tmpfs, /usr, /etc's fixed files,
 * /proc and /dev), for an init cloned ahead to run while it waits for its plan: packed in
 * a mapping of their own, outside the malloc heap, which that init unmaps at its birth. */
typedef struct osm_sb_ahead {
        op *ops;
        size_t n;
        void *mem;
        size_t len;
} osm_sb_ahead;

/* ---- the manager (sandbox.c) ---- */

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
        osm_launcher *launcher;   /* NULL without v1 controllers */
        osm_netns_pool *netns;    /* NULL unless root */
        uintptr_t heap_start;     /* where the malloc heap (brk) begins, 0 if unknown */
        osm_sb_ahead ahead;       /* what the launcher's inits run before their plan */
};

struct osm_sandbox_proc {
        pid_t pid;
        int pidfd;
        int sync_fd;
        int mntns_fd;             /* its init's mount namespace, held so that its
                                   * teardown is not in the init's exit, or -1 */
        bool reaped;
        osm_sandbox *sb;
        uint32_t net_addr;        /* leased address on the bridge, 0 if none */
        osm_cgroup *cg;
        osm_sandbox_features limits;
        osm_sandbox_timing timing;
};

static inline uint64_t osm_sb_pick(uint64_t v, uint64_t def) {
        return v ? v : def;
}

/* ---- spawning, the parent side (spawn.c) ---- */

/* Write /proc/PID/uid_map and gid_map: ids 0..count-1 inside are base.. on the host (a
 * privileged daemon's map). 0 or -errno. */
int osm_sb_write_id_map(pid_t pid, uint64_t base, uint64_t count);

/* An O_RDONLY fd of pid's mount namespace, or -1: held, its teardown is not in that
 * init's exit (a launcher thread closes it later, osm_launcher_retire). */
int osm_sb_open_mntns(pid_t pid);

/* SIGKILL a child of ours (by its pidfd if >= 0) and reap it. */
void osm_sb_kill_and_reap(pid_t pid, int pidfd);

/* The daemon's malloc heap (brk) as it is now, from heap_start (0: unknown, then NULL):
 * what an init, a copy of the daemon, unmaps once nothing of it is used any more (what
 * it grows by before the clone stays mapped). */
void osm_sb_heap_now(uintptr_t heap_start, void **heap, size_t *len);

/* clone3 with the namespaces and a pidfd; clone(2) where clone3 is missing. With cgfd
 * >= 0 the child is born in that cgroup v2 directory (CLONE_INTO_CGROUP: no migration,
 * which would wait for an RCU grace period); *into_cg says whether that happened (a
 * kernel < 5.7 or a refused cgroup falls back to a plain clone, and the caller moves
 * the child). Returns the pid in the parent; the child runs fn and never returns. */
pid_t osm_sb_clone(int (*fn)(void *), void *arg, unsigned long ns, int cgfd, bool *into_cg, int *pidfd);
/* The same without a copy of the malloc heap [heap, heap + heap_len) (MADV_DONTFORK for
 * the time of the clone), for a child that uses nothing of it (an init cloned ahead). */
pid_t osm_sb_clone_bare(void *heap, size_t heap_len, int (*fn)(void *), void *arg, unsigned long ns, int *pidfd);

/* ---- the root's setup steps (mounts.c) ---- */

typedef struct builder {
        op *ops;
        size_t n, cap;
        int err;
        const char *root;   /* prefix of every dst */
        const op *common;   /* the steps to run before ops: a minimal root's first, */
        size_t n_common;    /* sb's osm_sb_ahead (not copied), or none */
} builder;

/* Build the list of setup steps for spec. root_out is where pivot_root goes. A minimal
 * root begins with the steps every minimal root begins with: sb's osm_sb_ahead if there
 * is one (b->common, not in b->ops), else they are the first of b->ops. */
int osm_sb_build_ops(const osm_sandbox *sb, const osm_sandbox_spec *spec, const struct stat *bind_st,
                     const char *hostname, uint64_t tmp_size, builder *b, char **root_out);
void osm_sb_ops_free(op *ops, size_t n);

/* Those steps for sb's stage: 0 or -errno. */
int osm_sb_ahead_make(const osm_sandbox *sb, osm_sb_ahead *out);
/* A deep copy of ops into a new mapping (spawn.c, as the plans are packed): 0 or -errno. */
int osm_sb_ops_pack(const op *ops, size_t n, osm_sb_ahead *out);
void osm_sb_ahead_clear(osm_sb_ahead *a);
/* A path inside the sandbox: absolute, no "..", no "//", not "/" itself. */
bool osm_sb_inside_path_ok(const char *p);
/* An instance name: 1 to 64 of [A-Za-z0-9._-], not "." or "..". */
bool osm_sb_name_ok(const char *n);

/* ---- feature detection (detect.c) ---- */

void osm_sb_detect(osm_sandbox *sb, const char *cg_name);
