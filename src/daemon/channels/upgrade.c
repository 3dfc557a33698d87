/* upgrade.c: checking a followed workload's channel and upgrading it — read the list,
 * judge it (signer trusted, sequence, expiry), choose the version (pinned, or the newest
 * not marked bad), fetch the bundle by its id, install it beside the old one, restart
 * the instances and watch them; on failure mark the version bad and go back.
 *
 * One job runs at a time, one workload after another within a batch (one Upgrade call,
 * a Follow, or the periodic check). The health check polls the instances every
 * CH_POLL_MS: the workload subsystem keeps their state, and a poll needs no callback
 * into a subsystem that may be restarting them. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "build-config.h"
#include "daemon/channels/ch.h"
#include "daemon/db.h"
#if HAVE_MHD
#include "daemon/federation/fed-api.h"
#endif
#include "daemon/workload/workloads.h"
#include "osmose/log.h"

enum { MODE_FOLLOW, MODE_CHECK, MODE_UPGRADE, MODE_RESUME };
enum { H_NONE, H_STOPPING_OLD, H_WATCH, H_HEALTH_CMD, H_ROLLBACK_STOPPING };

typedef struct ch_batch {
        osm_call *call;           /* NULL for the periodic check, or once the client has gone */
        int mode;
        bool single;              /* one workload named: its refusal is the call's error */
        bool follow_new;          /* Follow of a workload not followed before */
        char *old_source, *old_channel;   /* a Follow that changed them: put back if refused */
        char **names;
        size_t n, next;
        json_t *results;
        const char *err_name;     /* of the single job */
        char err[512];
        json_t *err_extra;
} ch_batch;

typedef struct ch_job {
        uv_work_t work;
        osm_channels *c;
        struct osm_workloads *w;         /* valid until the job is freed, even while stopping */
        ch_batch *b;
        char *name, *source, *channel;
        int64_t pinned;
        int phase;                /* 1: read the list; 2: fetch the bundle */
        osm_channel *doc;
        osm_channel *imported;    /* the list an import left, if any */
        const osm_channel_version *target;
        int bundle_fd;
        bool have_installed;
        int64_t installed;
        char installed_id[OSM_HASH_HEX];
        const char *action;
        const char *err_name;
        char err[512];
        json_t *err_extra;
        /* the upgrade and its health check */
        struct osm_workloads_snapshot *snap;
        json_t *restart_args;     /* the args of each instance that ran before */
        json_t *new_ids;          /* instances started from the new version */
        char *health_id;
        int hstate;
        uint64_t deadline, grace_end;
        char *fail_reason;
        bool waiting_install;
        bool waiting_gate;        /* asked the building whether this room's wave has come */
        bool recorded;            /* in the upgrading table: resumed after a stop or crash */
        int64_t sequence;         /* of the list the target comes from */
        osm_channel_version resumed;   /* the target of a resumed upgrade (no list read) */
        char *doc_text;           /* the list as read from the source, kept once accepted */
        /* a remote:NAME source: what the remote sent for the phase got_phase */
        int got_fd, got_phase;
        bool waiting_fetch;
        char got_err[384];
} ch_job;

static void batch_next(osm_channels *c);
static void resume_job(ch_job *j);
static void job_done(ch_job *j);

static void job_free(ch_job *j) {
        osm_channels *c = j->c;
        /* A daemon stopping in the middle of an upgrade keeps its snapshot (and the
         * upgrading row) for the next start; otherwise the upgrade has ended. */
        bool stopping = __atomic_load_n(&c->abort, __ATOMIC_RELAXED) && j->recorded;
        if (j->snap && stopping)
                osm_workloads_snapshot_release(j->w, j->snap);
        else if (j->snap)
                osm_workloads_snapshot_free(j->w, j->snap);
        j->snap = NULL;
        free(j->name);
        free(j->source);
        free(j->channel);
        free(j->doc_text);
        osm_close(j->got_fd);
        osm_channel_free(j->doc);
        osm_channel_free(j->imported);
        osm_close(j->bundle_fd);
        json_decref(j->err_extra);
        json_decref(j->restart_args);
        json_decref(j->new_ids);
        free(j->health_id);
        free(j->fail_reason);
        free(j);
        ch_unref(c);
}

static void job_fail(ch_job *j, const char *name, const char *fmt, ...) OSM_PRINTF(3, 4);
static void job_fail(ch_job *j, const char *name, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(j->err, sizeof j->err, fmt, ap);
        va_end(ap);
        j->err_name = name;
        j->action = "failed";
}

static ch_follow *job_follow(ch_job *j) {
        return ch_find(j->c, j->name);
}

static void set_state(ch_job *j, const char *state) {
        ch_follow *f = job_follow(j);
        if (f)
                f->state = state;
}

/* ---- phase 1 and 2 on the thread pool ------------------------------------------------ */

/* A remote:NAME source: the list or bundle arrived from the remote (or did not). */
static int from_remote(ch_job *j, const char *what, osm_error *err) {
        if (j->got_fd >= 0)
                return 0;
        return osm_error_set(err, -EIO, 0, "%s from remote %s: %s", what, ch_source_remote(j->source),
                             j->got_err[0] ? j->got_err : "not fetched");
}

