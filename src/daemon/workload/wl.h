/* wl.h: internals shared by the files of the workload subsystem (not for other subsystems). */
#pragma once

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "daemon/daemon.h"
#include "daemon/db.h"
#include "daemon/sandbox/sandbox.h"
#include "daemon/workload/workloads.h"
#include "daemon/workload/wlog.h"
#include "osmose/manifest.h"


#define WL_MAX_ENDED      64      /* ended instances kept in memory for stats */
#define WL_MAX_LOGS       64      /* ended instances whose log files are kept */
#define WL_MAX_HISTORY    1000    /* ended instances kept in the database (ps --all) */
#define WL_GC_EVERY       16      /* ends between two sweeps of the history and the logs: up
                                   * to WL_GC_EVERY - 1 more than the two bounds above */
#define WL_MAX_INSTANCES  256     /* live instances at once */
#define WL_MAX_RUN_ARGS   64      /* extra arguments of one run */
#define WL_RESTART_RESET_US  (10 * 1000 * 1000ull)   /* a run this long resets the backoff */
#define WL_MAX_TRUSTED    256
#define WL_MAX_URL        2048    /* install from a URL */
#define WL_LOGS_MAX_REPLY (64u * 1024u)   /* log bytes per reply of a stream */
#define WL_LOGS_MAX_ONE   (256u * 1024u)  /* log bytes of a single reply (no "more") */

typedef struct wl_workload {
        struct wl_workload *next;
        char *name;
        int64_t version;
        char *bundle_id;          /* hex */
        char *manifest_text;
        osm_manifest *manifest;
        bool has_rootfs;
        char *signer;             /* base64 key or NULL */
        bool verified;
        bool allow_unsigned;
        int64_t installed_us;
        bool enabled;             /* started when the daemon starts */
        char **grants;            /* sorted, NULL-terminated */
        size_t n_grants;
        char *tenant;             /* its owner: OSM_TENANT_OPERATOR or a tenant's name */
        int64_t uid_block;        /* its own host id range: [sandbox] uid-base + block × uid-range-size */
} wl_workload;

typedef enum wl_state {
        WL_STARTING,
        WL_RUNNING,
        WL_BACKOFF,
        WL_STOPPING,
        WL_EXITED,
        WL_FAILED,
} wl_state;

typedef struct wl_waiter {
        struct wl_waiter *next;
        osm_call *call;
        int kind;                 /* WL_WAIT_RUN, WL_WAIT_STOP, WL_WAIT_LOGS */
        bool attach;              /* run: stream the log entries too */
        struct wl_stop_group *group;   /* stop --all: the call waits for all of them */
        bool dead;                /* a reply failed: the client has gone; the cancel
                                   * callback (waiter_cancel) frees it soon */
        struct wl_instance *inst;
} wl_waiter;

enum { WL_WAIT_RUN, WL_WAIT_STOP, WL_WAIT_LOGS };

/* stop --all: one call waiting for several instances. */
typedef struct wl_stop_group {
        osm_call *call;           /* NULL once its client has gone */
        json_t *ids;              /* the instances it stops */
        unsigned pending;         /* waiters not yet answered */
        bool killed;
} wl_stop_group;

/* One of the instance's two output pipes (stdout, stderr). */
typedef struct wl_pipe {
        struct wl_instance *inst;
        int stream;               /* WL_LOG_STDOUT or WL_LOG_STDERR */
        int fd;                   /* read end, -1 when none */
        uv_poll_t *poll;          /* malloc'd, freed when closed; NULL when none */
} wl_pipe;

typedef struct wl_instance {
        struct wl_instance *next;
        struct osm_workloads *w;
        char *id;
        char *workload;
        char *tenant;             /* the workload's owner when it started */
        int64_t uid_block;        /* and its host id range */
        int64_t version;
        char *bundle_id;
        osm_manifest *manifest;   /* own copy: the workload may be upgraded meanwhile */
        bool has_rootfs;
        char **args;              /* extra arguments, NULL-terminated */
        osm_restart_policy restart;   /* the manifest's, or the one given to Run */
        wl_state state;
        osm_sandbox_proc *proc;
        wl_pipe pipes[2];         /* stdout, stderr */
        uv_poll_t *pid_poll;      /* per run, malloc'd, freed when closed; NULL when none */
        uv_timer_t timer;         /* backoff and the stop grace period */
        unsigned open_handles;    /* freed when the last one is closed */
        bool freeing;
        int64_t started_us, ended_us;
        uint64_t run_started_mono;
        unsigned restarts;
        unsigned failures;        /* consecutive, for the backoff */
        bool stop_requested, killed;
        bool stopped_by_operator; /* Stop or Remove, not the daemon's own stop */
        bool resume;              /* ended by the daemon's stop: start it again at the next start */
        int exit_code, signal;    /* -1 when unknown */
        char *error;
        char api_path[256];
        bool api_created;
        wl_log *log;              /* logs/ID on disk; NULL if it could not be opened */
        json_t *pending;          /* entries read but not yet sent to followers */
        /* accounting of the last run that ended (and totals over restarts) */
        osm_cgroup_stats last;
        bool have_last;
        struct rusage ru;
        bool have_ru;
        wl_waiter *waiters;
        /* When the steps of its last start and end happened (osm_now_mono_us): the launch
         * breakdown of the debug log ("launch times:", read by bench/sandbox.sh). */
        struct {
                uint64_t call, recorded, spawn, spawned, exited, answered;
        } t;
} wl_instance;

