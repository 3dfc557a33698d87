/* ch.h: internals shared by the files of the channels subsystem. */
#pragma once

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "daemon/channels/channels.h"
#include "daemon/daemon.h"
#include "daemon/workload/workloads.h"
#include "osmose/channel.h"


#define CH_MAX_SOURCE   2048
#define CH_REMOTE_PREFIX "remote:"   /* a source that names a paired remote */
#define CH_MAX_REMOTE_NAME 64
#define CH_MAX_FOLLOWS  256
#define CH_SEEN_KEPT    64       /* lists remembered per channel and signer, for replays */
#define CH_POLL_MS      100      /* how often a health check looks at the instances */
#define CH_REPORT_BACKOFF_MIN_MS 1000    /* a report the building did not take: sent again after */
#define CH_REPORT_BACKOFF_MAX_MS 16000   /* …doubling up to this */

typedef struct ch_follow {
        struct ch_follow *next;
        char *name;               /* the workload */
        char *source;             /* a directory, or an http(s) base URL */
        char *channel;            /* SOURCE/CHANNEL.channel */
        int64_t pinned;           /* 0: follows the newest */
        int64_t checked_us;
        char *error, *error_name; /* of the last check, NULL when it went well */
        const char *state;        /* idle, checking, fetching, installing, health, rolling-back */
        int64_t latest, sequence; /* of the last accepted list; 0 when none */
        char signer[OSM_PUBKEY_B64];
        bool building;            /* followed building-wide: upgrades wait for this room's wave */
        char *canary;             /* the canary room's name (NULL: the first room by name) */
        int64_t batch;            /* rooms per wave after the canary */
} ch_follow;

struct ch_job;
struct ch_batch;

typedef struct osm_channels {
        osm_daemon *d;
        sqlite3 *db;
        char *dir;                /* state/channels */
        char *bundles_dir;        /* state/channels/bundles: verified bundle files by id */
        ch_follow *follows;
        uv_timer_t check_timer;   /* the periodic check */
        uv_timer_t poll_timer;    /* the running job's health check */
        struct ch_job *job;       /* the one running job, if any */
        struct ch_batch *batch;   /* the batch it belongs to */
        int abort;                /* set at stop; read by fetching threads (atomic) */
        bool stopped;
        bool resume_pending;      /* interrupted upgrades to finish or roll back first */
        uv_timer_t report_timer;  /* sends again the reports the building did not take */
        unsigned reports_in_flight, report_backoff_ms;
        bool report_failed, reports_dirty;
        unsigned refs;            /* handles open and jobs in flight; freed at 0 after stop */
} osm_channels;

/* channels.c */
ch_follow *ch_find(osm_channels *c, const char *name);
int ch_db_exec(osm_channels *c, const char *sql);
void ch_follow_set_error(osm_channels *c, ch_follow *f, const char *error_name, const char *message);
void ch_follow_save_check(osm_channels *c, ch_follow *f);
json_t *ch_follow_json(osm_channels *c, ch_follow *f);
bool ch_is_bad(osm_channels *c, const char *name, const char *bundle);
int ch_mark_bad(osm_channels *c, const char *name, int64_t version, const char *bundle, const char *reason);
void ch_unref(osm_channels *c);
ch_follow *ch_follow_add(osm_channels *c, const char *name, const char *source, const char *channel);
int ch_follow_remove(osm_channels *c, const char *name);
int ch_follow_set_pin(osm_channels *c, ch_follow *f, int64_t version);
/* The sequence rules against the lists seen before; records an accepted one. Returns
 * NULL, or the error name with err filled (-ESTALE: replayed or stale, -EIO: the
 * database) and *newest set. */
const char *ch_seen_check(osm_channels *c, const osm_channel *ch, int64_t *newest, osm_error *err);
bool ch_clock_trusted(osm_channels *c);

