/* workloads.c: the workload subsystem: installed workloads and grants in memory, bundle
 * clean-up, the lookups for other subsystems, start and stop. SQL is in db.c, the Varlink
 * methods in iface-workload.c, install in install.c, trust in trust.c, instances in instance.c. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "daemon/tenant/tenants.h"
#include "daemon/workload/wl.h"
#include "osmose/log.h"


void wl_workload_free(wl_workload *wl) {
        if (!wl)
                return;
        free(wl->name);
        free(wl->bundle_id);
        free(wl->manifest_text);
        osm_manifest_free(wl->manifest);
        free(wl->signer);
        osm_strv_free(wl->grants);
        free(wl->tenant);
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

        int r = wl_db_save_grants(w, wl->name, v, n);
        if (r < 0) {
                osm_strv_free(v);
                return r;
        }
        osm_strv_free(wl->grants);
        wl->grants = v;
        wl->n_grants = n;
        w->grants_gen++;
        return 0;
}

/* Record an install or upgrade of a parsed, verified bundle: the db first (one
 * transaction), then memory. grants must all be requested by m. m is consumed. */
int wl_commit_install(osm_workloads *w, osm_manifest *m, const char *manifest_text,
                      const char *bundle_id, bool has_rootfs, const char *signer, bool verified,
                      bool allow_unsigned, const char *source, char **grants, size_t n_grants,
                      const char *tenant) {
        wl_workload *prev = wl_find(w, m->name);
        if (!tenant)
                tenant = prev && prev->tenant ? prev->tenant : OSM_TENANT_OPERATOR;
        int64_t block;
        int r = wl_db_owner_assign(w, m->name, tenant, &block);
        if (r < 0) {
                osm_manifest_free(m);
                return r;
        }
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
        wl->tenant = strdup(tenant);
        wl->uid_block = block;
        if (!wl->name || !wl->bundle_id || !wl->manifest_text || (signer && !wl->signer) || !wl->grants ||
            !wl->tenant) {
                wl_workload_free(wl);
                return -ENOMEM;
        }
        wl->version = m->version;
        wl->has_rootfs = has_rootfs;
        wl->verified = verified;
        wl->allow_unsigned = allow_unsigned;
        wl->installed_us = osm_now_real_us();
        wl->enabled = prev && prev->enabled;   /* an upgrade stays enabled */

        r = wl_db_save_install(w, wl, source);
        if (r < 0) {
                wl_workload_free(wl);
                return r;
        }
        /* INSERT OR REPLACE deleted the old row, and with it (cascade) its grants. */
        wl_workload **pp = &w->workloads;
        while (*pp && strcmp((*pp)->name, wl->name) != 0)
                pp = &(*pp)->next;
        if (*pp) {
                wl_workload *old = *pp;
                *pp = old->next;
                wl_workload_free(old);
        }
        wl->next = w->workloads;
        w->workloads = wl;
        return wl_set_grants(w, wl, grants, n_grants);
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
        if (wl_snapshot_holds(w, id))
                return true;
        for (wl_workload *wl = w->workloads; wl; wl = wl->next)
                if (strcmp(wl->bundle_id, id) == 0)
                        return true;
        for (wl_instance *i = w->instances; i; i = i->next)
                if (wl_instance_alive(i) && strcmp(i->bundle_id, id) == 0)
                        return true;
        return false;
}

