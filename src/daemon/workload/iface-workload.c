/* iface-workload.c: the io.osmose.Workload Varlink methods: check the parameters, call the
 * subsystem (workloads.c, trust.c, install.c, instance.c), shape the reply. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "daemon/dl-curl.h"
#include "daemon/workload/wl.h"
#include "osmose/log.h"

/* ---- trust ---------------------------------------------------------------------------------- */

/* The public_key parameter in canonical form, or an InvalidParameter reply and -EINVAL. */
static int key_param(osm_call *call, json_t *params, char key[OSM_PUBKEY_B64]) {
        if (wl_trust_canonical(json_string_value(json_object_get(params, "public_key")), key) < 0) {
                osm_call_errorf(call, OSM_ERR_INVALID_PARAMETER,
                                "public_key: expected an Ed25519 public key in URL-safe base64 (43 characters)");
                return -EINVAL;
        }
        return 0;
}

/* The reply to a trust change: r from wl_trust_add or wl_trust_remove. */
static void trust_reply(osm_call *call, int r, const char *what, const char *key) {
        if (r == -EBUSY)
                osm_call_errorf(call, OSM_ERR_BUSY, "already %d trusted keys; remove one first", WL_MAX_TRUSTED);
        else if (r == -ENOENT)
                osm_call_errorf(call, OSM_ERR_NOT_FOUND, "key %s is not trusted", key);
        else if (r == -ENOMEM)
                osm_call_errorf(call, OSM_ERR_INTERNAL, "out of memory");
        else if (r < 0)
                osm_call_errorf(call, OSM_ERR_INTERNAL, "%s the key: %s", what, strerror(-r));
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
        trust_reply(call, wl_trust_remove(w, key), "removing", key);
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
                osm_call_errorf(call, OSM_ERR_INVALID_PARAMETER, "give either url or a bundle fd, not both");
                return;
        }
        if (!url && n_fds != 1) {
                osm_call_errorf(call, OSM_ERR_INVALID_PARAMETER,
                                "pass the bundle as one file descriptor with the call, or give url");
                return;
        }
        if (url && !url_ok(url)) {
                osm_call_error(call, OSM_ERR_INVALID_PARAMETER, json_pack("{s:s, s:s}", "parameter", "url",
                               "message", "url: expected http:// or https://, at most 2048 bytes"));
                return;
        }
        const char *why_dl = NULL;
        if (url && osm_dl_curl(&why_dl) < 0) {
                osm_call_errorf(call, OSM_ERR_NOT_AVAILABLE, "install from a URL needs libcurl: %s", why_dl);
                return;
        }
        if (grants && json_array_size(grants) > OSM_MANIFEST_MAX_CAPS) {
                osm_call_errorf(call, OSM_ERR_INVALID_PARAMETER, "grants: more than %d", OSM_MANIFEST_MAX_CAPS);
                return;
        }
        size_t i;
        json_t *g;
        json_array_foreach(grants, i, g) {
                char why[512];
                if (!json_is_string(g) || osm_cap_check(json_string_value(g), why, sizeof why) < 0) {
                        if (!json_is_string(g))
                                snprintf(why, sizeof why, "grants[%zu]: expected a string", i);
                        osm_call_error(call, WL_ERR_BAD_CAPABILITY,
                                       json_pack("{s:s, s:s}", "message", why, "capability",
                                                 json_is_string(g) ? json_string_value(g) : ""));
                        return;
                }
        }
        if (w->installing) {
                osm_call_errorf(call, OSM_ERR_BUSY, "another install is in progress; try again");
                return;
        }
        int fd = -1;
        if (!url) {
                fd = osm_call_take_fd(call, 0);
                struct stat st;
                if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
                        osm_close(fd);
                        osm_call_errorf(call, OSM_ERR_INVALID_PARAMETER, "the bundle fd must be a regular file");
                        return;
                }
        }
        if (wl_install_begin(w, call, url, fd, grants, json_is_true(json_object_get(params, "allow_unsigned")),
                             json_is_true(json_object_get(params, "allow_downgrade")), NULL) < 0)
                osm_call_errorf(call, OSM_ERR_INTERNAL, "out of memory");
}