/* A failure of the thread-pool side, kept in the job for the loop's side to report. */
static int job_error(ch_job *j, int r, const osm_error *e) {
        if (r < 0)
                snprintf(j->err, sizeof j->err, "%s", e->message);
        return r;
}

static void work_cb(uv_work_t *req) {
        ch_job *j = req->data;
        osm_error e = {};
        osm_channels *c = j->c;
        const char *remote = ch_source_remote(j->source);
        if (j->phase == 1) {
                /* The source's list, and the one an import left: the higher sequence wins,
                 * and either alone does when the other cannot be read (offline). */
                const char *iname = NULL;
                _cleanup_free_ char *idir = NULL;
                if (asprintf(&idir, "%s/imported", c->dir) >= 0 &&
                    ch_fetch_channel(c, idir, j->channel, &j->imported, NULL, &iname, NULL) < 0)
                        j->imported = NULL;
                int r;
                if (remote) {
                        char rel[OSM_CHANNEL_MAX_NAME + 16];
                        snprintf(rel, sizeof rel, "%s.channel", j->channel);
                        r = job_error(j, from_remote(j, rel, &e), &e);
                        if (r < 0)
                                j->err_name = OSM_E_CHANNEL_FETCH_FAILED;
                        else
                                r = job_error(j, ch_read_channel(j->got_fd, rel, &j->doc, &j->doc_text,
                                                                 &j->err_name, &e), &e);
                        j->got_fd = osm_close(j->got_fd);
                } else
                        r = job_error(j, ch_fetch_channel(c, j->source, j->channel, &j->doc, &j->doc_text,
                                                          &j->err_name, &e), &e);
                if (r < 0) {
                        if (j->imported && strcmp(j->err_name, OSM_E_CHANNEL_FETCH_FAILED) == 0) {
                                j->doc = steal_pointer(&j->imported);
                                j->err_name = NULL;
                        }
                } else if (j->imported && j->imported->sequence > j->doc->sequence &&
                           memcmp(j->imported->signer, j->doc->signer, OSM_PUBKEY_BYTES) == 0) {
                        osm_channel_free(j->doc);
                        j->doc = steal_pointer(&j->imported);
                        free(j->doc_text);   /* the imported one is served as it is */
                        j->doc_text = NULL;
                }
                return;
        }
        if (remote) {
                /* Kept already, or what the remote sent, verified by its id as from any source. */
                j->bundle_fd = ch_open_kept(c, j->target->bundle);
                if (j->bundle_fd >= 0)
                        return;
                char got[OSM_HASH_HEX];
                if (job_error(j, from_remote(j, j->target->bundle, &e), &e) < 0)
                        j->err_name = OSM_E_CHANNEL_FETCH_FAILED;
                else if (job_error(j, ch_keep_bundle(c, j->got_fd, j->target->bundle, j->target->size, got,
                                                     &j->err_name, &e), &e) == 0) {
                        ch_peers_announce(c, j->target->bundle, j->target->size);   /* as from any source */
                        if ((j->bundle_fd = ch_open_kept(c, j->target->bundle)) < 0) {
                                j->err_name = OSM_E_INTERNAL_ERROR;
                                snprintf(j->err, sizeof j->err, "opening kept bundle %s: %s", j->target->bundle,
                                         strerror(-j->bundle_fd));
                        }
                }
                j->got_fd = osm_close(j->got_fd);
                if (j->bundle_fd < 0)
                        j->bundle_fd = -1;
                return;
        }
        j->bundle_fd = job_error(j, ch_fetch_bundle(c, j->source, j->target->bundle, j->target->size,
                                                    &j->err_name, &e), &e);
}

static void after_work_cb(uv_work_t *req, int status);

static void start_phase(ch_job *j, int phase);

static void on_remote_got(void *userdata, const char *err_name, const char *message, int fd) {
        ch_job *j = userdata;
        j->waiting_fetch = false;
        if (j->c->stopped) {
                osm_close(fd);
                job_free(j);
                return;
        }
        osm_close(j->got_fd);
        j->got_fd = fd;
        if (err_name)
                snprintf(j->got_err, sizeof j->got_err, "%s%s%s", message ? message : "", message ? " " : "",
                         strcmp(err_name, OSM_E_NOT_FOUND) == 0 ? "(the remote does not share it: osmosectl share "
                                                                  "--channel NAME --with REMOTE there)" : err_name);
        start_phase(j, j->phase);
}

static void start_phase(ch_job *j, int phase) {
        osm_channels *c = j->c;
        const char *remote = ch_source_remote(j->source);
        j->work.data = j;
        /* A remote's list or bundle comes over federation first (on the loop), unless the
         * bundle is kept already; then the thread pool judges it as any other. */
        if (remote && j->got_phase != phase) {
                j->phase = j->got_phase = phase;
                j->got_err[0] = 0;
                int k = phase == 2 ? ch_open_kept(c, j->target->bundle) : -1;
                int r = -ENOTCONN;
                if (k >= 0)
                        close(k);
#if HAVE_MHD
                else if ((r = osm_federation_channel_fetch(c->d, remote, j->channel, phase == 2 ? j->target->bundle : NULL,
                                                           on_remote_got, j)) == 0) {
                        j->waiting_fetch = true;
                        return;
                }
#endif
                if (k < 0)
                        snprintf(j->got_err, sizeof j->got_err, "%s", r == -ENOENT ? "no paired remote of that name "
                                 "(osmosectl remote ls)" : r == -ENOTCONN ? "federation is off (osmosectl federation "
                                 "enable)" : strerror(-r));
        }
        j->phase = phase;
        int r = uv_queue_work(c->d->loop, &j->work, work_cb, after_work_cb);
        if (r < 0) {
                job_fail(j, OSM_E_INTERNAL_ERROR, "uv_queue_work: %s", uv_strerror(r));
                job_done(j);
        }
}

