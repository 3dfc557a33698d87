/* sandbox-child.h: what the parent prepares for the child side (child.c): plain data, nothing from jansson or the daemon. */
#pragma once

#include <linux/filter.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/resource.h>
#include <sys/types.h>

/* A compiled filter: classic BPF, ready for seccomp(SECCOMP_SET_MODE_FILTER) without any
 * allocation. Two programs per policy because the kernel runs every loaded filter and
 * keeps the strictest answer: an allowlist (default EPERM) and a small denylist for
 * argument checks that an allowlist cannot express (ioctl TIOCSTI: "any ioctl but"). */
typedef struct osm_seccomp_prog {
        struct sock_fprog allow;
        struct sock_fprog deny;
} osm_seccomp_prog;

/* Messages from the sandbox's init (and its failed exec) to the daemon. */
enum { MSG_ERROR = 1, MSG_STARTED, MSG_EXIT, MSG_MAP_ME };
typedef struct sync_msg {
        int type;
        int err;      /* errno for MSG_ERROR */
        int status;   /* wait status for MSG_EXIT */
        char step[240];
        uint64_t root_us;   /* MSG_STARTED: when the root was built and the user namespace
                             * made or joined (CLOCK_MONOTONIC, µs) */
} sync_msg;

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
        const char *const *argv;    /* the workload's command line */
        int stdio_fd[3];            /* its stdin, stdout, stderr; -1: /dev/null */
        const osm_seccomp_prog *prog;
        int sync_fd;                /* child's end */
        int parent_fd;              /* parent's end, closed in the child */
        int netns_fd;               /* a network namespace made ahead to join, or -1:
                                     * the clone made one (CLONE_NEWNET) */
        int userns_fd;              /* privileged: a user namespace made ahead and mapped,
                                     * to join once the root is built, or -1: unshare one
                                     * and ask the parent for its map */
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
        void *heap;                 /* the daemon's malloc heap (brk), which the init */
        size_t heap_len;            /* unmaps once the workload runs; NULL: unknown */
} child_ctx;

/* Bring up the loopback interface of the calling thread's network namespace: NULL, or
 * the step that failed with *err its errno. Async-signal-safe (the init runs it; so does
 * netns.c, in the namespaces it makes ahead). */
const char *osm_sb_loopback_up(int *err);

/* The sandbox's init: set up the root, drop privileges, load seccomp, start the
 * workload, report on c->sync_fd. Runs in the clone child; never returns. */
int osm_sb_child_main(void *arg);

/* The feature probe (detect.c): a child in every namespace that makes a cgroup namespace
 * and loads prog. arg: an osm_sb_probe. Its exit code says what failed. */
enum { PROBE_CGROUPNS = 1, PROBE_SECCOMP = 2, PROBE_USERNS = 4 };
typedef struct osm_sb_probe {
        const osm_seccomp_prog *prog;
        bool unshare_user;        /* privileged: the user namespace comes from unshare */
} osm_sb_probe;
int osm_sb_probe_child(void *arg);