/* ---- workloads and grants ------------------------------------------------------------------- */

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
        if (wl_db_remove(w, wl) < 0) {
                osm_call_errorf(call, OSM_ERR_INTERNAL, "could not remove %s from the database", name);
                return;
        }
        log_info("workload %s removed", name);
        *pp = wl->next;
        wl_instances_stop_workload(w, wl->name);
        wl_workload_free(wl);
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
                wl_db_history(w, name, grant ? "grant" : "revoke", wl->version, NULL, cap);
                log_info("workload %s: %s %s", name, grant ? "granted" : "revoked", cap);
        }
        osm_call_reply(call, json_pack("{s:o}", "granted", strv_json(wl->grants)), false);
}

/* ---- instances ------------------------------------------------------------------------------ */

/* The instance the "instance" parameter names (wl_instance_resolve), or a NotFound reply and NULL. */
static wl_instance *instance_param(osm_call *call, json_t *params, osm_workloads *w) {
        const char *arg = json_string_value(json_object_get(params, "instance"));
        wl_instance *i = wl_instance_resolve(w, arg);
        if (!i)
                osm_call_errorf(call, OSM_ERR_NOT_FOUND, "no instance %s", arg);
        return i;
}

static void method_run(osm_call *call, json_t *params, void *userdata) {
        osm_workloads *w = userdata;
        const char *name = json_string_value(json_object_get(params, "name"));
        json_t *args = json_object_get(params, "args");
        wl_workload *wl = wl_find(w, name);
        if (!wl) {
                osm_call_errorf(call, OSM_ERR_NOT_FOUND, "no workload named %s", name);
                return;
        }
        if (!w->d->sandbox) {
                osm_call_errorf(call, OSM_ERR_NOT_AVAILABLE, "the sandbox is not available on this host");
                return;
        }
        if (w->shutting_down) {
                osm_call_errorf(call, OSM_ERR_NOT_AVAILABLE, "the daemon is shutting down");
                return;
        }
        if (w->n_live >= WL_MAX_INSTANCES) {
                osm_call_errorf(call, OSM_ERR_BUSY, "already %d instances running", WL_MAX_INSTANCES);
                return;
        }
        size_t n_args = json_array_size(args);
        if (n_args > WL_MAX_RUN_ARGS) {
                osm_call_errorf(call, OSM_ERR_INVALID_PARAMETER, "args: more than %d", WL_MAX_RUN_ARGS);
                return;
        }
        size_t k;
        json_t *a;
        json_array_foreach(args, k, a)
                if (!json_is_string(a) || strlen(json_string_value(a)) > OSM_MANIFEST_MAX_ARG) {
                        osm_call_errorf(call, OSM_ERR_INVALID_PARAMETER,
                                        "args[%zu]: expected a string of at most %d bytes", k, OSM_MANIFEST_MAX_ARG);
                        return;
                }

        const char *argv[WL_MAX_RUN_ARGS];
        json_array_foreach(args, k, a)
                argv[k] = json_string_value(a);
        wl_instance *i;
        char why[512];
        if (wl_instance_run(w, wl, argv, n_args, &i, why, sizeof why) < 0) {
                osm_call_errorf(call, i ? WL_ERR_SPAWN_FAILED : OSM_ERR_INTERNAL, "%s", why);
                return;
        }
        json_t *p = json_pack("{s:s, s:s}", "instance", i->id, "state", wl_state_names[i->state]);
        if (osm_call_more(call)) {
                if (wl_waiter_add(i, call, WL_WAIT_RUN, 0) < 0) {
                        json_decref(p);
                        osm_call_errorf(call, OSM_ERR_INTERNAL, "out of memory");
                        return;
                }
                osm_call_reply(call, p, true);   /* if the client has gone, the cancel hook cleaned up */
        } else
                osm_call_reply(call, p, false);
}

static void method_instances(osm_call *call, json_t *params, void *userdata) {
        osm_workloads *w = userdata;
        json_t *arr = json_array();
        for (wl_instance *i = w->instances; i; i = i->next)
                json_array_insert_new(arr, 0, wl_instance_json(i));   /* oldest first */
        osm_call_reply(call, json_pack("{s:o}", "instances", arr), false);
}

