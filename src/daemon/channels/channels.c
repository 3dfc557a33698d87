/* channels.c: the channels subsystem: its database (follows, the lists seen, versions
 * marked bad), the followed workloads in memory, the periodic check. The methods are in
 * iface-channels.c, checks and upgrades in upgrade.c, sources in source.c. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/timex.h>
#include <time.h>

#include "daemon/channels/ch.h"
#include "daemon/db.h"
#include "osmose/log.h"


static const char schema[] =
        "PRAGMA journal_mode=WAL;"
        "PRAGMA synchronous=FULL;"
        "CREATE TABLE IF NOT EXISTS follows("
        "  name TEXT PRIMARY KEY, source TEXT NOT NULL, channel TEXT NOT NULL, pinned INTEGER,"
        "  added INTEGER NOT NULL, checked INTEGER, error TEXT, error_name TEXT,"
        "  latest INTEGER, sequence INTEGER, signer TEXT, building INTEGER NOT NULL DEFAULT 0, canary TEXT,"
        "  batch INTEGER NOT NULL DEFAULT 1);"
        /* Every list accepted, per channel and signer: the sequence only goes up, and a
         * list seen before that is not the newest is a replay. */
        "CREATE TABLE IF NOT EXISTS seen("
        "  channel TEXT NOT NULL, signer TEXT NOT NULL, sequence INTEGER NOT NULL,"
        "  digest TEXT NOT NULL, time INTEGER NOT NULL, PRIMARY KEY(channel, signer, sequence));"
        "CREATE TABLE IF NOT EXISTS bad("
        "  name TEXT NOT NULL, version INTEGER NOT NULL, bundle TEXT NOT NULL, time INTEGER NOT NULL,"
        "  reason TEXT, PRIMARY KEY(name, bundle));"
        /* The upgrade in progress of a workload and its phase (installing, health,
         * rolling-back), so that one the daemon's stop or crash interrupted is finished or
         * rolled back at the next start; its snapshot is in the workloads database. */
        "CREATE TABLE IF NOT EXISTS upgrading("
        "  name TEXT PRIMARY KEY, channel TEXT NOT NULL, source TEXT NOT NULL, version INTEGER NOT NULL,"
        "  bundle TEXT NOT NULL, size INTEGER NOT NULL, sequence INTEGER NOT NULL, from_version INTEGER,"
        "  restart_args TEXT NOT NULL, phase TEXT NOT NULL, reason TEXT, time INTEGER NOT NULL);"
        /* This room's rollout outcomes until the building has taken them (rollout.c). */
        "CREATE TABLE IF NOT EXISTS reports("
        "  name TEXT NOT NULL, bundle TEXT NOT NULL, version INTEGER NOT NULL, state TEXT NOT NULL,"
        "  keep INTEGER NOT NULL, time INTEGER NOT NULL, PRIMARY KEY(name, bundle));";

