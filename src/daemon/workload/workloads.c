/* workloads.c: the workload subsystem: its database, installed workloads, grants, and the
 * List/Remove/Grant/Revoke methods. Install is in install.c, trust in trust.c, instances
 * in instance.c. */
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "daemon/workload/wl.h"
#include "osmose/log.h"

OSM_DEFINE_CLEANUP(sqlite3_stmt *, sqlite3_finalize)
#define _cleanup_stmt_ _cleanup_(sqlite3_finalizep)

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


static void workload_free(wl_workload *wl) {
        if (!wl)
                return;
        free(wl->name);
        free(wl->bundle_id);
        free(wl->manifest_text);
        osm_manifest_free(wl->manifest);
        free(wl->signer);
        osm_strv_free(wl->grants);
        free(wl);
}

wl_workload *wl_find(osm_workloads *w, const char *name) {
        for (wl_workload *wl = w->workloads; wl; wl = wl->next)
                if (strcmp(wl->name, name) == 0)
                        return wl;
        return NULL;
}

bool wl_instance_alive(const wl_instance *i) {
        return i->state != WL_EXITED && i->state != WL_FAILED;
}

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

/* Replace wl's grants with a sorted copy of grants[0..n) in memory and in the db. */
int wl_set_grants(osm_workloads *w, wl_workload *wl, char **grants, size_t n) {
        char **v = calloc(n + 1, sizeof(char *));
        if (!v)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                if (!(v[i] = strdup(grants[i]))) {
                        osm_strv_free(v);
                        return -ENOMEM;
                }
        qsort(v, n, sizeof(char *), cmp_str);

        int r = wl_db_exec(w, "BEGIN IMMEDIATE");
        if (r < 0) {
                osm_strv_free(v);
                return r;
        }
        _cleanup_stmt_ sqlite3_stmt *del = NULL, *ins = NULL;
        bool ok = sqlite3_prepare_v2(w->db, "DELETE FROM grants WHERE name = ?", -1, &del, NULL) == SQLITE_OK &&
                  sqlite3_prepare_v2(w->db, "INSERT INTO grants(name, capability, granted) VALUES(?, ?, ?)",
                                     -1, &ins, NULL) == SQLITE_OK;
        if (ok) {
                sqlite3_bind_text(del, 1, wl->name, -1, SQLITE_STATIC);
                ok = sqlite3_step(del) == SQLITE_DONE;
        }
        for (size_t i = 0; ok && i < n; i++) {
                sqlite3_reset(ins);
                sqlite3_bind_text(ins, 1, wl->name, -1, SQLITE_STATIC);
                sqlite3_bind_text(ins, 2, v[i], -1, SQLITE_STATIC);
                sqlite3_bind_int64(ins, 3, osm_now_real_us());
                ok = sqlite3_step(ins) == SQLITE_DONE;
        }
        if (!ok || wl_db_exec(w, "COMMIT") < 0) {
                log_error("workloads db: saving grants of %s: %s", wl->name, sqlite3_errmsg(w->db));
                wl_db_exec(w, "ROLLBACK");
                osm_strv_free(v);
                return -EIO;
        }
        osm_strv_free(wl->grants);
        wl->grants = v;
        wl->n_grants = n;
        return 0;
}

