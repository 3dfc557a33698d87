/* db.c: the workload subsystem's database (workloads.db): its schema and every SQL statement. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "daemon/db.h"
#include "daemon/tenant/tenants.h"
#include "daemon/workload/wl.h"
#include "osmose/log.h"

static const char schema[] =
        "PRAGMA journal_mode=WAL;"
        "PRAGMA synchronous=FULL;"
        "PRAGMA foreign_keys=ON;"
        "CREATE TABLE IF NOT EXISTS workloads("
        "  name TEXT PRIMARY KEY, version INTEGER NOT NULL, bundle_id TEXT NOT NULL,"
        "  manifest TEXT NOT NULL, has_rootfs INTEGER NOT NULL, signer TEXT,"
        "  verified INTEGER NOT NULL, allow_unsigned INTEGER NOT NULL, installed INTEGER NOT NULL,"
        "  source TEXT);"
        "CREATE TABLE IF NOT EXISTS grants("
        "  name TEXT NOT NULL REFERENCES workloads(name) ON DELETE CASCADE,"
        "  capability TEXT NOT NULL, granted INTEGER NOT NULL, PRIMARY KEY(name, capability));"
        /* What happened to workloads: installs (with allow_unsigned), removals, grants. */
        "CREATE TABLE IF NOT EXISTS history("
        "  seq INTEGER PRIMARY KEY AUTOINCREMENT, time INTEGER NOT NULL, name TEXT NOT NULL,"
        "  event TEXT NOT NULL, version INTEGER, bundle_id TEXT, detail TEXT);"
        "CREATE TABLE IF NOT EXISTS instances("
        "  seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT, name TEXT NOT NULL, version INTEGER,"
        "  bundle_id TEXT, started INTEGER, ended INTEGER, exit_code INTEGER, signal INTEGER,"
        "  restarts INTEGER, error TEXT);"
        /* Who owns a workload name and its host id range; outlives a removal that keeps
         * the data, so the range is never given to another while the data exists. */
        "CREATE TABLE IF NOT EXISTS owners("
        "  name TEXT PRIMARY KEY, tenant TEXT NOT NULL, uid_block INTEGER NOT NULL UNIQUE);"
        /* The snapshots of channel upgrades in progress (channel-hooks.c), to go back to
         * after a restart or a crash. */
        "CREATE TABLE IF NOT EXISTS snapshots("
        "  name TEXT PRIMARY KEY, bundle_id TEXT NOT NULL, manifest TEXT NOT NULL,"
        "  has_rootfs INTEGER NOT NULL, signer TEXT, verified INTEGER NOT NULL, allow_unsigned INTEGER NOT NULL,"
        "  grants TEXT NOT NULL);";

int wl_db_exec(osm_workloads *w, const char *sql) {
        char *msg = NULL;
        if (sqlite3_exec(w->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
                log_error("workloads db: %s", msg ? msg : sqlite3_errmsg(w->db));
                sqlite3_free(msg);
                return -EIO;
        }
        return 0;
}

int wl_db_history(osm_workloads *w, const char *name, const char *event, int64_t version,
                   const char *bundle_id, const char *detail) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(w->db, "INSERT INTO history(time, name, event, version, bundle_id, detail) "
                               "VALUES(?, ?, ?, ?, ?, ?)", -1, &st, NULL) != SQLITE_OK)
                return -EIO;
        sqlite3_bind_int64(st, 1, osm_now_real_us());
        sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, event, -1, SQLITE_STATIC);
        if (version > 0)
                sqlite3_bind_int64(st, 4, version);
        if (bundle_id)
                sqlite3_bind_text(st, 5, bundle_id, -1, SQLITE_STATIC);
        if (detail)
                sqlite3_bind_text(st, 6, detail, -1, SQLITE_STATIC);
        return sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
}

/* Columns added after the first release: ALTER TABLE, once (a "duplicate column" error
 * means an earlier start added it). */
