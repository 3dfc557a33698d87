/* channel-hooks.c: what the channels subsystem asks of the workload subsystem (declared in
 * workloads.h): install a verified file with expectations, snapshots to roll back to,
 * and starting, stopping and watching instances without a client call. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "daemon/db.h"
#include "daemon/workload/wl.h"
#include "osmose/log.h"

struct osm_workloads_snapshot {
        struct osm_workloads_snapshot *next;
        char *name;
        char *bundle_id;
        char *manifest_text;
        bool has_rootfs;
        char *signer;
        bool verified, allow_unsigned;
        char **grants;
        size_t n_grants;
        bool persisted;           /* recorded in the snapshots table */
        bool adopted;             /* loaded at start and handed over (or created this run) */
};

bool wl_snapshot_holds(osm_workloads *w, const char *bundle_id) {
        for (struct osm_workloads_snapshot *s = w->snapshots; s; s = s->next)
                if (strcmp(s->bundle_id, bundle_id) == 0)
                        return true;
        return false;
}

int osm_workloads_install_file(osm_workloads *w, int fd, const char *expect_name, const char *expect_id,
                               bool allow_downgrade, const char *source, osm_workloads_install_done done,
                               void *userdata) {
        struct stat st;
        if (w->installing || w->shutting_down) {
                close(fd);
                return -EBUSY;
        }
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
                close(fd);
                return -EINVAL;
        }
        wl_install_hooks h = {
                .expect_name = (char *) expect_name, .expect_id = (char *) expect_id, .source = (char *) source,
                .done = done, .userdata = userdata,
        };
        return wl_install_begin(w, NULL, NULL, fd, NULL, false, allow_downgrade, &h);
}

int osm_workloads_trusted(osm_workloads *w, const uint8_t pk[OSM_PUBKEY_BYTES]) {
        return wl_trust_is_trusted(w, pk);
}

int osm_workloads_current(osm_workloads *w, const char *name, int64_t *version, char id[OSM_HASH_HEX]) {
        wl_workload *wl = wl_find(w, name);
        if (!wl)
                return -ENOENT;
        *version = wl->version;
        snprintf(id, OSM_HASH_HEX, "%s", wl->bundle_id);
        return 0;
}

const char *osm_workloads_name_of_bundle(osm_workloads *w, const char *id) {
        for (wl_workload *wl = w->workloads; wl; wl = wl->next)
                if (strcmp(wl->bundle_id, id) == 0)
                        return wl->name;
        return NULL;
}

static void snapshot_unlink_free(osm_workloads *w, struct osm_workloads_snapshot *s) {
        for (struct osm_workloads_snapshot **pp = &w->snapshots; *pp; pp = &(*pp)->next)
                if (*pp == s) {
                        *pp = s->next;
                        break;
                }
        free(s->name);
        free(s->bundle_id);
        free(s->manifest_text);
        free(s->signer);
        osm_strv_free(s->grants);
        free(s);
}

static void snapshot_unrecord(osm_workloads *w, const char *name) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        if (!w->db || sqlite3_prepare_v2(w->db, "DELETE FROM snapshots WHERE name = ?", -1, &st, NULL) != SQLITE_OK)
                return;
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE)
                log_warning("workloads db: removing the snapshot of %s: %s", name, sqlite3_errmsg(w->db));
}

void osm_workloads_snapshot_free(osm_workloads *w, struct osm_workloads_snapshot *s) {
        if (!s)
                return;
        if (s->persisted)
                snapshot_unrecord(w, s->name);
        snapshot_unlink_free(w, s);
        if (!w->stopped)
                wl_gc_bundles(w);   /* what it kept may go now */
}

void osm_workloads_snapshot_release(osm_workloads *w, struct osm_workloads_snapshot *s) {
        if (s)
                snapshot_unlink_free(w, s);
}

int osm_workloads_snapshot_persist(osm_workloads *w, struct osm_workloads_snapshot *s) {
        _cleanup_json_ json_t *g = json_array();
        for (size_t i = 0; g && i < s->n_grants; i++)
                json_array_append_new(g, json_string(s->grants[i]));
        _cleanup_free_ char *gtext = g ? json_dumps(g, JSON_COMPACT) : NULL;
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        if (!gtext)
                return -ENOMEM;
        if (sqlite3_prepare_v2(w->db, "INSERT OR REPLACE INTO snapshots(name, bundle_id, manifest, has_rootfs, signer, "
                               "verified, allow_unsigned, grants) VALUES(?, ?, ?, ?, ?, ?, ?, ?)", -1, &st, NULL) != SQLITE_OK)
                return -EIO;
        sqlite3_bind_text(st, 1, s->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, s->bundle_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, s->manifest_text, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 4, s->has_rootfs);
        if (s->signer)
                sqlite3_bind_text(st, 5, s->signer, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 6, s->verified);
        sqlite3_bind_int(st, 7, s->allow_unsigned);
        sqlite3_bind_text(st, 8, gtext, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE) {
                log_warning("workloads db: recording the snapshot of %s: %s", s->name, sqlite3_errmsg(w->db));
                return -EIO;
        }
        s->persisted = true;
        return 0;
}