static int history(osm_workloads *w, const char *name, const char *event, int64_t version,
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

/* Record an install or upgrade of a parsed, verified bundle: the db first (one
 * transaction), then memory. grants must all be requested by m. m is consumed. */
int wl_commit_install(osm_workloads *w, osm_manifest *m, const char *manifest_text,
                      const char *bundle_id, bool has_rootfs, const char *signer, bool verified,
                      bool allow_unsigned, const char *source, char **grants, size_t n_grants) {
        wl_workload *wl = calloc(1, sizeof *wl);
        if (!wl) {
                osm_manifest_free(m);
                return -ENOMEM;
        }
        wl->manifest = m;   /* consumed whatever happens */
        wl->name = strdup(m->name);
        wl->bundle_id = strdup(bundle_id);
        wl->manifest_text = strdup(manifest_text);
        wl->signer = signer ? strdup(signer) : NULL;
        wl->grants = calloc(1, sizeof(char *));
        if (!wl->name || !wl->bundle_id || !wl->manifest_text || (signer && !wl->signer) || !wl->grants) {
                workload_free(wl);
                return -ENOMEM;
        }
        wl->version = m->version;
        wl->has_rootfs = has_rootfs;
        wl->verified = verified;
        wl->allow_unsigned = allow_unsigned;
        wl->installed_us = osm_now_real_us();

        int r = wl_db_exec(w, "BEGIN IMMEDIATE");
        if (r < 0) {
                workload_free(wl);
                return r;
        }
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
                sqlite3_bind_int(st, 5, has_rootfs);
                if (signer)
                        sqlite3_bind_text(st, 6, signer, -1, SQLITE_STATIC);
                sqlite3_bind_int(st, 7, verified);
                sqlite3_bind_int(st, 8, allow_unsigned);
                sqlite3_bind_int64(st, 9, wl->installed_us);
                if (source)
                        sqlite3_bind_text(st, 10, source, -1, SQLITE_STATIC);
                ok = sqlite3_step(st) == SQLITE_DONE;
        }
        char detail[160];
        snprintf(detail, sizeof detail, "%s%s", verified ? "verified" : "unverified",
                 allow_unsigned ? ", allow-unsigned" : "");
        ok = ok && history(w, wl->name, "install", wl->version, wl->bundle_id, detail) == 0;
        if (!ok || wl_db_exec(w, "COMMIT") < 0) {
                log_error("workloads db: installing %s: %s", wl->name, sqlite3_errmsg(w->db));
                wl_db_exec(w, "ROLLBACK");
                workload_free(wl);
                return -EIO;
        }
        /* INSERT OR REPLACE deleted the old row, and with it (cascade) its grants. */
        wl_workload **pp = &w->workloads;
        while (*pp && strcmp((*pp)->name, wl->name) != 0)
                pp = &(*pp)->next;
        if (*pp) {
                wl_workload *old = *pp;
                *pp = old->next;
                workload_free(old);
        }
        wl->next = w->workloads;
        w->workloads = wl;
        return wl_set_grants(w, wl, grants, n_grants);
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

/* rm -rf of dirfd/name without following symlinks anywhere. */
int wl_rm_rf_at(int parent, const char *name) {
        if (unlinkat(parent, name, 0) == 0 || errno == ENOENT)
                return 0;
        if (errno != EISDIR && errno != EPERM)
                return -errno;
        int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        DIR *d = fdopendir(fd);
        if (!d) {
                int r = -errno;
                close(fd);
                return r;
        }
        int r = 0;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                int k = wl_rm_rf_at(dirfd(d), de->d_name);
                if (k < 0 && r == 0)
                        r = k;
        }
        closedir(d);
        if (unlinkat(parent, name, AT_REMOVEDIR) < 0 && r == 0)
                r = -errno;
        return r;
}

static bool bundle_in_use(osm_workloads *w, const char *id) {
        for (wl_workload *wl = w->workloads; wl; wl = wl->next)
                if (strcmp(wl->bundle_id, id) == 0)
                        return true;
        for (wl_instance *i = w->instances; i; i = i->next)
                if (wl_instance_alive(i) && strcmp(i->bundle_id, id) == 0)
                        return true;
        return false;
}

static bool data_in_use(osm_workloads *w, const char *name) {
        if (wl_find(w, name))
                return true;
        for (wl_instance *i = w->instances; i; i = i->next)
                if (wl_instance_alive(i) && strcmp(i->workload, name) == 0)
                        return true;
        return false;
}

/* Remove unpacked bundles no workload or live instance uses, leftovers of interrupted
 * installs, and the data of removed workloads once nothing runs from it. */
