/* rollout.c: channels followed building-wide — the follow, each room's outcome per bundle,
 * and the rooms on hold live in the building's replicated database; every room decides
 * for itself, from that state, whether its wave has come: the canary room first, then
 * the other rooms in name order, batch by batch, each batch once every room before it
 * runs the new bundle healthy; a failed canary halts the rollout. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "build-config.h"
#include "daemon/channels/ch.h"
#include "daemon/db.h"
#include "osmose/log.h"
#if HAVE_BUILDING
#include "daemon/building/building.h"
#endif

static const char *const rollout_schema[] = {
        "CREATE TABLE IF NOT EXISTS ch_follows (name TEXT PRIMARY KEY, source TEXT NOT NULL, channel TEXT NOT NULL,"
        " canary TEXT, batch INTEGER NOT NULL, added INTEGER NOT NULL)",
        "CREATE TABLE IF NOT EXISTS ch_rollout (name TEXT NOT NULL, room TEXT NOT NULL, bundle TEXT NOT NULL,"
        " version INTEGER NOT NULL, state TEXT NOT NULL, time INTEGER NOT NULL, PRIMARY KEY (name, room, bundle))",
        "CREATE TABLE IF NOT EXISTS ch_holds (room TEXT PRIMARY KEY, time INTEGER NOT NULL)",
};

bool ch_building_active(osm_channels *c) {
#if HAVE_BUILDING
        return osm_building_active(c->d);
#else
        return false;
#endif
}

bool ch_building_trusts(osm_channels *c, const char *key) {
#if HAVE_BUILDING
        return osm_building_active(c->d) && osm_building_trusts(c->d, key);
#else
        return false;
#endif
}

#if HAVE_BUILDING
/* A call waiting for the building: the channels subsystem stays alive until it answers. */
typedef struct pending {
        osm_channels *c;
        osm_call *call;
        void (*done)(struct pending *p, const char *error, const char *message, json_t *rows);
        void *data;
        char *name;
} pending;

static void pending_cancel(osm_call *call, void *userdata) {
        ((pending *) userdata)->call = NULL;
}

static void pending_cb(void *userdata, const char *error, const char *message, json_t *rows) {
        pending *p = userdata;
        if (p->c->stopped)
                p->call = NULL;   /* the server has gone; each done copes with that */
        if (p->call)
                osm_call_set_cancel(p->call, NULL, NULL);
        p->done(p, error, message, rows);
        osm_channels *c = p->c;
        free(p->name);
        free(p);
        ch_unref(c);
}

static int submit(osm_channels *c, osm_call *call, bool query, const char *sql, json_t *params,
                  void (*done)(pending *, const char *, const char *, json_t *), void *data, const char *name) {
        pending *p = calloc(1, sizeof *p);
        if (!p || (name && !(p->name = strdup(name)))) {
                free(p);
                json_decref(params);
                return -ENOMEM;
        }
        p->c = c;
        p->call = call;
        p->done = done;
        p->data = data;
        int r = query ? osm_building_query(c->d, sql, params, pending_cb, p)
                      : osm_building_exec(c->d, sql, params, pending_cb, p);
        json_decref(params);
        if (r < 0) {
                free(p->name);
                free(p);
                return r;
        }
        c->refs++;
        if (call)
                osm_call_set_cancel(call, pending_cancel, p);
        return 0;
}

/* SQLite gives EXISTS as 0 or 1. */
static bool truthy(json_t *v) {
        return json_is_true(v) || (json_is_integer(v) && json_integer_value(v) != 0);
}

static const char *room_name(osm_channels *c) {
        return c->d->cfg.name ? c->d->cfg.name : c->d->space_id;
}

static void logged(pending *p, const char *error, const char *message, json_t *rows);

/* The tables, before a statement that uses them: the building runs its jobs in order, and
 * a statement with parameters must stand alone. */