/* ---- judging the list and choosing the version ------------------------------------------- */

static const osm_channel_version *choose(ch_job *j) {
        osm_channels *c = j->c;
        if (j->pinned) {
                const osm_channel_version *v = osm_channel_find(j->doc, j->pinned);
                if (!v) {
                        job_fail(j, OSM_E_CHANNEL_NOT_LISTED, "%s is pinned to version %lld, which channel %s does "
                                 "not list", j->name, (long long) j->pinned, j->channel);
                        j->err_extra = json_pack("{s:I}", "version", (json_int_t) j->pinned);
                }
                return v;
        }
        for (size_t i = j->doc->n_versions; i-- > 0;)
                if (!ch_is_bad(c, j->name, j->doc->versions[i].bundle))
                        return &j->doc->versions[i];
        return NULL;
}

static void judge(ch_job *j) {
        osm_channels *c = j->c;
        osm_channel *doc = j->doc;
        char signer[OSM_PUBKEY_B64];
        osm_pubkey_encode(doc->signer, signer);
        if (strcmp(doc->name, j->channel) != 0) {
                job_fail(j, OSM_E_CHANNEL_BAD_CHANNEL, "%s.channel is the list of channel %s, not %s", j->channel,
                         doc->name, j->channel);
                return;
        }
        /* Whose trust applies: this room's own (trust add) for every follow, and for a
         * follow building-wide also the building's (building trust add); a key in this
         * room's [channels] distrust is refused either way. */
        ch_follow *bf = job_follow(j);
        int t = osm_workloads_trusted(c->d->workloads, doc->signer);
        if (t < 0) {
                job_fail(j, OSM_E_INTERNAL_ERROR, "reading the trusted keys: %s", strerror(-t));
                return;
        }
        if (osm_channel_key_listed(c->d->cfg.channels_distrust, doc->signer)) {
                job_fail(j, OSM_E_CHANNEL_UNTRUSTED, "channel %s is signed by %s, which this room refuses "
                         "([channels] distrust)", doc->name, signer);
                j->err_extra = json_pack("{s:s}", "signer", signer);
                return;
        }
        if (t == 0 && bf && bf->building && ch_building_trusts(c, signer))
                t = 1;
        if (t == 0) {
                job_fail(j, OSM_E_CHANNEL_UNTRUSTED, "channel %s is signed by %s, which is not a trusted key "
                         "(osmosectl trust add KEY%s)", doc->name, signer,
                         bf && bf->building ? ", or building trust add KEY" : "; a key the building trusts counts "
                         "only for a follow building-wide");
                j->err_extra = json_pack("{s:s}", "signer", signer);
                return;
        }
        int64_t now_s = osm_now_real_us() / 1000000;
        if (doc->expires && ch_clock_trusted(c) && now_s > doc->expires) {
                char when[64];
                job_fail(j, OSM_E_CHANNEL_EXPIRED, "channel %s (sequence %lld) expired at %s: refused until the "
                         "publisher signs it again", doc->name, (long long) doc->sequence,
                         osm_format_time(doc->expires * 1000000, when, sizeof when));
                j->err_extra = json_pack("{s:I}", "expires", (json_int_t) doc->expires);
                return;
        }
        int64_t newest = 0;
        osm_error why = {};
        const char *e = ch_seen_check(c, doc, &newest, &why);
        if (e) {
                job_fail(j, e, "%s", why.message);
                if (strcmp(e, OSM_E_INTERNAL_ERROR) != 0)
                        j->err_extra = json_pack("{s:I, s:I}", "sequence", (json_int_t) doc->sequence,
                                                 "newest", (json_int_t) newest);
                return;
        }
        if (j->doc_text)
                ch_keep_list(c, doc->name, j->doc_text);
        ch_follow *f = job_follow(j);
        if (f) {
                f->sequence = doc->sequence;
                f->latest = doc->n_versions ? doc->versions[doc->n_versions - 1].version : 0;
                memcpy(f->signer, signer, sizeof signer);
        }
        j->have_installed = osm_workloads_current(c->d->workloads, j->name, &j->installed, j->installed_id) == 0;
        const osm_channel_version *v = choose(j);
        if (j->err_name)
                return;
        if (!v) {
                j->action = "current";
                snprintf(j->err, sizeof j->err, "%s", doc->n_versions ? "every listed version is marked bad"
                                                                    : "the list is empty");
                return;
        }
        j->target = v;
        if (j->have_installed && strcmp(v->bundle, j->installed_id) == 0) {
                j->action = "current";
                return;
        }
        if (j->have_installed && !j->pinned && v->version <= j->installed) {
                if (v->version < j->installed)
                        job_fail(j, OSM_E_CHANNEL_DOWNGRADE, "%s version %lld is installed; channel %s offers at most "
                                 "version %lld: a lower version is refused", j->name, (long long) j->installed,
                                 j->channel, (long long) v->version);
                else
                        job_fail(j, OSM_E_CHANNEL_DOWNGRADE, "%s version %lld is installed from another bundle than "
                                 "the one channel %s lists for it: refused", j->name, (long long) j->installed,
                                 j->channel);
                j->err_extra = json_pack("{s:I, s:I}", "installed", (json_int_t) j->installed,
                                         "offered", (json_int_t) v->version);
                return;
        }
        j->action = "upgrade";
}

