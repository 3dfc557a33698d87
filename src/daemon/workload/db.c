/* db.c: the workload subsystem's database (workloads.db): its schema and every SQL statement. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "daemon/db.h"
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
        "  restarts INTEGER, error TEXT);";

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

static int load_workloads(osm_workloads *w) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL, *gs = NULL;
        if (sqlite3_prepare_v2(w->db, "SELECT name, version, bundle_id, manifest, has_rootfs, signer, verified,"
                               " allow_unsigned, installed FROM workloads ORDER BY name DESC", -1, &st, NULL) != SQLITE_OK ||
            sqlite3_prepare_v2(w->db, "SELECT capability FROM grants WHERE name = ? ORDER BY capability",
                               -1, &gs, NULL) != SQLITE_OK)
                return -EIO;
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                const char *mtext = (const char *) sqlite3_column_text(st, 3);
                const char *name = (const char *) sqlite3_column_text(st, 0);
                char why[512];
                osm_manifest *m = NULL;
                if (!mtext || !name || osm_manifest_parse(mtext, strlen(mtext), &m, why, sizeof why) < 0) {
                        log_error("workload %s: stored manifest no longer parses (%s); skipped",
                                  name ? name : "?", why);
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
        if ((r = wl_db_exec(w, schema)) < 0 || (r = load_workloads(w)) < 0) {
                log_error("workloads: loading %s failed", dbpath);
                return r < 0 ? r : -EIO;
        }
        if (osm_db_open(dbpath, 0, "PRAGMA synchronous=NORMAL", &w->hist, &err) < 0) {
                log_error("workloads: %s", err.message);
                return -EIO;
        }
        /* Instances of an earlier run that ended with the daemon. */
        wl_db_exec(w, "UPDATE instances SET ended = coalesce(ended, started) WHERE ended IS NULL");
        return 0;
}

void wl_db_close(osm_workloads *w) {
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
                " verified, allow_unsigned, installed, source) VALUES(?,?,?,?,?,?,?,?,?,?)",
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
                ok = sqlite3_step(st) == SQLITE_DONE;
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

/* Delete the workload (its grants go with it) and record the removal, in one transaction. */
int wl_db_remove(osm_workloads *w, const wl_workload *wl) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        if (wl_db_exec(w, "BEGIN IMMEDIATE") < 0 ||
            sqlite3_prepare_v2(w->db, "DELETE FROM workloads WHERE name = ?", -1, &st, NULL) != SQLITE_OK ||
            sqlite3_bind_text(st, 1, wl->name, -1, SQLITE_STATIC) != SQLITE_OK ||
            sqlite3_step(st) != SQLITE_DONE ||
            wl_db_history(w, wl->name, "remove", wl->version, wl->bundle_id, NULL) < 0 ||
            wl_db_exec(w, "COMMIT") < 0) {
                wl_db_exec(w, "ROLLBACK");
                return -EIO;
        }
        return 0;
}

/* Record a new instance (workload, version, bundle_id, started_us of i) and give it its id:
 * the workload's name and a sequence number unique in this state dir. 0, or -EIO with
 * i->id NULL. */
int wl_db_instance_add(osm_workloads *w, wl_instance *i) {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(w->hist, "INSERT INTO instances(name, version, bundle_id, started) VALUES(?,?,?,?)",
                               -1, &st, NULL) == SQLITE_OK) {
                sqlite3_bind_text(st, 1, i->workload, -1, SQLITE_STATIC);
                sqlite3_bind_int64(st, 2, i->version);
                sqlite3_bind_text(st, 3, i->bundle_id, -1, SQLITE_STATIC);
                sqlite3_bind_int64(st, 4, i->started_us);
                if (sqlite3_step(st) == SQLITE_DONE &&
                    asprintf(&i->id, "%s-%lld", i->workload, (long long) sqlite3_last_insert_rowid(w->hist)) < 0)
                        i->id = NULL;
        }
        sqlite3_finalize(st);
        if (!i->id)
                return -EIO;
        sqlite3_stmt *up = NULL;
        if (sqlite3_prepare_v2(w->hist, "UPDATE instances SET id = ?1 WHERE seq = ?2", -1, &up, NULL) == SQLITE_OK) {
                sqlite3_bind_text(up, 1, i->id, -1, SQLITE_STATIC);
                sqlite3_bind_int64(up, 2, sqlite3_last_insert_rowid(w->hist));
                sqlite3_step(up);
        }
        sqlite3_finalize(up);
        return 0;
}

/* Record how the instance ended (best effort: a failure is logged). */
void wl_db_instance_end(const wl_instance *i) {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(i->w->hist, "UPDATE instances SET ended = ?, exit_code = ?, signal = ?, restarts = ?,"
                               " error = ? WHERE id = ?", -1, &st, NULL) != SQLITE_OK)
                return;
        sqlite3_bind_int64(st, 1, i->ended_us);
        if (i->exit_code >= 0)
                sqlite3_bind_int(st, 2, i->exit_code);
        if (i->signal > 0)
                sqlite3_bind_int(st, 3, i->signal);
        sqlite3_bind_int(st, 4, (int) i->restarts);
        if (i->error)
                sqlite3_bind_text(st, 5, i->error, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 6, i->id, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE)
                log_warning("workloads db: recording the end of %s: %s", i->id, sqlite3_errmsg(i->w->hist));
        sqlite3_finalize(st);
}