static void ensure_schema(osm_channels *c) {
        for (size_t i = 0; i < OSM_ARRAY_SIZE(rollout_schema); i++)
                submit(c, NULL, false, rollout_schema[i], json_array(), logged, NULL, NULL);
}

/* ---- the follow, building-wide ---------------------------------------------------------------- */

static void follow_recorded(pending *p, const char *error, const char *message, json_t *rows) {
        if (!p->call)
                return;
        if (error) {
                osm_call_errorf_name(p->call, error, "following building-wide: %s", message ? message : error);
                return;
        }
        ch_follow *f = ch_find(p->c, p->name);
        log_info("channels: %s follows its channel building-wide", p->name);
        osm_call_reply(p->call, json_pack("{s:o}", "follow", f ? ch_follow_json(p->c, f) : json_object()), false);
}

int ch_building_record_follow(osm_channels *c, osm_call *call, ch_follow *f) {
        json_t *params = json_pack("[s, s, s, s?, I, I]", f->name, f->source, f->channel, f->canary,
                                   (json_int_t) f->batch, (json_int_t) osm_now_real_us());
        ensure_schema(c);
        return submit(c, call, false, "INSERT OR REPLACE INTO ch_follows (name, source, channel, canary, batch, added) "
                      "VALUES (?, ?, ?, ?, ?, ?)", params, follow_recorded, NULL, f->name);
}

/* ---- the periodic check: learn the building's follows first -------------------------------- */

static void follows_read(pending *p, const char *error, const char *message, json_t *rows) {
        osm_channels *c = p->c;
        if (c->stopped)
                return;
        if (error)
                log_debug("channels: reading the building's follows: %s", message ? message : error);
        size_t i;
        json_t *row;
        json_array_foreach(rows, i, row) {
                const char *name = json_string_value(json_array_get(row, 0));
                const char *source = json_string_value(json_array_get(row, 1));
                const char *channel = json_string_value(json_array_get(row, 2));
                const char *canary = json_string_value(json_array_get(row, 3));
                json_int_t batch = json_integer_value(json_array_get(row, 4));
                if (!name || !source || !channel || !osm_name_valid(name, OSM_CHANNEL_MAX_NAME, false) ||
                    !osm_name_valid(channel, OSM_CHANNEL_MAX_NAME, false) || ch_source_check(source, NULL) < 0)
                        continue;
                ch_follow *f = ch_find(c, name);
                if (!f || strcmp(f->source, source) != 0 || strcmp(f->channel, channel) != 0) {
                        if (!(f = ch_follow_add(c, name, source, channel)))
                                continue;
                        log_info("channels: %s follows channel %s building-wide (from %s)", name, channel, source);
                }
                ch_follow_set_building(c, f, true, canary, batch > 0 ? batch : 1);
        }
        if (c->follows && ch_batch_start(c, NULL, NULL, false) == -EBUSY)
                log_debug("channels: periodic check skipped: an upgrade is running");
}

int ch_building_sync_then_check(osm_channels *c) {
        return submit(c, NULL, true, "SELECT name, source, channel, canary, batch FROM ch_follows ORDER BY name",
                      json_array(), follows_read, NULL, NULL);
}

/* ---- the gate: has this room's wave come? ----------------------------------------------------- */

/* rows: [room, name, state of this bundle or null, held] of every member, by name. The
 * verdict: "go", or "waiting" (why filled, -EAGAIN) or "halted" (why filled, -ECANCELED). */