/* ---- install, restart, watch, roll back ----------------------------------------------------- */

/* The upgrade's phase, durably, before it acts on it. */
static void record_phase(ch_job *j, const char *phase, const char *reason) {
        osm_channels *c = j->c;
        _cleanup_free_ char *args = json_dumps(j->restart_args, JSON_COMPACT);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        if (!args || sqlite3_prepare_v2(c->db, "INSERT OR REPLACE INTO upgrading(name, channel, source, version, bundle, "
                                        "size, sequence, from_version, restart_args, phase, reason, time) "
                                        "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", -1, &st, NULL) != SQLITE_OK) {
                log_warning("channels db: recording the upgrade of %s: %s", j->name, sqlite3_errmsg(c->db));
                return;
        }
        sqlite3_bind_text(st, 1, j->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, j->channel, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, j->source, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, j->target->version);
        sqlite3_bind_text(st, 5, j->target->bundle, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 6, (sqlite3_int64) j->target->size);
        sqlite3_bind_int64(st, 7, j->sequence);
        if (j->have_installed)
                sqlite3_bind_int64(st, 8, j->installed);
        sqlite3_bind_text(st, 9, args, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 10, phase, -1, SQLITE_STATIC);
        if (reason)
                sqlite3_bind_text(st, 11, reason, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 12, osm_now_real_us());
        if (sqlite3_step(st) != SQLITE_DONE)
                log_warning("channels db: recording the upgrade of %s: %s", j->name, sqlite3_errmsg(c->db));
        else
                j->recorded = true;
}

static void drop_record(osm_channels *c, const char *name) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(c->db, "DELETE FROM upgrading WHERE name = ?", -1, &st, NULL) != SQLITE_OK)
                return;
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE)
                log_warning("channels db: %s", sqlite3_errmsg(c->db));
}

static void poll_start(ch_job *j);

/* The new version is installed: stop the old instances, start the new ones, watch them. */
static void begin_health(ch_job *j) {
        record_phase(j, "health", NULL);
        set_state(j, "health");
        j->new_ids = json_array();
        if (json_array_size(j->restart_args) > 0) {
                osm_workloads_stop_workload(j->c->d->workloads, j->name);
                j->hstate = H_STOPPING_OLD;
                j->deadline = osm_now_mono_us() + j->c->d->cfg.stop_timeout_us + 5000000;
        } else {
                j->hstate = H_WATCH;
                j->grace_end = 0;   /* nothing ran before: nothing to watch but a health command */
        }
        poll_start(j);
}

static void on_installed(void *userdata, const char *error_name, const char *message) {
        ch_job *j = userdata;
        j->waiting_install = false;
        if (j->c->stopped) {
                job_free(j);
                return;
        }
        if (error_name) {
                job_fail(j, error_name, "%s", message);
                job_done(j);
                return;
        }
        log_notice("channels: %s version %lld installed from channel %s (sequence %lld); checking its health",
                   j->name, (long long) j->target->version, j->channel, (long long) j->sequence);
        begin_health(j);
}

static int start_instances(ch_job *j, json_t *list, json_t *ids, osm_error *err) {
        size_t i;
        json_t *args;
        json_array_foreach(list, i, args) {
                char *id = NULL;
                int r = osm_workloads_start(j->c->d->workloads, j->name, args, false, &id, err);
                if (r < 0)
                        return r;
                json_array_append_new(ids, json_string(id));
                free(id);
        }
        return 0;
}

static void begin_rollback(ch_job *j);
static void fail_health(ch_job *j, const char *fmt, ...) OSM_PRINTF(2, 3);
static void fail_health(ch_job *j, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        char why[512];
        vsnprintf(why, sizeof why, fmt, ap);
        va_end(ap);
        free(j->fail_reason);
        j->fail_reason = strdup(why);
        log_warning("channels: %s version %lld failed its health check: %s; marked bad, going back to %s%lld",
                    j->name, (long long) j->target->version, why, j->snap ? "version " : "nothing (was ",
                    (long long) (j->snap ? j->installed : 0));
        ch_mark_bad(j->c, j->name, j->target->version, j->target->bundle, why);
        begin_rollback(j);
}

static void begin_rollback(ch_job *j) {
        record_phase(j, "rolling-back", j->fail_reason);
        set_state(j, "rolling-back");
        osm_workloads_stop_workload(j->c->d->workloads, j->name);
        j->hstate = H_ROLLBACK_STOPPING;
        j->deadline = osm_now_mono_us() + j->c->d->cfg.stop_timeout_us + 5000000;
}

