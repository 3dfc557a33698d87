/* instance.c: supervising running workloads: spawn into the sandbox, exit, restart with
 * backoff, stop with a grace period, stdout and stderr into their log on disk (wlog.c),
 * waiters. The Varlink methods are in iface-workload.c, the instance records in db.c. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "daemon/tenant/tenants.h"
#include "daemon/workload/wl.h"
#include "osmose/log.h"

const char *const wl_state_names[] = {
        [WL_STARTING] = "starting", [WL_RUNNING] = "running", [WL_BACKOFF] = "backoff",
        [WL_STOPPING] = "stopping", [WL_EXITED] = "exited", [WL_FAILED] = "failed",
};

static void on_exit_check(wl_instance *i);


/* ---- handles and lifetime ------------------------------------------------------------------ */

static void instance_free(wl_instance *i) {
        free(i->id);
        free(i->workload);
        free(i->tenant);
        free(i->bundle_id);
        osm_manifest_free(i->manifest);
        if (i->args)
                for (char **p = i->args; *p; p++)
                        free(*p);
        free(i->args);
        free(i->error);
        wl_log_close(i->log);
        json_decref(i->pending);
        free(i);
}

static void maybe_free(wl_instance *i) {
        if (i->freeing && i->open_handles == 0)
                instance_free(i);
}

static void on_handle_closed(uv_handle_t *h) {
        wl_instance *i = h->data;
        osm_workloads *w = i->w;
        if (h != (uv_handle_t *) &i->timer)
                free(h);
        i->open_handles--;
        maybe_free(i);
        wl_handle_closed(w);
}

static void close_handle(wl_instance *i, uv_handle_t *h) {
        if (h && !uv_is_closing(h)) {
                h->data = i;   /* a pipe's poll pointed at its wl_pipe */
                uv_close(h, on_handle_closed);
        }
}

/* Unlink i from w's list, close its timer, free it once every handle has closed. */
static void instance_release(wl_instance *i) {
        osm_workloads *w = i->w;
        for (wl_instance **pp = &w->instances; *pp; pp = &(*pp)->next)
                if (*pp == i) {
                        *pp = i->next;
                        break;
                }
        i->freeing = true;
        close_handle(i, (uv_handle_t *) &i->timer);
        maybe_free(i);
}

/* ---- log entries as JSON -------------------------------------------------------------------- */

/* Make bytes valid UTF-8 without NULs for JSON: invalid sequences become U+FFFD. */
static json_t *utf8_json(const uint8_t *s, size_t n) {
        _cleanup_free_ char *out = malloc(n * 3 + 1);
        if (!out)
                return NULL;
        size_t o = 0;
        for (size_t k = 0; k < n;) {
                uint8_t c = s[k];
                size_t len = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
                bool ok = len > 0 && c != 0 && k + len <= n && !(len == 2 && c < 0xc2) && !(len == 4 && c > 0xf4);
                for (size_t m = 1; ok && m < len; m++)
                        ok = (s[k + m] & 0xc0) == 0x80;
                if (ok && len == 3) {
                        uint32_t cp = ((c & 0x0fu) << 12) | ((s[k + 1] & 0x3fu) << 6) | (s[k + 2] & 0x3fu);
                        ok = cp >= 0x800 && (cp < 0xd800 || cp > 0xdfff);
                }
                if (ok && len == 4) {
                        uint32_t cp = ((c & 0x07u) << 18) | ((s[k + 1] & 0x3fu) << 12);
                        ok = cp >= 0x10000 && cp <= 0x10ffff;
                }
                if (ok) {
                        memcpy(out + o, s + k, len);
                        o += len;
                        k += len;
                } else {
                        memcpy(out + o, "\xef\xbf\xbd", 3);
                        o += 3;
                        k++;
                }
        }
        return json_stringn(out, o);
}

static json_t *entry_json(const wl_log_entry *e) {
        json_t *data = utf8_json(e->data, e->len);
        return json_pack("{s:I, s:s, s:o}", "time", (json_int_t) e->time_us,
                         "stream", e->stream == WL_LOG_STDERR ? "stderr" : "stdout", "data", data ? data : json_string(""));
}

int wl_entries_add(const wl_log_entry *e, void *userdata) {
        wl_entry_acc *a = userdata;
        if (a->max && a->bytes + e->len > a->max && json_array_size(a->entries) > 0)
                return 1;   /* full */
        a->bytes += e->len;
        return json_array_append_new(a->entries, entry_json(e)) < 0 ? -ENOMEM : 0;
}

/* ---- waiters (run --wait, stop, logs -f) ---------------------------------------------------------- */

static void unlink_waiter(wl_waiter *wt) {
        for (wl_waiter **pp = &wt->inst->waiters; *pp; pp = &(*pp)->next)
                if (*pp == wt) {
                        *pp = wt->next;
                        break;
                }
}

void wl_waiter_cancel(osm_call *call, void *userdata) {
        wl_waiter *wt = userdata;
        unlink_waiter(wt);
        free(wt);
}

