/* sandbox-child.h: what the parent prepares for the child side (child.c): plain data, nothing from jansson or the daemon. */
#pragma once

#include <linux/filter.h>
#include <stdbool.h>
#include <stddef.h>
#include <signal.h>
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
        unsigned ahead;     /* MSG_STARTED: of its steps, how many an init cloned ahead
                             * had run before its plan came */
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
        const op *common;           /* run before ops: the steps every minimal root */
        size_t n_common;            /* begins with (osm_sb_ahead's, made once), or none */
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

/* The plan of a launch, for an init cloned ahead (launcher.c): the daemon writes it into
 * osm_sb_plan_mem (spawn.c) and sends those bytes on the init's sync socket with its fds;
 * the init receives them into its own copy of that buffer, at the same address (it is a
 * copy of the daemon), so every pointer of the plan — into the buffer, or into the
 * daemon's binary — holds in the init as it is. No memory is shared. */
enum { PLAN_FD_STDIN, PLAN_FD_STDOUT, PLAN_FD_STDERR, PLAN_FD_NETNS, PLAN_FD_USERNS, PLAN_FDS };
#define PLAN_MAX (128 * 1024)   /* a bigger plan (paths by the thousand) takes a clone */
typedef struct osm_sb_plan {
        size_t size;            /* of the whole plan, this header included */
        sigset_t mask;          /* the launching thread's signal mask */
        bool unshare_net;       /* no network namespace made ahead: the init makes one */
        int fd_index[PLAN_FDS]; /* which of the fds that come with it is which, -1 none */
        child_ctx ctx;          /* its fd fields are filled in by the init */
        _Alignas(16) unsigned char data[];
} osm_sb_plan;
extern _Alignas(64) unsigned char osm_sb_plan_mem[PLAN_MAX];

/* What an init cloned ahead gets at its birth (on the launcher thread's stack). */
typedef struct osm_sb_birth {
        int sync_fd;            /* its end of the sync socket */
        int parent_fd;          /* the daemon's end, closed in the init */
        void *heap;             /* the daemon's malloc heap at the clone, which the init */
        size_t heap_len;        /* unmaps at once: nothing of it is used; NULL: unknown */
        const op *ahead;        /* the steps every minimal root begins with, to run while */
        size_t n_ahead;         /* it waits (outside that heap); 0: none */
} osm_sb_birth;

/* The init cloned ahead (arg: its osm_sb_birth): it keeps only its sync socket, runs the
 * steps every minimal root begins with, waits for its plan, then runs as
 * osm_sb_child_main. The daemon closing its end instead ends it. */
int osm_sb_prefork_main(void *arg);

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
