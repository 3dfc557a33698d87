/* iface-workload.c: the io.osmose.Workload Varlink methods: check the parameters, call the
 * subsystem (workloads.c, trust.c, install.c, instance.c), shape the reply. */
#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "daemon/dl-curl.h"
#include "daemon/tenant/tenants.h"
#include "daemon/workload/wl.h"
#include "osmose/log.h"

/* ---- trust ---------------------------------------------------------------------------------- */

/* The public_key parameter in canonical form, or an InvalidParameter reply and -EINVAL. */
static int key_param(osm_call *call, json_t *params, char key[OSM_PUBKEY_B64]) {
        if (wl_trust_canonical(json_string_value(json_object_get(params, "public_key")), key) < 0) {
                osm_call_invalid_param(call, "public_key");   /* expected an Ed25519 public key in URL-safe base64 (43 characters) */
                return -EINVAL;
        }
        return 0;
}

/* The reply to a trust change: r from wl_trust_add or wl_trust_remove. */
static void trust_reply(osm_call *call, int r, const char *what, const char *key) {
        if (r == -EBUSY)
                osm_call_errorf(call, OSM_E_BUSY, "already %d trusted keys; remove one first", WL_MAX_TRUSTED);
        else if (r == -ENOENT)
                osm_call_errorf(call, OSM_E_NOT_FOUND, "key %s is not trusted", key);
        else if (r == -ENOMEM)
                osm_call_errorf(call, OSM_E_INTERNAL_ERROR, "out of memory");
        else if (r < 0)
                osm_call_errorf(call, OSM_E_INTERNAL_ERROR, "%s the key: %s", what, strerror(-r));
        else
                osm_call_reply(call, NULL, false);
}

static void method_trust_add(osm_call *call, json_t *params, void *userdata) {
        osm_workloads *w = userdata;
        char key[OSM_PUBKEY_B64];
        if (key_param(call, params, key) < 0)
                return;
        trust_reply(call, wl_trust_add(w, key), "saving", key);
}

static void method_trust_list(osm_call *call, json_t *params, void *userdata) {
        osm_call_reply(call, json_pack("{s:o}", "keys", wl_trust_list(userdata)), false);
}

static void method_trust_remove(osm_call *call, json_t *params, void *userdata) {
        osm_workloads *w = userdata;
        char key[OSM_PUBKEY_B64];
        if (key_param(call, params, key) < 0)
                return;
        int r = wl_trust_remove(w, key);
        if (r < 0) {
                trust_reply(call, r, "removing", key);
                return;
        }
        /* Workloads it signed stay installed, flagged; their next run needs allow_untrusted. */
        json_t *flagged = json_array();
        for (wl_workload *wl = w->workloads; wl; wl = wl->next)
                if (wl->signer && strcmp(wl->signer, key) == 0 && wl_signer_untrusted(w, wl)) {
                        json_array_append_new(flagged, json_string(wl->name));
                        log_notice("workload %s: its publisher key is no longer trusted; it runs only with "
                                   "allow-untrusted", wl->name);
                }
        osm_call_reply(call, json_pack("{s:o}", "flagged", flagged), false);
}

/* ---- install -------------------------------------------------------------------------------- */

static bool url_ok(const char *u) {
        return u && strlen(u) <= WL_MAX_URL && (strncmp(u, "http://", 7) == 0 || strncmp(u, "https://", 8) == 0);
}