int ch_db_exec(osm_channels *c, const char *sql) {
        char *msg = NULL;
        if (sqlite3_exec(c->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
                log_error("channels db: %s", msg ? msg : sqlite3_errmsg(c->db));
                sqlite3_free(msg);
                return -EIO;
        }
        return 0;
}

ch_follow *ch_find(osm_channels *c, const char *name) {
        for (ch_follow *f = c->follows; f; f = f->next)
                if (strcmp(f->name, name) == 0)
                        return f;
        return NULL;
}

static char *dup_col(sqlite3_stmt *st, int col) {
        const unsigned char *s = sqlite3_column_text(st, col);
        return s ? strdup((const char *) s) : NULL;
}

/* Is the system clock known to be synchronised? [channels] trust-clock: "yes" and "no"
 * say so; "auto" asks the kernel: adjtimex() returns TIME_ERROR, or sets STA_UNSYNC,
 * until something (NTP, chrony, systemd-timesyncd, PTP) has disciplined the clock. An
 * unknown clock may be years off, so the expiry of a list is then not judged at all. */
bool ch_clock_trusted(osm_channels *c) {
        const char *mode = c->d->cfg.channels_trust_clock ? c->d->cfg.channels_trust_clock : "auto";
        if (strcmp(mode, "yes") == 0)
                return true;
        if (strcmp(mode, "no") == 0)
                return false;
        struct timex tx = { 0 };
        int r = adjtimex(&tx);
        return r >= 0 && r != TIME_ERROR && !(tx.status & STA_UNSYNC);
}

const char *ch_seen_check(osm_channels *c, const osm_channel *ch, int64_t *newest, osm_error *err) {
        char signer[OSM_PUBKEY_B64], digest[OSM_HASH_HEX];
        osm_pubkey_encode(ch->signer, signer);
        osm_hash_hex(ch->digest, digest);
        _cleanup_stmt_ sqlite3_stmt *mx = NULL, *same = NULL, *ins = NULL, *trim = NULL;
        if (sqlite3_prepare_v2(c->db, "SELECT max(sequence) FROM seen WHERE channel = ?1 AND signer = ?2",
                               -1, &mx, NULL) != SQLITE_OK ||
            sqlite3_prepare_v2(c->db, "SELECT sequence FROM seen WHERE channel = ?1 AND signer = ?2 AND digest = ?3",
                               -1, &same, NULL) != SQLITE_OK) {
                osm_error_set(err, -EIO, 0, "channels db: %s", sqlite3_errmsg(c->db));
                return OSM_E_INTERNAL_ERROR;
        }
        sqlite3_bind_text(mx, 1, ch->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(mx, 2, signer, -1, SQLITE_STATIC);
        int64_t max = 0;
        if (sqlite3_step(mx) == SQLITE_ROW && sqlite3_column_type(mx, 0) != SQLITE_NULL)
                max = sqlite3_column_int64(mx, 0);
        *newest = max;
        if (ch->sequence <= max) {
                sqlite3_bind_text(same, 1, ch->name, -1, SQLITE_STATIC);
                sqlite3_bind_text(same, 2, signer, -1, SQLITE_STATIC);
                sqlite3_bind_text(same, 3, digest, -1, SQLITE_STATIC);
                bool seen = sqlite3_step(same) == SQLITE_ROW;
                if (seen && ch->sequence == max)
                        return NULL;   /* the newest list again: nothing new */
                if (seen) {
                        osm_error_set(err, -ESTALE, 0, "channel %s: this list (sequence %lld) was seen before "
                                      "and sequence %lld has replaced it: a replay of an old list is refused",
                                      ch->name, (long long) ch->sequence, (long long) max);
                        return OSM_E_CHANNEL_REPLAYED;
                }
                if (ch->sequence == max)
                        osm_error_set(err, -ESTALE, 0, "channel %s: sequence %lld was already seen with other "
                                      "contents: refused (a publisher must raise the sequence with every "
                                      "signing)", ch->name, (long long) ch->sequence);
                else
                        osm_error_set(err, -ESTALE, 0, "channel %s: sequence %lld is lower than %lld, already "
                                      "seen: refused (rollback or freeze)", ch->name, (long long) ch->sequence,
                                      (long long) max);
                return OSM_E_CHANNEL_STALE_SEQUENCE;
        }
        if (sqlite3_prepare_v2(c->db, "INSERT INTO seen(channel, signer, sequence, digest, time) "
                               "VALUES(?1, ?2, ?3, ?4, ?5)", -1, &ins, NULL) != SQLITE_OK ||
            sqlite3_prepare_v2(c->db, "DELETE FROM seen WHERE channel = ?1 AND signer = ?2 AND sequence NOT IN "
                               "(SELECT sequence FROM seen WHERE channel = ?1 AND signer = ?2 "
                               "ORDER BY sequence DESC LIMIT ?3)", -1, &trim, NULL) != SQLITE_OK) {
                osm_error_set(err, -EIO, 0, "channels db: %s", sqlite3_errmsg(c->db));
                return OSM_E_INTERNAL_ERROR;
        }
        sqlite3_bind_text(ins, 1, ch->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 2, signer, -1, SQLITE_STATIC);
        sqlite3_bind_int64(ins, 3, ch->sequence);
        sqlite3_bind_text(ins, 4, digest, -1, SQLITE_STATIC);
        sqlite3_bind_int64(ins, 5, osm_now_real_us());
        sqlite3_bind_text(trim, 1, ch->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(trim, 2, signer, -1, SQLITE_STATIC);
        sqlite3_bind_int(trim, 3, CH_SEEN_KEPT);
        if (sqlite3_step(ins) != SQLITE_DONE || sqlite3_step(trim) != SQLITE_DONE) {
                osm_error_set(err, -EIO, 0, "channels db: recording the list: %s", sqlite3_errmsg(c->db));
                return OSM_E_INTERNAL_ERROR;
        }
        return NULL;
}

bool ch_is_bad(osm_channels *c, const char *name, const char *bundle) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(c->db, "SELECT 1 FROM bad WHERE name = ? AND bundle = ?", -1, &st, NULL) != SQLITE_OK)
                return false;
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, bundle, -1, SQLITE_STATIC);
        return sqlite3_step(st) == SQLITE_ROW;
}