int wl_snapshots_load(osm_workloads *w) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(w->db, "SELECT name, bundle_id, manifest, has_rootfs, signer, verified, allow_unsigned, "
                               "grants FROM snapshots", -1, &st, NULL) != SQLITE_OK)
                return -EIO;
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                struct osm_workloads_snapshot *s = calloc(1, sizeof *s);
                if (!s)
                        return -ENOMEM;
                s->next = w->snapshots;
                w->snapshots = s;
                s->persisted = true;
                const char *signer = (const char *) sqlite3_column_text(st, 4);
                s->name = strdup((const char *) sqlite3_column_text(st, 0));
                s->bundle_id = strdup((const char *) sqlite3_column_text(st, 1));
                s->manifest_text = strdup((const char *) sqlite3_column_text(st, 2));
                s->has_rootfs = sqlite3_column_int(st, 3);
                s->signer = signer ? strdup(signer) : NULL;
                s->verified = sqlite3_column_int(st, 5);
                s->allow_unsigned = sqlite3_column_int(st, 6);
                _cleanup_json_ json_t *g = json_loads((const char *) sqlite3_column_text(st, 7), 0, NULL);
                s->grants = calloc(json_array_size(g) + 1, sizeof(char *));
                if (!s->name || !s->bundle_id || !s->manifest_text || (signer && !s->signer) || !s->grants)
                        return -ENOMEM;
                for (size_t i = 0; i < json_array_size(g); i++)
                        if (json_is_string(json_array_get(g, i)) &&
                            !(s->grants[s->n_grants++] = strdup(json_string_value(json_array_get(g, i)))))
                                return -ENOMEM;
                log_info("workloads: the snapshot of %s (bundle %s) of an interrupted upgrade is kept", s->name,
                         s->bundle_id);
        }
        return rc == SQLITE_DONE ? 0 : -EIO;
}

struct osm_workloads_snapshot *osm_workloads_snapshot_adopt(osm_workloads *w, const char *name) {
        for (struct osm_workloads_snapshot *s = w->snapshots; s; s = s->next)
                if (s->persisted && !s->adopted && strcmp(s->name, name) == 0) {
                        s->adopted = true;
                        return s;
                }
        return NULL;
}

void osm_workloads_snapshot_forget_unadopted(osm_workloads *w) {
        for (struct osm_workloads_snapshot *s = w->snapshots, *next; s; s = next) {
                next = s->next;
                if (!s->adopted)
                        osm_workloads_snapshot_free(w, s);
        }
}

void wl_snapshots_free_all(osm_workloads *w) {
        while (w->snapshots)
                snapshot_unlink_free(w, w->snapshots);
}

struct osm_workloads_snapshot *osm_workloads_snapshot(osm_workloads *w, const char *name) {
        wl_workload *wl = wl_find(w, name);
        if (!wl)
                return NULL;
        struct osm_workloads_snapshot *s = calloc(1, sizeof *s);
        if (!s)
                return NULL;
        s->name = strdup(wl->name);
        s->bundle_id = strdup(wl->bundle_id);
        s->manifest_text = strdup(wl->manifest_text);
        s->signer = wl->signer ? strdup(wl->signer) : NULL;
        s->grants = calloc(wl->n_grants + 1, sizeof(char *));
        bool oom = !s->name || !s->bundle_id || !s->manifest_text || (wl->signer && !s->signer) || !s->grants;
        for (size_t i = 0; !oom && i < wl->n_grants; i++)
                oom = !(s->grants[s->n_grants++] = strdup(wl->grants[i]));
        s->has_rootfs = wl->has_rootfs;
        s->verified = wl->verified;
        s->allow_unsigned = wl->allow_unsigned;
        s->adopted = true;
        s->next = w->snapshots;
        w->snapshots = s;
        if (oom) {
                osm_workloads_snapshot_free(w, s);
                return NULL;
        }
        return s;
}

int osm_workloads_restore(osm_workloads *w, const struct osm_workloads_snapshot *s) {
        osm_manifest *m = NULL;
        osm_error why = {};
        int r = osm_manifest_parse(s->manifest_text, strlen(s->manifest_text), &m, &why);
        if (r < 0)
                return r;
        int64_t version = m->version;
        r = wl_commit_install(w, m, s->manifest_text, s->bundle_id, s->has_rootfs, s->signer, s->verified,
                              s->allow_unsigned, "rollback", s->grants, s->n_grants, NULL);
        if (r < 0)
                return r;
        wl_db_history(w, s->name, "rollback", version, s->bundle_id, "a failed upgrade was rolled back");
        log_notice("workload %s: rolled back to version %lld (bundle %s)", s->name, (long long) version, s->bundle_id);
        wl_gc_bundles(w);
        return 0;
}