static int migrate(osm_workloads *w) {
        static const char *const cols[] = {
                "workloads ADD COLUMN enabled INTEGER NOT NULL DEFAULT 0",
                "instances ADD COLUMN args TEXT",
                "instances ADD COLUMN restart TEXT",
                "instances ADD COLUMN state TEXT",
                "instances ADD COLUMN resume INTEGER NOT NULL DEFAULT 0",
        };
        for (size_t k = 0; k < OSM_ARRAY_SIZE(cols); k++) {
                char sql[160];
                snprintf(sql, sizeof sql, "ALTER TABLE %s", cols[k]);
                char *msg = NULL;
                if (sqlite3_exec(w->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
                        bool dup = msg && strstr(msg, "duplicate column");
                        if (!dup)
                                log_error("workloads db: %s: %s", sql, msg ? msg : "?");
                        sqlite3_free(msg);
                        if (!dup)
                                return -EIO;
                }
        }
        return wl_db_exec(w, "CREATE TABLE IF NOT EXISTS kept_data(name TEXT PRIMARY KEY, kept INTEGER NOT NULL);"
                             "CREATE INDEX IF NOT EXISTS instances_id ON instances(id);");
}

static int load_workloads(osm_workloads *w) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL, *gs = NULL;
        if (sqlite3_prepare_v2(w->db, "SELECT name, version, bundle_id, manifest, has_rootfs, signer, verified,"
                               " allow_unsigned, installed, enabled FROM workloads ORDER BY name DESC", -1, &st, NULL) != SQLITE_OK ||
            sqlite3_prepare_v2(w->db, "SELECT capability FROM grants WHERE name = ? ORDER BY capability",
                               -1, &gs, NULL) != SQLITE_OK)
                return -EIO;
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                const char *mtext = (const char *) sqlite3_column_text(st, 3);
                const char *name = (const char *) sqlite3_column_text(st, 0);
                osm_error why = {};
                osm_manifest *m = NULL;
                if (!mtext || !name || osm_manifest_parse(mtext, strlen(mtext), &m, &why) < 0) {
                        log_error("workload %s: stored manifest no longer parses (%s); skipped",
                                  name ? name : "?", why.message);
                        continue;
                }
                wl_workload *wl = calloc(1, sizeof *wl);
                if (!wl) {
                        osm_manifest_free(m);
                        return -ENOMEM;
                }
                wl->manifest = m;
                wl->name = strdup(name);
                wl->version = sqlite3_column_int64(st, 1);
                wl->bundle_id = strdup((const char *) sqlite3_column_text(st, 2));
                wl->manifest_text = strdup(mtext);
                wl->has_rootfs = sqlite3_column_int(st, 4);
                if (sqlite3_column_type(st, 5) != SQLITE_NULL)
                        wl->signer = strdup((const char *) sqlite3_column_text(st, 5));
                wl->verified = sqlite3_column_int(st, 6);
                wl->allow_unsigned = sqlite3_column_int(st, 7);
                wl->installed_us = sqlite3_column_int64(st, 8);
                wl->enabled = sqlite3_column_int(st, 9);
                /* A workload from before tenants gets its owner and range now. */
                int r = wl_db_owner_get(w, wl->name, &wl->tenant, &wl->uid_block);
                if (r == -ENOENT && (r = wl_db_owner_assign(w, wl->name, OSM_TENANT_OPERATOR, &wl->uid_block)) == 0)
                        wl->tenant = strdup(OSM_TENANT_OPERATOR);
                if (r < 0)
                        log_error("workload %s: no host id range: %s", wl->name, strerror(-r));
                wl->next = w->workloads;
                w->workloads = wl;
                if (!wl->name || !wl->bundle_id || !wl->manifest_text)
                        return -ENOMEM;
                size_t n = 0, cap = 4;
                wl->grants = calloc(cap + 1, sizeof(char *));
                if (!wl->grants)
                        return -ENOMEM;
                sqlite3_reset(gs);
                sqlite3_bind_text(gs, 1, wl->name, -1, SQLITE_STATIC);
                while (sqlite3_step(gs) == SQLITE_ROW) {
                        if (n == cap) {
                                char **v = realloc(wl->grants, (cap * 2 + 1) * sizeof(char *));
                                if (!v)
                                        return -ENOMEM;
                                wl->grants = v;
                                cap *= 2;
                        }
                        wl->grants[n] = strdup((const char *) sqlite3_column_text(gs, 0));
                        if (!wl->grants[n])
                                return -ENOMEM;
                        wl->grants[++n] = NULL;
                }
                wl->n_grants = n;
        }
        return rc == SQLITE_DONE ? 0 : -EIO;
}