/* source.c (thread pool side): the list and the bundles, from a directory or a URL. */
int ch_source_check(const char *source, osm_error *err);
/* The remote's name of a remote:NAME source, or NULL. */
const char *ch_source_remote(const char *source);
/* Read and parse a list from fd (rel names it in errors); *text_out (may be NULL) gets its
 * text, NUL-terminated. */
int ch_read_channel(int fd, const char *rel, osm_channel **out, char **text_out, const char **err_name,
                    osm_error *err);
/* Keep an accepted list (its text as signed), to serve it to remotes it is shared with. */
void ch_keep_list(osm_channels *c, const char *channel, const char *text);
int ch_fetch_channel(osm_channels *c, const char *source, const char *channel, osm_channel **out,
                     char **text_out, const char **err_name, osm_error *err);
/* The verified bundle file of id (size bytes) from the kept bundles, or fetched from
 * source and verified by its id on arrival, then kept. Returns an fd at offset 0, or -1
 * with *err_name and err set. */
int ch_fetch_bundle(osm_channels *c, const char *source, const char *id, uint64_t size,
                    const char **err_name, osm_error *err);
/* Open a kept bundle by id: fd, or -errno. */
int ch_open_kept(osm_channels *c, const char *id);
/* Verify the bundle in src_fd and keep it under its id (want_id may be NULL: any id);
 * fills id_out. Returns 0 or -1 with err set. */
int ch_keep_bundle(osm_channels *c, int src_fd, const char *want_id, uint64_t want_size, char id_out[OSM_HASH_HEX],
                   const char **err_name, osm_error *err);

void ch_follow_set_building(osm_channels *c, ch_follow *f, bool on, const char *canary, int64_t batch);

/* peers.c (thread pool side): bundles by hash from building members before the origin. */
/* Bundle id (size bytes; 0: as the member says) from a member that keeps it, verified and
 * kept: an fd at offset 0, or -ENOENT (no member served it: go to the origin). */
int ch_fetch_from_peers(osm_channels *c, const char *id, uint64_t size);
/* Tell the building this room keeps bundle id (and serves it to the members). */
void ch_peers_announce(osm_channels *c, const char *id, uint64_t size);

/* rollout.c: the building's side (every function -ENOTCONN / nothing outside a building) */
bool ch_building_active(osm_channels *c);
/* Is key (text) trusted building-wide (building trust add)? */
bool ch_building_trusts(osm_channels *c, const char *key);
/* Record f as followed building-wide; the reply to call (the follow) comes when it is. */
int ch_building_record_follow(osm_channels *c, osm_call *call, ch_follow *f);
/* Read the building's follows into ours, then start the periodic batch. */
int ch_building_sync_then_check(osm_channels *c);
/* Has this room's wave come for bundle? fn(job, "go" | "waiting" | "halted" | "stopped", why). */
int ch_building_gate(osm_channels *c, ch_follow *f, const char *bundle, void (*fn)(void *, const char *, const char *),
                     void *job);
/* This room's outcome for a bundle: healthy or failed. */
void ch_building_report(osm_channels *c, const char *name, const char *bundle, int64_t version, const char *state,
                        bool keep_existing);
/* At start: send the reports an earlier run recorded and the building did not take. */
void ch_reports_resume(osm_channels *c);
extern const osm_method ch_rollout_methods[];
extern const size_t ch_n_rollout_methods;

/* upgrade.c */
/* Check (and upgrade unless check_only) every followed workload; call may be NULL (the
 * periodic check). Returns 0 or -EBUSY when a batch is running. */
int ch_batch_start(osm_channels *c, osm_call *call, const char *name, bool check_only);
/* Follow's first check: the list must be readable and acceptable; a new follow is
 * dropped again if it is not. */
int ch_batch_follow(osm_channels *c, osm_call *call, const char *name, const char *old_source,
                    const char *old_channel);
void ch_jobs_stop(osm_channels *c);
/* Finish or roll back the upgrades a stop or crash interrupted (the upgrading table).
 * Returns 0, -EBUSY when a batch is running, or -errno. */
int ch_resume_start(osm_channels *c);
