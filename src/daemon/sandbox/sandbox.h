/* sandbox.h: isolated processes for workload instances: namespaces, pivot_root, seccomp, cgroups, rlimits. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "osmose/error.h"

/*
 * How an instance is built (in this order, in the child, before exec):
 *   clone3(NEWUSER|NEWPID|NEWNS|NEWNET|NEWIPC|NEWUTS) → the parent writes uid/gid maps
 *   ("0 uid_base uid_count") and puts the child in its cgroups → child: unshare(NEWCGROUP),
 *   hostname, loopback up, private mounts, tmpfs stage → root (bundle rootfs read-only, or
 *   a minimal tmpfs root with the host's /usr read-only), /proc, minimal /dev, tmpfs /tmp,
 *   /data (rw), extra binds → root remounted read-only → pivot_root → rlimits → fds closed →
 *   setsid → groups cleared, uid/gid set, securebits locked, every capability dropped
 *   (bounding, ambient, effective, permitted, inheritable) → no_new_privs → seccomp filter
 *   (compiled once per policy in the parent, no allocation after fork).
 *
 * As root (the installed case) the root is built as real root in namespaces owned by the
 * host's user namespace and the user namespace is unshared last, so the paths in a spec
 * (bundle rootfs, data dir, API socket) need not be reachable by the mapped ids. With a
 * cgroup v2 controller the child is born in its cgroup (CLONE_INTO_CGROUP); with v1 it is
 * moved there while it builds its root (a v1 migration waits for an RCU grace period:
 * most of the spawn time on a v1 host when spawns are not back to back).
 * On such a v1 host a root daemon's inits are cloned ahead (launcher.c) and build the
 * part of a minimal root that is the same for every spec (/usr, /etc's fixed files,
 * /proc, /dev's nodes) while they wait; a launch's own steps (hostname, /dev/shm, /tmp,
 * /data, binds, devices, the read-only remounts) follow when its plan comes.
 *
 * Network: without a grant, a new network namespace with only loopback (up); as root it
 * is made ahead by a thread of the daemon and joined (setns) by the child before its
 * hostname (netns.c), otherwise by the clone. With a
 * grant and [sandbox] network = BRIDGE, also eth0: a veth pair into that bridge, the next
 * free address of the bridge's IPv4 subnet, a default route via the bridge's address,
 * and (minimal root) the host's /etc/resolv.conf.
 *
 * Process shape: the host pid the caller sees is a tiny init (pid 1 of the sandbox, forked
 * from the daemon, non-dumpable; once the workload runs it unmaps its copy of the daemon's
 * heap) that forks the workload, forwards SIGTERM/SIGINT/SIGHUP/
 * SIGQUIT/SIGUSR1/SIGUSR2 to it, reaps orphans and, when the workload exits, reports the
 * workload's exact wait status to the daemon and exits (which kills everything left in the
 * sandbox's pid namespace).
 *
 * Supervision (decided): watch osm_sandbox_proc_pidfd() with a uv_poll_t (UV_READABLE):
 * a pidfd becomes readable when the process exits. Then call osm_sandbox_proc_reap().
 * If pidfd is -1 (kernel < 5.3), use a uv_signal_t on SIGCHLD and call
 * osm_sandbox_proc_reap() for each running instance; it returns -EAGAIN while running.
 * Never call waitpid(-1, …) in the daemon: it would steal other children's statuses.
 */

typedef struct osm_sandbox osm_sandbox;
typedef struct osm_sandbox_proc osm_sandbox_proc;
typedef struct osm_cgroup osm_cgroup;

/* How a limit is enforced on this host. */
typedef enum osm_limit_mode {
        OSM_LIMIT_NONE,        /* not enforced at all (reported as degraded) */
        OSM_LIMIT_RLIMIT,      /* only an rlimit approximation (e.g. RLIMIT_AS, RLIMIT_NPROC) */
        OSM_LIMIT_CGROUP1,     /* a writable cgroup v1 hierarchy holds the controller */
        OSM_LIMIT_CGROUP2,     /* the controller is enabled in a writable cgroup v2 tree */
} osm_limit_mode;