static void method_install(osm_call *call, json_t *params, void *userdata) {
        osm_workloads *w = userdata;
        const char *url = json_string_value(json_object_get(params, "url"));
        json_t *grants = json_object_get(params, "grants");
        size_t n_fds = osm_call_n_fds(call);

        if (url && n_fds > 0) {
                osm_call_errorf(call, OSM_E_INVALID_MESSAGE, "give either url or a bundle fd, not both");
                return;
        }
        if (!url && n_fds != 1) {
                osm_call_errorf(call, OSM_E_INVALID_MESSAGE,
                                "pass the bundle as one file descriptor with the call, or give url");
                return;
        }
        if (url && !url_ok(url)) {
                osm_call_invalid_param(call, "url");   /* http:// or https://, at most 2048 bytes */
                return;
        }
        osm_error dl_err;
        if (url && osm_dl_curl(&dl_err) < 0) {
                osm_call_errorf(call, OSM_E_NOT_AVAILABLE, "install from a URL needs libcurl: %s", dl_err.message);
                return;
        }
        if (grants && json_array_size(grants) > OSM_MANIFEST_MAX_CAPS) {
                osm_call_invalid_param(call, "grants");   /* more than N */
                return;
        }
        size_t i;
        json_t *g;
        json_array_foreach(grants, i, g) {
                osm_error why = {};
                if (!json_is_string(g) || osm_cap_check(json_string_value(g), &why) < 0) {
                        if (!json_is_string(g))
                                osm_error_set(&why, -EINVAL, 0, "grants[%zu]: expected a string", i);
                        osm_call_fail(call, osm_error_workload_bad_capability(
                                                    why.message, json_is_string(g) ? json_string_value(g) : ""));
                        return;
                }
        }
        if (w->installing) {
                osm_call_errorf(call, OSM_E_BUSY, "another install is in progress; try again");
                return;
        }
        int fd = -1;
        if (!url) {
                fd = osm_call_take_fd(call, 0);
                struct stat st;
                if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
                        osm_close(fd);
                        osm_call_errorf(call, OSM_E_INVALID_MESSAGE, "the bundle fd must be a regular file");
                        return;
                }
        }
        const char *tenant = json_string_value(json_object_get(params, "tenant"));
        if (tenant && osm_call_tenant(call) && strcmp(tenant, osm_call_tenant(call)) != 0) {
                osm_close(fd);
                osm_call_errorf(call, OSM_E_PERMISSION_DENIED, "a tenant installs only for itself");
                return;
        }
        wl_install_hooks hooks = { .tenant = (char *) tenant };
        if (wl_install_begin(w, call, url, fd, grants, json_is_true(json_object_get(params, "allow_unsigned")),
                             json_is_true(json_object_get(params, "allow_downgrade")), &hooks) < 0)
                osm_call_errorf(call, OSM_E_INTERNAL_ERROR, "out of memory");
}

/* ---- workloads and grants ------------------------------------------------------------------- */

bool wl_visible(osm_call *call, const char *owner) {
        return osm_tenant_owns(osm_call_tenant(call), owner);
}

/* The workload the caller may see by that name, or a NotFound reply and NULL: a tenant
 * is told the same of another tenant's workload as of one that does not exist. */
static wl_workload *find_visible(osm_call *call, osm_workloads *w, const char *name) {
        wl_workload *wl = wl_find(w, name);
        if (!wl || !wl_visible(call, wl->tenant)) {
                osm_call_errorf(call, OSM_E_NOT_FOUND, "no workload named %s", name);
                return NULL;
        }
        return wl;
}

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
                osm_call_errorf(call, OSM_E_INTERNAL_ERROR, "out of memory");
                return;
        }
        n = 0;
        for (wl_workload *wl = w->workloads; wl; wl = wl->next)
                if (wl_visible(call, wl->tenant))
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
                if (o) {
                        json_object_set_new(o, "enabled", json_boolean(wl->enabled));
                        json_object_set_new(o, "trusted", json_boolean(!wl_signer_untrusted(w, wl) && wl->verified));
                }
                if (o && wl->signer)
                        json_object_set_new(o, "signer", json_string(wl->signer));
                if (o && wl->tenant)
                        json_object_set_new(o, "tenant", json_string(wl->tenant));
                if (o && wl->manifest->description)
                        json_object_set_new(o, "description", json_string(wl->manifest->description));
                json_array_append_new(arr, o);
        }
        osm_call_reply(call, json_pack("{s:o}", "workloads", arr), false);
}

/* A Remove call waiting for the workload's instances to end before it deletes its data. */
typedef struct wl_removal {
        struct wl_removal *next;
        osm_workloads *w;
        osm_call *call;
        char *name;
        json_t *reply;
} wl_removal;

static uint64_t du_total;   /* nftw has no user pointer; only the loop's thread runs du */

static int du_acc(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        if (flag == FTW_F)
                du_total += (uint64_t) st->st_size;
        return 0;
}

/* Bytes of the files under path (not following symlinks); 0 if there is nothing. */
static uint64_t du(const char *path) {
        du_total = 0;
        (void) nftw(path, du_acc, 16, FTW_PHYS);
        return du_total;
}