static const char *gate_decide(osm_channels *c, ch_follow *f, json_t *rows, osm_error *why) {
        const char *me = c->d->space_id;
        const char *canary = f->canary;
        size_t i;
        json_t *row;
        json_t *canary_row = NULL;
        json_array_foreach(rows, i, row) {
                const char *room = json_string_value(json_array_get(row, 0));
                const char *name = json_string_value(json_array_get(row, 1));
                if (room && strcmp(room, me) == 0 && truthy(json_array_get(row, 3))) {
                        osm_error_set(why, -EAGAIN, 0, "this room is on hold (osmosectl rollout release)");
                        return "waiting";
                }
                if (canary && name && strcmp(name, canary) == 0)
                        canary_row = row;
        }
        if (!canary_row && json_array_size(rows))
                canary_row = json_array_get(rows, 0);   /* no canary named: the first room by name */
        if (!canary_row)
                return "go";
        const char *cstate = json_string_value(json_array_get(canary_row, 2));
        const char *cname = json_string_value(json_array_get(canary_row, 1));
        if (strcmp(json_string_value(json_array_get(canary_row, 0)), me) == 0)
                return "go";
        if (cstate && strcmp(cstate, "failed") == 0) {
                osm_error_set(why, -ECANCELED, 0, "halted: the canary %s failed this version's health check", cname);
                return "halted";
        }
        if (!cstate || strcmp(cstate, "healthy") != 0) {
                osm_error_set(why, -EAGAIN, 0, "waiting for the canary %s", cname);
                return "waiting";
        }
        /* The others, in name order, batch by batch. */
        int64_t batch = f->batch > 0 ? f->batch : 1;
        size_t pos = 0, my_pos = SIZE_MAX;
        json_array_foreach(rows, i, row) {
                if (row == canary_row)
                        continue;
                if (strcmp(json_string_value(json_array_get(row, 0)), me) == 0)
                        my_pos = pos;
                pos++;
        }
        if (my_pos == SIZE_MAX)
                return "go";
        size_t my_wave = my_pos / (size_t) batch;
        pos = 0;
        json_array_foreach(rows, i, row) {
                if (row == canary_row)
                        continue;
                size_t wave = pos++ / (size_t) batch;
                if (wave >= my_wave)
                        continue;
                const char *st = json_string_value(json_array_get(row, 2));
                bool held = truthy(json_array_get(row, 3));
                if (st && strcmp(st, "failed") == 0) {
                        osm_error_set(why, -ECANCELED, 0, "halted: %s failed this version's health check",
                                      json_string_value(json_array_get(row, 1)));
                        return "halted";
                }
                if (!held && (!st || strcmp(st, "healthy") != 0)) {
                        osm_error_set(why, -EAGAIN, 0, "waiting for wave %zu (%s)", wave + 1,
                                      json_string_value(json_array_get(row, 1)));
                        return "waiting";
                }
        }
        return "go";
}

typedef void (*gate_fn)(void *job, const char *verdict, const char *why);

static void gate_read(pending *p, const char *error, const char *message, json_t *rows) {
        gate_fn fn = (gate_fn) ((void **) p->data)[0];
        void *job = ((void **) p->data)[1];
        free(p->data);
        ch_follow *f = ch_find(p->c, p->name);
        osm_error why = {};
        if (p->c->stopped) {
                fn(job, "stopped", "the daemon is stopping");
                return;
        }
        if (error || !f) {
                osm_error_set(&why, -EAGAIN, 0, "the building's rollout state cannot be read: %s",
                              message ? message : error ? error : "unfollowed");
                fn(job, "waiting", why.message);
                return;
        }
        const char *verdict = gate_decide(p->c, f, rows, &why);
        fn(job, verdict, why.message);
}

int ch_building_gate(osm_channels *c, ch_follow *f, const char *bundle, void (*fn)(void *, const char *, const char *),
                     void *job) {
        void **data = calloc(2, sizeof(void *));
        if (!data)
                return -ENOMEM;
        data[0] = (void *) fn;
        data[1] = job;
        json_t *params = json_pack("[s, s]", f->name, bundle);
        int r = submit(c, NULL, true,
                       "SELECT m.room, m.name, (SELECT r.state FROM ch_rollout r WHERE r.name = ?1 AND r.room = m.room "
                       "AND r.bundle = ?2), EXISTS (SELECT 1 FROM ch_holds h WHERE h.room = m.room) "
                       "FROM members m ORDER BY m.name", params, gate_read, data, f->name);
        if (r < 0)
                free(data);
        return r;
}