int ch_mark_bad(osm_channels *c, const char *name, int64_t version, const char *bundle, const char *reason) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(c->db, "INSERT OR REPLACE INTO bad(name, version, bundle, time, reason) "
                               "VALUES(?, ?, ?, ?, ?)", -1, &st, NULL) != SQLITE_OK)
                return -EIO;
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, version);
        sqlite3_bind_text(st, 3, bundle, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, osm_now_real_us());
        sqlite3_bind_text(st, 5, reason, -1, SQLITE_STATIC);
        return sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
}

static void replace_str(char **p, const char *v) {
        free(*p);
        *p = v ? strdup(v) : NULL;
}

void ch_follow_set_error(osm_channels *c, ch_follow *f, const char *error_name, const char *message) {
        replace_str(&f->error_name, error_name);
        replace_str(&f->error, error_name ? message : NULL);
        f->checked_us = osm_now_real_us();
        ch_follow_save_check(c, f);
}

void ch_follow_save_check(osm_channels *c, ch_follow *f) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(c->db, "UPDATE follows SET checked = ?2, error = ?3, error_name = ?4, latest = ?5, "
                               "sequence = ?6, signer = ?7, pinned = ?8 WHERE name = ?1", -1, &st, NULL) != SQLITE_OK)
                return;
        sqlite3_bind_text(st, 1, f->name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, f->checked_us);
        if (f->error)
                sqlite3_bind_text(st, 3, f->error, -1, SQLITE_STATIC);
        if (f->error_name)
                sqlite3_bind_text(st, 4, f->error_name, -1, SQLITE_STATIC);
        if (f->latest)
                sqlite3_bind_int64(st, 5, f->latest);
        if (f->sequence)
                sqlite3_bind_int64(st, 6, f->sequence);
        if (f->signer[0])
                sqlite3_bind_text(st, 7, f->signer, -1, SQLITE_STATIC);
        if (f->pinned)
                sqlite3_bind_int64(st, 8, f->pinned);
        if (sqlite3_step(st) != SQLITE_DONE)
                log_warning("channels db: saving the check of %s: %s", f->name, sqlite3_errmsg(c->db));
}

json_t *ch_follow_json(osm_channels *c, ch_follow *f) {
        json_t *bad = json_array();
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(c->db, "SELECT version, bundle, time, reason FROM bad WHERE name = ? ORDER BY version",
                               -1, &st, NULL) == SQLITE_OK) {
                sqlite3_bind_text(st, 1, f->name, -1, SQLITE_STATIC);
                while (sqlite3_step(st) == SQLITE_ROW)
                        json_array_append_new(bad, json_pack("{s:I, s:s, s:I, s:s}",
                                "version", (json_int_t) sqlite3_column_int64(st, 0),
                                "bundle", (const char *) sqlite3_column_text(st, 1),
                                "time", (json_int_t) sqlite3_column_int64(st, 2),
                                "reason", sqlite3_column_text(st, 3) ? (const char *) sqlite3_column_text(st, 3) : ""));
        }
        json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:o}", "name", f->name, "source", f->source,
                              "channel", f->channel, "state", f->state, "bad", bad);
        if (!o)
                return NULL;
        int64_t installed;
        char id[OSM_HASH_HEX];
        if (c->d->workloads && osm_workloads_current(c->d->workloads, f->name, &installed, id) == 0)
                json_object_set_new(o, "installed", json_integer(installed));
        if (f->pinned)
                json_object_set_new(o, "pinned", json_integer(f->pinned));
        if (f->latest)
                json_object_set_new(o, "latest", json_integer(f->latest));
        if (f->sequence)
                json_object_set_new(o, "sequence", json_integer(f->sequence));
        if (f->signer[0])
                json_object_set_new(o, "signer", json_string(f->signer));
        if (f->checked_us)
                json_object_set_new(o, "checked", json_integer(f->checked_us));
        if (f->error)
                json_object_set_new(o, "error", json_string(f->error));
        if (f->error_name)
                json_object_set_new(o, "error_name", json_string(f->error_name));
        if (f->building) {
                json_object_set_new(o, "building", json_true());
                json_object_set_new(o, "batch", json_integer(f->batch));
                if (f->canary)
                        json_object_set_new(o, "canary", json_string(f->canary));
        }
        return o;
}