static void removal_free(wl_removal *r) {
        for (wl_removal **pp = &r->w->removals; *pp; pp = &(*pp)->next)
                if (*pp == r) {
                        *pp = r->next;
                        break;
                }
        free(r->name);
        json_decref(r->reply);
        free(r);
}

static void removal_cancel(osm_call *call, void *userdata) {
        removal_free(userdata);
}

/* Delete (or keep) the data of a removed workload now that nothing runs from it, and
 * answer. */
static void removal_finish(osm_workloads *w, osm_call *call, const char *name, json_t *reply) {
        wl_gc_bundles(w);
        const char *path = json_string_value(json_object_get(reply, "data_path"));
        struct stat st;
        bool gone = lstat(path, &st) < 0 && errno == ENOENT;
        bool kept = json_is_true(json_object_get(reply, "data_kept"));
        bool existed = json_integer_value(json_object_get(reply, "data_bytes")) > 0 ||
                       json_is_true(json_object_get(reply, "had_data"));
        json_object_del(reply, "had_data");
        json_object_set_new(reply, "data_deleted", json_boolean(!kept && existed && gone));
        if (!kept && !gone)
                log_warning("workload %s removed, but its data %s could not be deleted", name, path);
        osm_call_reply(call, json_incref(reply), false);
}

void wl_removals_check(osm_workloads *w) {
        for (wl_removal *r = w->removals, *next; r; r = next) {
                next = r->next;
                if (running_of(w, r->name) > 0)
                        continue;
                osm_call_set_cancel(r->call, NULL, NULL);
                removal_finish(w, r->call, r->name, r->reply);
                removal_free(r);
        }
}

static void method_remove(osm_call *call, json_t *params, void *userdata) {
        osm_workloads *w = userdata;
        const char *name = json_string_value(json_object_get(params, "name"));
        bool keep = json_is_true(json_object_get(params, "keep_data"));
        wl_workload **pp = &w->workloads;
        while (*pp && strcmp((*pp)->name, name) != 0)
                pp = &(*pp)->next;
        if (!*pp || !wl_visible(call, (*pp)->tenant)) {
                osm_call_errorf(call, OSM_E_NOT_FOUND, "no workload named %s", name);
                return;
        }
        wl_workload *wl = *pp;
        if (wl_db_remove(w, wl, keep) < 0) {
                osm_call_errorf(call, OSM_E_INTERNAL_ERROR, "could not remove %s from the database", name);
                return;
        }
        log_info("workload %s removed (%s)", name, keep ? "its data is kept" : "its data is deleted");
        _cleanup_free_ char *data = NULL;
        if (asprintf(&data, "%s/%s", w->data_dir, name) < 0)
                data = NULL;
        struct stat dst;
        bool had = data && lstat(data, &dst) == 0;
        json_t *stopped = json_array();
        for (wl_instance *i = w->instances; i; i = i->next)
                if (wl_instance_alive(i) && strcmp(i->workload, name) == 0)
                        json_array_insert_new(stopped, 0, json_string(i->id));
        json_t *reply = json_pack("{s:s, s:o, s:s, s:I, s:b, s:b, s:b}", "name", name, "stopped", stopped,
                                  "data_path", data ? data : "", "data_bytes", (json_int_t) (had ? du(data) : 0),
                                  "data_deleted", false, "data_kept", keep && had, "had_data", had);
        if (!keep)
                (void) wl_db_owner_release(w, name);   /* its id range is free once its data is gone */
        *pp = wl->next;
        w->grants_gen++;
        _cleanup_free_ char *wname = strdup(name);   /* name is params', which outlive this call */
        wl_instances_stop_workload(w, wl->name);
        wl_workload_free(wl);
        if (running_of(w, wname) > 0) {
                wl_removal *r = calloc(1, sizeof *r);
                if (!r || !(r->name = strdup(wname))) {
                        free(r);
                        json_decref(reply);
                        osm_call_errorf(call, OSM_E_INTERNAL_ERROR, "out of memory");
                        return;
                }
                r->w = w;
                r->call = call;
                r->reply = reply;
                r->next = w->removals;
                w->removals = r;
                osm_call_set_cancel(call, removal_cancel, r);
                return;
        }
        removal_finish(w, call, wname, reply);
        json_decref(reply);
}