/* ---- outcomes, holds, status -------------------------------------------------------------------- */

static void logged(pending *p, const char *error, const char *message, json_t *rows) {
        if (error && !p->c->stopped)
                log_warning("channels: recording in the building: %s", message ? message : error);
}

/* Outcomes go to the building until it has them: each is kept in the channels database
 * (reports) first, sent, and removed only once the building's exec succeeded; one that
 * does not land (no quorum, a leader change, the building unreachable) is sent again,
 * from a timer with a backoff, also after a restart. A newer outcome for the same bundle
 * replaces one not yet sent. */
static void flush_reports(osm_channels *c);

static void on_report_timer(uv_timer_t *t) {
        flush_reports(t->data);
}

static void report_sent(pending *p, const char *error, const char *message, json_t *rows) {
        osm_channels *c = p->c;
        json_t *key = p->data;
        c->reports_in_flight--;
        if (c->stopped) {
                json_decref(key);
                return;
        }
        if (error) {
                c->report_failed = true;
                log_warning("channels: the report of %s (%s) did not reach the building: %s",
                            json_string_value(json_array_get(key, 0)), json_string_value(json_array_get(key, 3)),
                            message ? message : error);
        } else {
                _cleanup_stmt_ sqlite3_stmt *st = NULL;
                if (sqlite3_prepare_v2(c->db, "DELETE FROM reports WHERE name = ? AND bundle = ? AND time = ?", -1, &st,
                                       NULL) == SQLITE_OK) {
                        sqlite3_bind_text(st, 1, json_string_value(json_array_get(key, 0)), -1, SQLITE_STATIC);
                        sqlite3_bind_text(st, 2, json_string_value(json_array_get(key, 1)), -1, SQLITE_STATIC);
                        sqlite3_bind_int64(st, 3, json_integer_value(json_array_get(key, 2)));
                        sqlite3_step(st);
                }
                if (c->report_backoff_ms)
                        log_info("channels: the report of %s (%s) reached the building",
                                 json_string_value(json_array_get(key, 0)), json_string_value(json_array_get(key, 3)));
        }
        json_decref(key);
        if (c->reports_in_flight > 0)
                return;
        if (c->report_failed) {
                c->report_failed = false;
                c->report_backoff_ms = c->report_backoff_ms ? OSM_MIN(c->report_backoff_ms * 2, CH_REPORT_BACKOFF_MAX_MS)
                                                            : CH_REPORT_BACKOFF_MIN_MS;
                log_info("channels: sending the reports the building did not take again in %u ms", c->report_backoff_ms);
                uv_timer_start(&c->report_timer, on_report_timer, c->report_backoff_ms, 0);
        } else {
                c->report_backoff_ms = 0;
                if (c->reports_dirty)
                        flush_reports(c);   /* what was recorded meanwhile */
        }
}

