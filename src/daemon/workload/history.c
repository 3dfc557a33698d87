/* history.c: instances across daemon restarts: bringing back at start what ran when the
 * daemon stopped or crashed, starting enabled workloads, and the bound on kept log files.
 * The records themselves are in db.c. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "daemon/workload/wl.h"
#include "osmose/log.h"

static void strv_freep(char ***p) {
        osm_strv_free(*p);
}

static bool live_in_memory(osm_workloads *w, const char *id) {
        for (wl_instance *i = w->instances; i; i = i->next)
                if (wl_instance_alive(i) && strcmp(i->id, id) == 0)
                        return true;
        return false;
}

static int cmp_id(const void *a, const void *b) {
        return strcmp(*(const char *const *) a, *(const char *const *) b);
}

/* Keep the newest WL_MAX_HISTORY ended instances in the database, and the log files of
 * the live ones, of those to be resumed, and of the newest WL_MAX_LOGS that ended. */
void wl_history_gc(osm_workloads *w) {
        w->ends_unswept = 0;
        wl_db_instances_gc(w);
        if (w->logs_fd < 0)
                return;
        int fd = dup(w->logs_fd);
        DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
        if (!d) {
                osm_close(fd);
                return;
        }
        rewinddir(d);
        size_t n_kept = 0;
        _cleanup_(strv_freep) char **kept = wl_db_logs_kept(w, &n_kept);
        struct dirent *de;
        while ((de = readdir(d))) {
                if (de->d_name[0] == '.')
                        continue;
                char id[256];
                snprintf(id, sizeof id, "%s", de->d_name);
                size_t n = strlen(id);
                if (n > 2 && strcmp(id + n - 2, ".1") == 0)
                        id[n - 2] = 0;
                const char *key = id;
                if (!kept || live_in_memory(w, id) || bsearch(&key, kept, n_kept, sizeof *kept, cmp_id))
                        continue;
                if (unlinkat(w->logs_fd, de->d_name, 0) == 0)
                        log_debug("removed the log %s", de->d_name);
        }
        closedir(d);
}

/* ---- at start: what comes back -------------------------------------------------------------- */

static char **args_parse(const char *text) {
        if (!text)
                return NULL;
        json_t *a = json_loads(text, 0, NULL);
        size_t n = json_array_size(a);
        char **v = calloc(n + 1, sizeof(char *));
        for (size_t k = 0; v && k < n; k++)
                v[k] = strdup(json_string_value(json_array_get(a, k)) ? json_string_value(json_array_get(a, k)) : "");
        json_decref(a);
        return v;
}

/* Instances that were alive when the daemon last stopped (resume = 1: it stopped them at
 * shutdown) or died (ended IS NULL: it crashed, was killed, or the power went) come back
 * if their restart policy says so and their workload is still installed; then enabled
 * workloads without a live instance are started. */
void wl_history_start(osm_workloads *w) {
        wl_open_instance rows[WL_MAX_INSTANCES];
        size_t n = wl_db_instances_open(w, rows, WL_MAX_INSTANCES);
        for (size_t k = 0; k < n; k++) {
                wl_open_instance *r = &rows[k];
                wl_workload *wl = r->id && r->name ? wl_find(w, r->name) : NULL;
                int policy = r->restart ? osm_restart_policy_from_name(r->restart) : -1;
                if (wl && policy < 0)
                        policy = (int) wl->manifest->restart;
                const char *why = r->crashed ? "the daemon stopped while it ran" : "stopped with the daemon";
                if (wl && wl_signer_untrusted(w, wl)) {
                        log_warning("instance %s: not started again: the publisher key of %s is no longer trusted",
                                    r->id, wl->name);
                        wl_db_instance_not_resumed(w, r->id, "its publisher key is no longer trusted");
                } else if (!wl || policy == OSM_RESTART_NEVER || !w->d->sandbox) {
                        if (r->id)
                                wl_db_instance_not_resumed(w, r->id, why);
                } else {
                        _cleanup_(strv_freep) char **args = args_parse(r->args);
                        osm_error err = {};
                        log_info("instance %s: starting again (%s; restart %s)", r->id,
                                 r->crashed ? "the daemon was not stopped cleanly" : "it ran when the daemon stopped",
                                 osm_restart_policy_name((osm_restart_policy) policy));
                        size_t n_args = 0;
                        while (args && args[n_args])
                                n_args++;
                        if (wl_instance_run(w, wl, (const char *const *) args, n_args, (osm_restart_policy) policy,
                                            r->id, (unsigned) r->restarts + 1, NULL, &err) < 0)
                                log_warning("instance %s: could not start it again: %s", r->id, err.message);
                }
                free(r->id);
                free(r->name);
                free(r->restart);
                free(r->args);
        }
        for (wl_workload *wl = w->workloads; wl; wl = wl->next) {
                if (!wl->enabled)
                        continue;
                bool live = false;
                for (wl_instance *i = w->instances; i && !live; i = i->next)
                        live = wl_instance_alive(i) && strcmp(i->workload, wl->name) == 0;
                if (live)
                        continue;
                if (!w->d->sandbox) {
                        log_warning("workload %s is enabled, but the sandbox is not available", wl->name);
                        continue;
                }
                if (wl_signer_untrusted(w, wl)) {
                        log_warning("workload %s is enabled, but its publisher key is no longer trusted: not started",
                                    wl->name);
                        continue;
                }
                osm_error err = {};
                wl_instance *i = NULL;
                if (wl_instance_run(w, wl, NULL, 0, wl->manifest->restart, NULL, 0, &i, &err) < 0)
                        log_warning("workload %s (enabled) did not start: %s", wl->name, err.message);
                else
                        log_info("workload %s (enabled): started %s", wl->name, i->id);
        }
        wl_history_gc(w);
}