void wl_gc_bundles(osm_workloads *w) {
        const char *dirs[] = { w->bundles_dir, w->data_dir };
        for (size_t k = 0; k < 2; k++) {
                _cleanup_close_ int fd = open(dirs[k], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (fd < 0)
                        continue;
                int fd2 = dup(fd);
                DIR *d = fd2 >= 0 ? fdopendir(fd2) : NULL;
                if (!d) {
                        osm_close(fd2);
                        continue;
                }
                struct dirent *de;
                while ((de = readdir(d))) {
                        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                                continue;
                        bool keep = k == 0 ? (de->d_name[0] != '.' && bundle_in_use(w, de->d_name))
                                           : data_in_use(w, de->d_name);
                        /* an install in progress owns its ".unpack-*" directory */
                        if (k == 0 && w->installing && strncmp(de->d_name, ".unpack-", 8) == 0)
                                keep = true;
                        if (keep)
                                continue;
                        int r = wl_rm_rf_at(fd, de->d_name);
                        if (r < 0)
                                log_warning("removing %s/%s: %s", dirs[k], de->d_name, strerror(-r));
                        else
                                log_debug("removed %s/%s", dirs[k], de->d_name);
                }
                closedir(d);
        }
}

/* ---- methods ---------------------------------------------------------------------- */

static json_t *strv_json(char **v) {
        json_t *a = json_array();
        for (char **p = v; a && p && *p; p++)
                json_array_append_new(a, json_string(*p));
        return a;
}

static unsigned running_of(osm_workloads *w, const char *name) {
        unsigned n = 0;
        for (wl_instance *i = w->instances; i; i = i->next)
                if (wl_instance_alive(i) && strcmp(i->workload, name) == 0)
                        n++;
        return n;
}

static int cmp_wl(const void *a, const void *b) {
        return strcmp((*(wl_workload *const *) a)->name, (*(wl_workload *const *) b)->name);
}

static void method_list(osm_call *call, json_t *params, void *userdata) {
        osm_workloads *w = userdata;
        size_t n = 0;
        for (wl_workload *wl = w->workloads; wl; wl = wl->next)
                n++;
        _cleanup_free_ wl_workload **v = calloc(n + 1, sizeof *v);
        if (!v) {
                osm_call_errorf(call, OSM_ERR_INTERNAL, "out of memory");
                return;
        }
        n = 0;
        for (wl_workload *wl = w->workloads; wl; wl = wl->next)
                v[n++] = wl;
        qsort(v, n, sizeof *v, cmp_wl);
        json_t *arr = json_array();
        for (size_t k = 0; k < n; k++) {
                wl_workload *wl = v[k];
                json_t *o = json_pack("{s:s, s:I, s:s, s:b, s:b, s:I, s:o, s:o, s:s, s:o, s:I}",
                                      "name", wl->name, "version", (json_int_t) wl->version,
                                      "id", wl->bundle_id, "verified", wl->verified,
                                      "allow_unsigned", wl->allow_unsigned,
                                      "installed", (json_int_t) wl->installed_us,
                                      "requested", strv_json(wl->manifest->caps),
                                      "granted", strv_json(wl->grants),
                                      "restart", osm_restart_policy_name(wl->manifest->restart),
                                      "entrypoint", strv_json(wl->manifest->argv),
                                      "running", (json_int_t) running_of(w, wl->name));
                if (o && wl->signer)
                        json_object_set_new(o, "signer", json_string(wl->signer));
                if (o && wl->manifest->description)
                        json_object_set_new(o, "description", json_string(wl->manifest->description));
                json_array_append_new(arr, o);
        }
        osm_call_reply(call, json_pack("{s:o}", "workloads", arr), false);
}

static void method_remove(osm_call *call, json_t *params, void *userdata) {
        osm_workloads *w = userdata;
        const char *name = json_string_value(json_object_get(params, "name"));
        wl_workload **pp = &w->workloads;
        while (*pp && strcmp((*pp)->name, name) != 0)
                pp = &(*pp)->next;
        if (!*pp) {
                osm_call_errorf(call, OSM_ERR_NOT_FOUND, "no workload named %s", name);
                return;
        }
        wl_workload *wl = *pp;
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        if (wl_db_exec(w, "BEGIN IMMEDIATE") < 0 ||
            sqlite3_prepare_v2(w->db, "DELETE FROM workloads WHERE name = ?", -1, &st, NULL) != SQLITE_OK ||
            sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC) != SQLITE_OK ||
            sqlite3_step(st) != SQLITE_DONE ||
            history(w, name, "remove", wl->version, wl->bundle_id, NULL) < 0 ||
            wl_db_exec(w, "COMMIT") < 0) {
                wl_db_exec(w, "ROLLBACK");
                osm_call_errorf(call, OSM_ERR_INTERNAL, "could not remove %s from the database", name);
                return;
        }
        log_info("workload %s removed", name);
        *pp = wl->next;
        wl_instances_stop_workload(w, wl->name);
        workload_free(wl);
        wl_gc_bundles(w);
        osm_call_reply(call, NULL, false);
}