static void follow_free(ch_follow *f) {
        if (!f)
                return;
        free(f->name);
        free(f->source);
        free(f->channel);
        free(f->error);
        free(f->error_name);
        free(f->canary);
        free(f);
}

/* Add a follow (in memory and the db) or change its source. Returns it, or NULL. */
ch_follow *ch_follow_add(osm_channels *c, const char *name, const char *source, const char *channel) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(c->db, "INSERT INTO follows(name, source, channel, added) VALUES(?1, ?2, ?3, ?4) "
                               "ON CONFLICT(name) DO UPDATE SET source = ?2, channel = ?3", -1, &st, NULL) != SQLITE_OK)
                return NULL;
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, source, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, channel, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, osm_now_real_us());
        if (sqlite3_step(st) != SQLITE_DONE)
                return NULL;
        ch_follow *f = ch_find(c, name);
        if (f) {
                replace_str(&f->source, source);
                replace_str(&f->channel, channel);
                return f->source && f->channel ? f : NULL;
        }
        f = calloc(1, sizeof *f);
        if (!f || !(f->name = strdup(name)) || !(f->source = strdup(source)) || !(f->channel = strdup(channel))) {
                follow_free(f);
                return NULL;
        }
        f->state = "idle";
        f->batch = 1;
        f->next = c->follows;
        c->follows = f;
        return f;
}

int ch_follow_remove(osm_channels *c, const char *name) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(c->db, "DELETE FROM follows WHERE name = ?", -1, &st, NULL) != SQLITE_OK)
                return -EIO;
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE)
                return -EIO;
        for (ch_follow **pp = &c->follows; *pp; pp = &(*pp)->next)
                if (strcmp((*pp)->name, name) == 0) {
                        ch_follow *f = *pp;
                        *pp = f->next;
                        follow_free(f);
                        return 0;
                }
        return -ENOENT;
}

static int load_follows(osm_channels *c) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(c->db, "SELECT name, source, channel, pinned, checked, error, error_name, latest, "
                               "sequence, signer, building, canary, batch FROM follows ORDER BY name DESC", -1, &st, NULL) != SQLITE_OK)
                return -EIO;
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                ch_follow *f = calloc(1, sizeof *f);
                if (!f)
                        return -ENOMEM;
                f->next = c->follows;
                c->follows = f;
                f->state = "idle";
                f->name = dup_col(st, 0);
                f->source = dup_col(st, 1);
                f->channel = dup_col(st, 2);
                f->pinned = sqlite3_column_int64(st, 3);
                f->checked_us = sqlite3_column_int64(st, 4);
                f->error = dup_col(st, 5);
                f->error_name = dup_col(st, 6);
                f->latest = sqlite3_column_int64(st, 7);
                f->sequence = sqlite3_column_int64(st, 8);
                const unsigned char *s = sqlite3_column_text(st, 9);
                if (s)
                        snprintf(f->signer, sizeof f->signer, "%s", (const char *) s);
                f->building = sqlite3_column_int(st, 10);
                f->canary = dup_col(st, 11);
                f->batch = sqlite3_column_int64(st, 12);
                if (!f->name || !f->source || !f->channel)
                        return -ENOMEM;
        }
        return rc == SQLITE_DONE ? 0 : -EIO;
}

void ch_follow_set_building(osm_channels *c, ch_follow *f, bool on, const char *canary, int64_t batch) {
        f->building = on;
        replace_str(&f->canary, canary);
        f->batch = batch > 0 ? batch : 1;
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(c->db, "UPDATE follows SET building = ?2, canary = ?3, batch = ?4 WHERE name = ?1",
                               -1, &st, NULL) != SQLITE_OK)
                return;
        sqlite3_bind_text(st, 1, f->name, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 2, on);
        if (canary)
                sqlite3_bind_text(st, 3, canary, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, f->batch);
        sqlite3_step(st);
}