const char *osm_limit_mode_name(osm_limit_mode m);   /* "none", "rlimit", "cgroup1", "cgroup2" */

/* What works on this host, detected once by osm_sandbox_new() (and again on demand). */
typedef struct osm_sandbox_features {
        bool userns;            /* a user namespace with the other namespaces can be made */
        bool seccomp;           /* seccomp filters can be loaded */
        bool pidfd;             /* clone3 gives pidfds */
        bool cgroupns;          /* cgroup namespaces */
        osm_limit_mode memory;
        osm_limit_mode pids;
        osm_limit_mode cpu;
        osm_limit_mode io;      /* accounting only (no I/O limits are set) */
        char detail[256];       /* one line for status: what is missing and why */
} osm_sandbox_features;

/* Options for the whole subsystem (from osm_config [sandbox]). */
typedef struct osm_sandbox_options {
        uint64_t uid_base;      /* first host uid/gid mapped into sandboxes (uid 0 inside) */
        uint64_t uid_count;     /* how many ids are mapped */
        const char *stage_dir;  /* an existing empty directory on the host used as a mount
                                 * point inside each sandbox's own mount namespace while its
                                 * root is built; NULL: "/tmp". Not modified on the host. */
        const char *cgroup_name;/* name of the cgroup under the daemon's own that holds the
                                 * instances; NULL: "osmose" */
        const char *network;    /* what a network grant gives: "none" or a bridge name */
        const struct osm_sandbox_limits *defaults; /* limits for spec fields left 0; NULL or 0
                                 * fields: built-in defaults (256 MiB, 256 pids, no CPU
                                 * limit, 64 MiB /tmp, 1024 files, 1 GiB files) */
} osm_sandbox_options;

/* Create the sandbox manager: detect capabilities and cgroup hierarchies, create the
 * instances' parent cgroup. Never fails because a limit is unavailable (see caps);
 * returns 0, or -ENOMEM/-EINVAL. */
int osm_sandbox_new(const osm_sandbox_options *opts, osm_sandbox **out);
osm_sandbox *osm_sandbox_free(osm_sandbox *sb);
/* Apply new options (reload): uid range, network and default limits, for instances
 * started from now on. stage_dir and cgroup_name stay as they were. 0 or -EINVAL/-ENOMEM
 * (then nothing changed). */
int osm_sandbox_reconfigure(osm_sandbox *sb, const osm_sandbox_options *opts);

/* What works on this host (borrowed; valid until osm_sandbox_free). */
const osm_sandbox_features *osm_sandbox_caps(const osm_sandbox *sb);
/* {"userns":true,"seccomp":true,"limits":{"memory":"cgroup1",…},"degraded":["io",…],
 * "detail":"…"} for status and ps. New reference. */
json_t *osm_sandbox_features_json(const osm_sandbox_features *f);

/* A bind mount into the sandbox. source is a host path, target an absolute path inside.
 * The target is created if the root is the minimal root (or the bundle root lacks it). */
typedef struct osm_sandbox_bind {
        const char *source;
        const char *target;     /* e.g. "/run/osmose/api.sock" for the per-instance socket */
        bool writable;          /* default read-only; always nosuid,nodev */
} osm_sandbox_bind;

/* Limits; 0 means "the sandbox default" (see sandbox.c), UINT64_MAX means unlimited. */
typedef struct osm_sandbox_limits {
        uint64_t memory;        /* bytes (cgroup memory; RLIMIT_AS when no cgroup) */
        uint64_t pids;          /* tasks (cgroup pids; RLIMIT_NPROC as well) */
        uint64_t cpu_percent;   /* 100 = one core (cgroup cpu quota) */
        uint64_t tmp_size;      /* bytes of the /tmp tmpfs */
        uint64_t file_size;     /* RLIMIT_FSIZE: largest file it may write (data dir too) */
        uint64_t nofile;        /* RLIMIT_NOFILE */
} osm_sandbox_limits;