static int grant_check(osm_call *call, wl_workload *wl, const char *cap) {
        osm_error why = {};
        if (osm_cap_check(cap, &why) < 0) {
                osm_call_fail(call, osm_error_workload_bad_capability(why.message, cap));
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
                osm_call_fail(call, osm_error_workload_bad_capability(msg, cap));
                return -EPERM;
        }
        return 0;
}

static void method_grant_revoke(osm_call *call, json_t *params, void *userdata) {
        osm_workloads *w = userdata;
        bool grant = strcmp(osm_call_method(call), OSM_M_WORKLOAD_GRANT) == 0;
        const char *name = json_string_value(json_object_get(params, "name"));
        const char *cap = json_string_value(json_object_get(params, "capability"));
        wl_workload *wl = find_visible(call, w, name);
        if (!wl)
                return;
        osm_error gerr = {};
        if (grant && !osm_tenants_grant_ok(w->d->tenants, osm_call_tenant(call), cap, &gerr)) {
                osm_call_fail(call, osm_error_permission_denied(gerr.message, cap));
                return;
        }
        _cleanup_free_ char **v = calloc(wl->n_grants + 2, sizeof(char *));
        if (!v) {
                osm_call_errorf(call, OSM_E_INTERNAL_ERROR, "out of memory");
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
                osm_call_errorf(call, OSM_E_NOT_FOUND, "%s does not hold %s", name, cap);
                return;
        }
        if (grant != had) {
                if (wl_set_grants(w, wl, v, n) < 0) {
                        osm_call_errorf(call, OSM_E_INTERNAL_ERROR, "could not save the grants of %s", name);
                        return;
                }
                wl_db_history(w, name, grant ? "grant" : "revoke", wl->version, NULL, cap);
                log_info("workload %s: %s %s", name, grant ? "granted" : "revoked", cap);
        }
        osm_call_reply(call, json_pack("{s:o}", "granted", strv_json(wl->grants)), false);
}

/* ---- instances ------------------------------------------------------------------------------ */

/* ---- instances ---- */

static void method_run(osm_call *call, json_t *params, void *userdata) {
        osm_workloads *w = userdata;
        const char *name = json_string_value(json_object_get(params, "name"));
        json_t *args = json_object_get(params, "args");
        const char *restart = json_string_value(json_object_get(params, "restart"));
        bool attach = json_is_true(json_object_get(params, "attach"));
        bool allow_untrusted = json_is_true(json_object_get(params, "allow_untrusted"));
        wl_workload *wl = find_visible(call, w, name);
        if (!wl)
                return;
        if (!allow_untrusted && wl_signer_untrusted(w, wl)) {
                osm_call_fail(call, osm_error_workload_untrusted("its publisher key is no longer trusted (trust rm): trust "
                                                                 "it again, or run it with --allow-untrusted", wl->signer));
                return;
        }
        if (!w->d->sandbox) {
                osm_call_errorf(call, OSM_E_NOT_AVAILABLE, "the sandbox is not available on this host");
                return;
        }
        if (w->shutting_down) {
                osm_call_errorf(call, OSM_E_NOT_AVAILABLE, "the daemon is shutting down");
                return;
        }
        size_t n_args = json_array_size(args);
        if (n_args > WL_MAX_RUN_ARGS) {
                osm_call_invalid_param(call, "args");   /* more than N */
                return;
        }
        const char *argv[WL_MAX_RUN_ARGS + 1];
        size_t k;
        json_t *a;
        json_array_foreach(args, k, a) {
                if (!json_is_string(a) || strlen(json_string_value(a)) > OSM_MANIFEST_MAX_ARG) {
                        osm_call_invalid_param(call, "args");   /* expected a string of at most N bytes */
                        return;
                }
                argv[k] = json_string_value(a);
        }
        argv[n_args] = NULL;
        if (osm_tenants_check_run(w->d->tenants, wl->tenant, wl_tenant_live(w, wl->tenant), call, NULL) < 0)
                return;
        int policy = restart ? osm_restart_policy_from_name(restart) : (int) wl->manifest->restart;
        if (policy < 0) {
                osm_call_invalid_param(call, "restart");   /* expected never, on-failure or always */
                return;
        }
        osm_error err = {};
        wl_instance *i = NULL;
        int r = wl_instance_run(w, wl, argv, n_args, (osm_restart_policy) policy, NULL, 0, &i, &err);
        if (r < 0) {
                osm_call_errorf(call, r == -EBUSY ? OSM_E_BUSY : i ? OSM_E_WORKLOAD_SPAWN_FAILED : OSM_E_INTERNAL_ERROR, "%s", err.message);
                return;
        }
        json_t *p = json_pack("{s:s, s:s}", "instance", i->id, "state", wl_state_names[i->state]);
        if (osm_call_more(call)) {
                wl_waiter *wt = wl_waiter_new(i, call, WL_WAIT_RUN);
                if (!wt) {
                        json_decref(p);
                        osm_call_errorf(call, OSM_E_INTERNAL_ERROR, "out of memory");
                        return;
                }
                wt->attach = attach;
                osm_call_set_cancel(call, wl_waiter_cancel, wt);
                osm_call_reply(call, p, true);   /* if the client has gone, the cancel hook cleaned up */
        } else
                osm_call_reply(call, p, false);
}