int ch_follow_set_pin(osm_channels *c, ch_follow *f, int64_t version) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(c->db, "UPDATE follows SET pinned = ?2 WHERE name = ?1", -1, &st, NULL) != SQLITE_OK)
                return -EIO;
        sqlite3_bind_text(st, 1, f->name, -1, SQLITE_STATIC);
        if (version)
                sqlite3_bind_int64(st, 2, version);
        if (sqlite3_step(st) != SQLITE_DONE)
                return -EIO;
        f->pinned = version;
        return 0;
}

/* ---- the subsystem ------------------------------------------------------------------- */

static void channels_free(osm_channels *c) {
        while (c->follows) {
                ch_follow *f = c->follows;
                c->follows = f->next;
                follow_free(f);
        }
        if (c->db)
                sqlite3_close(c->db);
        free(c->dir);
        free(c->bundles_dir);
        free(c);
}

void ch_unref(osm_channels *c) {
        if (--c->refs == 0 && c->stopped)
                channels_free(c);
}

static void on_handle_closed(uv_handle_t *h) {
        ch_unref(h->data);
}

/* Is it now within [channels] window (local time)? */
static bool in_window(osm_channels *c) {
        int a, b;
        if (osm_window_parse(c->d->cfg.channels_window, &a, &b) < 0 || a < 0)
                return true;
        time_t now = time(NULL);
        struct tm tm;
        if (!localtime_r(&now, &tm))
                return true;
        return osm_window_contains(a, b, tm.tm_hour * 60 + tm.tm_min);
}

static void on_check_timer(uv_timer_t *t) {
        osm_channels *c = t->data;
        if (c->resume_pending) {
                /* First of all, the upgrades a stop or crash interrupted (in any window). */
                if (!c->batch && ch_resume_start(c) != -EBUSY)
                        c->resume_pending = false;
                return;
        }
        if (!in_window(c)) {
                log_debug("channels: outside the maintenance window %s; no periodic check", c->d->cfg.channels_window);
                return;
        }
        if (c->batch)
                return;
        /* In a building, learn its follows first (the batch starts when they are read). */
        if (ch_building_active(c) && ch_building_sync_then_check(c) == 0)
                return;
        if (c->follows && ch_batch_start(c, NULL, NULL, false) == -EBUSY)
                log_debug("channels: periodic check skipped: an upgrade is running");
}

static void arm_check_timer(osm_channels *c) {
        uint64_t ms = c->d->cfg.channels_check_interval_us / 1000;
        if (ms)
                uv_timer_start(&c->check_timer, on_check_timer, ms, ms);
        else
                uv_timer_stop(&c->check_timer);
}

extern const osm_method ch_methods[];
extern const size_t ch_n_methods;