static void method_logs(osm_call *call, json_t *params, void *userdata) {
        bool follow = json_is_true(json_object_get(params, "follow")) && osm_call_more(call);
        wl_instance *i = instance_param(call, params, userdata);
        if (!i)
                return;
        uint64_t pos = 0, dropped = 0;
        if (!osm_call_more(call)) {
                /* one reply: the newest part that fits */
                uint64_t from = i->log_total > WL_LOGS_MAX_REPLY * 4 ? i->log_total - WL_LOGS_MAX_REPLY * 4 : 0;
                pos = from;
                json_t *data = wl_log_read(i, &pos, WL_LOGS_MAX_REPLY * 4, &dropped);
                json_t *p = json_pack("{s:o}", "data", data ? data : json_string(""));
                if (from + dropped)
                        json_object_set_new(p, "dropped", json_integer((json_int_t) (from + dropped)));
                osm_call_reply(call, p, false);
                return;
        }
        if (follow && wl_instance_alive(i)) {
                if (wl_waiter_add(i, call, WL_WAIT_LOGS, 0) < 0) {
                        osm_call_errorf(call, OSM_ERR_INTERNAL, "out of memory");
                        return;
                }
                wl_feed_followers(i, false);
                return;
        }
        bool sent_any = false;
        do {
                json_t *data = wl_log_read(i, &pos, WL_LOGS_MAX_REPLY, &dropped);
                json_t *p = json_pack("{s:o}", "data", data ? data : json_string(""));
                if (dropped)
                        json_object_set_new(p, "dropped", json_integer((json_int_t) dropped));
                bool last = pos >= i->log_total;
                if (osm_call_reply(call, p, !last) < 0) {
                        if (!last)   /* the client has gone: finish the call now */
                                osm_call_reply(call, NULL, false);
                        return;
                }
                sent_any = last;
        } while (!sent_any);
}

static void method_stop(osm_call *call, json_t *params, void *userdata) {
        wl_instance *i = instance_param(call, params, userdata);
        if (!i)
                return;
        if (!wl_instance_alive(i)) {
                json_t *p = json_pack("{s:s, s:b}", "instance", i->id, "killed", i->killed);
                wl_add_exit(p, i);
                osm_call_reply(call, p, false);
                return;
        }
        if (wl_waiter_add(i, call, WL_WAIT_STOP, 0) < 0) {
                osm_call_errorf(call, OSM_ERR_INTERNAL, "out of memory");
                return;
        }
        log_info("instance %s: stop requested", i->id);
        wl_instance_request_stop(i);   /* may end it at once (backoff), answering the waiter */
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

const osm_method wl_methods[] = {
        { "io.osmose.Workload.TrustAdd", method_trust_add, OSM_ACCESS_WRITE },
        { "io.osmose.Workload.TrustList", method_trust_list, OSM_ACCESS_READ },
        { "io.osmose.Workload.TrustRemove", method_trust_remove, OSM_ACCESS_WRITE },
        { "io.osmose.Workload.Install", method_install, OSM_ACCESS_WRITE },
        { "io.osmose.Workload.List", method_list, OSM_ACCESS_READ },
        { "io.osmose.Workload.Remove", method_remove, OSM_ACCESS_WRITE },
        { "io.osmose.Workload.Grant", method_grant_revoke, OSM_ACCESS_WRITE },
        { "io.osmose.Workload.Revoke", method_grant_revoke, OSM_ACCESS_WRITE },
        { "io.osmose.Workload.Run", method_run, OSM_ACCESS_WRITE },
        { "io.osmose.Workload.Instances", method_instances, OSM_ACCESS_READ },
        { "io.osmose.Workload.Logs", method_logs, OSM_ACCESS_READ },
        { "io.osmose.Workload.Stop", method_stop, OSM_ACCESS_WRITE },
        { "io.osmose.Workload.Stats", method_stats, OSM_ACCESS_READ },
};
const size_t wl_n_methods = OSM_ARRAY_SIZE(wl_methods);