/* The client of a stop --all has gone: the member waiters stay until their instances
 * end (the last one frees the group), but nobody is answered. */
void wl_stop_group_cancel(osm_call *call, void *userdata) {
        wl_stop_group *g = userdata;
        g->call = NULL;
}

wl_waiter *wl_waiter_new(wl_instance *i, osm_call *call, int kind) {
        wl_waiter *wt = calloc(1, sizeof *wt);
        if (!wt)
                return NULL;
        wt->call = call;
        wt->kind = kind;
        wt->inst = i;
        wt->next = i->waiters;
        i->waiters = wt;
        return wt;
}

int wl_waiter_add(wl_instance *i, osm_call *call, int kind) {
        wl_waiter *wt = wl_waiter_new(i, call, kind);
        if (!wt)
                return -ENOMEM;
        osm_call_set_cancel(call, wl_waiter_cancel, wt);
        return 0;
}

/* Send the entries read since the last call to those who follow the output (logs -f,
 * run --wait attached); with final, end the logs -f streams. A follower whose reply
 * failed is left alone: its cancel callback unlinks and frees it (server.h). */
void wl_feed_followers(wl_instance *i, bool final) {
        json_t *entries = i->pending;
        i->pending = NULL;
        for (wl_waiter **pp = &i->waiters; *pp;) {
                wl_waiter *wt = *pp;
                bool follows = wt->kind == WL_WAIT_LOGS || (wt->kind == WL_WAIT_RUN && wt->attach);
                if (!follows) {
                        pp = &wt->next;
                        continue;
                }
                if (!wt->dead && json_array_size(entries)) {
                        json_t *p = json_pack("{s:O}", "entries", entries);
                        if (wt->kind == WL_WAIT_RUN)
                                json_object_set_new(p, "instance", json_string(i->id)),
                                json_object_set_new(p, "state", json_string(wl_state_names[i->state]));
                        wt->dead = osm_call_reply(wt->call, p, true) < 0;
                }
                if (final && wt->kind == WL_WAIT_LOGS) {
                        /* A final reply finishes the call (and it gets no cancel), gone or not. */
                        osm_call_set_cancel(wt->call, NULL, NULL);
                        osm_call_reply(wt->call, json_pack("{s:[]}", "entries"), false);
                        *pp = wt->next;
                        free(wt);
                } else
                        pp = &wt->next;
        }
        json_decref(entries);
}

/* Tell run --wait callers of a change of state, and why. */
static void notify_state(wl_instance *i, const char *reason) {
        for (wl_waiter *wt = i->waiters; wt; wt = wt->next) {
                if (wt->kind != WL_WAIT_RUN || wt->dead)
                        continue;
                json_t *p = json_pack("{s:s, s:s}", "instance", i->id, "state", wl_state_names[i->state]);
                if (reason)
                        json_object_set_new(p, "reason", json_string(reason));
                wt->dead = osm_call_reply(wt->call, p, true) < 0;
        }
}

void wl_add_exit(json_t *p, const wl_instance *i) {
        if (i->exit_code >= 0)
                json_object_set_new(p, "exit_code", json_integer(i->exit_code));
        if (i->signal > 0)
                json_object_set_new(p, "signal", json_integer(i->signal));
}

static void finish_waiters(wl_instance *i) {
        wl_feed_followers(i, true);
        while (i->waiters) {
                wl_waiter *wt = i->waiters;
                i->waiters = wt->next;
                if (wt->group) {
                        wl_stop_group *g = wt->group;
                        g->killed = g->killed || i->killed;
                        free(wt);
                        if (--g->pending > 0)
                                continue;
                        if (g->call) {
                                osm_call_set_cancel(g->call, NULL, NULL);
                                osm_call_reply(g->call, json_pack("{s:s, s:b, s:O}", "instance",
                                                                  json_string_value(json_array_get(g->ids, 0)),
                                                                  "killed", g->killed, "instances", g->ids), false);
                        }
                        json_decref(g->ids);
                        free(g);
                        continue;
                }
                osm_call_set_cancel(wt->call, NULL, NULL);
                json_t *p;
                if (wt->kind == WL_WAIT_RUN) {
                        p = json_pack("{s:s, s:s}", "instance", i->id, "state", wl_state_names[i->state]);
                        wl_add_exit(p, i);
                        if (i->state == WL_FAILED && i->exit_code < 0 && i->signal <= 0) {
                                osm_call_errorf(wt->call, OSM_E_WORKLOAD_SPAWN_FAILED, "%s: %s", i->id,
                                                i->error ? i->error : "failed to start");
                                free(wt);
                                continue;
                        }
                } else {
                        p = json_pack("{s:s, s:b}", "instance", i->id, "killed", i->killed);
                        wl_add_exit(p, i);
                }
                osm_call_reply(wt->call, p, false);
                free(wt);
        }
}