static int grant_check(osm_call *call, wl_workload *wl, const char *cap) {
        char why[512];
        if (osm_cap_check(cap, why, sizeof why) < 0) {
                osm_call_error(call, WL_ERR_BAD_CAPABILITY,
                               json_pack("{s:s, s:s}", "message", why, "capability", cap));
                return -EINVAL;
        }
        if (!osm_manifest_requests(wl->manifest, cap)) {
                char msg[1024];
                size_t off = (size_t) snprintf(msg, sizeof msg, "%s does not request %s; it requests: ",
                                               wl->name, cap);
                for (size_t i = 0; i < wl->manifest->n_caps && off < sizeof msg; i++)
                        off += (size_t) snprintf(msg + off, sizeof msg - off, "%s%s", i ? ", " : "",
                                                 wl->manifest->caps[i]);
                if (wl->manifest->n_caps == 0 && off < sizeof msg)
                        snprintf(msg + off, sizeof msg - off, "nothing");
                osm_call_error(call, WL_ERR_BAD_CAPABILITY,
                               json_pack("{s:s, s:s}", "message", msg, "capability", cap));
                return -EPERM;
        }
        return 0;
}

static void method_grant_revoke(osm_call *call, json_t *params, void *userdata) {
        osm_workloads *w = userdata;
        bool grant = strcmp(osm_call_method(call), "io.osmose.Workload.Grant") == 0;
        const char *name = json_string_value(json_object_get(params, "name"));
        const char *cap = json_string_value(json_object_get(params, "capability"));
        wl_workload *wl = wl_find(w, name);
        if (!wl) {
                osm_call_errorf(call, OSM_ERR_NOT_FOUND, "no workload named %s", name);
                return;
        }
        _cleanup_free_ char **v = calloc(wl->n_grants + 2, sizeof(char *));
        if (!v) {
                osm_call_errorf(call, OSM_ERR_INTERNAL, "out of memory");
                return;
        }
        size_t n = 0;
        bool had = false;
        for (size_t i = 0; i < wl->n_grants; i++) {
                if (strcmp(wl->grants[i], cap) == 0) {
                        had = true;
                        if (!grant)
                                continue;
                }
                v[n++] = wl->grants[i];
        }
        if (grant) {
                if (grant_check(call, wl, cap) < 0)
                        return;
                if (!had)
                        v[n++] = (char *) cap;
        } else if (!had) {
                osm_call_errorf(call, OSM_ERR_NOT_FOUND, "%s does not hold %s", name, cap);
                return;
        }
        if (grant != had) {
                if (wl_set_grants(w, wl, v, n) < 0) {
                        osm_call_errorf(call, OSM_ERR_INTERNAL, "could not save the grants of %s", name);
                        return;
                }
                history(w, name, grant ? "grant" : "revoke", wl->version, NULL, cap);
                log_info("workload %s: %s %s", name, grant ? "granted" : "revoked", cap);
        }
        osm_call_reply(call, json_pack("{s:o}", "granted", strv_json(wl->grants)), false);
}

static const osm_method methods[] = {
        { "io.osmose.Workload.List", method_list, OSM_ACCESS_READ },
        { "io.osmose.Workload.Remove", method_remove, OSM_ACCESS_WRITE },
        { "io.osmose.Workload.Grant", method_grant_revoke, OSM_ACCESS_WRITE },
        { "io.osmose.Workload.Revoke", method_grant_revoke, OSM_ACCESS_WRITE },
};

/* ---- the public lookups -------------------------------------------------------------- */

static wl_instance *live_instance(osm_workloads *w, const char *id) {
        for (wl_instance *i = w->instances; i; i = i->next)
                if (wl_instance_alive(i) && strcmp(i->id, id) == 0)
                        return i;
        return NULL;
}