/* Start the manifest's health command, if it has one: 1 started, 0 none, -1 failed. */
static int start_health(ch_job *j) {
        osm_error why = {};
        char *id = NULL;
        int r = osm_workloads_start(j->c->d->workloads, j->name, NULL, true, &id, &why);
        if (r == -ENOENT)
                return 0;
        if (r < 0) {
                fail_health(j, "the health command did not start: %s", why.message);
                return -1;
        }
        j->health_id = id;
        j->hstate = H_HEALTH_CMD;
        j->deadline = osm_now_mono_us() + j->c->d->cfg.channels_health_timeout_us;
        return 1;
}

static void succeed(ch_job *j) {
        uv_timer_stop(&j->c->poll_timer);
        j->action = "upgraded";
        log_notice("channels: %s upgraded to version %lld (channel %s, sequence %lld)", j->name,
                   (long long) j->target->version, j->channel, (long long) j->sequence);
        job_done(j);
}

static void poll_tick(ch_job *j) {
        struct osm_workloads *w = j->c->d->workloads;
        uint64_t now = osm_now_mono_us();
        switch (j->hstate) {
        case H_STOPPING_OLD:
                if (osm_workloads_n_alive(w, j->name) == 0) {
                        osm_error why = {};
                        if (start_instances(j, j->restart_args, j->new_ids, &why) < 0) {
                                fail_health(j, "an instance did not start: %s", why.message);
                                return;
                        }
                        j->hstate = H_WATCH;
                        j->grace_end = now + j->c->d->cfg.channels_health_grace_us;
                } else if (now > j->deadline)
                        fail_health(j, "the instances of the old version did not stop");
                return;
        case H_WATCH: {
                size_t i;
                json_t *id;
                json_array_foreach(j->new_ids, i, id) {
                        osm_workloads_run_status st;
                        if (osm_workloads_instance_status(w, json_string_value(id), &st) < 0)
                                continue;
                        if (st.restarts > 0) {
                                fail_health(j, "instance %s restarted during the grace period", json_string_value(id));
                                return;
                        }
                        if (!st.alive && (st.failed_to_start || st.signal > 0 || st.exit_code != 0)) {
                                if (st.failed_to_start)
                                        fail_health(j, "instance %s failed to start", json_string_value(id));
                                else if (st.signal > 0)
                                        fail_health(j, "instance %s was killed by signal %d", json_string_value(id),
                                                    st.signal);
                                else
                                        fail_health(j, "instance %s exited with status %d", json_string_value(id),
                                                    st.exit_code);
                                return;
                        }
                }
                if (now < j->grace_end)
                        return;
                int r = start_health(j);
                if (r == 0)
                        succeed(j);
                return;
        }
        case H_HEALTH_CMD: {
                osm_workloads_run_status st;
                if (osm_workloads_instance_status(w, j->health_id, &st) < 0) {
                        fail_health(j, "the health command's instance is gone");
                        return;
                }
                if (st.alive) {
                        if (now > j->deadline)
                                fail_health(j, "the health command did not finish in time");
                        return;
                }
                if (st.failed_to_start || st.signal > 0 || st.exit_code != 0)
                        fail_health(j, "the health command %s", st.failed_to_start ? "failed to start" :
                                    st.signal > 0 ? "was killed" : "exited non-zero");
                else
                        succeed(j);
                return;
        }
        case H_ROLLBACK_STOPPING: {
                if (osm_workloads_n_alive(w, j->name) > 0 && now <= j->deadline)
                        return;
                uv_timer_stop(&j->c->poll_timer);
                char why[512] = "";
                int r = j->snap ? osm_workloads_restore(w, j->snap) : 0;
                if (r < 0)
                        snprintf(why, sizeof why, "; restoring version %lld failed: %s", (long long) j->installed,
                                 strerror(-r));
                else if (j->snap) {
                        _cleanup_json_ json_t *ids = json_array();
                        osm_error se = {};
                        if (start_instances(j, j->restart_args, ids, &se) < 0)
                                snprintf(why, sizeof why, "; %.509s", se.message);
                }
                job_fail(j, OSM_E_CHANNEL_ROLLED_BACK, "%s version %lld failed its health check (%s) and is marked "
                         "bad; %s%s", j->name, (long long) j->target->version, j->fail_reason,
                         j->snap ? "the previous version runs again" : "there was no previous version", why);
                j->err_extra = json_pack("{s:I}", "version", (json_int_t) j->target->version);
                if (j->snap && r == 0)
                        json_object_set_new(j->err_extra, "restored", json_integer(j->installed));
                log_warning("channels: %s", j->err);
                job_done(j);
                return;
        }
        }
}

static void on_poll(uv_timer_t *t) {
        osm_channels *c = t->data;
        if (c->job)
                poll_tick(c->job);
}

static void poll_start(ch_job *j) {
        uv_timer_start(&j->c->poll_timer, on_poll, CH_POLL_MS, CH_POLL_MS);
}