#define OSM_SANDBOX_MAX_BINDS 16
#define OSM_SANDBOX_MAX_DEVICES 16
#define OSM_SANDBOX_MAX_ARGS 256

/* Everything one instance needs. All pointers are borrowed for the duration of the
 * spawn call only. */
typedef struct osm_sandbox_spec {
        const char *name;       /* instance id: names its cgroup; [A-Za-z0-9._-]{1,64} */
        const char *root;       /* host path of the bundle's rootfs, mounted read-only;
                                 * NULL: a minimal root with the host's /usr read-only */
        const char *const *argv;/* argv[0] absolute inside the sandbox, or looked up in
                                 * /usr/local/bin:/usr/bin:/bin */
        const char *const *envp;/* NULL: PATH, HOME=/data, TERM=dumb */
        const char *cwd;        /* NULL: "/data" if data_dir, else "/" */
        const char *data_dir;   /* host dir mounted rw,nosuid,nodev,noexec at /data; created
                                 * 0700 and owned by the mapped uid if missing; NULL: none */
        const osm_sandbox_bind *binds;
        size_t n_binds;
        const char *const *devices; /* host device nodes granted, bind-mounted at the same
                                     * path under /dev (e.g. "/dev/video0") */
        size_t n_devices;
        bool network;           /* granted: the configured network; else loopback only */
        const char *hostname;   /* NULL: "osmose" */
        osm_sandbox_limits limits;
        uid_t uid;              /* uid/gid inside the sandbox (0 = root of its user ns, */
        gid_t gid;              /*  with no capabilities at all) */
        int stdin_fd;           /* fds handed to the workload; -1: /dev/null. Not closed. */
        int stdout_fd;
        int stderr_fd;
        bool compat32;          /* allow the 32-bit ABI (armhf bundles on arm64); else any
                                 * non-native syscall kills the process */
        /* This instance's own host id range (privileged only): ids 0..uid_count-1 inside
         * map to uid_base…; it must lie within the sandbox's [uid-base, uid-base +
         * uid-count). uid_count 0: the whole range of the options (one for everyone). */
        uint64_t uid_base;
        uint64_t uid_count;
        const char *group;      /* a cgroup between the instances' parent and this instance
                                 * (a tenant's: [a-z0-9-]{1,40}), made if missing, with
                                 * group_limits (memory, pids, cpu_percent; 0: unlimited)
                                 * written at every spawn; NULL: none */
        osm_sandbox_limits group_limits;
} osm_sandbox_spec;

/* Remove a group's cgroup (see spec.group) once no instance is in it: 0, or -EBUSY. */
int osm_sandbox_remove_group(osm_sandbox *sb, const char *group);

/* Fill spec with defaults (stdio -1, limits 0). */
void osm_sandbox_spec_init(osm_sandbox_spec *spec);

/* Start an instance. Blocks only until the workload has exec'd (typically a few ms;
 * bounded by a 10 s timeout). On failure returns -errno and fills err (may be NULL) with
 * one line naming the step that failed, e.g. "pivot_root: Operation not permitted" or
 * "execve /bin/x: No such file or directory". *out is owned by the caller. */
int osm_sandbox_spawn(osm_sandbox *sb, const osm_sandbox_spec *spec, osm_sandbox_proc **out,
                      osm_error *err);

/* Accessors. pid is the host pid of the sandbox's init; pidfd is -1 if unavailable
 * (owned by proc: do not close; stop polling it before osm_sandbox_proc_free). */