typedef struct osm_workloads {
        osm_daemon *d;
        sqlite3 *db;              /* workloads, grants, history: synchronous=FULL */
        osm_db_stmts hist_stmts;  /* hist's statements run at every launch and end */
        sqlite3 *hist;            /* the same file, for instance records: synchronous=NORMAL
                                   * (a record may be lost in a power cut; no fsync per run) */
        char *state_dir;
        char *trust_dir;
        char *bundles_dir;
        char *data_dir;
        char *logs_dir;
        int logs_fd;              /* the logs directory */
        wl_workload *workloads;
        uint64_t grants_gen;      /* bumped whenever a workload's grants change or it goes */
        wl_instance *instances;   /* newest first */
        unsigned n_live, n_ended;
        unsigned ends_unswept;    /* instances ended since wl_history_gc last ran */
        bool installing;
        int abort_installs;       /* set at stop; read by fetching threads (atomic) */
        bool shutting_down;
        bool stopped;             /* the stop hook ran; freed when open_handles reaches 0 */
        unsigned open_handles;
        uv_check_t stop_check;    /* notices d->stopping */
        uv_signal_t sigchld;      /* fallback when pidfds are missing */
        uv_timer_t boot;          /* once, after every subsystem has started: resume, enabled */
        struct wl_removal *removals;   /* Remove calls waiting for instances to end */
        osm_workload_api_hooks api_hooks;
        void *api_userdata;
        struct osm_workloads_snapshot *snapshots;   /* their bundles are kept (channel-hooks.c) */
} osm_workloads;

/* channel-hooks.c */
bool wl_snapshot_holds(osm_workloads *w, const char *bundle_id);
/* At start, before the bundles are collected: the snapshots persisted by an earlier run. */
int wl_snapshots_load(osm_workloads *w);
void wl_snapshots_free_all(osm_workloads *w);

/* workloads.c */
wl_workload *wl_find(osm_workloads *w, const char *name);
void wl_workload_free(wl_workload *wl);
int wl_set_grants(osm_workloads *w, wl_workload *wl, char **grants, size_t n);
void wl_gc_bundles(osm_workloads *w);
int wl_rm_rf_at(int dirfd, const char *name);
bool wl_instance_alive(const wl_instance *i);
void wl_handle_closed(osm_workloads *w);
/* tenant: the owner to record (NULL: the replaced workload's, or the operator). */
int wl_commit_install(osm_workloads *w, osm_manifest *m, const char *manifest_text,
                      const char *bundle_id, bool has_rootfs, const char *signer, bool verified,
                      bool allow_unsigned, const char *source, char **grants, size_t n_grants,
                      const char *tenant);
/* May the caller of call reach a workload owned by owner? (tenants see only their own) */
bool wl_visible(osm_call *call, const char *owner);

/* db.c: every SQL statement of the subsystem */
int wl_db_open(osm_workloads *w, const char *path);
void wl_db_close(osm_workloads *w);
int wl_db_exec(osm_workloads *w, const char *sql);
int wl_db_history(osm_workloads *w, const char *name, const char *event, int64_t version,
                  const char *bundle_id, const char *detail);