static void install(ch_job *j) {
        struct osm_workloads *w = j->c->d->workloads;
        j->snap = osm_workloads_snapshot(w, j->name);
        j->restart_args = osm_workloads_live_args(w, j->name);
        if (!j->restart_args) {
                job_fail(j, OSM_E_INTERNAL_ERROR, "out of memory");
                job_done(j);
                return;
        }
        char source[CH_MAX_SOURCE + 64];
        snprintf(source, sizeof source, "channel %s from %s", j->channel, j->source);
        bool downgrade = j->pinned && j->have_installed && j->target->version <= j->installed;
        j->sequence = j->doc->sequence;
        /* Durably before anything changes: the version to go back to and what ran. */
        if (j->snap && osm_workloads_snapshot_persist(w, j->snap) < 0)
                log_warning("channels: %s: the snapshot of version %lld is not recorded; an upgrade interrupted by "
                            "a crash could not go back to it", j->name, (long long) j->installed);
        record_phase(j, "installing", NULL);
        int fd = steal_fd(&j->bundle_fd);
        int r = osm_workloads_install_file(w, fd, j->name, j->target->bundle, downgrade, source, on_installed, j);
        if (r < 0) {
                if (r == -EBUSY)
                        job_fail(j, OSM_E_BUSY, "another install is in progress; try again");
                else
                        job_fail(j, OSM_E_INTERNAL_ERROR, "starting the install: %s", strerror(-r));
                job_done(j);
                return;
        }
        j->waiting_install = true;
        set_state(j, "installing");
}

/* The building's answer: go on to fetch, or wait (the check is done for now). */
static void on_gate(void *userdata, const char *verdict, const char *why) {
        ch_job *j = userdata;
        j->waiting_gate = false;
        if (strcmp(verdict, "stopped") == 0 || j->c->stopped) {
                job_free(j);
                return;
        }
        if (strcmp(verdict, "go") != 0) {
                j->action = verdict;
                snprintf(j->err, sizeof j->err, "%s", why);
                log_info("channels: %s version %lld: %s", j->name, (long long) j->target->version, why);
                job_done(j);
                return;
        }
        set_state(j, "fetching");
        start_phase(j, 2);
}

static void after_work_cb(uv_work_t *req, int status) {
        ch_job *j = req->data;
        if (j->c->stopped) {
                job_free(j);
                return;
        }
        if (!j->err_name && status == UV_ECANCELED)
                job_fail(j, OSM_E_INTERNAL_ERROR, "cancelled");
        if (j->err_name) {
                j->action = "failed";
                job_done(j);
                return;
        }
        if (j->phase == 1) {
                judge(j);
                if (j->err_name || j->b->mode != MODE_UPGRADE || strcmp(j->action, "upgrade") != 0) {
                        job_done(j);
                        return;
                }
                ch_follow *f = job_follow(j);
                if (f && f->building && ch_building_active(j->c)) {
                        set_state(j, "waiting");
                        if (ch_building_gate(j->c, f, j->target->bundle, on_gate, j) == 0) {
                                j->waiting_gate = true;
                                return;
                        }
                        j->action = "waiting";
                        snprintf(j->err, sizeof j->err, "the building cannot be asked whether this room's wave has come");
                        job_done(j);
                        return;
                }
                set_state(j, "fetching");
                start_phase(j, 2);
                return;
        }
        install(j);
}

/* ---- resuming an upgrade a stop or crash interrupted ------------------------------------------ */

/* From the upgrading row: the install had not finished (the old version is still the
 * installed one: its instances run again, and the next check tries again), or it had
 * (the health check starts over, or the rollback goes on). */
static void resume_job(ch_job *j) {
        osm_channels *c = j->c;
        struct osm_workloads *w = j->w;
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(c->db, "SELECT version, bundle, size, sequence, from_version, restart_args, phase, reason "
                               "FROM upgrading WHERE name = ?", -1, &st, NULL) != SQLITE_OK) {
                job_fail(j, OSM_E_INTERNAL_ERROR, "channels db: %s", sqlite3_errmsg(c->db));
                job_done(j);
                return;
        }
        sqlite3_bind_text(st, 1, j->name, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_ROW) {
                j->action = "current";
                job_done(j);
                return;
        }
        j->recorded = true;
        j->resumed.version = sqlite3_column_int64(st, 0);
        snprintf(j->resumed.bundle, sizeof j->resumed.bundle, "%s", (const char *) sqlite3_column_text(st, 1));
        j->resumed.size = (uint64_t) sqlite3_column_int64(st, 2);
        j->target = &j->resumed;
        j->sequence = sqlite3_column_int64(st, 3);
        j->have_installed = sqlite3_column_type(st, 4) != SQLITE_NULL;
        j->installed = sqlite3_column_int64(st, 4);
        j->restart_args = json_loads((const char *) sqlite3_column_text(st, 5), 0, NULL);
        if (!json_is_array(j->restart_args)) {
                json_decref(j->restart_args);
                j->restart_args = json_array();
        }
        const char *phase = (const char *) sqlite3_column_text(st, 6);
        const char *reason = (const char *) sqlite3_column_text(st, 7);
        j->snap = osm_workloads_snapshot_adopt(w, j->name);
        if (j->have_installed && !j->snap)
                log_warning("channels: %s: no snapshot of version %lld was kept; a rollback cannot go back to it",
                            j->name, (long long) j->installed);
        int64_t now_v;
        char now_id[OSM_HASH_HEX];
        bool committed = osm_workloads_current(w, j->name, &now_v, now_id) == 0 &&
                         strcmp(now_id, j->resumed.bundle) == 0;
        if (!committed) {
                /* What is installed is what was before: bring back what ran, unless the
                 * workload subsystem already did (its restart policy). */
                osm_error why = {};
                _cleanup_json_ json_t *ids = json_array();
                if (j->have_installed && osm_workloads_n_alive(w, j->name) == 0 &&
                    start_instances(j, j->restart_args, ids, &why) < 0)
                        log_warning("channels: %s: restarting its instances: %s", j->name, why.message);
                log_notice("channels: %s: the upgrade to version %lld was interrupted before its install finished; "
                           "%s", j->name, (long long) j->resumed.version,
                           j->have_installed ? "the previous version stays" : "nothing was installed");
                job_fail(j, OSM_E_CHANNEL_INTERRUPTED, "the upgrade to version %lld was interrupted (the daemon "
                         "stopped) before its install finished; the next check tries again", (long long) j->resumed.version);
                j->target = NULL;   /* nothing to report to the building */
                job_done(j);
                return;
        }
        if (phase && strcmp(phase, "rolling-back") == 0) {
                log_notice("channels: %s: going on with the rollback from version %lld the daemon's stop interrupted",
                           j->name, (long long) j->resumed.version);
                j->fail_reason = strdup(reason ? reason : "interrupted");
                begin_rollback(j);
                return;
        }
        log_notice("channels: %s: the daemon stopped during the health check of version %lld; checking it again",
                   j->name, (long long) j->resumed.version);
        begin_health(j);
}