static void method_instances(osm_call *call, json_t *params, void *userdata) {
        osm_workloads *w = userdata;
        bool all = json_is_true(json_object_get(params, "all"));
        json_t *lim = json_object_get(params, "limit");
        json_int_t limit = lim ? json_integer_value(lim) : 100;
        if (limit < 0 || limit > WL_MAX_HISTORY) {
                osm_call_invalid_param(call, "limit");   /* expected 0 to N */
                return;
        }
        json_t *arr = all ? wl_db_instances_ended(w, (size_t) limit) : json_array();
        json_t *live = json_array();
        for (wl_instance *i = w->instances; i; i = i->next)
                if (wl_instance_alive(i) && wl_visible(call, i->tenant))
                        json_array_insert_new(live, 0, wl_instance_json(i));   /* oldest first */
        json_array_extend(arr, live);
        json_decref(live);
        osm_call_reply(call, json_pack("{s:o}", "instances", arr), false);
}

/* May the caller reach the instance (or workload) arg names? A tenant reaches an instance
 * of its own workloads: one in memory by its owner, one only in the history (or a name)
 * by the workload its id names (NAME-SEQ). Everything else answers as if missing. */
static bool instance_visible(osm_call *call, osm_workloads *w, const char *arg) {
        if (!osm_call_tenant(call))
                return true;
        for (wl_instance *i = w->instances; i; i = i->next)
                if (strcmp(i->id, arg) == 0)
                        return wl_visible(call, i->tenant);
        wl_workload *wl = wl_find(w, arg);
        if (!wl) {
                const char *dash = strrchr(arg, '-');
                char name[OSM_MANIFEST_MAX_NAME + 1];
                size_t len = dash ? (size_t) (dash - arg) : 0;
                if (len == 0 || len > OSM_MANIFEST_MAX_NAME)
                        return false;
                memcpy(name, arg, len);
                name[len] = 0;
                wl = wl_find(w, name);
        }
        return wl && wl_visible(call, wl->tenant);
}

/* The log's name (the instance id) for arg: an instance id, in memory or in the history,
 * or a workload name (its live instance, else its newest). NULL if none. */
static char *log_name(osm_workloads *w, const char *arg, wl_instance **inst) {
        wl_instance *i = wl_instance_resolve(w, arg);
        *inst = i;
        if (i)
                return strdup(i->id);
        if (wl_db_instance_known(w, arg))
                return strdup(arg);
        return wl_db_instance_newest(w, arg);
}