static bool data_in_use(osm_workloads *w, const char *name) {
        int64_t block;
        /* An owner row without a workload: removed with its data kept (a removed tenant's,
         * until its keep-data time; see osm_workloads_purge_data). */
        if (wl_find(w, name) || wl_db_data_kept(w, name) || wl_db_owner_get(w, name, NULL, &block) == 0)
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

uint64_t osm_workloads_grants_generation(const osm_workloads *w) {
        return w->grants_gen;
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

static void on_boot(uv_timer_t *h) {
        osm_workloads *w = h->data;
        if (!w->shutting_down)
                wl_history_start(w);
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
                wl_workload_free(wl);
        }
        wl_snapshots_free_all(w);
        wl_db_close(w);
        free(w->state_dir);
        free(w->trust_dir);
        free(w->bundles_dir);
        free(w->data_dir);
        free(w->logs_dir);
        osm_close(w->logs_fd);
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
        w->logs_fd = -1;
        w->state_dir = strdup(d->cfg.state_dir);
        w->trust_dir = path_join(d->cfg.state_dir, "trust");
        w->bundles_dir = path_join(d->cfg.state_dir, "bundles");
        w->data_dir = path_join(d->cfg.state_dir, "data");
        w->logs_dir = path_join(d->cfg.state_dir, "logs");
        if (!w->state_dir || !w->trust_dir || !w->bundles_dir || !w->data_dir || !w->logs_dir) {
                workloads_free(w);
                return -ENOMEM;
        }
        int r;
        const char *dirs[] = { w->trust_dir, w->bundles_dir, w->data_dir, w->logs_dir };
        for (size_t i = 0; i < OSM_ARRAY_SIZE(dirs); i++)
                if ((r = osm_mkdir_p(dirs[i], 0700)) < 0) {
                        log_error("workloads: creating %s: %s", dirs[i], strerror(-r));
                        workloads_free(w);
                        return r;
                }
        _cleanup_free_ char *dbpath = path_join(d->cfg.state_dir, "workloads.db");
        if (!dbpath) {
                log_error("workloads: opening db: out of memory");
                workloads_free(w);
                return -ENOMEM;
        }
        w->logs_fd = open(w->logs_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (w->logs_fd < 0)
                log_warning("workloads: opening %s: %m; instance output is not kept", w->logs_dir);
        if ((r = wl_db_open(w, dbpath)) < 0) {
                workloads_free(w);
                return r;
        }
        if ((r = wl_snapshots_load(w)) < 0)
                log_warning("workloads: the snapshots of interrupted upgrades cannot be read: %s", strerror(-r));
        wl_gc_bundles(w);

        if ((r = osm_server_add_methods(d->server, wl_methods, wl_n_methods, w)) < 0) {
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
        /* Instances that ran when the daemon stopped, and enabled workloads, start once
         * every subsystem has started (the api subsystem's hooks are set by then). */
        uv_timer_init(d->loop, &w->boot);
        w->boot.data = w;
        uv_timer_start(&w->boot, on_boot, 0, 0);
        w->open_handles += 3;
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
        uv_close((uv_handle_t *) &w->boot, on_own_handle_closed);
        wl_removals_check(w);   /* the instances have ended: answer pending removes */
}

static size_t n_installed(const osm_workloads *w) {
        size_t n = 0;
        for (wl_workload *wl = w->workloads; wl; wl = wl->next)
                n++;
        return n;
}

static osm_health workloads_health(osm_daemon *d, char *detail, size_t size) {
        osm_workloads *w = d->workloads;
        if (!w) {
                snprintf(detail, size, "not running");
                return OSM_HEALTH_FAILED;
        }
        if (!d->sandbox) {
                snprintf(detail, size, "no sandbox: workloads cannot run");
                return OSM_HEALTH_DEGRADED;
        }
        snprintf(detail, size, "%zu installed, %u running", n_installed(w), w->n_live);
        return OSM_HEALTH_OK;
}

static void workloads_status(osm_daemon *d, json_t *obj) {
        osm_workloads *w = d->workloads;
        if (w)
                json_object_set_new(obj, "info", json_pack("{s:I, s:I}", "installed", (json_int_t) n_installed(w),
                                                           "running", (json_int_t) w->n_live));
}

const osm_subsystem osm_workloads_subsystem = {
        .name = "workloads",
        .start = workloads_start,
        .stop = workloads_stop,
        .health = workloads_health,
        .status = workloads_status,
};

/* ---- for the tenants subsystem ---------------------------------------------------------------- */

void osm_workloads_foreach(osm_workloads *w, void (*fn)(void *, const char *, const char *), void *userdata) {
        for (wl_workload *wl = w ? w->workloads : NULL; wl; wl = wl->next)
                fn(userdata, wl->name, wl->tenant);
}

void osm_workloads_foreach_live(osm_workloads *w,
                                void (*fn)(void *, const char *, const char *, const char *, const osm_cgroup *),
                                void *userdata) {
        for (wl_instance *i = w ? w->instances : NULL; i; i = i->next)
                if (i->proc && (i->state == WL_RUNNING || i->state == WL_STOPPING))
                        fn(userdata, i->id, i->workload, i->tenant, osm_sandbox_proc_cgroup(i->proc));
}

void osm_workloads_tenant_counts(osm_workloads *w, const char *tenant, unsigned *workloads, unsigned *running) {
        *workloads = 0;
        for (wl_workload *wl = w->workloads; wl; wl = wl->next)
                *workloads += wl->tenant && strcmp(wl->tenant, tenant) == 0;
        *running = wl_tenant_live(w, tenant);
}

void osm_workloads_stop_tenant(osm_workloads *w, const char *tenant) {
        for (wl_instance *i = w->instances, *next; i; i = next) {
                next = i->next;
                if (wl_instance_alive(i) && strcmp(i->tenant, tenant) == 0)
                        wl_instance_request_stop(i);
        }
}

void osm_workloads_remove_tenant(osm_workloads *w, const char *tenant, json_t *removed) {
        for (wl_workload **pp = &w->workloads; *pp;) {
                wl_workload *wl = *pp;
                if (!wl->tenant || strcmp(wl->tenant, tenant) != 0 || wl_db_remove(w, wl, true) < 0) {
                        pp = &wl->next;
                        continue;
                }
                log_info("workload %s of tenant %s removed (its data is kept)", wl->name, tenant);
                json_array_append_new(removed, json_string(wl->name));
                *pp = wl->next;
                w->grants_gen++;
                wl_instances_stop_workload(w, wl->name);
                wl_workload_free(wl);
        }
        wl_gc_bundles(w);
}

int osm_workloads_purge_data(osm_workloads *w, const char *name) {
        if (wl_find(w, name))
                return -EBUSY;
        _cleanup_close_ int dfd = open(w->data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return -errno;
        int r = wl_rm_rf_at(dfd, name);
        if (r < 0)
                return r;
        wl_db_history(w, name, "purge", 0, NULL, "data removed");
        return wl_db_owner_release(w, name);
}

uint64_t osm_workloads_instance_uid_base(osm_workloads *w, const char *instance_id) {
        wl_instance *i = w ? live_instance(w, instance_id) : NULL;
        if (!i)
                return 0;
        uint64_t range = w->d->cfg.uid_range_size ? w->d->cfg.uid_range_size : 65536;
        return w->d->cfg.uid_base + (uint64_t) i->uid_block * range;
}