/* ---- jobs and batches --------------------------------------------------------------------- */

static json_t *job_result(ch_job *j) {
        json_t *o = json_pack("{s:s, s:s}", "name", j->name, "action", j->action ? j->action : "failed");
        if (!o)
                return NULL;
        int64_t v;
        char id[OSM_HASH_HEX];
        if (osm_workloads_current(j->c->d->workloads, j->name, &v, id) == 0)
                json_object_set_new(o, "installed", json_integer(v));
        if (j->target)
                json_object_set_new(o, "target", json_integer(j->target->version));
        if (j->doc || j->sequence)
                json_object_set_new(o, "sequence", json_integer(j->doc ? j->doc->sequence : j->sequence));
        if (j->err[0])
                json_object_set_new(o, "message", json_string(j->err));
        if (j->err_name)
                json_object_set_new(o, "error_name", json_string(j->err_name));
        return o;
}

static void job_done(ch_job *j) {
        osm_channels *c = j->c;
        ch_batch *b = j->b;
        uv_timer_stop(&c->poll_timer);
        if (j->recorded)
                drop_record(c, j->name);   /* the upgrade has ended, one way or the other */
        j->recorded = false;
        ch_follow *f = job_follow(j);
        if (f) {
                f->state = "idle";
                ch_follow_set_error(c, f, j->err_name, j->err);
        }
        /* In a building, this room's outcome for the others' waves. */
        if (f && f->building && j->target && ch_building_active(c)) {
                if (j->action && strcmp(j->action, "upgraded") == 0)
                        ch_building_report(c, j->name, j->target->bundle, j->target->version, "healthy", false);
                else if (j->err_name && strcmp(j->err_name, OSM_E_CHANNEL_ROLLED_BACK) == 0)
                        ch_building_report(c, j->name, j->target->bundle, j->target->version, "failed", false);
                else if (j->action && strcmp(j->action, "current") == 0 && j->have_installed &&
                         strcmp(j->target->bundle, j->installed_id) == 0)
                        ch_building_report(c, j->name, j->target->bundle, j->target->version, "healthy", true);
        }
        if (j->err_name && !b->call)
                log_warning("channels: checking %s: %s", j->name, j->err);
        json_array_append_new(b->results, job_result(j));
        if (b->single && j->err_name) {
                b->err_name = j->err_name;
                snprintf(b->err, sizeof b->err, "%s", j->err);
                b->err_extra = steal_pointer(&j->err_extra);
        }
        c->job = NULL;
        job_free(j);
        batch_next(c);
}

static void batch_free(ch_batch *b) {
        osm_strv_free(b->names);
        free(b->old_source);
        free(b->old_channel);
        json_decref(b->results);
        json_decref(b->err_extra);
        free(b);
}

static void batch_cancel(osm_call *call, void *userdata) {
        ch_batch *b = userdata;
        b->call = NULL;   /* it goes on; nobody is told */
}

static void batch_finish(osm_channels *c) {
        ch_batch *b = c->batch;
        c->batch = NULL;
        if (b->mode == MODE_RESUME)
                osm_workloads_snapshot_forget_unadopted(c->d->workloads);
        if (b->mode == MODE_FOLLOW && b->err_name && b->follow_new)
                ch_follow_remove(c, b->names[0]);
        else if (b->mode == MODE_FOLLOW && b->err_name && b->old_source)
                ch_follow_add(c, b->names[0], b->old_source, b->old_channel);
        if (b->call) {
                osm_call_set_cancel(b->call, NULL, NULL);
                if (b->err_name) {
                        json_t *p = b->err_extra ? steal_pointer(&b->err_extra) : json_object();
                        json_object_set_new(p, "message", json_string(b->err));
                        osm_call_error(b->call, b->err_name, p);
                } else if (b->mode == MODE_FOLLOW) {
                        ch_follow *f = ch_find(c, b->names[0]);
                        int r = -ENOTCONN;
                        /* building-wide: the reply comes once the building has recorded it */
                        if (f && f->building && (r = ch_building_record_follow(c, b->call, f)) == 0)
                                ;
                        else if (f && f->building)
                                osm_call_errorf(b->call, OSM_E_NOT_AVAILABLE, "recording the follow in the "
                                                "building failed: %s", strerror(-r));
                        else
                                osm_call_reply(b->call, json_pack("{s:o}", "follow", f ? ch_follow_json(c, f)
                                                                                      : json_object()), false);
                } else
                        osm_call_reply(b->call, json_pack("{s:O}", "results", b->results), false);
        }
        batch_free(b);
}

