/* wl.h: internals shared by the files of the workload subsystem (not for other subsystems). */
#pragma once

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "daemon/daemon.h"
#include "daemon/sandbox/sandbox.h"
#include "daemon/workload/workloads.h"
#include "osmose/manifest.h"

#define WL_ERR_BAD_BUNDLE     "io.osmose.Workload.BadBundle"
#define WL_ERR_UNTRUSTED      "io.osmose.Workload.Untrusted"
#define WL_ERR_DOWNGRADE      "io.osmose.Workload.Downgrade"
#define WL_ERR_BAD_CAPABILITY "io.osmose.Workload.BadCapability"
#define WL_ERR_SPAWN_FAILED   "io.osmose.Workload.SpawnFailed"
#define WL_ERR_FETCH_FAILED   "io.osmose.Workload.FetchFailed"

#define WL_MAX_ENDED      64      /* ended instances kept in memory for logs and stats */
#define WL_MAX_INSTANCES  256     /* live instances at once */
#define WL_MAX_RUN_ARGS   64      /* extra arguments of one run */
#define WL_RESTART_RESET_US  (10 * 1000 * 1000ull)   /* a run this long resets the backoff */
#define WL_MAX_TRUSTED    256
#define WL_MAX_URL        2048    /* install from a URL */
#define WL_LOGS_MAX_REPLY (64u * 1024u)   /* raw log bytes per reply */

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
        char **grants;            /* sorted, NULL-terminated */
        size_t n_grants;
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
        uint64_t log_pos;         /* logs: next byte to send */
        bool dead;                /* a reply failed: the client has gone; the cancel
                                   * callback (waiter_cancel) frees it soon */
        struct wl_instance *inst;
} wl_waiter;

enum { WL_WAIT_RUN, WL_WAIT_STOP, WL_WAIT_LOGS };

typedef struct wl_instance {
        struct wl_instance *next;
        struct osm_workloads *w;
        char *id;
        char *workload;
        int64_t version;
        char *bundle_id;
        osm_manifest *manifest;   /* own copy: the workload may be upgraded meanwhile */
        bool has_rootfs;
        char **args;              /* extra arguments, NULL-terminated */
        wl_state state;
        osm_sandbox_proc *proc;
        int log_fd;               /* read end of the stdout/stderr pipe, -1 when none */
        uv_poll_t *pid_poll;      /* per run, malloc'd, freed when closed; NULL when none */
        uv_poll_t *log_poll;
        uv_timer_t timer;         /* backoff and the stop grace period */
        unsigned open_handles;    /* freed when the last one is closed */
        bool freeing;
        int64_t started_us, ended_us;
        uint64_t run_started_mono;
        unsigned restarts;
        unsigned failures;        /* consecutive, for the backoff */
        bool stop_requested, killed;
        int exit_code, signal;    /* -1 when unknown */
        char *error;
        char api_path[256];
        bool api_created;
        /* the bounded log: a ring of log_size bytes; log_total bytes were ever written */
        uint8_t *log;
        size_t log_size;          /* the bound (log-size) */
        size_t log_cap;           /* bytes allocated so far, <= log_size */
        uint64_t log_total;
        /* accounting of the last run that ended (and totals over restarts) */
        osm_cgroup_stats last;
        bool have_last;
        struct rusage ru;
        bool have_ru;
        wl_waiter *waiters;
} wl_instance;

typedef struct osm_workloads {
        osm_daemon *d;
        sqlite3 *db;              /* workloads, grants, history: synchronous=FULL */
        sqlite3 *hist;            /* the same file, for instance records: synchronous=NORMAL
                                   * (a record may be lost in a power cut; no fsync per run) */
        char *state_dir;
        char *trust_dir;
        char *bundles_dir;
        char *data_dir;
        char *api_dir;
        wl_workload *workloads;
        wl_instance *instances;   /* newest first */
        unsigned n_live, n_ended;
        bool installing;
        int abort_installs;       /* set at stop; read by fetching threads (atomic) */
        bool shutting_down;
        bool stopped;             /* the stop hook ran; freed when open_handles reaches 0 */
        unsigned open_handles;
        uv_check_t stop_check;    /* notices d->stopping */
        uv_signal_t sigchld;      /* fallback when pidfds are missing */
        osm_workload_api_hooks api_hooks;
        void *api_userdata;
        struct osm_workloads_snapshot *snapshots;   /* their bundles are kept (channel-hooks.c) */
} osm_workloads;