int osm_workloads_instance_info(osm_workloads *w, const char *instance_id, const char **workload,
                                const char *const **grants) {
        static const char *const none[] = { NULL };
        wl_instance *i = w ? live_instance(w, instance_id) : NULL;
        if (!i)
                return -ENOENT;
        wl_workload *wl = wl_find(w, i->workload);
        if (workload)
                *workload = i->workload;
        if (grants)
                *grants = wl ? (const char *const *) wl->grants : none;
        return 0;
}

const osm_manifest *osm_workloads_instance_manifest(osm_workloads *w, const char *instance_id) {
        wl_instance *i = w ? live_instance(w, instance_id) : NULL;
        return i ? i->manifest : NULL;
}

bool osm_workloads_instance_granted(osm_workloads *w, const char *instance_id, const char *capability) {
        const char *const *g;
        if (osm_workloads_instance_info(w, instance_id, NULL, &g) < 0)
                return false;
        for (; *g; g++)
                if (strcmp(*g, capability) == 0)
                        return true;
        return false;
}

void osm_workloads_set_api_hooks(osm_workloads *w, const osm_workload_api_hooks *hooks, void *userdata) {
        w->api_hooks = hooks ? *hooks : (osm_workload_api_hooks) { 0 };
        w->api_userdata = userdata;
}

/* ---- the subsystem ------------------------------------------------------------------- */

static void on_stop_check(uv_check_t *h) {
        osm_workloads *w = h->data;
        if (w->d->stopping && !w->shutting_down) {
                w->shutting_down = true;
                /* Streams (run --wait, logs -f) would otherwise hold the shutdown back:
                 * start stopping instances as soon as it begins. */
                wl_instances_begin_shutdown(w);
                uv_check_stop(h);
        }
}

static void on_sigchld(uv_signal_t *h, int sig) {
        wl_instances_sigchld(h->data);
}

static char *path_join(const char *a, const char *b) {
        char *p;
        return asprintf(&p, "%s/%s", a, b) < 0 ? NULL : p;
}

static void workloads_free(osm_workloads *w) {
        if (!w)
                return;
        while (w->workloads) {
                wl_workload *wl = w->workloads;
                w->workloads = wl->next;
                workload_free(wl);
        }
        if (w->hist)
                sqlite3_close(w->hist);
        if (w->db)
                sqlite3_close(w->db);
        free(w->state_dir);
        free(w->trust_dir);
        free(w->bundles_dir);
        free(w->data_dir);
        free(w->api_dir);
        free(w);
}

/* Every uv handle of the subsystem (its own and its instances') counts in open_handles;
 * after the stop hook, the last close callback frees everything. */
void wl_handle_closed(osm_workloads *w) {
        if (--w->open_handles == 0 && w->stopped)
                workloads_free(w);
}

static void on_own_handle_closed(uv_handle_t *h) {
        wl_handle_closed(h->data);
}