static void batch_next(osm_channels *c) {
        ch_batch *b = c->batch;
        while (b->next < b->n) {
                ch_follow *f = ch_find(c, b->names[b->next++]);
                if (!f)
                        continue;   /* unfollowed meanwhile */
                ch_job *j = calloc(1, sizeof *j);
                if (!j || !(j->name = strdup(f->name)) || !(j->source = strdup(f->source)) ||
                    !(j->channel = strdup(f->channel))) {
                        if (j) {
                                free(j->name);
                                free(j->source);
                                free(j);
                        }
                        log_error("channels: out of memory");
                        continue;
                }
                j->c = c;
                j->w = c->d->workloads;
                j->b = b;
                j->bundle_fd = -1;
                j->got_fd = -1;
                j->pinned = f->pinned;
                c->refs++;
                c->job = j;
                f->state = "checking";
                if (b->mode == MODE_RESUME)
                        resume_job(j);
                else
                        start_phase(j, 1);
                return;
        }
        batch_finish(c);
}

static int batch_begin(osm_channels *c, osm_call *call, const char *name, int mode, bool follow_new) {
        if (c->batch)
                return -EBUSY;
        ch_batch *b = calloc(1, sizeof *b);
        if (!b)
                return -ENOMEM;
        size_t n = 0;
        for (ch_follow *f = c->follows; f; f = f->next)
                n++;
        b->names = calloc(n + 1, sizeof(char *));
        b->results = json_array();
        if (!b->names || !b->results) {
                batch_free(b);
                return -ENOMEM;
        }
        if (name) {
                if (!(b->names[b->n++] = strdup(name))) {
                        batch_free(b);
                        return -ENOMEM;
                }
        } else {
                /* In name order, for a predictable log. */
                for (ch_follow *f = c->follows; f; f = f->next)
                        if (!(b->names[b->n++] = strdup(f->name))) {
                                batch_free(b);
                                return -ENOMEM;
                        }
        }
        b->call = call;
        b->mode = mode;
        b->single = name != NULL;
        b->follow_new = follow_new;
        c->batch = b;
        if (call)
                osm_call_set_cancel(call, batch_cancel, b);
        batch_next(c);
        return 0;
}

int ch_batch_start(osm_channels *c, osm_call *call, const char *name, bool check_only) {
        return batch_begin(c, call, name, check_only ? MODE_CHECK : MODE_UPGRADE, false);
}

int ch_batch_follow(osm_channels *c, osm_call *call, const char *name, const char *old_source,
                    const char *old_channel) {
        int r = batch_begin(c, call, name, MODE_FOLLOW, old_source == NULL);
        if (r == 0 && old_source && c->batch) {
                c->batch->old_source = strdup(old_source);
                c->batch->old_channel = strdup(old_channel);
        }
        return r;
}

int ch_resume_start(osm_channels *c) {
        if (c->batch)
                return -EBUSY;
        /* Rows without a follow any more (or of workloads gone) are dropped. */
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(c->db, "SELECT name FROM upgrading ORDER BY name", -1, &st, NULL) != SQLITE_OK)
                return -EIO;
        char **names = NULL;
        size_t n = 0;
        while (sqlite3_step(st) == SQLITE_ROW) {
                const char *name = (const char *) sqlite3_column_text(st, 0);
                if (!ch_find(c, name)) {
                        drop_record(c, name);
                        continue;
                }
                char **nv = realloc(names, (n + 2) * sizeof(char *));
                if (!nv || !(nv[n] = strdup(name))) {
                        osm_strv_free(nv ? nv : names);
                        return -ENOMEM;
                }
                names = nv;
                names[++n] = NULL;
        }
        if (n == 0) {
                osm_workloads_snapshot_forget_unadopted(c->d->workloads);
                free(names);
                return 0;
        }
        ch_batch *b = calloc(1, sizeof *b);
        if (!b || !(b->results = json_array())) {
                free(b);
                osm_strv_free(names);
                return -ENOMEM;
        }
        b->names = names;
        b->n = n;
        b->mode = MODE_RESUME;
        c->batch = b;
        batch_next(c);
        return 0;
}

void ch_jobs_stop(osm_channels *c) {
        uv_timer_stop(&c->poll_timer);
        ch_batch *b = c->batch;
        if (!b)
                return;
        if (b->call) {
                osm_call_set_cancel(b->call, NULL, NULL);
                osm_call_errorf(b->call, OSM_E_NOT_AVAILABLE, "the daemon is stopping");
                b->call = NULL;
        }
        /* A job on the thread pool or waiting for its install is freed when that ends
         * (c->stopped); one in its health check is freed now. */
        ch_job *j = c->job;
        if (j && j->hstate != H_NONE && !j->waiting_install && !j->waiting_gate && !j->waiting_fetch)
                job_free(j);
        c->job = NULL;
        c->batch = NULL;
        b->n = 0;
        batch_free(b);
}