/* ---- ending, restarting ---------------------------------------------------------------------- */

static void trim_ended(osm_workloads *w) {
        while (w->n_ended > WL_MAX_ENDED) {
                wl_instance *oldest = NULL;
                for (wl_instance *i = w->instances; i; i = i->next)
                        if (!wl_instance_alive(i))
                                oldest = i;   /* the list is newest first */
                if (!oldest)
                        return;
                w->n_ended--;
                instance_release(oldest);
        }
}

/* The instance has ended for good: it will not be restarted. */
static void instance_end(wl_instance *i, wl_state state) {
        osm_workloads *w = i->w;
        uv_timer_stop(&i->timer);
        i->state = state;
        i->ended_us = osm_now_real_us();
        w->n_live--;
        w->n_ended++;
        /* Stopped by the daemon's own stop (not by the operator): it comes back at the next
         * start if its policy restarts it. */
        i->resume = w->shutting_down && !i->stopped_by_operator && i->restart != OSM_RESTART_NEVER &&
                    wl_find(w, i->workload) != NULL;
        wl_db_instance_end(i);
        if (i->signal > 0)
                log_info("instance %s ended: killed by signal %d%s", i->id, i->signal, i->killed ? " (after the grace period)" : "");
        else if (i->exit_code >= 0)
                log_info("instance %s ended: exit code %d", i->id, i->exit_code);
        else
                log_info("instance %s ended: %s", i->id, i->error ? i->error : "failed to start");
        /* The end is on disk (above) before anyone is told; the housekeeping below is not
         * the caller's to wait for (it all runs before the loop reads the next call). */
        finish_waiters(i);
        i->t.answered = osm_now_mono_us();
        /* Closing its API server (a listening socket, its directory) takes a while. */
        if (i->api_created && w->api_hooks.destroy)
                w->api_hooks.destroy(w->api_userdata, i->id);
        i->api_created = false;
        trim_ended(w);
        wl_gc_bundles(w);
        wl_removals_check(w);
        /* Two queries and a scan of the log directory: a few hundred µs, which a burst of
         * short runs need not pay at each end. */
        if (!w->shutting_down && ++w->ends_unswept >= WL_GC_EVERY)
                wl_history_gc(w);
}

static int spawn_now(wl_instance *i, osm_error *err);

/* The wait before the next restart: restart-delay doubled for each quick failure in a
 * row, capped by restart-max-delay; never below 10 ms (no busy restart loop). */
static uint64_t backoff_us(const wl_instance *i) {
        const osm_config *cfg = &i->w->d->cfg;
        uint64_t cap = OSM_MAX(cfg->restart_max_delay_us, 10000u);
        uint64_t delay = OSM_MIN(OSM_MAX(cfg->restart_delay_us, 10000u), cap);
        for (unsigned k = 1; k < i->failures && delay < cap; k++)
                delay = delay > cap / 2 ? cap : delay * 2;
        return delay;
}

static void on_backoff(uv_timer_t *t) {
        wl_instance *i = t->data;
        osm_error err = {};
        i->restarts++;
        i->t.call = i->t.recorded = osm_now_mono_us();
        if (spawn_now(i, &err) == 0)
                return;
        log_warning("instance %s: restart failed: %s", i->id, err.message);
        free(i->error);
        i->error = strdup(err.message);
        i->exit_code = -1;
        i->signal = 0;
        i->failures++;
        uint64_t delay = backoff_us(i);
        i->state = WL_BACKOFF;
        uv_timer_start(&i->timer, on_backoff, delay / 1000, 0);
        char why[640];
        snprintf(why, sizeof why, "could not start it again: %s; next try in %llu ms", err.message,
                 (unsigned long long) (delay / 1000));
        notify_state(i, why);
}

static void after_run(wl_instance *i) {
        osm_workloads *w = i->w;
        bool failed = i->signal > 0 || i->exit_code != 0;
        osm_restart_policy policy = i->restart;
        bool again = !i->stop_requested && !w->shutting_down && wl_find(w, i->workload) &&
                     (policy == OSM_RESTART_ALWAYS || (policy == OSM_RESTART_ON_FAILURE && failed));
        if (!again) {
                instance_end(i, WL_EXITED);
                return;
        }
        /* Exponential backoff: base, 2×base, 4×base … up to the cap; a run that lasted
         * long enough starts the series again. */
        uint64_t ran = osm_now_mono_us() - i->run_started_mono;
        i->failures = ran >= WL_RESTART_RESET_US ? 1 : i->failures + 1;
        uint64_t delay = backoff_us(i);
        log_info("instance %s: restarting in %llu ms (policy %s)", i->id,
                 (unsigned long long) (delay / 1000), osm_restart_policy_name(policy));
        i->state = WL_BACKOFF;
        uv_timer_start(&i->timer, on_backoff, delay / 1000, 0);
        char why[160], how[48];
        if (i->signal > 0)
                snprintf(how, sizeof how, "killed by signal %d", i->signal);
        else
                snprintf(how, sizeof how, "exit code %d", i->exit_code);
        snprintf(why, sizeof why, "%s; restart %s: next start in %llu ms", how, osm_restart_policy_name(policy),
                 (unsigned long long) (delay / 1000));
        notify_state(i, why);
}