/* Open path (created 0600) twice: db for workloads, grants and history (synchronous=FULL),
 * hist for instance records (synchronous=NORMAL); load the installed workloads and close
 * the instance records an earlier run left open. 0, or negative (logged). */
int wl_db_open(osm_workloads *w, const char *dbpath) {
        osm_error err = {};
        if (osm_db_open(dbpath, OSM_DB_CREATE, NULL, &w->db, &err) < 0) {
                log_error("workloads: %s", err.message);
                return -EIO;
        }
        int r;
        if ((r = wl_db_exec(w, schema)) < 0 || (r = migrate(w)) < 0 || (r = load_workloads(w)) < 0) {
                log_error("workloads: loading %s failed", dbpath);
                return r < 0 ? r : -EIO;
        }
        if (osm_db_open(dbpath, 0, "PRAGMA synchronous=NORMAL", &w->hist, &err) < 0) {
                log_error("workloads: %s", err.message);
                return -EIO;
        }
        /* Instances of an earlier run left open (the daemon died) stay open until
         * wl_history_start() decides whether they come back. */
        return 0;
}

void wl_db_close(osm_workloads *w) {
        osm_db_stmts_clear(&w->hist_stmts);
        if (w->hist)
                sqlite3_close(w->hist);
        if (w->db)
                sqlite3_close(w->db);
        w->hist = w->db = NULL;
}

/* Replace the stored grants of workload name with grants[0..n), in one transaction. */
int wl_db_save_grants(osm_workloads *w, const char *name, char **grants, size_t n) {
        int r = wl_db_exec(w, "BEGIN IMMEDIATE");
        if (r < 0)
                return r;
        _cleanup_stmt_ sqlite3_stmt *del = NULL, *ins = NULL;
        bool ok = sqlite3_prepare_v2(w->db, "DELETE FROM grants WHERE name = ?", -1, &del, NULL) == SQLITE_OK &&
                  sqlite3_prepare_v2(w->db, "INSERT INTO grants(name, capability, granted) VALUES(?, ?, ?)",
                                     -1, &ins, NULL) == SQLITE_OK;
        if (ok) {
                sqlite3_bind_text(del, 1, name, -1, SQLITE_STATIC);
                ok = sqlite3_step(del) == SQLITE_DONE;
        }
        for (size_t i = 0; ok && i < n; i++) {
                sqlite3_reset(ins);
                sqlite3_bind_text(ins, 1, name, -1, SQLITE_STATIC);
                sqlite3_bind_text(ins, 2, grants[i], -1, SQLITE_STATIC);
                sqlite3_bind_int64(ins, 3, osm_now_real_us());
                ok = sqlite3_step(ins) == SQLITE_DONE;
        }
        if (!ok || wl_db_exec(w, "COMMIT") < 0) {
                log_error("workloads db: saving grants of %s: %s", name, sqlite3_errmsg(w->db));
                wl_db_exec(w, "ROLLBACK");
                return -EIO;
        }
        return 0;
}

/* Store an installed workload (replacing the row of an earlier version, and with it, by
 * the cascade, its grants) and its history entry, in one transaction. */