/* channel-hooks.c */
bool wl_snapshot_holds(osm_workloads *w, const char *bundle_id);

/* workloads.c */
wl_workload *wl_find(osm_workloads *w, const char *name);
void wl_workload_free(wl_workload *wl);
int wl_set_grants(osm_workloads *w, wl_workload *wl, char **grants, size_t n);
void wl_gc_bundles(osm_workloads *w);
int wl_rm_rf_at(int dirfd, const char *name);
bool wl_instance_alive(const wl_instance *i);
void wl_handle_closed(osm_workloads *w);
int wl_commit_install(osm_workloads *w, osm_manifest *m, const char *manifest_text,
                      const char *bundle_id, bool has_rootfs, const char *signer, bool verified,
                      bool allow_unsigned, const char *source, char **grants, size_t n_grants);

/* db.c: every SQL statement of the subsystem */
int wl_db_open(osm_workloads *w, const char *path);
void wl_db_close(osm_workloads *w);
int wl_db_exec(osm_workloads *w, const char *sql);
int wl_db_history(osm_workloads *w, const char *name, const char *event, int64_t version,
                  const char *bundle_id, const char *detail);
int wl_db_save_grants(osm_workloads *w, const char *name, char **grants, size_t n);
int wl_db_save_install(osm_workloads *w, const wl_workload *wl, const char *source);
int wl_db_remove(osm_workloads *w, const wl_workload *wl);
int wl_db_instance_add(osm_workloads *w, wl_instance *i);
void wl_db_instance_end(const wl_instance *i);

/* trust.c */
int wl_trust_canonical(const char *text, char out[OSM_PUBKEY_B64]);
int wl_trust_is_trusted(osm_workloads *w, const uint8_t pk[OSM_PUBKEY_BYTES]);
int wl_trust_add(osm_workloads *w, const char *key);
json_t *wl_trust_list(osm_workloads *w);
int wl_trust_remove(osm_workloads *w, const char *key);

/* install.c */
typedef struct wl_install_hooks {
        char *expect_name;        /* refuse a bundle of another workload (NULL: any) */
        char *expect_id;          /* refuse another bundle (NULL: any) */
        char *source;             /* recorded as the install's source */
        osm_workloads_install_done done;
        void *userdata;
} wl_install_hooks;
int wl_install_begin(osm_workloads *w, osm_call *call, const char *url, int fd, json_t *grants,
                     bool allow_unsigned, bool allow_downgrade, const wl_install_hooks *hooks);

/* instance.c: supervision */
extern const char *const wl_state_names[];
int wl_instance_run(osm_workloads *w, wl_workload *wl, const char *const *args, size_t n_args,
                    wl_instance **out, char *why, size_t whysize);
wl_instance *wl_instance_resolve(osm_workloads *w, const char *arg);
json_t *wl_instance_json(const wl_instance *i);
void wl_add_exit(json_t *p, const wl_instance *i);
json_t *wl_log_read(wl_instance *i, uint64_t *pos, size_t max, uint64_t *dropped);
int wl_waiter_add(wl_instance *i, osm_call *call, int kind, uint64_t pos);
void wl_feed_followers(wl_instance *i, bool final);
void wl_instance_request_stop(wl_instance *i);
void wl_instances_begin_shutdown(osm_workloads *w);
void wl_instances_stop_all(osm_workloads *w);
void wl_instances_stop_workload(osm_workloads *w, const char *name);
void wl_instances_sigchld(osm_workloads *w);

/* iface-workload.c */
extern const osm_method wl_methods[];
extern const size_t wl_n_methods;