static int pend_entry(const wl_log_entry *e, void *userdata) {
        wl_instance *i = userdata;
        if (!i->pending && !(i->pending = json_array()))
                return -ENOMEM;
        return json_array_append_new(i->pending, entry_json(e)) < 0 ? -ENOMEM : 0;
}

/* Does anyone follow the output? (Entries are only kept in memory for them.) */
static bool followed(const wl_instance *i) {
        for (const wl_waiter *wt = i->waiters; wt; wt = wt->next)
                if (wt->kind == WL_WAIT_LOGS || (wt->kind == WL_WAIT_RUN && wt->attach))
                        return true;
        return false;
}

/* Read what is in the pipe now into the log. Returns false at EOF or on error. */
static bool drain_pipe(wl_pipe *p) {
        wl_instance *i = p->inst;
        uint8_t buf[16384];
        for (;;) {
                ssize_t n = read(p->fd, buf, sizeof buf);
                if (n > 0) {
                        if (i->log && wl_log_write(i->log, p->stream, osm_now_real_us(), buf, (size_t) n,
                                                   followed(i) ? pend_entry : NULL, i) < 0)
                                log_debug("instance %s: writing its log failed", i->id);
                        continue;
                }
                if (n < 0 && errno == EINTR)
                        continue;
                bool more = n < 0 && errno == EAGAIN;
                wl_feed_followers(i, false);
                return more;
        }
}

static void close_pipe(wl_pipe *p) {
        if (p->poll) {
                uv_poll_stop(p->poll);
                close_handle(p->inst, (uv_handle_t *) p->poll);
                p->poll = NULL;
        }
        p->fd = osm_close(p->fd);
}

static void close_pipes(wl_instance *i) {
        for (size_t k = 0; k < 2; k++)
                close_pipe(&i->pipes[k]);
}

static void on_pipe(uv_poll_t *h, int status, int events) {
        wl_pipe *p = h->data;
        if (status < 0 || !drain_pipe(p))
                close_pipe(p);
}

static void on_pidfd(uv_poll_t *h, int status, int events) {
        on_exit_check(h->data);
}

/* The usage of proc (i's, ended) as its cgroups tell it, kept for ps and its tenant. */
static void snapshot_stats(wl_instance *i, const osm_sandbox_proc *proc) {
        osm_cgroup *cg = proc ? osm_sandbox_proc_cgroup(proc) : NULL;
        i->have_last = cg && osm_cgroup_stats_read(cg, &i->last) == 0;
}

static double ms(uint64_t from, uint64_t to) {
        return from && to > from ? (double) (to - from) / 1000.0 : 0.0;
}

/* One debug line per run: where the time of a start and an end went (ms per step, in
 * order; the sandbox's steps as osm_sandbox_timing tells them). The housekeeping ends
 * just before the cgroups are removed. */
static void log_launch_times(const wl_instance *i, const osm_sandbox_timing *st) {
        if (osm_log_get_level() < LOG_DEBUG || !i->t.spawned)
                return;
        uint64_t join_end = OSM_MAX(st->clone, st->joined);
        log_debug("instance %s: launch times: record=%.3f prepare=%.3f cgroups=%.3f clone=%.3f join=%.3f "
                  "join_critical=%d userns_ahead=%d preforked=%d root_ahead=%d root=%.3f exec=%.3f watch=%.3f ran=%.3f answer=%.3f housekeeping=%.3f",
                  i->id, ms(i->t.call, i->t.recorded), ms(i->t.recorded, i->t.spawn), st->cgroups / 1000.0,
                  (st->clone - st->cgroups) / 1000.0, st->joined ? (st->joined - st->clone) / 1000.0 : 0.0,
                  st->waited_for_join, st->userns_ahead, st->preforked, st->root_ahead, st->root ? (st->root - join_end) / 1000.0 : 0.0,
                  (st->started - OSM_MAX(join_end, (uint64_t) st->root)) / 1000.0,
                  ms(i->t.spawn + st->started, i->t.spawned), ms(i->t.spawned, i->t.exited),
                  ms(i->t.exited, i->t.answered), ms(i->t.answered, osm_now_mono_us()));
}