static void flush_reports(osm_channels *c) {
        if (c->stopped)
                return;
        if (c->reports_in_flight) {
                c->reports_dirty = true;   /* sent when those in flight are answered */
                return;
        }
        c->reports_dirty = false;
        if (!ch_building_active(c)) {
                uv_timer_start(&c->report_timer, on_report_timer, CH_REPORT_BACKOFF_MAX_MS, 0);
                return;
        }
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(c->db, "SELECT name, bundle, version, state, keep, time FROM reports ORDER BY time",
                               -1, &st, NULL) != SQLITE_OK)
                return;
        bool schema = false;
        while (sqlite3_step(st) == SQLITE_ROW) {
                const char *name = (const char *) sqlite3_column_text(st, 0);
                const char *bundle = (const char *) sqlite3_column_text(st, 1);
                const char *state = (const char *) sqlite3_column_text(st, 3);
                json_int_t version = sqlite3_column_int64(st, 2), time = sqlite3_column_int64(st, 5);
                char sql[256];
                snprintf(sql, sizeof sql, "INSERT OR %s INTO ch_rollout (name, room, bundle, version, state, time) "
                         "VALUES (?, ?, ?, ?, ?, ?)", sqlite3_column_int(st, 4) ? "IGNORE" : "REPLACE");
                if (!schema)
                        ensure_schema(c);
                schema = true;
                json_t *params = json_pack("[s, s, s, I, s, I]", name, c->d->space_id, bundle, version, state, time);
                json_t *key = json_pack("[s, s, I, s]", name, bundle, time, state);
                if (!key || submit(c, NULL, false, sql, params, report_sent, key, NULL) < 0) {
                        json_decref(key);
                        if (!c->reports_in_flight)
                                uv_timer_start(&c->report_timer, on_report_timer, CH_REPORT_BACKOFF_MAX_MS, 0);
                        return;
                }
                c->reports_in_flight++;
        }
}

void ch_building_report(osm_channels *c, const char *name, const char *bundle, int64_t version, const char *state,
                        bool keep_existing) {
        /* keep_existing: "still healthy" from a check, which does not replace an outcome */
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(c->db, keep_existing ? "INSERT OR IGNORE INTO reports(name, bundle, version, state, keep, "
                                                      "time) VALUES(?, ?, ?, ?, 1, ?)"
                                                    : "INSERT OR REPLACE INTO reports(name, bundle, version, state, keep, "
                                                      "time) VALUES(?, ?, ?, ?, 0, ?)", -1, &st, NULL) != SQLITE_OK) {
                log_warning("channels db: %s", sqlite3_errmsg(c->db));
                return;
        }
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, bundle, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, version);
        sqlite3_bind_text(st, 4, state, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 5, osm_now_real_us());
        if (sqlite3_step(st) != SQLITE_DONE)
                log_warning("channels db: recording the report of %s: %s", name, sqlite3_errmsg(c->db));
        flush_reports(c);
}

void ch_reports_resume(osm_channels *c) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(c->db, "SELECT count(*) FROM reports", -1, &st, NULL) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) > 0)
                uv_timer_start(&c->report_timer, on_report_timer, CH_REPORT_BACKOFF_MIN_MS, 0);
}

static void hold_done(pending *p, const char *error, const char *message, json_t *rows) {
        if (!p->call)
                return;
        if (error)
                osm_call_errorf_name(p->call, error, "%s", message ? message : error);
        else
                osm_call_reply(p->call, json_pack("{s:s, s:b}", "room", p->name, "held", p->data != NULL), false);
}

static void method_hold(osm_call *call, json_t *params, void *userdata) {
        osm_channels *c = userdata;
        bool hold = strcmp(osm_call_method(call), OSM_M_CHANNEL_HOLD) == 0;
        const char *room = json_string_value(json_object_get(params, "room"));
        if (!ch_building_active(c)) {
                osm_call_errorf(call, OSM_E_NOT_AVAILABLE, "this room is not in a building");
                return;
        }
        if (room && (strlen(room) > 128 || !osm_text_line_ok(room))) {
                osm_call_invalid_param(call, "room");   /* a room's name */
                return;
        }
        const char *sql = hold ? "INSERT OR REPLACE INTO ch_holds (room, time) SELECT room, ? FROM members "
                                 "WHERE name = ? OR room = ?"
                               : "DELETE FROM ch_holds WHERE ? > 0 AND room IN (SELECT room FROM members "
                                 "WHERE name = ? OR room = ?)";
        ensure_schema(c);
        const char *r = room ? room : room_name(c);
        json_t *p = json_pack("[I, s, s]", (json_int_t) osm_now_real_us(), r, room ? room : c->d->space_id);
        if (submit(c, call, false, sql, p, hold_done, hold ? (void *) 1 : NULL, r) < 0)
                osm_call_errorf(call, OSM_E_INTERNAL_ERROR, "submitting to the building failed");
}