static void method_logs(osm_call *call, json_t *params, void *userdata) {
        osm_workloads *w = userdata;
        const char *arg = json_string_value(json_object_get(params, "instance"));
        bool follow = json_is_true(json_object_get(params, "follow")) && osm_call_more(call);
        json_t *tail = json_object_get(params, "tail"), *since = json_object_get(params, "since");
        if (tail && json_integer_value(tail) < 0) {
                osm_call_invalid_param(call, "tail");   /* expected a number of entries >= 0 */
                return;
        }
        wl_instance *i = NULL;
        _cleanup_free_ char *name = instance_visible(call, w, arg) ? log_name(w, arg, &i) : NULL;
        if (!name) {
                osm_call_errorf(call, OSM_E_NOT_FOUND, "no instance %s", arg);
                return;
        }
        /* What is on disk now; with follow, what comes later is sent as it is read. */
        if (i)
                wl_feed_followers(i, false);
        wl_log_filter f = { .since_us = since ? json_integer_value(since) : 0,
                            .tail = tail ? (size_t) json_integer_value(tail) : 0 };
        uint64_t first = 0;
        wl_entry_acc acc = { json_array(), 0, 0 };
        int r = w->logs_fd >= 0 ? wl_log_read(w->logs_fd, name, &f, wl_entries_add, &acc, &first) : -ENOENT;
        if (r < 0 && r != -ENOENT) {
                json_decref(acc.entries);
                osm_call_errorf(call, OSM_E_INTERNAL_ERROR, "reading the log of %s: %s", name, strerror(-r));
                return;
        }
        size_t n = json_array_size(acc.entries), from = 0;
        uint64_t dropped = first > 1 ? first - 1 : 0;
        if (!osm_call_more(call)) {
                /* one reply: the newest entries that fit */
                size_t bytes = acc.bytes;
                while (from < n && bytes > WL_LOGS_MAX_ONE) {
                        bytes -= json_string_length(json_object_get(json_array_get(acc.entries, from), "data"));
                        from++;
                }
                dropped += from;
        }
        bool sent_dropped = false;
        bool streaming = follow && i && wl_instance_alive(i);
        do {
                /* replies of at most WL_LOGS_MAX_REPLY bytes of data */
                json_t *part = json_array();
                size_t bytes = 0;
                for (; from < n; from++) {
                        json_t *e = json_array_get(acc.entries, from);
                        size_t len = json_string_length(json_object_get(e, "data"));
                        if (osm_call_more(call) && bytes + len > WL_LOGS_MAX_REPLY && json_array_size(part))
                                break;
                        bytes += len;
                        json_array_append(part, e);
                }
                json_t *p = json_pack("{s:o}", "entries", part);
                if (dropped && !sent_dropped)
                        json_object_set_new(p, "dropped", json_integer((json_int_t) dropped));
                sent_dropped = true;
                bool last = from >= n && !streaming;
                if (osm_call_reply(call, p, !last) < 0) {
                        json_decref(acc.entries);
                        if (!last)   /* the client has gone: finish the call now */
                                osm_call_reply(call, NULL, false);
                        return;
                }
                if (last) {
                        json_decref(acc.entries);
                        return;
                }
        } while (from < n);
        json_decref(acc.entries);
        if (wl_waiter_add(i, call, WL_WAIT_LOGS) < 0)
                osm_call_errorf(call, OSM_E_INTERNAL_ERROR, "out of memory");
}