/* The sandbox's init may have exited: reap it and decide what comes next. */
static void on_exit_check(wl_instance *i) {
        if (!i->proc)
                return;
        osm_sandbox_exit ex;
        int r = osm_sandbox_proc_reap(i->proc, &ex);
        if (r == -EAGAIN)
                return;
        i->t.exited = osm_now_mono_us();
        if (i->pid_poll) {
                uv_poll_stop(i->pid_poll);
                close_handle(i, (uv_handle_t *) i->pid_poll);
                i->pid_poll = NULL;
        }
        /* Everything in its pid namespace is gone with its init, so the pipes have all
         * there will ever be: take the rest before closing them. */
        for (size_t k = 0; k < 2; k++)
                if (i->pipes[k].fd >= 0)
                        drain_pipe(&i->pipes[k]);
        close_pipes(i);
        if (r == 0) {
                i->ru = ex.rusage;
                i->have_ru = true;
                i->exit_code = WIFEXITED(ex.status) ? WEXITSTATUS(ex.status) : -1;
                i->signal = WIFSIGNALED(ex.status) ? WTERMSIG(ex.status) : 0;
                if (ex.oom_killed)
                        log_notice("instance %s: the memory limit was hit (OOM kill)", i->id);
        } else {
                i->exit_code = -1;
                i->signal = SIGKILL;
        }
        /* Answer first (after_run ends the instance and tells its waiters, or schedules
         * its restart), then read and account its usage (a dozen cgroup files, then a
         * synchronous commit) and remove its cgroups: none of it is in the caller's
         * critical path, and no answer carries the usage (ps reads it from i->last). A
         * restart comes from a timer, after both. i stays allocated until its handles
         * have closed, past this call. */
        osm_sandbox_proc *proc = i->proc;
        i->proc = NULL;
        uv_timer_stop(&i->timer);
        i->t.answered = 0;
        after_run(i);   /* sets t.answered when it has told the waiters */
        if (!i->t.answered)
                i->t.answered = osm_now_mono_us();
        snapshot_stats(i, proc);
        osm_tenants_account(i->w->d->tenants, i->tenant, i->workload, i->id, i->have_last ? &i->last : NULL, true);
        log_launch_times(i, osm_sandbox_proc_timing(proc));
        osm_sandbox_proc_free(proc);
}