static int workloads_start(osm_daemon *d) {
        osm_workloads *w = calloc(1, sizeof *w);
        if (!w)
                return -ENOMEM;
        w->d = d;
        w->state_dir = strdup(d->cfg.state_dir);
        w->trust_dir = path_join(d->cfg.state_dir, "trust");
        w->bundles_dir = path_join(d->cfg.state_dir, "bundles");
        w->data_dir = path_join(d->cfg.state_dir, "data");
        w->api_dir = path_join(d->cfg.state_dir, "api");
        if (!w->state_dir || !w->trust_dir || !w->bundles_dir || !w->data_dir || !w->api_dir) {
                workloads_free(w);
                return -ENOMEM;
        }
        int r;
        const char *dirs[] = { w->trust_dir, w->bundles_dir, w->data_dir };
        for (size_t i = 0; i < OSM_ARRAY_SIZE(dirs); i++)
                if ((r = osm_mkdir_p(dirs[i], 0700)) < 0) {
                        log_error("workloads: creating %s: %s", dirs[i], strerror(-r));
                        workloads_free(w);
                        return r;
                }
        _cleanup_free_ char *dbpath = path_join(d->cfg.state_dir, "workloads.db");
        if (!dbpath || sqlite3_open_v2(dbpath, &w->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                                       SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
                log_error("workloads: opening %s: %s", dbpath ? dbpath : "db",
                          w->db ? sqlite3_errmsg(w->db) : "out of memory");
                workloads_free(w);
                return -EIO;
        }
        sqlite3_busy_timeout(w->db, 1000);
        /* libcurl's global state, once, before any thread fetches (install.c). */
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
                log_warning("workloads: curl_global_init failed; install URL will not work");
        (void) chmod(dbpath, 0600);
        if ((r = wl_db_exec(w, schema)) < 0 || (r = load_workloads(w)) < 0) {
                log_error("workloads: loading %s failed", dbpath);
                workloads_free(w);
                return r < 0 ? r : -EIO;
        }
        if (sqlite3_open_v2(dbpath, &w->hist, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK ||
            sqlite3_exec(w->hist, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL) != SQLITE_OK) {
                log_error("workloads: opening %s: %s", dbpath, w->hist ? sqlite3_errmsg(w->hist) : "out of memory");
                workloads_free(w);
                return -EIO;
        }
        sqlite3_busy_timeout(w->hist, 1000);
        /* Instances of an earlier run that ended with the daemon. */
        wl_db_exec(w, "UPDATE instances SET ended = coalesce(ended, started) WHERE ended IS NULL");
        wl_gc_bundles(w);

        if ((r = osm_server_add_methods(d->server, methods, OSM_ARRAY_SIZE(methods), w)) < 0 ||
            (r = osm_server_add_methods(d->server, wl_trust_methods, wl_n_trust_methods, w)) < 0 ||
            (r = osm_server_add_methods(d->server, wl_install_methods, wl_n_install_methods, w)) < 0 ||
            (r = osm_server_add_methods(d->server, wl_instance_methods, wl_n_instance_methods, w)) < 0) {
                log_error("workloads: registering methods: %s", strerror(-r));
                workloads_free(w);
                return r;
        }
        uv_check_init(d->loop, &w->stop_check);
        w->stop_check.data = w;
        uv_check_start(&w->stop_check, on_stop_check);
        uv_unref((uv_handle_t *) &w->stop_check);
        uv_signal_init(d->loop, &w->sigchld);
        w->sigchld.data = w;
        uv_signal_start(&w->sigchld, on_sigchld, SIGCHLD);
        uv_unref((uv_handle_t *) &w->sigchld);
        w->open_handles += 2;
        d->workloads = w;
        size_t n = 0;
        for (wl_workload *wl = w->workloads; wl; wl = wl->next)
                n++;
        log_info("workloads: %zu installed", n);
        return 0;
}

static void workloads_stop(osm_daemon *d) {
        osm_workloads *w = d->workloads;
        if (!w)
                return;
        __atomic_store_n(&w->abort_installs, 1, __ATOMIC_RELAXED);
        wl_instances_stop_all(w);
        d->workloads = NULL;
        w->stopped = true;
        uv_close((uv_handle_t *) &w->stop_check, on_own_handle_closed);
        uv_close((uv_handle_t *) &w->sigchld, on_own_handle_closed);
}

static void workloads_status(osm_daemon *d, json_t *obj) {
        osm_workloads *w = d->workloads;
        if (!w) {
                osm_status_set(obj, OSM_HEALTH_FAILED, "not running");
                return;
        }
        size_t n = 0;
        for (wl_workload *wl = w->workloads; wl; wl = wl->next)
                n++;
        char detail[160];
        snprintf(detail, sizeof detail, "%zu installed, %u running", n, w->n_live);
        if (!d->sandbox)
                osm_status_set(obj, OSM_HEALTH_DEGRADED, "no sandbox: workloads cannot run");
        else
                osm_status_set(obj, OSM_HEALTH_OK, detail);
        json_object_set_new(obj, "info", json_pack("{s:I, s:I}", "installed", (json_int_t) n,
                                                   "running", (json_int_t) w->n_live));
}

const osm_subsystem osm_workloads_subsystem = {
        .name = "workloads",
        .start = workloads_start,
        .stop = workloads_stop,
        .status = workloads_status,
};