int wl_db_save_install(osm_workloads *w, const wl_workload *wl, const char *source) {
        int r = wl_db_exec(w, "BEGIN IMMEDIATE");
        if (r < 0)
                return r;
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        bool ok = sqlite3_prepare_v2(w->db,
                "INSERT OR REPLACE INTO workloads(name, version, bundle_id, manifest, has_rootfs, signer,"
                " verified, allow_unsigned, installed, source, enabled) VALUES(?,?,?,?,?,?,?,?,?,?,?)",
                -1, &st, NULL) == SQLITE_OK;
        if (ok) {
                sqlite3_bind_text(st, 1, wl->name, -1, SQLITE_STATIC);
                sqlite3_bind_int64(st, 2, wl->version);
                sqlite3_bind_text(st, 3, wl->bundle_id, -1, SQLITE_STATIC);
                sqlite3_bind_text(st, 4, wl->manifest_text, -1, SQLITE_STATIC);
                sqlite3_bind_int(st, 5, wl->has_rootfs);
                if (wl->signer)
                        sqlite3_bind_text(st, 6, wl->signer, -1, SQLITE_STATIC);
                sqlite3_bind_int(st, 7, wl->verified);
                sqlite3_bind_int(st, 8, wl->allow_unsigned);
                sqlite3_bind_int64(st, 9, wl->installed_us);
                if (source)
                        sqlite3_bind_text(st, 10, source, -1, SQLITE_STATIC);
                sqlite3_bind_int(st, 11, wl->enabled);
                ok = sqlite3_step(st) == SQLITE_DONE;
        }
        /* Data kept at an earlier remove (--keep-data) is this workload's again. */
        _cleanup_stmt_ sqlite3_stmt *kept = NULL;
        if (ok && sqlite3_prepare_v2(w->db, "DELETE FROM kept_data WHERE name = ?", -1, &kept, NULL) == SQLITE_OK) {
                sqlite3_bind_text(kept, 1, wl->name, -1, SQLITE_STATIC);
                ok = sqlite3_step(kept) == SQLITE_DONE;
        }
        char detail[160];
        snprintf(detail, sizeof detail, "%s%s", wl->verified ? "verified" : "unverified",
                 wl->allow_unsigned ? ", allow-unsigned" : "");
        ok = ok && wl_db_history(w, wl->name, "install", wl->version, wl->bundle_id, detail) == 0;
        if (!ok || wl_db_exec(w, "COMMIT") < 0) {
                log_error("workloads db: installing %s: %s", wl->name, sqlite3_errmsg(w->db));
                wl_db_exec(w, "ROLLBACK");
                return -EIO;
        }
        return 0;
}

/* Delete the workload (its grants go with it) and record the removal, in one transaction;
 * with keep_data, its data directory is kept (wl_db_data_kept) until the same name is
 * installed again. */
int wl_db_remove(osm_workloads *w, const wl_workload *wl, bool keep_data) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL, *ks = NULL;
        if (wl_db_exec(w, "BEGIN IMMEDIATE") < 0 ||
            sqlite3_prepare_v2(w->db, "DELETE FROM workloads WHERE name = ?", -1, &st, NULL) != SQLITE_OK ||
            sqlite3_bind_text(st, 1, wl->name, -1, SQLITE_STATIC) != SQLITE_OK ||
            sqlite3_step(st) != SQLITE_DONE ||
            (keep_data && (sqlite3_prepare_v2(w->db, "INSERT OR REPLACE INTO kept_data(name, kept) VALUES(?, ?)", -1,
                                              &ks, NULL) != SQLITE_OK ||
                           sqlite3_bind_text(ks, 1, wl->name, -1, SQLITE_STATIC) != SQLITE_OK ||
                           sqlite3_bind_int64(ks, 2, osm_now_real_us()) != SQLITE_OK || sqlite3_step(ks) != SQLITE_DONE)) ||
            wl_db_history(w, wl->name, "remove", wl->version, wl->bundle_id, keep_data ? "data kept" : "data deleted") < 0 ||
            wl_db_exec(w, "COMMIT") < 0) {
                wl_db_exec(w, "ROLLBACK");
                return -EIO;
        }
        return 0;
}

/* ---- instance records ------------------------------------------------------------------------------ */