/* Start (or restart) the instance's process. 0, or -errno with err set. */
static int spawn_now(wl_instance *i, osm_error *err) {
        osm_workloads *w = i->w;
        osm_daemon *d = w->d;
        wl_workload *wl = wl_find(w, i->workload);
        if (!d->sandbox)
                return osm_error_set(err, -ENOTSUP, 0, "the sandbox is not available on this host");
        if (!wl)
                return osm_error_set(err, -ENOENT, 0, "workload %s has been removed", i->workload);
        const osm_manifest *m = i->manifest;

        const char *argv[OSM_MANIFEST_MAX_ARGS + WL_MAX_RUN_ARGS + 1];
        size_t argc = 0;
        for (size_t k = 0; k < m->argc; k++)
                argv[argc++] = m->argv[k];
        for (char **p = i->args; p && *p; p++)
                argv[argc++] = *p;
        argv[argc] = NULL;

        /* Defaults first; the manifest's environment replaces any of them. */
        char inst_env[128], wl_env[128];
        snprintf(inst_env, sizeof inst_env, "OSMOSE_INSTANCE=%s", i->id);
        snprintf(wl_env, sizeof wl_env, "OSMOSE_WORKLOAD=%s", i->workload);
        const char *defaults[] = { "PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/data", "TERM=dumb",
                                   inst_env, wl_env, "OSMOSE_API=/run/osmose/api.sock" };
        const char *envp[OSM_ARRAY_SIZE(defaults) + OSM_MANIFEST_MAX_ENV + 1];
        size_t envc = 0;
        for (size_t k = 0; k < OSM_ARRAY_SIZE(defaults); k++) {
                size_t kl = strcspn(defaults[k], "=") + 1;
                bool overridden = false;
                for (size_t e = 0; e < m->n_env; e++)
                        overridden = overridden || strncmp(m->env[e], defaults[k], kl) == 0;
                if (!overridden)
                        envp[envc++] = defaults[k];
        }
        for (size_t e = 0; e < m->n_env; e++)
                envp[envc++] = m->env[e];
        envp[envc] = NULL;

        const char *devices[OSM_SANDBOX_MAX_DEVICES];
        size_t n_dev = 0;
        bool network = false;
        for (size_t g = 0; g < wl->n_grants; g++) {
                if (strcmp(wl->grants[g], "network") == 0)
                        network = true;
                else if (strncmp(wl->grants[g], "device:", 7) == 0 && n_dev < OSM_SANDBOX_MAX_DEVICES)
                        devices[n_dev++] = wl->grants[g] + 7;
        }

        _cleanup_free_ char *root = NULL, *data = NULL;
        if ((i->has_rootfs && asprintf(&root, "%s/%s/rootfs", w->bundles_dir, i->bundle_id) < 0) ||
            asprintf(&data, "%s/%s", w->data_dir, i->workload) < 0) {
                return osm_error_set(err, -ENOMEM, 0, "out of memory");
        }

        if (!i->api_created && w->api_hooks.create) {
                int r = w->api_hooks.create(w->api_userdata, i->id, i->workload, i->api_path, sizeof i->api_path);
                if (r < 0)
                        return osm_error_set(err, r, 0, "creating its API socket: %s", strerror(-r));
                i->api_created = true;
        }
        osm_sandbox_bind binds[1];
        size_t n_binds = 0;
        if (i->api_created)
                binds[n_binds++] = (osm_sandbox_bind) { .source = i->api_path, .target = "/run/osmose/api.sock" };

        /* stdout and stderr: a pipe each, so that the log tells them apart. */
        int pipefd[2][2] = { { -1, -1 }, { -1, -1 } };
        for (size_t k = 0; k < 2; k++)
                if (pipe2(pipefd[k], O_CLOEXEC) < 0) {
                        int r = osm_error_set(err, -errno, 0, "pipe: %m");
                        if (k)
                                close(pipefd[0][0]), close(pipefd[0][1]);
                        return r;
                }
        osm_sandbox_spec spec;
        osm_sandbox_spec_init(&spec);
        spec.name = i->id;
        spec.root = root;
        spec.argv = argv;
        spec.envp = envp;
        spec.data_dir = data;
        spec.binds = binds;
        spec.n_binds = n_binds;
        spec.devices = devices;
        spec.n_devices = n_dev;
        spec.network = network;
        spec.limits.memory = m->memory ? m->memory : d->cfg.default_memory;
        spec.limits.pids = m->pids ? m->pids : d->cfg.default_pids;
        spec.limits.cpu_percent = m->cpu_percent ? m->cpu_percent : d->cfg.default_cpu_percent;
        spec.limits.file_size = m->disk;   /* RLIMIT_FSIZE: the closest per-file bound we have */
        /* Its own host ids: no two workloads share one (a file one writes is not the
         * other's), and a tenant's instances sit in its group, whose limits hold their sum. */
        uint64_t range = d->cfg.uid_range_size ? d->cfg.uid_range_size : 65536;
        spec.uid_base = d->cfg.uid_base + (uint64_t) i->uid_block * range;
        spec.uid_count = range;
        const osm_tenant *tn = osm_tenants_find(d->tenants, i->tenant);
        char group[64];
        if (tn) {
                osm_tenant_group_name(tn->name, group, sizeof group);
                spec.group = group;
                spec.group_limits.memory = tn->memory;
                spec.group_limits.pids = tn->pids;
                spec.group_limits.cpu_percent = tn->cpu;
        }
        spec.stdout_fd = pipefd[0][1];
        spec.stderr_fd = pipefd[1][1];

        i->state = WL_STARTING;
        i->t.spawn = osm_now_mono_us();
        int r = osm_sandbox_spawn(d->sandbox, &spec, &i->proc, err);
        close(pipefd[0][1]);
        close(pipefd[1][1]);
        if (r < 0) {
                close(pipefd[0][0]);
                close(pipefd[1][0]);
                i->proc = NULL;
                return r;
        }
        for (size_t k = 0; k < 2; k++) {
                wl_pipe *p = &i->pipes[k];
                p->inst = i;
                p->stream = k == 0 ? WL_LOG_STDOUT : WL_LOG_STDERR;
                (void) fcntl(pipefd[k][0], F_SETFL, O_NONBLOCK);
                p->fd = pipefd[k][0];
                p->poll = malloc(sizeof *p->poll);
                if (p->poll && uv_poll_init(d->loop, p->poll, p->fd) == 0) {
                        p->poll->data = p;
                        i->open_handles++;
                        w->open_handles++;
                        uv_poll_start(p->poll, UV_READABLE | UV_DISCONNECT, on_pipe);
                } else {
                        free(p->poll);
                        p->poll = NULL;
                        p->fd = osm_close(p->fd);
                        log_warning("instance %s: cannot watch its %s; it is discarded", i->id,
                                    k == 0 ? "stdout" : "stderr");
                }
        }
        int pidfd = osm_sandbox_proc_pidfd(i->proc);
        if (pidfd >= 0) {
                i->pid_poll = malloc(sizeof *i->pid_poll);
                if (i->pid_poll && uv_poll_init(d->loop, i->pid_poll, pidfd) == 0) {
                        i->pid_poll->data = i;
                        i->open_handles++;
                        w->open_handles++;
                        uv_poll_start(i->pid_poll, UV_READABLE, on_pidfd);
                } else {
                        free(i->pid_poll);
                        i->pid_poll = NULL;   /* SIGCHLD still tells us */
                }
        }
        i->state = i->stop_requested ? WL_STOPPING : WL_RUNNING;
        i->run_started_mono = osm_now_mono_us();
        i->exit_code = -1;
        i->signal = 0;
        log_info("instance %s started (pid %d)", i->id, (int) osm_sandbox_proc_pid(i->proc));
        i->t.spawned = osm_now_mono_us();
        if (i->restarts > 0) {
                char why[48];
                snprintf(why, sizeof why, "restart %u", i->restarts);
                notify_state(i, why);
        }
        return 0;
}