int wl_db_save_grants(osm_workloads *w, const char *name, char **grants, size_t n);
int wl_db_save_install(osm_workloads *w, const wl_workload *wl, const char *source);
int wl_db_remove(osm_workloads *w, const wl_workload *wl, bool keep_data);
/* A new instance (i->id NULL: sets it) or one coming back after a restart of the daemon. */
void wl_db_instance_start(wl_instance *i);
/* Owners and host id ranges (table owners: kept after a removal while the data is). */
int wl_db_owner_assign(osm_workloads *w, const char *name, const char *tenant, int64_t *block);
int wl_db_owner_get(osm_workloads *w, const char *name, char **tenant, int64_t *block);
int wl_db_owner_release(osm_workloads *w, const char *name);
void wl_db_instance_end(const wl_instance *i);
json_t *wl_db_instances_ended(osm_workloads *w, size_t limit);   /* Instance objects, oldest first */
char *wl_db_instance_newest(osm_workloads *w, const char *name); /* id of its newest instance */
bool wl_db_instance_known(osm_workloads *w, const char *id);
void wl_db_instances_gc(osm_workloads *w);
char **wl_db_logs_kept(osm_workloads *w, size_t *n);
typedef struct wl_open_instance {
        char *id, *name, *restart, *args;   /* restart, args may be NULL */
        int restarts;
        bool crashed;             /* ended IS NULL: the daemon died while it ran */
} wl_open_instance;
size_t wl_db_instances_open(osm_workloads *w, wl_open_instance *rows, size_t max);
void wl_db_instance_not_resumed(osm_workloads *w, const char *id, const char *why);
int wl_db_set_enabled(osm_workloads *w, const char *name, bool enabled);
bool wl_db_data_kept(osm_workloads *w, const char *name);

/* history.c: instances across daemon restarts */
void wl_history_start(osm_workloads *w);   /* resume instances, start enabled workloads */
void wl_history_gc(osm_workloads *w);      /* old rows and log files */

/* trust.c */
int wl_trust_canonical(const char *text, char out[OSM_PUBKEY_B64]);
int wl_trust_is_trusted(osm_workloads *w, const uint8_t pk[OSM_PUBKEY_BYTES]);
bool wl_signer_untrusted(osm_workloads *w, const wl_workload *wl);
int wl_trust_add(osm_workloads *w, const char *key);
json_t *wl_trust_list(osm_workloads *w);
int wl_trust_remove(osm_workloads *w, const char *key);

/* install.c */
typedef struct wl_install_hooks {
        char *expect_name;        /* refuse a bundle of another workload (NULL: any) */
        char *expect_id;          /* refuse another bundle (NULL: any) */
        char *source;             /* recorded as the install's source */
        char *tenant;             /* the owner an operator installs it for (NULL: keep, or operator) */
        osm_workloads_install_done done;
        void *userdata;
} wl_install_hooks;
int wl_install_begin(osm_workloads *w, osm_call *call, const char *url, int fd, json_t *grants,
                     bool allow_unsigned, bool allow_downgrade, const wl_install_hooks *hooks);

/* instance.c: supervision */
extern const char *const wl_state_names[];
/* Start an instance of wl (a new one, or, with id, one that ran before the daemon's
 * restart, keeping its id, log and restart count) with the restart policy given. 0, or
 * -errno with err set: -EBUSY at the limit; a new instance that failed to spawn is
 * recorded as failed and *out is set to it; else *out is NULL. */
int wl_instance_run(osm_workloads *w, wl_workload *wl, const char *const *args, size_t n_args,
                    osm_restart_policy restart, const char *id, unsigned restarts,
                    wl_instance **out, osm_error *err);
wl_instance *wl_instance_resolve(osm_workloads *w, const char *arg);
size_t wl_instances_live_of(osm_workloads *w, const char *name, wl_instance **v, size_t max);
json_t *wl_instance_json(const wl_instance *i);
void wl_add_exit(json_t *p, const wl_instance *i);
void wl_describe_end(const wl_instance *i, char *buf, size_t size);
wl_waiter *wl_waiter_new(wl_instance *i, osm_call *call, int kind);   /* no cancel set */
int wl_waiter_add(wl_instance *i, osm_call *call, int kind);          /* with its cancel */
void wl_waiter_cancel(osm_call *call, void *userdata);
void wl_stop_group_cancel(osm_call *call, void *userdata);
void wl_feed_followers(wl_instance *i, bool final);
void wl_instance_request_stop(wl_instance *i);
void wl_instances_begin_shutdown(osm_workloads *w);
void wl_instances_stop_all(osm_workloads *w);
void wl_instances_stop_workload(osm_workloads *w, const char *name);
void wl_instances_sigchld(osm_workloads *w);
/* Log entries as JSON objects (LogEntry), collected by wl_entries_add (a wl_log_fn):
 * at most max bytes of data (0: no bound). */
typedef struct wl_entry_acc {
        json_t *entries;
        size_t bytes, max;
} wl_entry_acc;
int wl_entries_add(const wl_log_entry *e, void *userdata);

/* iface-workload.c: Remove calls waiting for instances to end */
void wl_removals_check(osm_workloads *w);
/* Instances of tenant alive now. */
unsigned wl_tenant_live(osm_workloads *w, const char *tenant);

/* iface-workload.c */
extern const osm_method wl_methods[];
extern const size_t wl_n_methods;