static char *args_text(char **args) {
        if (!args || !*args)
                return NULL;
        json_t *a = json_array();
        for (char **p = args; *p; p++)
                json_array_append_new(a, json_string(*p));
        char *s = json_dumps(a, JSON_COMPACT);
        json_decref(a);
        return s;
}

/* A new instance: its row, and its id (NAME-SEQ, unique in this state dir). */
static int record_new(wl_instance *i) {
        osm_workloads *w = i->w;
        _cleanup_free_ char *args = args_text(i->args);
        _cleanup_reset_ sqlite3_stmt *st = osm_db_stmt(&w->hist_stmts, w->hist,
                                                       "INSERT INTO instances(name, version, bundle_id, started, args,"
                                                       " restart, state) VALUES(?,?,?,?,?,?,'starting')");
        if (!st)
                return -EIO;
        sqlite3_bind_text(st, 1, i->workload, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, i->version);
        sqlite3_bind_text(st, 3, i->bundle_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, i->started_us);
        if (args)
                sqlite3_bind_text(st, 5, args, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 6, osm_restart_policy_name(i->restart), -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE)
                return -EIO;
        sqlite3_int64 seq = sqlite3_last_insert_rowid(w->hist);
        if (asprintf(&i->id, "%s-%lld", i->workload, (long long) seq) < 0) {
                i->id = NULL;
                return -ENOMEM;
        }
        _cleanup_reset_ sqlite3_stmt *up =
                osm_db_stmt(&w->hist_stmts, w->hist, "UPDATE instances SET id = ?1 WHERE seq = ?2");
        if (!up)
                return -EIO;
        sqlite3_bind_text(up, 1, i->id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(up, 2, seq);
        return sqlite3_step(up) == SQLITE_DONE ? 0 : -EIO;
}

/* Record that i starts: a new row (setting i->id), or an instance of an earlier run of
 * the daemon coming back (i->id set): open again. */
void wl_db_instance_start(wl_instance *i) {
        if (!i->id) {
                /* The row and its id in one commit (one write of the log, not two). */
                sqlite3 *h = i->w->hist;
                bool tx = sqlite3_exec(h, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK;
                int r = record_new(i);
                if (r < 0)
                        log_warning("workloads db: recording instance of %s: %s", i->workload, sqlite3_errmsg(h));
                if (tx && (r < 0 || sqlite3_exec(h, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)) {
                        if (r == 0)
                                log_warning("workloads db: recording instance of %s: %s", i->workload, sqlite3_errmsg(h));
                        sqlite3_exec(h, "ROLLBACK", NULL, NULL, NULL);
                        free(i->id);
                        i->id = NULL;   /* not recorded: the caller fails the run */
                }
                return;
        }
        _cleanup_reset_ sqlite3_stmt *st = osm_db_stmt(&i->w->hist_stmts, i->w->hist,
                                                       "UPDATE instances SET ended = NULL, resume = 0, state = 'starting',"
                                                       " version = ?2, bundle_id = ?3, restarts = ?4 WHERE id = ?1");
        if (!st)
                return;
        sqlite3_bind_text(st, 1, i->id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, i->version);
        sqlite3_bind_text(st, 3, i->bundle_id, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 4, (int) i->restarts);
        (void) sqlite3_step(st);
}

int wl_db_owner_get(osm_workloads *w, const char *name, char **tenant, int64_t *block) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(w->db, "SELECT tenant, uid_block FROM owners WHERE name = ?", -1, &st, NULL) != SQLITE_OK)
                return -EIO;
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
                return -ENOENT;
        if (rc != SQLITE_ROW)
                return -EIO;
        if (tenant && !(*tenant = strdup((const char *) sqlite3_column_text(st, 0))))
                return -ENOMEM;
        *block = sqlite3_column_int64(st, 1);
        return 0;
}

/* The owner of name is tenant from now on, with its range: the one it had, or the
 * lowest free one. -EEXIST if another tenant owns the name (also a removed workload
 * whose data is kept), -ENOSPC if every range is taken. */
int wl_db_owner_assign(osm_workloads *w, const char *name, const char *tenant, int64_t *block) {
        _cleanup_free_ char *owner = NULL;
        int r = wl_db_owner_get(w, name, &owner, block);
        if (r == 0)
                return strcmp(owner, tenant) == 0 ? 0 : -EEXIST;
        if (r != -ENOENT)
                return r;
        uint64_t size = w->d->cfg.uid_range_size ? w->d->cfg.uid_range_size : 65536;
        int64_t max = (int64_t) (w->d->cfg.uid_count / size);
        _cleanup_stmt_ sqlite3_stmt *st = NULL, *ins = NULL;
        /* The lowest block not in the table: 0 if free, else the first gap after a used one. */
        if (sqlite3_prepare_v2(w->db, "SELECT CASE WHEN NOT EXISTS(SELECT 1 FROM owners WHERE uid_block = 0) THEN 0"
                               " ELSE (SELECT min(o.uid_block) + 1 FROM owners o WHERE NOT EXISTS"
                               " (SELECT 1 FROM owners p WHERE p.uid_block = o.uid_block + 1)) END", -1, &st, NULL) != SQLITE_OK ||
            sqlite3_step(st) != SQLITE_ROW)
                return -EIO;
        int64_t b = sqlite3_column_int64(st, 0);
        if (b >= max)
                return -ENOSPC;
        if (sqlite3_prepare_v2(w->db, "INSERT INTO owners(name, tenant, uid_block) VALUES(?,?,?)", -1, &ins, NULL) !=
                    SQLITE_OK)
                return -EIO;
        sqlite3_bind_text(ins, 1, name, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 2, tenant, -1, SQLITE_STATIC);
        sqlite3_bind_int64(ins, 3, b);
        if (sqlite3_step(ins) != SQLITE_DONE)
                return -EIO;
        *block = b;
        return 0;
}

/* The name's data is gone: its owner row and its kept-data mark go, and its id range is
 * free for another workload. */
int wl_db_owner_release(osm_workloads *w, const char *name) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL, *kd = NULL;
        if (sqlite3_prepare_v2(w->db, "DELETE FROM owners WHERE name = ?", -1, &st, NULL) != SQLITE_OK ||
            sqlite3_prepare_v2(w->db, "DELETE FROM kept_data WHERE name = ?", -1, &kd, NULL) != SQLITE_OK)
                return -EIO;
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        sqlite3_bind_text(kd, 1, name, -1, SQLITE_STATIC);
        return sqlite3_step(st) == SQLITE_DONE && sqlite3_step(kd) == SQLITE_DONE ? 0 : -EIO;
}