static void status_read(pending *p, const char *error, const char *message, json_t *rows) {
        if (!p->call)
                return;
        if (error) {
                osm_call_errorf_name(p->call, error, "%s", message ? message : error);
                return;
        }
        json_t *a = json_array();
        size_t i;
        json_t *row;
        json_array_foreach(rows, i, row) {
                json_t *o = json_pack("{s:s, s:b}", "room", json_string_value(json_array_get(row, 0)) ?
                                      json_string_value(json_array_get(row, 0)) : "?",
                                      "held", truthy(json_array_get(row, 6)));
                if (json_is_string(json_array_get(row, 1))) {
                        json_object_set(o, "workload", json_array_get(row, 1));
                        json_object_set(o, "version", json_array_get(row, 2));
                        json_object_set(o, "state", json_array_get(row, 3));
                        json_object_set(o, "bundle", json_array_get(row, 4));
                        json_object_set(o, "time", json_array_get(row, 5));
                }
                json_array_append_new(a, o);
        }
        osm_call_reply(p->call, json_pack("{s:o}", "rooms", a), false);
}

static void method_rollout_status(osm_call *call, json_t *params, void *userdata) {
        osm_channels *c = userdata;
        if (!ch_building_active(c)) {
                osm_call_errorf(call, OSM_E_NOT_AVAILABLE, "this room is not in a building");
                return;
        }
        /* Each room, and per workload its newest outcome. */
        ensure_schema(c);
        char sql[768];
        snprintf(sql, sizeof sql, "%sSELECT m.name, r.name, r.version, r.state, r.bundle, r.time, "
                 "EXISTS (SELECT 1 FROM ch_holds h WHERE h.room = m.room) FROM members m LEFT JOIN ch_rollout r "
                 "ON r.room = m.room AND r.time = (SELECT max(time) FROM ch_rollout x WHERE x.room = m.room AND "
                 "x.name = r.name) ORDER BY m.name, r.name", "");
        if (submit(c, call, true, sql, json_array(), status_read, NULL, NULL) < 0)
                osm_call_errorf(call, OSM_E_INTERNAL_ERROR, "submitting to the building failed");
}

#else   /* !HAVE_BUILDING */

int ch_building_record_follow(osm_channels *c, osm_call *call, ch_follow *f) {
        return -ENOTCONN;
}
int ch_building_sync_then_check(osm_channels *c) {
        return -ENOTCONN;
}
int ch_building_gate(osm_channels *c, ch_follow *f, const char *bundle, void (*fn)(void *, const char *, const char *),
                     void *job) {
        return -ENOTCONN;
}
void ch_building_report(osm_channels *c, const char *name, const char *bundle, int64_t version, const char *state,
                        bool keep_existing) {
}
void ch_reports_resume(osm_channels *c) {
}
static void method_hold(osm_call *call, json_t *params, void *userdata) {
        osm_call_errorf(call, OSM_E_NOT_AVAILABLE, "osmosed was built without the building");
}
static void method_rollout_status(osm_call *call, json_t *params, void *userdata) {
        osm_call_errorf(call, OSM_E_NOT_AVAILABLE, "osmosed was built without the building");
}
#endif

const osm_method ch_rollout_methods[] = {
        { OSM_M_CHANNEL_ROLLOUT_STATUS, method_rollout_status, OSM_ACCESS_READ },
        { OSM_M_CHANNEL_HOLD, method_hold, OSM_ACCESS_WRITE },
        { OSM_M_CHANNEL_RELEASE, method_hold, OSM_ACCESS_WRITE },
};
const size_t ch_n_rollout_methods = OSM_ARRAY_SIZE(ch_rollout_methods);