json_t *osm_workloads_live_args(osm_workloads *w, const char *name) {
        json_t *a = json_array();
        for (wl_instance *i = w->instances; a && i; i = i->next) {
                if (!wl_instance_alive(i) || i->stop_requested || strcmp(i->workload, name) != 0)
                        continue;
                json_t *args = json_array();
                for (char **p = i->args; args && p && *p; p++)
                        json_array_append_new(args, json_string(*p));
                json_array_append_new(a, args);
        }
        return a;
}

unsigned osm_workloads_n_alive(osm_workloads *w, const char *name) {
        unsigned n = 0;
        for (wl_instance *i = w->instances; i; i = i->next)
                n += wl_instance_alive(i) && strcmp(i->workload, name) == 0;
        return n;
}

void osm_workloads_stop_workload(osm_workloads *w, const char *name) {
        wl_instances_stop_workload(w, name);
}

/* The manifest with the health command as its entrypoint, run once. */
static char *health_manifest(const wl_workload *wl) {
        if (!wl->manifest->health)
                return NULL;
        _cleanup_json_ json_t *j = osm_manifest_to_json(wl->manifest);
        json_t *h = j ? json_object_get(j, "health") : NULL;
        if (!h || json_object_set(j, "entrypoint", h) < 0 || json_object_del(j, "health") < 0 ||
            json_object_set_new(j, "restart", json_string("never")) < 0)
                return NULL;
        return json_dumps(j, JSON_COMPACT);
}

int osm_workloads_start(osm_workloads *w, const char *name, json_t *args, bool health, char **id,
                        osm_error *err) {
        *id = NULL;
        wl_workload *wl = wl_find(w, name);
        if (!wl)
                return osm_error_set(err, -ENOENT, 0, "no workload named %s", name);
        if (!w->d->sandbox || w->shutting_down)
                return osm_error_set(err, -EAGAIN, 0, "%s", w->shutting_down ? "the daemon is shutting down"
                                                                               : "the sandbox is not available on this host");
        if (w->n_live >= WL_MAX_INSTANCES)
                return osm_error_set(err, -EBUSY, 0, "already %d instances running", WL_MAX_INSTANCES);
        size_t n_args = json_array_size(args);
        if (n_args > WL_MAX_RUN_ARGS)
                return osm_error_set(err, -EINVAL, 0, "args: more than %d", WL_MAX_RUN_ARGS);
        const char *argv[WL_MAX_RUN_ARGS + 1];
        for (size_t k = 0; k < n_args; k++) {
                json_t *a = json_array_get(args, k);
                if (!json_is_string(a) || strlen(json_string_value(a)) > OSM_MANIFEST_MAX_ARG)
                        return osm_error_set(err, -EINVAL, 0, "args[%zu]: expected a string of at most %d bytes",
                                          k, OSM_MANIFEST_MAX_ARG);
                argv[k] = json_string_value(a);
        }
        wl_workload tmp;
        const wl_workload *run = wl;
        _cleanup_free_ char *text = NULL;
        if (health) {
                if (!wl->manifest->health)
                        return osm_error_set(err, -ENOENT, 0, "%s has no health command", name);
                if (!(text = health_manifest(wl)))
                        return osm_error_set(err, -ENOMEM, 0, "out of memory");
                /* The same workload (name, bundle, data, grants by name), another entrypoint. */
                tmp = *wl;
                tmp.manifest_text = text;
                tmp.next = NULL;
                run = &tmp;
                n_args = 0;
        }
        wl_instance *i = NULL;
        /* a health check runs once; the workload itself by its manifest's policy */
        osm_restart_policy policy = health ? OSM_RESTART_NEVER : wl->manifest->restart;
        int r = wl_instance_run(w, (wl_workload *) run, argv, n_args, policy, NULL, 0, &i, err);
        /* A program that is not there (execve: ENOENT) failed to start: callers read -ENOENT
         * as "no such workload" or "no health command", and a health check would pass. */
        if (r == -ENOENT)
                r = -ENOEXEC;
        if (i && !(*id = strdup(i->id)))
                r = -ENOMEM;
        return r;
}

int osm_workloads_instance_status(osm_workloads *w, const char *id, osm_workloads_run_status *st) {
        for (wl_instance *i = w->instances; i; i = i->next) {
                if (strcmp(i->id, id) != 0)
                        continue;
                *st = (osm_workloads_run_status) {
                        .alive = wl_instance_alive(i),
                        .failed_to_start = i->state == WL_FAILED && i->exit_code < 0 && i->signal <= 0,
                        .exit_code = i->exit_code,
                        .signal = i->signal,
                        .restarts = i->restarts,
                };
                return 0;
        }
        return -ENOENT;
}
