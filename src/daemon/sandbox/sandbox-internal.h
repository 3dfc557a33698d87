/* sandbox-internal.h: what the sandbox's own files share (seccomp cache, cgroups); not for other subsystems. */
#pragma once

#include <linux/filter.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "daemon/sandbox/sandbox.h"

/* ---- seccomp (seccomp.c) ---- */

/* A compiled filter: classic BPF, ready for seccomp(SECCOMP_SET_MODE_FILTER) without any
 * allocation. Two programs per policy because the kernel runs every loaded filter and
 * keeps the strictest answer: an allowlist (default EPERM) and a small denylist for
 * argument checks that an allowlist cannot express (ioctl TIOCSTI: "any ioctl but"). */
typedef struct osm_seccomp_prog {
        struct sock_fprog allow;
        struct sock_fprog deny;
} osm_seccomp_prog;

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

/* Detect the hierarchies, create "<own cgroup>/<name>" where writable. Fills host. */
void osm_cg_host_detect(osm_cg_host *host, const char *name);
void osm_cg_host_clear(osm_cg_host *host);

/* Create an instance cgroup and write its limits (memory bytes, pids, cpu percent; 0 or
 * UINT64_MAX mean unlimited). Controllers that fail are left out of the result and the
 * reason is appended to why. Returns 0 (possibly with no controller) or -ENOMEM. */
int osm_cg_create(const osm_cg_host *host, const char *name, uint64_t memory, uint64_t pids,
                  uint64_t cpu_percent, osm_cgroup **out, char *why, size_t whylen);
/* Put pid into every controller of cg (but the v2 one if it was born there). 0 or -errno. */
int osm_cg_attach(const osm_cgroup *cg, pid_t pid, bool v2_done);
/* An O_PATH fd of cg's v2 directory for CLONE_INTO_CGROUP, or -1 if it has none. */
int osm_cg_v2_dirfd(const osm_cgroup *cg);
/* Has the memory limit killed something? */
bool osm_cg_oom_killed(const osm_cgroup *cg);
/* Remove the directories (tasks must be gone; retries briefly) and free. NULL-safe. */
osm_cgroup *osm_cg_destroy(osm_cgroup *cg);

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
int osm_net_attach(osm_net *net, pid_t pid, unsigned seq, uint32_t *addr, char *err, size_t errlen);
void osm_net_release(osm_net *net, uint32_t addr);
void osm_net_clear(osm_net *net);