pid_t osm_sandbox_proc_pid(const osm_sandbox_proc *p);
int osm_sandbox_proc_pidfd(const osm_sandbox_proc *p);
/* The instance's cgroup (NULL if no cgroup controller is usable). Borrowed. */
osm_cgroup *osm_sandbox_proc_cgroup(const osm_sandbox_proc *p);
/* Which limits were applied to this instance and how (for ps). */
const osm_sandbox_features *osm_sandbox_proc_limits(const osm_sandbox_proc *p);

/* When each step of a spawn ended, in µs after osm_sandbox_spawn was called (0: the step
 * was not taken): the launch breakdown of the debug log and of bench/sandbox.sh. */
typedef struct osm_sandbox_timing {
        uint32_t cgroups;       /* the instance's cgroups made and their limits written */
        uint32_t clone;         /* clone3 returned (namespaces made) */
        uint32_t joined;        /* moved into its v1 cgroups (0 if born in them) */
        uint32_t root;          /* its root built (privileged: it asks for its id map) */
        uint32_t started;       /* the workload has exec'd */
        bool waited_for_join;   /* the root was ready before the move into the cgroups
                                 * was: the move was in the critical path */
        bool userns_ahead;      /* it joined a user namespace made ahead (netns.c) */
        bool preforked;         /* its init was cloned ahead (launcher.c) */
        bool root_ahead;        /* …and had built the common part of its root before its
                                 * plan came (a minimal root) */
} osm_sandbox_timing;
const osm_sandbox_timing *osm_sandbox_proc_timing(const osm_sandbox_proc *p);

/* Signal the instance: SIGKILL kills everything in it at once (its pid namespace goes);
 * other signals go to the init, which forwards them to the workload. 0 or -errno. */
int osm_sandbox_proc_kill(osm_sandbox_proc *p, int sig);

typedef struct osm_sandbox_exit {
        int status;             /* the workload's wait status (WIFEXITED/WEXITSTATUS/
                                 * WIFSIGNALED/WTERMSIG apply); if the init itself was
                                 * killed, its status */
        bool oom_killed;        /* the memory limit was hit and the kernel killed a task */
        struct rusage rusage;   /* of the whole sandbox (init + everything it reaped) */
} osm_sandbox_exit;

/* Non-blocking: if the instance has exited, reap it, fill *out and return 0; -EAGAIN
 * while it runs; -ECHILD if already reaped. */
int osm_sandbox_proc_reap(osm_sandbox_proc *p, osm_sandbox_exit *out);

/* Kill (SIGKILL) and reap if still running (waits at most a few seconds), remove the
 * cgroup, close fds, free. Accepts NULL; returns NULL. */
osm_sandbox_proc *osm_sandbox_proc_free(osm_sandbox_proc *p);

/* Accounting of an instance. Fields unknown on this host are UINT64_MAX. */
typedef struct osm_cgroup_stats {
        uint64_t cpu_usec;      /* CPU time (user + system) */
        uint64_t memory_bytes;  /* current */
        uint64_t memory_peak;   /* high-water mark */
        uint64_t pids;          /* current tasks */
        uint64_t io_read_bytes;
        uint64_t io_write_bytes;
        uint64_t oom_kills;
} osm_cgroup_stats;

/* Read the counters; 0 or -errno. Also valid after exit, until osm_sandbox_proc_free. */
int osm_cgroup_stats_read(const osm_cgroup *cg, osm_cgroup_stats *out);
/* Kill every task in the cgroup (cgroup.kill on v2, else each pid). 0 or -errno. */
int osm_cgroup_kill(const osm_cgroup *cg, int sig);
/* {"cpu_usec":…,"memory_bytes":…,…}; unknown fields are left out. New reference. */
json_t *osm_cgroup_stats_json(const osm_cgroup_stats *st);

/* The daemon subsystem (d->sandbox): creates the manager from [sandbox] and reports in
 * status: health ok if every limit is enforced by a cgroup, degraded otherwise (with
 * which limits fall back to rlimits), failed if no user namespace can be made. */
struct osm_subsystem;
extern const struct osm_subsystem osm_sandbox_subsystem;