/* ---- stopping -------------------------------------------------------------------------------- */

static void on_grace_over(uv_timer_t *t) {
        wl_instance *i = t->data;
        if (!i->proc)
                return;
        log_notice("instance %s: still running %llu ms after SIGTERM; sending SIGKILL", i->id,
                   (unsigned long long) (i->w->d->cfg.stop_timeout_us / 1000));
        i->killed = true;
        osm_sandbox_proc_kill(i->proc, SIGKILL);
}

/* Ask the instance to end: SIGTERM now, SIGKILL after stop_timeout. */
void wl_instance_request_stop(wl_instance *i) {
        i->stop_requested = true;
        if (i->state == WL_BACKOFF) {
                /* It ran before (a first start that fails never backs off): exited, even
                 * if the last restart attempt could not start it (error says why). */
                instance_end(i, WL_EXITED);
                return;
        }
        if (!i->proc || i->state == WL_STOPPING)
                return;
        i->state = WL_STOPPING;
        osm_sandbox_proc_kill(i->proc, SIGTERM);
        uv_timer_start(&i->timer, on_grace_over, i->w->d->cfg.stop_timeout_us / 1000, 0);
}

unsigned wl_tenant_live(osm_workloads *w, const char *tenant) {
        unsigned n = 0;
        for (wl_instance *i = w->instances; i; i = i->next)
                n += wl_instance_alive(i) && tenant && strcmp(i->tenant, tenant) == 0;
        return n;
}

void wl_instances_stop_workload(osm_workloads *w, const char *name) {
        for (wl_instance *i = w->instances, *next; i; i = next) {
                next = i->next;
                if (wl_instance_alive(i) && strcmp(i->workload, name) == 0) {
                        i->stopped_by_operator = true;
                        wl_instance_request_stop(i);
                }
        }
}

void wl_instances_begin_shutdown(osm_workloads *w) {
        for (wl_instance *i = w->instances, *next; i; i = next) {
                next = i->next;
                if (wl_instance_alive(i))
                        wl_instance_request_stop(i);
        }
}

void wl_instances_sigchld(osm_workloads *w) {
        for (wl_instance *i = w->instances, *next; i; i = next) {
                next = i->next;
                if (i->proc)
                        on_exit_check(i);
        }
}

/* The daemon is stopping (synchronous): SIGTERM every instance, wait for them up to
 * stop_timeout, SIGKILL the rest, then release everything. */
void wl_instances_stop_all(osm_workloads *w) {
        w->shutting_down = true;
        wl_instances_begin_shutdown(w);
        uint64_t deadline = osm_now_mono_us() + w->d->cfg.stop_timeout_us;
        for (;;) {
                struct pollfd pfd[WL_MAX_INSTANCES];
                nfds_t n = 0;
                bool any = false;
                for (wl_instance *i = w->instances; i; i = i->next) {
                        if (!i->proc)
                                continue;
                        any = true;
                        int fd = osm_sandbox_proc_pidfd(i->proc);
                        if (fd >= 0 && n < WL_MAX_INSTANCES)
                                pfd[n++] = (struct pollfd) { .fd = fd, .events = POLLIN };
                }
                uint64_t now = osm_now_mono_us();
                if (!any || now >= deadline)
                        break;
                uint64_t wait_ms = OSM_MIN((deadline - now) / 1000 + 1, 50u);
                (void) poll(pfd, n, (int) wait_ms);
                wl_instances_sigchld(w);
        }
        for (wl_instance *i = w->instances, *next; i; i = next) {
                next = i->next;
                if (i->proc) {
                        log_notice("instance %s: still running at shutdown; killing it", i->id);
                        i->killed = true;
                        osm_sandbox_proc_kill(i->proc, SIGKILL);
                        /* proc_free kills and reaps; on_exit_check first for the status */
                        for (int k = 0; k < 100 && i->proc; k++) {
                                on_exit_check(i);
                                if (i->proc)
                                        usleep(10000);
                        }
                        if (i->proc) {
                                i->proc = osm_sandbox_proc_free(i->proc);
                                if (wl_instance_alive(i))
                                        instance_end(i, WL_EXITED);
                        }
                }
        }
        while (w->instances) {
                wl_instance *i = w->instances;
                if (wl_instance_alive(i))
                        instance_end(i, WL_EXITED);
                close_pipes(i);
                if (i->pid_poll) {
                        close_handle(i, (uv_handle_t *) i->pid_poll);
                        i->pid_poll = NULL;
                }
                instance_release(i);
        }
}

/* ---- starting ------------------------------------------------------------------------------ */