void wl_db_instance_end(const wl_instance *i) {
        _cleanup_reset_ sqlite3_stmt *st = !i->id ? NULL : osm_db_stmt(&i->w->hist_stmts, i->w->hist,
                                                       "UPDATE instances SET ended = ?, exit_code = ?, signal = ?, restarts = ?,"
                                                       " error = ?, state = ?, resume = ? WHERE id = ?");
        if (!st)
                return;
        sqlite3_bind_int64(st, 1, i->ended_us);
        if (i->exit_code >= 0)
                sqlite3_bind_int(st, 2, i->exit_code);
        if (i->signal > 0)
                sqlite3_bind_int(st, 3, i->signal);
        sqlite3_bind_int(st, 4, (int) i->restarts);
        if (i->error)
                sqlite3_bind_text(st, 5, i->error, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 6, wl_state_names[i->state], -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 7, i->resume);
        sqlite3_bind_text(st, 8, i->id, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE)
                log_warning("workloads db: recording the end of %s: %s", i->id, sqlite3_errmsg(i->w->hist));
}

static bool live_in_memory(osm_workloads *w, const char *id) {
        for (wl_instance *i = w->instances; i; i = i->next)
                if (wl_instance_alive(i) && strcmp(i->id, id) == 0)
                        return true;
        return false;
}