static void not_running(osm_call *call, const char *id, const char *state, const char *fmt, ...) OSM_PRINTF(4, 5);
static void not_running(osm_call *call, const char *id, const char *state, const char *fmt, ...) {
        char msg[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        osm_call_fail(call, osm_error_workload_not_running(msg, id, state));
}

static void method_stop(osm_call *call, json_t *params, void *userdata) {
        osm_workloads *w = userdata;
        const char *arg = json_string_value(json_object_get(params, "instance"));
        bool all = json_is_true(json_object_get(params, "all"));
        if (!instance_visible(call, w, arg)) {
                osm_call_errorf(call, OSM_E_NOT_FOUND, "no instance %s", arg);
                return;
        }
        wl_instance *i = NULL;
        for (wl_instance *k = w->instances; k && !i; k = k->next)
                if (strcmp(k->id, arg) == 0)
                        i = k;
        if (!i) {
                /* a workload name: its live instances */
                wl_instance *v[WL_MAX_INSTANCES];
                size_t n = wl_instances_live_of(w, arg, v, WL_MAX_INSTANCES);
                if (n == 0) {
                        wl_instance *newest = wl_instance_resolve(w, arg);
                        _cleanup_free_ char *old = newest ? NULL : wl_db_instance_newest(w, arg);
                        if (newest) {
                                char how[256];
                                wl_describe_end(newest, how, sizeof how);
                                not_running(call, newest->id, wl_state_names[newest->state],
                                            "%s is not running: its last instance %s has %s (%s)", arg, newest->id,
                                            wl_state_names[newest->state], how);
                        } else if (old || wl_db_instance_known(w, arg))
                                not_running(call, old ? old : arg, "exited", "%s has already ended", old ? old : arg);
                        else if (wl_find(w, arg))
                                not_running(call, arg, "exited", "%s has no instance running", arg);
                        else
                                osm_call_errorf(call, OSM_E_NOT_FOUND, "no instance %s", arg);
                        return;
                }
                if (n > 1 && !all) {
                        json_t *ids = json_array();
                        char msg[1024];
                        size_t off = (size_t) snprintf(msg, sizeof msg, "%s has %zu instances running (", arg, n);
                        for (size_t k = n; k-- > 0;) {   /* oldest first */
                                json_array_append_new(ids, json_string(v[k]->id));
                                if (off < sizeof msg)
                                        off += (size_t) snprintf(msg + off, sizeof msg - off, "%s%s", v[k]->id,
                                                                 k ? ", " : "");
                        }
                        if (off < sizeof msg)
                                snprintf(msg + off, sizeof msg - off, "): name one, or stop them all with --all");
                        osm_call_fail(call, osm_error_workload_ambiguous(msg, ids));
                        return;
                }
                if (n > 1) {
                        wl_stop_group *g = calloc(1, sizeof *g);
                        if (!g || !(g->ids = json_array())) {
                                free(g);
                                osm_call_errorf(call, OSM_E_INTERNAL_ERROR, "out of memory");
                                return;
                        }
                        g->call = call;
                        for (size_t k = n; k-- > 0;) {
                                wl_waiter *wt = wl_waiter_new(v[k], call, WL_WAIT_STOP);
                                if (!wt)
                                        continue;
                                wt->group = g;
                                g->pending++;
                                json_array_append_new(g->ids, json_string(v[k]->id));
                        }
                        osm_call_set_cancel(call, wl_stop_group_cancel, g);
                        log_info("workload %s: stop requested for its %zu instances", arg, n);
                        for (size_t k = 0; k < n; k++) {
                                v[k]->stopped_by_operator = true;
                                wl_instance_request_stop(v[k]);   /* may end it at once, answering its waiter */
                        }
                        return;
                }
                i = v[0];
        }
        if (!wl_instance_alive(i)) {
                char how[256];
                wl_describe_end(i, how, sizeof how);
                not_running(call, i->id, wl_state_names[i->state], "%s has already ended: %s (%s)", i->id,
                            wl_state_names[i->state], how);
                return;
        }
        if (wl_waiter_add(i, call, WL_WAIT_STOP) < 0) {
                osm_call_errorf(call, OSM_E_INTERNAL_ERROR, "out of memory");
                return;
        }
        log_info("instance %s: stop requested", i->id);
        i->stopped_by_operator = true;
        wl_instance_request_stop(i);   /* may end it at once (backoff), answering the waiter */
}

/* The instance the "instance" parameter names (wl_instance_resolve), or a NotFound reply and NULL. */
static wl_instance *instance_param(osm_call *call, json_t *params, osm_workloads *w) {
        const char *arg = json_string_value(json_object_get(params, "instance"));
        wl_instance *i = wl_instance_resolve(w, arg);
        if (i && !wl_visible(call, i->tenant))
                i = NULL;
        if (!i)
                osm_call_errorf(call, OSM_E_NOT_FOUND, "no instance %s", arg);
        return i;
}

static void put_stat(json_t *o, const char *key, uint64_t v) {
        if (v != UINT64_MAX)
                json_object_set_new(o, key, json_integer((json_int_t) OSM_MIN(v, (uint64_t) INT64_MAX)));
}

static void method_stats(osm_call *call, json_t *params, void *userdata) {
        wl_instance *i = instance_param(call, params, userdata);
        if (!i)
                return;
        osm_cgroup_stats st;
        bool have = false;
        osm_cgroup *cg = i->proc ? osm_sandbox_proc_cgroup(i->proc) : NULL;
        if (cg && osm_cgroup_stats_read(cg, &st) == 0)
                have = true;
        else if (!i->proc && i->have_last) {
                st = i->last;
                have = true;
        }
        json_t *p = json_pack("{s:s, s:s}", "instance", i->id, "state", wl_state_names[i->state]);
        if (have) {
                put_stat(p, "cpu_usec", st.cpu_usec);
                put_stat(p, "memory_bytes", st.memory_bytes);
                put_stat(p, "memory_peak", st.memory_peak);
                put_stat(p, "io_read_bytes", st.io_read_bytes);
                put_stat(p, "io_write_bytes", st.io_write_bytes);
                put_stat(p, "pids", st.pids);
                put_stat(p, "oom_kills", st.oom_kills);
        }
        /* Fill what the cgroups could not tell from the last run's rusage. */
        if (i->have_ru && !i->proc) {
                const struct rusage *ru = &i->ru;
                uint64_t cpu = (uint64_t) ru->ru_utime.tv_sec * 1000000 + (uint64_t) ru->ru_utime.tv_usec +
                               (uint64_t) ru->ru_stime.tv_sec * 1000000 + (uint64_t) ru->ru_stime.tv_usec;
                if (!json_object_get(p, "cpu_usec"))
                        put_stat(p, "cpu_usec", cpu);
                if (!json_object_get(p, "memory_peak"))
                        put_stat(p, "memory_peak", (uint64_t) ru->ru_maxrss * 1024);
                if (!json_object_get(p, "io_read_bytes"))
                        put_stat(p, "io_read_bytes", (uint64_t) ru->ru_inblock * 512);
                if (!json_object_get(p, "io_write_bytes"))
                        put_stat(p, "io_write_bytes", (uint64_t) ru->ru_oublock * 512);
        }
        json_object_set_new(p, "source", json_string(have ? "cgroup" : i->have_ru ? "rusage" : "none"));
        osm_call_reply(call, p, false);
}

static void method_enable(osm_call *call, json_t *params, void *userdata) {
        osm_workloads *w = userdata;
        bool enable = strcmp(osm_call_method(call), OSM_M_WORKLOAD_ENABLE) == 0;
        const char *name = json_string_value(json_object_get(params, "name"));
        wl_workload *wl = find_visible(call, w, name);
        if (!wl)
                return;
        bool changed = wl->enabled != enable;
        if (changed) {
                if (wl_db_set_enabled(w, name, enable) < 0) {
                        osm_call_errorf(call, OSM_E_INTERNAL_ERROR, "could not save that %s is %s", name,
                                        enable ? "enabled" : "disabled");
                        return;
                }
                wl->enabled = enable;
                log_info("workload %s %s", name, enable ? "enabled: it starts with the daemon" : "disabled");
        }
        osm_call_reply(call, json_pack("{s:s, s:b, s:b}", "name", name, "enabled", enable, "changed", changed), false);
}

const osm_method wl_methods[] = {
        { OSM_M_WORKLOAD_TRUST_ADD, method_trust_add, OSM_ACCESS_WRITE },
        { OSM_M_WORKLOAD_TRUST_LIST, method_trust_list, OSM_ACCESS_READ },
        { OSM_M_WORKLOAD_TRUST_REMOVE, method_trust_remove, OSM_ACCESS_WRITE },
        { OSM_M_WORKLOAD_INSTALL, method_install, OSM_ACCESS_TENANT },
        { OSM_M_WORKLOAD_LIST, method_list, OSM_ACCESS_TENANT },
        { OSM_M_WORKLOAD_REMOVE, method_remove, OSM_ACCESS_TENANT },
        { OSM_M_WORKLOAD_GRANT, method_grant_revoke, OSM_ACCESS_TENANT },
        { OSM_M_WORKLOAD_REVOKE, method_grant_revoke, OSM_ACCESS_TENANT },
        { OSM_M_WORKLOAD_RUN, method_run, OSM_ACCESS_TENANT },
        { OSM_M_WORKLOAD_INSTANCES, method_instances, OSM_ACCESS_TENANT },
        { OSM_M_WORKLOAD_LOGS, method_logs, OSM_ACCESS_TENANT },
        { OSM_M_WORKLOAD_STOP, method_stop, OSM_ACCESS_TENANT },
        { OSM_M_WORKLOAD_STATS, method_stats, OSM_ACCESS_TENANT },
        { OSM_M_WORKLOAD_ENABLE, method_enable, OSM_ACCESS_TENANT },
        { OSM_M_WORKLOAD_DISABLE, method_enable, OSM_ACCESS_TENANT },
};
const size_t wl_n_methods = OSM_ARRAY_SIZE(wl_methods);