static int channels_start(osm_daemon *d) {
        if (!d->workloads) {
                log_warning("channels: the workload subsystem is not running; channels are off");
                return 0;
        }
        osm_channels *c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        c->d = d;
        if (asprintf(&c->dir, "%s/channels", d->cfg.state_dir) < 0 ||
            asprintf(&c->bundles_dir, "%s/channels/bundles", d->cfg.state_dir) < 0) {
                c->dir = c->bundles_dir = NULL;
                channels_free(c);
                return -ENOMEM;
        }
        int r = osm_mkdir_p(c->bundles_dir, 0700);
        if (r < 0) {
                log_error("channels: creating %s: %s", c->bundles_dir, strerror(-r));
                channels_free(c);
                return r;
        }
        _cleanup_free_ char *dbpath = NULL;
        osm_error err = {};
        if (asprintf(&dbpath, "%s/channels.db", d->cfg.state_dir) < 0) {
                dbpath = NULL;
                channels_free(c);
                return -ENOMEM;
        }
        if (osm_db_open(dbpath, OSM_DB_CREATE, NULL, &c->db, &err) < 0) {
                log_error("channels: opening the database: %s", err.message);
                channels_free(c);
                return -EIO;
        }
        /* A database from before building-wide follows: add their columns (an error
         * just means they are there). */
        if ((r = ch_db_exec(c, schema)) == 0) {
                sqlite3_exec(c->db, "ALTER TABLE follows ADD COLUMN building INTEGER NOT NULL DEFAULT 0", NULL, NULL, NULL);
                sqlite3_exec(c->db, "ALTER TABLE follows ADD COLUMN canary TEXT", NULL, NULL, NULL);
                sqlite3_exec(c->db, "ALTER TABLE follows ADD COLUMN batch INTEGER NOT NULL DEFAULT 1", NULL, NULL, NULL);
        }
        if (r < 0 || (r = load_follows(c)) < 0) {
                log_error("channels: loading %s failed", dbpath);
                channels_free(c);
                return r;
        }
        /* Loaded: the schema's and rows' pages need not stay cached in an idle room. */
        sqlite3_db_release_memory(c->db);
        if ((r = osm_server_add_methods(d->server, ch_methods, ch_n_methods, c)) < 0 ||
            (r = osm_server_add_methods(d->server, ch_rollout_methods, ch_n_rollout_methods, c)) < 0) {
                log_error("channels: registering methods: %s", strerror(-r));
                channels_free(c);
                return r;
        }
        uv_timer_init(d->loop, &c->check_timer);
        uv_timer_init(d->loop, &c->poll_timer);
        uv_timer_init(d->loop, &c->report_timer);
        c->check_timer.data = c->poll_timer.data = c->report_timer.data = c;
        uv_unref((uv_handle_t *) &c->check_timer);
        uv_unref((uv_handle_t *) &c->report_timer);
        c->refs = 3;
        ch_reports_resume(c);
        arm_check_timer(c);
        /* Interrupted upgrades: resumed on the loop's first turn, after the workload
         * subsystem brought back what ran (its timer was started before this one). */
        _cleanup_stmt_ sqlite3_stmt *up = NULL;
        if (sqlite3_prepare_v2(c->db, "SELECT count(*) FROM upgrading", -1, &up, NULL) == SQLITE_OK &&
            sqlite3_step(up) == SQLITE_ROW && sqlite3_column_int(up, 0) > 0) {
                c->resume_pending = true;
                uint64_t ms = c->d->cfg.channels_check_interval_us / 1000;
                uv_timer_start(&c->check_timer, on_check_timer, 0, ms);
        } else
                osm_workloads_snapshot_forget_unadopted(d->workloads);
        d->channels = c;
        size_t n = 0;
        for (ch_follow *f = c->follows; f; f = f->next)
                n++;
        log_info("channels: %zu followed", n);
        return 0;
}

static void channels_stop(osm_daemon *d) {
        osm_channels *c = d->channels;
        if (!c)
                return;
        __atomic_store_n(&c->abort, 1, __ATOMIC_RELAXED);
        ch_jobs_stop(c);
        d->channels = NULL;
        c->stopped = true;
        uv_close((uv_handle_t *) &c->check_timer, on_handle_closed);
        uv_close((uv_handle_t *) &c->poll_timer, on_handle_closed);
        uv_close((uv_handle_t *) &c->report_timer, on_handle_closed);
}

static void channels_reload(osm_daemon *d, const osm_config *old) {
        if (d->channels && old->channels_check_interval_us != d->cfg.channels_check_interval_us)
                arm_check_timer(d->channels);
}

static void count_follows(const osm_channels *c, size_t *n, size_t *failing) {
        *n = *failing = 0;
        for (ch_follow *f = c->follows; f; f = f->next) {
                (*n)++;
                *failing += f->error != NULL;
        }
}

/* Health without building a JSON object: GetStatus asks for it in a loop. */
static osm_health channels_health(osm_daemon *d, char *detail, size_t size) {
        osm_channels *c = d->channels;
        if (!c) {
                snprintf(detail, size, "the workload subsystem is not running");
                return OSM_HEALTH_DISABLED;
        }
        size_t n, failing;
        count_follows(c, &n, &failing);
        if (!failing) {
                snprintf(detail, size, "%zu followed", n);
                return OSM_HEALTH_OK;
        }
        snprintf(detail, size, "%zu followed, %zu with errors", n, failing);
        return OSM_HEALTH_DEGRADED;
}

static void channels_status(osm_daemon *d, json_t *obj) {
        osm_channels *c = d->channels;
        if (!c)
                return;
        size_t n, failing;
        count_follows(c, &n, &failing);
        json_object_set_new(obj, "info", json_pack("{s:I, s:I, s:b}", "followed", (json_int_t) n,
                                                   "failing", (json_int_t) failing,
                                                   "clock_synchronised", ch_clock_trusted(c)));
}

const osm_subsystem osm_channels_subsystem = {
        .name = "channels",
        .start = channels_start,
        .stop = channels_stop,
        .health = channels_health,
        .status = channels_status,
        .reload = channels_reload,
};