static json_t *col_int(sqlite3_stmt *st, int c) {
        return sqlite3_column_type(st, c) == SQLITE_NULL ? NULL : json_integer(sqlite3_column_int64(st, c));
}

json_t *wl_db_instances_ended(osm_workloads *w, size_t limit) {
        json_t *arr = json_array();
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        if (!arr || sqlite3_prepare_v2(w->hist, "SELECT id, name, version, started, ended, exit_code, signal, restarts,"
                                       " error, state, restart FROM instances WHERE ended IS NOT NULL AND id IS NOT NULL"
                                       " ORDER BY seq DESC LIMIT ?", -1, &st, NULL) != SQLITE_OK)
                return arr;
        sqlite3_bind_int64(st, 1, (sqlite3_int64) limit);
        while (sqlite3_step(st) == SQLITE_ROW) {
                const char *id = (const char *) sqlite3_column_text(st, 0);
                if (live_in_memory(w, id))
                        continue;
                const char *state = (const char *) sqlite3_column_text(st, 9);
                const char *error = (const char *) sqlite3_column_text(st, 8);
                json_t *code = col_int(st, 5), *sig = col_int(st, 6);
                if (!state)   /* rows of an older daemon */
                        state = error && !code && !sig ? "failed" : "exited";
                json_t *o = json_pack("{s:s, s:s, s:I, s:s, s:I, s:I, s:I}", "id", id,
                                      "workload", (const char *) sqlite3_column_text(st, 1),
                                      "version", (json_int_t) sqlite3_column_int64(st, 2), "state", state,
                                      "started", (json_int_t) sqlite3_column_int64(st, 3),
                                      "ended", (json_int_t) sqlite3_column_int64(st, 4),
                                      "restarts", (json_int_t) sqlite3_column_int64(st, 7));
                if (!o) {
                        json_decref(code);
                        json_decref(sig);
                        continue;
                }
                if (code)
                        json_object_set_new(o, "exit_code", code);
                if (sig)
                        json_object_set_new(o, "signal", sig);
                if (error)
                        json_object_set_new(o, "error", json_string(error));
                if (sqlite3_column_type(st, 10) != SQLITE_NULL)
                        json_object_set_new(o, "restart", json_string((const char *) sqlite3_column_text(st, 10)));
                json_array_insert_new(arr, 0, o);   /* oldest first */
        }
        return arr;
}

char *wl_db_instance_newest(osm_workloads *w, const char *name) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(w->hist, "SELECT id FROM instances WHERE name = ? AND id IS NOT NULL"
                               " ORDER BY seq DESC LIMIT 1", -1, &st, NULL) != SQLITE_OK)
                return NULL;
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_ROW)
                return NULL;
        return strdup((const char *) sqlite3_column_text(st, 0));
}

bool wl_db_instance_known(osm_workloads *w, const char *id) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(w->hist, "SELECT 1 FROM instances WHERE id = ?", -1, &st, NULL) != SQLITE_OK)
                return false;
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        return sqlite3_step(st) == SQLITE_ROW;
}

/* ---- bounds, resuming, enabling, kept data ------------------------------------------------- */

/* Keep the newest WL_MAX_HISTORY ended instances (and every one to be resumed). */
void wl_db_instances_gc(osm_workloads *w) {
        char sql[320];
        snprintf(sql, sizeof sql, "DELETE FROM instances WHERE ended IS NOT NULL AND resume = 0 AND seq <= "
                 "(SELECT seq FROM instances WHERE ended IS NOT NULL ORDER BY seq DESC LIMIT 1 OFFSET %d)",
                 WL_MAX_HISTORY);
        (void) sqlite3_exec(w->hist, sql, NULL, NULL, NULL);
}

/* The ids of the instances whose logs are kept: open, to be resumed, or among the newest
 * WL_MAX_LOGS that ended; sorted (strcmp), NULL-terminated, *n of them. NULL on an error
 * (when in doubt, keep every log). One query for the whole log directory. */