int wl_instance_run(osm_workloads *w, wl_workload *wl, const char *const *args, size_t n_args,
                    osm_restart_policy restart, const char *id, unsigned restarts,
                    wl_instance **out, osm_error *err) {
        uint64_t t_call = osm_now_mono_us();
        if (out)
                *out = NULL;
        if (w->n_live >= WL_MAX_INSTANCES)
                return osm_error_set(err, -EBUSY, 0, "already %d instances running", WL_MAX_INSTANCES);
        wl_instance *i = calloc(1, sizeof *i);
        osm_manifest *m = NULL;
        if (!i || osm_manifest_parse(wl->manifest_text, strlen(wl->manifest_text), &m, NULL) < 0) {
                free(i);
                return osm_error_set(err, -ENOMEM, 0, "out of memory");
        }
        i->w = w;
        i->manifest = m;
        i->pipes[0].fd = i->pipes[1].fd = -1;
        i->exit_code = -1;
        i->restart = restart;
        i->restarts = restarts;
        i->workload = strdup(wl->name);
        i->tenant = strdup(wl->tenant ? wl->tenant : OSM_TENANT_OPERATOR);
        i->uid_block = wl->uid_block;
        i->bundle_id = strdup(wl->bundle_id);
        i->version = wl->version;
        i->has_rootfs = wl->has_rootfs;
        i->id = id ? strdup(id) : NULL;
        i->args = calloc(n_args + 1, sizeof(char *));
        bool oom = !i->workload || !i->tenant || !i->bundle_id || !i->args || (id && !i->id);
        for (size_t k = 0; k < n_args && !oom; k++)
                oom = !(i->args[k] = strdup(args[k]));
        if (oom) {
                instance_free(i);
                return osm_error_set(err, -ENOMEM, 0, "out of memory");
        }
        i->t.call = t_call;
        i->started_us = osm_now_real_us();
        wl_db_instance_start(i);   /* sets i->id for a new instance */
        if (!i->id) {
                instance_free(i);
                return osm_error_set(err, -EIO, 0, "recording the instance failed");
        }
        int r = w->logs_fd >= 0 ? wl_log_open(w->logs_fd, i->id, OSM_MAX(w->d->cfg.log_size, 1024u), &i->log) : -EBADF;
        if (r < 0)
                log_warning("instance %s: cannot open its log: %s; its output is discarded", i->id, strerror(-r));
        i->t.recorded = osm_now_mono_us();
        uv_timer_init(w->d->loop, &i->timer);
        i->timer.data = i;
        i->open_handles++;
        w->open_handles++;
        i->next = w->instances;
        w->instances = i;
        w->n_live++;
        if (out)
                *out = i;

        osm_error e = {};
        r = spawn_now(i, &e);
        if (r < 0) {
                log_warning("instance %s failed to start: %s", i->id, e.message);
                i->error = strdup(e.message);
                if (err)
                        *err = e;
                instance_end(i, WL_FAILED);
                return r;
        }
        return 0;
}

/* ---- lookups -------------------------------------------------------------------------------- */

/* Live instances of workload name (at most max of them into v); how many there are. */
size_t wl_instances_live_of(osm_workloads *w, const char *name, wl_instance **v, size_t max) {
        size_t n = 0;
        for (wl_instance *i = w->instances; i; i = i->next)
                if (wl_instance_alive(i) && strcmp(i->workload, name) == 0) {
                        if (n < max)
                                v[n] = i;
                        n++;
                }
        return n;
}

/* An instance in memory by id, or by workload name: its live one (the newest if several:
 * callers that must not guess check live_of first), else its newest one. NULL if none. */
wl_instance *wl_instance_resolve(osm_workloads *w, const char *arg) {
        wl_instance *newest = NULL, *live = NULL;
        for (wl_instance *i = w->instances; i; i = i->next) {
                if (strcmp(i->id, arg) == 0)
                        return i;
                if (strcmp(i->workload, arg) == 0) {
                        if (!newest)
                                newest = i;
                        if (!live && wl_instance_alive(i))
                                live = i;
                }
        }
        return live ? live : newest;
}

json_t *wl_instance_json(const wl_instance *i) {
        json_t *o = json_pack("{s:s, s:s, s:I, s:s, s:I, s:I, s:s}", "id", i->id, "workload", i->workload,
                              "version", (json_int_t) i->version, "state", wl_state_names[i->state],
                              "started", (json_int_t) i->started_us, "restarts", (json_int_t) i->restarts,
                              "restart", osm_restart_policy_name(i->restart));
        if (!o)
                return NULL;
        if (i->proc)
                json_object_set_new(o, "pid", json_integer(osm_sandbox_proc_pid(i->proc)));
        if (!wl_instance_alive(i)) {
                json_object_set_new(o, "ended", json_integer(i->ended_us));
                wl_add_exit(o, i);
        }
        if (i->error)
                json_object_set_new(o, "error", json_string(i->error));
        return o;
}

void wl_describe_end(const wl_instance *i, char *buf, size_t size) {
        if (i->signal > 0)
                snprintf(buf, size, "killed by signal %d", i->signal);
        else if (i->exit_code >= 0)
                snprintf(buf, size, "exit code %d", i->exit_code);
        else
                snprintf(buf, size, "%s", i->error ? i->error : "it did not start");
}