char **wl_db_logs_kept(osm_workloads *w, size_t *n) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(w->hist, "SELECT id FROM instances WHERE id IS NOT NULL AND (ended IS NULL OR resume = 1"
                               " OR seq > coalesce((SELECT seq FROM instances WHERE ended IS NOT NULL ORDER BY seq DESC"
                               " LIMIT 1 OFFSET ?1), 0)) ORDER BY id COLLATE BINARY", -1, &st, NULL) != SQLITE_OK)
                return NULL;
        sqlite3_bind_int(st, 1, WL_MAX_LOGS - 1);
        size_t cap = 64;
        char **v = calloc(cap + 1, sizeof(char *));
        *n = 0;
        int rc;
        while (v && (rc = sqlite3_step(st)) == SQLITE_ROW) {
                if (*n == cap) {
                        char **nv = realloc(v, (cap * 2 + 1) * sizeof(char *));
                        if (!nv)
                                break;
                        v = nv;
                        cap *= 2;
                }
                if (!(v[*n] = strdup((const char *) sqlite3_column_text(st, 0))))
                        break;
                v[++*n] = NULL;
        }
        if (v && rc != SQLITE_DONE) {
                osm_strv_free(v);
                return NULL;
        }
        return v;
}

/* Instances an earlier run of the daemon left alive: resume = 1 (it stopped them at its
 * own stop) or ended IS NULL (it died). At most max, oldest first, into rows. */
size_t wl_db_instances_open(osm_workloads *w, wl_open_instance *rows, size_t max) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        size_t n = 0;
        if (sqlite3_prepare_v2(w->hist, "SELECT id, name, restart, args, coalesce(restarts, 0), ended IS NULL"
                               " FROM instances WHERE id IS NOT NULL AND (ended IS NULL OR resume = 1)"
                               " ORDER BY seq", -1, &st, NULL) != SQLITE_OK)
                return 0;
        while (n < max && sqlite3_step(st) == SQLITE_ROW) {
                const char *r = (const char *) sqlite3_column_text(st, 2);
                const char *a = (const char *) sqlite3_column_text(st, 3);
                rows[n] = (wl_open_instance) { strdup((const char *) sqlite3_column_text(st, 0)),
                                               strdup((const char *) sqlite3_column_text(st, 1)),
                                               r ? strdup(r) : NULL, a ? strdup(a) : NULL,
                                               sqlite3_column_int(st, 4), sqlite3_column_int(st, 5) };
                n++;
        }
        return n;
}

/* An open instance that does not come back: ended (at its start if the daemon died). */
void wl_db_instance_not_resumed(osm_workloads *w, const char *id, const char *why) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(w->hist, "UPDATE instances SET resume = 0, error = coalesce(error, ?2),"
                               " state = CASE WHEN ended IS NULL THEN 'exited' ELSE coalesce(state, 'exited') END,"
                               " ended = coalesce(ended, started) WHERE id = ?1",
                               -1, &st, NULL) != SQLITE_OK)
                return;
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, why, -1, SQLITE_STATIC);
        (void) sqlite3_step(st);
}

int wl_db_set_enabled(osm_workloads *w, const char *name, bool enabled) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(w->db, "UPDATE workloads SET enabled = ? WHERE name = ?", -1, &st, NULL) != SQLITE_OK ||
            sqlite3_bind_int(st, 1, enabled) != SQLITE_OK || sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC) != SQLITE_OK ||
            sqlite3_step(st) != SQLITE_DONE)
                return -EIO;
        return wl_db_history(w, name, enabled ? "enable" : "disable", 0, NULL, NULL);
}

/* Was the data of removed workload name kept (remove --keep-data)? */
bool wl_db_data_kept(osm_workloads *w, const char *name) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(w->db, "SELECT 1 FROM kept_data WHERE name = ?", -1, &st, NULL) != SQLITE_OK)
                return true;   /* when in doubt, keep */
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        return sqlite3_step(st) != SQLITE_DONE;
}
