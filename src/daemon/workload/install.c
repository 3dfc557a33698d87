/* install.c: Install: take a bundle (an fd from the caller, or fetched with libcurl), copy it
 * into a private file, check its signature against the trusted keys and its structure —
 * all before anything is unpacked — then check rollback and grants, unpack, record. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"
#include "daemon/building/building.h"
#include "daemon/fetch.h"
#include "daemon/tenant/tenants.h"
#include "daemon/workload/wl.h"
#include "osmose/bundle.h"
#include "osmose/log.h"

typedef struct install_job {
        uv_work_t work;
        osm_workloads *w;
        osm_call *call;           /* NULL once the client has gone */
        int src_fd;
        char *url;
        bool allow_unsigned, allow_downgrade;
        char **grants;            /* requested by the operator (syntax checked) */
        size_t n_grants;
        uint64_t max_size;
        uint64_t fetch_timeout_us;
        int phase;                /* 1: copy, verify, check; 2: unpack */
        bool holds_ref;           /* counted in w->open_handles while queued */
        /* results */
        int tmp_fd;               /* the private copy (O_TMPFILE) */
        osm_bundle_info info;
        char id_hex[OSM_HASH_HEX];
        char signer[OSM_PUBKEY_B64];
        bool verified;
        char *manifest_text;
        size_t manifest_len;
        bool has_rootfs;
        osm_manifest *manifest;
        const char *err_name;     /* set when a phase failed */
        char err[512];            /* its message */
        osm_vl_error error;       /* the whole error, for one that carries more than a message */
        wl_install_hooks hooks;   /* an install for another subsystem (channels) */
        char caller_tenant[OSM_TENANT_NAME_MAX + 1];   /* "" for an operator */
        char *tenant;             /* the owner asked for by an operator; NULL: keep/operator */
} install_job;

static void job_fail(install_job *j, const char *name, const char *fmt, ...) OSM_PRINTF(3, 4);
static void job_fail(install_job *j, const char *name, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(j->err, sizeof j->err, fmt, ap);
        va_end(ap);
        j->err_name = name;
}

/* The same for an error with fields besides its message: e from its generated constructor,
 * given j->err as the message (job_fail first, or job_fail_error(j, osm_error_…(j->err, …))). */
static void job_fail_error(install_job *j, osm_vl_error e) {
        json_decref(j->error.params);
        j->error = e;
        j->err_name = e.name;
}

static void job_free(install_job *j) {
        if (j->holds_ref)
                wl_handle_closed(j->w);   /* the subsystem may be freed now, after a stop */
        osm_close(j->src_fd);
        osm_close(j->tmp_fd);
        free(j->url);
        free(j->tenant);
        free(j->hooks.expect_name);
        free(j->hooks.expect_id);
        free(j->hooks.source);
        for (size_t i = 0; i < j->n_grants; i++)
                free(j->grants[i]);
        free(j->grants);
        free(j->manifest_text);
        osm_manifest_free(j->manifest);
        json_decref(j->error.params);
        free(j);
}

/* A private, unnamed file in dir: O_TMPFILE, or where the file system lacks it, a
 * mkstemp'd file unlinked at once. Returns the fd or -errno. */
static int private_file(const char *dir) {
        int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL))
                return fd >= 0 ? fd : -errno;
        char *p;
        if (asprintf(&p, "%s/.tmp-XXXXXX", dir) < 0)
                return -ENOMEM;
        fd = mkostemp(p, O_CLOEXEC);
        int r = fd < 0 ? -errno : fd;
        if (fd >= 0)
                unlink(p);
        free(p);
        return r;
}

/* ---- fetching (thread pool) ------------------------------------------------------------- */

/* Fetch j->url into a new private file; returns its fd (offset 0) or -1 with j->err set. */
static int fetch(install_job *j) {
        _cleanup_close_ int fd = private_file(j->w->bundles_dir);
        if (fd < 0) {
                job_fail(j, OSM_E_INTERNAL_ERROR, "creating a temporary file in %s: %s", j->w->bundles_dir,
                         strerror(-fd));
                return -1;
        }
        /* Aborted when the daemon stops. */
        osm_fetch_opts o = { .max_size = j->max_size, .timeout_us = j->fetch_timeout_us,
                             .abort_flag = &j->w->abort_installs };
        osm_error why = {};
        if (osm_fetch_url(j->url, fd, &o, &why) < 0) {
                job_fail(j, OSM_E_WORKLOAD_FETCH_FAILED, "%s", why.message);
                return -1;
        }
        if (lseek(fd, 0, SEEK_SET) < 0) {
                job_fail(j, OSM_E_INTERNAL_ERROR, "lseek: %m");
                return -1;
        }
        return steal_fd(&fd);
}

/* ---- phase 1: copy, hash, verify, check the structure (thread pool) ----------------------- */

static void phase1(install_job *j) {
        osm_workloads *w = j->w;
        if (j->url) {
                j->src_fd = fetch(j);
                if (j->src_fd < 0)
                        return;
        }
        j->tmp_fd = private_file(w->bundles_dir);
        if (j->tmp_fd < 0) {
                job_fail(j, OSM_E_INTERNAL_ERROR, "creating a temporary file in %s: %s", w->bundles_dir,
                         strerror(-j->tmp_fd));
                return;
        }
        osm_error why = {};
        int r = osm_bundle_copy(j->src_fd, j->tmp_fd, j->max_size, &j->info, &why);
        j->src_fd = osm_close(j->src_fd);
        if (r < 0) {
                job_fail(j, r == -ENOMEM ? OSM_E_INTERNAL_ERROR : OSM_E_WORKLOAD_BAD_BUNDLE, "%s", why.message);
                return;
        }
        osm_hash_hex(j->info.id, j->id_hex);

        /* The signature, against the trusted keys, before anything else is looked at. */
        if (j->info.is_signed) {
                osm_pubkey_encode(j->info.pubkey, j->signer);
                if (osm_bundle_verify_signature(&j->info) < 0) {
                        job_fail(j, OSM_E_WORKLOAD_BAD_BUNDLE, "the signature by %s does not match the bundle's "
                                 "contents: it was tampered with or is corrupt", j->signer);
                        return;
                }
                r = wl_trust_is_trusted(w, j->info.pubkey);
#if HAVE_BUILDING
                if (r == 0 && osm_building_trusts(w->d, j->signer))
                        r = 1;   /* trusted building-wide (osmosectl building trust add) */
#endif
                if (r < 0) {
                        job_fail(j, OSM_E_INTERNAL_ERROR, "reading the trusted keys: %s", strerror(-r));
                        return;
                }
                j->verified = r == 1;
                if (!j->verified && !j->allow_unsigned) {
                        job_fail(j, OSM_E_WORKLOAD_UNTRUSTED, "signed by %s, which is not a trusted key "
                                 "(osmosectl trust add KEY)", j->signer);
                        job_fail_error(j, osm_error_workload_untrusted(j->err, j->signer));
                        return;
                }
        } else if (!j->allow_unsigned) {
                job_fail(j, OSM_E_WORKLOAD_UNTRUSTED, "the bundle is not signed (--allow-unsigned installs it "
                         "anyway, for development; that is recorded)");
                return;
        }

        r = osm_bundle_unpack(j->tmp_fd, -1, &j->manifest_text, &j->manifest_len, &j->has_rootfs,
                              &why);
        if (r < 0) {
                job_fail(j, r == -ENOMEM ? OSM_E_INTERNAL_ERROR : OSM_E_WORKLOAD_BAD_BUNDLE, "%s", why.message);
                return;
        }
        r = osm_manifest_parse(j->manifest_text, j->manifest_len, &j->manifest, &why);
        if (r < 0) {
                job_fail(j, r == -ENOMEM ? OSM_E_INTERNAL_ERROR : OSM_E_WORKLOAD_BAD_BUNDLE, "manifest: %s", why.message);
                return;
        }
        if (strlen(j->manifest_text) != j->manifest_len) {
                job_fail(j, OSM_E_WORKLOAD_BAD_BUNDLE, "manifest: contains a NUL byte");
                return;
        }
}

/* ---- phase 2: unpack into bundles/<id> (thread pool) ----------------------------------------- */

static void phase2(install_job *j) {
        osm_workloads *w = j->w;
        _cleanup_free_ char *tmp = NULL, *final = NULL;
        if (asprintf(&tmp, "%s/.unpack-XXXXXX", w->bundles_dir) < 0 ||
            asprintf(&final, "%s/%s", w->bundles_dir, j->id_hex) < 0) {
                job_fail(j, OSM_E_INTERNAL_ERROR, "out of memory");
                return;
        }
        if (!mkdtemp(tmp)) {
                job_fail(j, OSM_E_INTERNAL_ERROR, "mkdtemp in %s: %m", w->bundles_dir);
                return;
        }
        (void) chmod(tmp, 0755);
        _cleanup_close_ int dfd = open(tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        _cleanup_close_ int rootfd = -1, mfd = -1;
        osm_error why = {};
        int r = dfd < 0 ? -errno : 0;
        if (r == 0 && j->has_rootfs) {
                if (mkdirat(dfd, "rootfs", 0755) < 0 ||
                    (rootfd = openat(dfd, "rootfs", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
                        r = -errno;
                else
                        (void) fchmod(rootfd, 0755);
        }
        if (r < 0) {
                job_fail(j, OSM_E_INTERNAL_ERROR, "preparing %s: %s", tmp, strerror(-r));
                goto fail;
        }
        if (j->has_rootfs) {
                _cleanup_free_ char *mt = NULL;
                size_t ml;
                bool hr;
                r = osm_bundle_unpack(j->tmp_fd, rootfd, &mt, &ml, &hr, &why);
                if (r < 0) {
                        job_fail(j, r == -EBADMSG ? OSM_E_WORKLOAD_BAD_BUNDLE : OSM_E_INTERNAL_ERROR, "%s", why.message);
                        goto fail;
                }
        }
        mfd = openat(dfd, "manifest.json", O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (mfd < 0 || osm_write_all(mfd, j->manifest_text, j->manifest_len) < 0 || fsync(mfd) < 0 ||
            syncfs(dfd) < 0) {
                job_fail(j, OSM_E_INTERNAL_ERROR, "writing %s/manifest.json: %m", tmp);
                goto fail;
        }
        if (rename(tmp, final) < 0) {
                if (errno == ENOTEMPTY || errno == EEXIST)   /* the same bundle, unpacked meanwhile */
                        goto fail_quiet;
                job_fail(j, OSM_E_INTERNAL_ERROR, "renaming %s to %s: %m", tmp, final);
                goto fail;
        }
        return;
fail:
fail_quiet:
        wl_rm_rf_at(AT_FDCWD, tmp);
}

static void work_cb(uv_work_t *req) {
        install_job *j = req->data;
        if (j->phase == 1)
                phase1(j);
        else
                phase2(j);
}

/* ---- on the loop --------------------------------------------------------------------------- */

static void job_cancel(osm_call *call, void *userdata) {
        install_job *j = userdata;
        j->call = NULL;   /* the install goes on; nobody is told */
}

static void job_finish_error(install_job *j) {
        log_notice("install%s%s refused: %s", j->url ? " from " : "", j->url ? j->url : "", j->err);
        if (j->call) {
                osm_call_set_cancel(j->call, NULL, NULL);
                if (j->error.name) {
                        osm_call_fail(j->call, j->error);
                        j->error.params = NULL;
                } else {
                        osm_call_errorf_name(j->call, j->err_name, "%s", j->err);
                }
        }
        if (j->hooks.done)
                j->hooks.done(j->hooks.userdata, j->err_name, j->err);
        j->w->installing = false;
        job_free(j);
}

static void after_work_cb(uv_work_t *req, int status);

static void start_phase(install_job *j, int phase) {
        j->phase = phase;
        j->work.data = j;
        int r = uv_queue_work(j->w->d->loop, &j->work, work_cb, after_work_cb);
        if (r < 0) {
                job_fail(j, OSM_E_INTERNAL_ERROR, "uv_queue_work: %s", uv_strerror(r));
                job_finish_error(j);
        }
}

static json_t *strv_json(char **v, size_t n) {
        json_t *a = json_array();
        for (size_t i = 0; a && i < n; i++)
                json_array_append_new(a, json_string(v[i]));
        return a;
}

/* After phase 1: rollback protection and grants, against the installed state. */
static void check_and_unpack(install_job *j) {
        osm_workloads *w = j->w;
        osm_manifest *m = j->manifest;
        if (j->hooks.expect_id && strcmp(j->hooks.expect_id, j->id_hex) != 0) {
                job_fail(j, OSM_E_WORKLOAD_BAD_BUNDLE, "bundle %s is not the expected %s", j->id_hex, j->hooks.expect_id);
                job_finish_error(j);
                return;
        }
        if (j->hooks.expect_name && strcmp(j->hooks.expect_name, m->name) != 0) {
                job_fail(j, OSM_E_WORKLOAD_BAD_BUNDLE, "the bundle holds workload %s, not %s", m->name, j->hooks.expect_name);
                job_finish_error(j);
                return;
        }
        wl_workload *old = wl_find(w, m->name);
        if (old && !j->allow_downgrade &&
            (m->version < old->version || (m->version == old->version && strcmp(old->bundle_id, j->id_hex) != 0))) {
                if (m->version < old->version)
                        job_fail(j, OSM_E_WORKLOAD_DOWNGRADE, "%s version %lld is installed; refusing the older version "
                                 "%lld (--allow-downgrade installs it anyway)", m->name,
                                 (long long) old->version, (long long) m->version);
                else
                        job_fail(j, OSM_E_WORKLOAD_DOWNGRADE, "%s version %lld is installed from another bundle; a new "
                                 "build needs a new version (or --allow-downgrade)", m->name,
                                 (long long) old->version);
                job_fail_error(j, osm_error_workload_downgrade(j->err, old->version, m->version));
                job_finish_error(j);
                return;
        }
        const char *caller = j->caller_tenant[0] ? j->caller_tenant : NULL;
        if (caller && !j->verified) {
                job_fail(j, OSM_E_WORKLOAD_UNTRUSTED, "a tenant may install only bundles signed by a trusted key "
                         "(--allow-unsigned is for operators)");
                job_finish_error(j);
                return;
        }
        const char *owner = caller ? caller : j->tenant;
        if (old && owner && strcmp(old->tenant, owner) != 0) {
                /* A tenant learns nothing of another's workloads: the name is just taken. */
                job_fail(j, OSM_E_WORKLOAD_BAD_BUNDLE, "the workload name %s is taken; rename the bundle", m->name);
                job_finish_error(j);
                return;
        }
        if (j->tenant && !osm_tenants_find(w->d->tenants, j->tenant) && strcmp(j->tenant, OSM_TENANT_OPERATOR) != 0) {
                job_fail(j, OSM_E_TENANT_NO_SUCH_TENANT, "no tenant named '%s'", j->tenant);
                job_fail_error(j, osm_error_tenant_no_such_tenant(j->err, j->tenant));
                job_finish_error(j);
                return;
        }
        for (size_t i = 0; i < j->n_grants; i++) {
                osm_error gerr = {};
                if (!osm_tenants_grant_ok(w->d->tenants, caller, j->grants[i], &gerr)) {
                        job_fail(j, OSM_E_PERMISSION_DENIED, "%s", gerr.message);
                        job_fail_error(j, osm_error_permission_denied(j->err, j->grants[i]));
                        job_finish_error(j);
                        return;
                }
        }
        for (size_t i = 0; i < j->n_grants; i++)
                if (!osm_manifest_requests(m, j->grants[i])) {
                        job_fail(j, OSM_E_WORKLOAD_BAD_CAPABILITY, "%s does not request %s, so it cannot be granted",
                                 m->name, j->grants[i]);
                        job_fail_error(j, osm_error_workload_bad_capability(j->err, j->grants[i]));
                        job_finish_error(j);
                        return;
                }
        _cleanup_free_ char *final = NULL;
        struct stat st;
        if (asprintf(&final, "%s/%s", w->bundles_dir, j->id_hex) >= 0 && lstat(final, &st) == 0 &&
            S_ISDIR(st.st_mode)) {
                j->phase = 2;   /* already unpacked: go straight to recording */
                after_work_cb(&j->work, 0);
                return;
        }
        start_phase(j, 2);
}

static void record(install_job *j) {
        osm_workloads *w = j->w;
        osm_manifest *m = steal_pointer(&j->manifest);
        wl_workload *old = wl_find(w, m->name);
        int64_t prev = old ? old->version : 0;
        /* Grants carry over to the new version where its manifest still requests them. */
        size_t cap = j->n_grants + (old ? old->n_grants : 0);
        _cleanup_free_ char **g = calloc(cap + 1, sizeof(char *));
        _cleanup_free_ char *name = strdup(m->name);
        if (!g || !name) {
                osm_manifest_free(m);
                job_fail(j, OSM_E_INTERNAL_ERROR, "out of memory");
                job_finish_error(j);
                return;
        }
        size_t n = 0;
        /* copies: old's strings go away when old is replaced */
        json_t *dropped_json = json_array();
        for (size_t i = 0; old && i < old->n_grants; i++) {
                if (osm_manifest_requests(m, old->grants[i]))
                        g[n++] = old->grants[i];
                else
                        json_array_append_new(dropped_json, json_string(old->grants[i]));
        }
        for (size_t i = 0; i < j->n_grants; i++) {
                bool dup = false;
                for (size_t k = 0; k < n; k++)
                        dup = dup || strcmp(g[k], j->grants[i]) == 0;
                if (!dup)
                        g[n++] = j->grants[i];
        }
        /* strdup what comes from old before wl_commit_install frees it */
        char **gc = calloc(n + 1, sizeof(char *));
        bool oom = !gc;
        for (size_t i = 0; !oom && i < n; i++)
                oom = !(gc[i] = strdup(g[i]));
        if (oom) {
                for (size_t i = 0; gc && i < n; i++)
                        free(gc[i]);
                free(gc);
                json_decref(dropped_json);
                osm_manifest_free(m);
                job_fail(j, OSM_E_INTERNAL_ERROR, "out of memory");
                job_finish_error(j);
                return;
        }
        bool run_old = old != NULL;
        char source[WL_MAX_URL + 8];
        snprintf(source, sizeof source, "%s", j->hooks.source ? j->hooks.source : j->url ? j->url : "fd");
        int r = wl_commit_install(w, m, j->manifest_text, j->id_hex, j->has_rootfs,
                                  j->info.is_signed ? j->signer : NULL, j->verified, j->allow_unsigned,
                                  source, gc, n, j->caller_tenant[0] ? j->caller_tenant : j->tenant);
        for (size_t i = 0; i < n; i++)
                free(gc[i]);
        free(gc);
        if (r == -EEXIST || r == -ENOSPC) {
                json_decref(dropped_json);
                if (r == -EEXIST)
                        job_fail(j, OSM_E_WORKLOAD_BAD_BUNDLE, "the workload name %s is taken (its data is kept for "
                                 "another owner); rename the bundle", name);
                else
                        job_fail(j, OSM_E_BUSY, "every host id range is taken ([sandbox] uid-count / "
                                 "uid-range-size); remove a workload and its data first");
                job_finish_error(j);
                return;
        }
        if (r < 0) {
                json_decref(dropped_json);
                job_fail(j, OSM_E_INTERNAL_ERROR, "recording the install failed: %s", strerror(-r));
                job_finish_error(j);
                return;
        }
        wl_workload *wl = wl_find(w, name);
        if (j->allow_unsigned && !j->verified)
                log_warning("workload %s version %lld installed WITHOUT a trusted signature (%s; --allow-unsigned)",
                            name, (long long) wl->version, j->info.is_signed ? j->signer : "unsigned");
        else
                log_notice("workload %s version %lld installed (bundle %s, signed by %s)", name,
                           (long long) wl->version, j->id_hex, j->signer);
        if (j->call) {
                json_t *p = json_pack("{s:s, s:I, s:s, s:b, s:b, s:o, s:o, s:o}",
                                      "name", wl->name, "version", (json_int_t) wl->version,
                                      "id", wl->bundle_id, "verified", wl->verified,
                                      "allow_unsigned", wl->allow_unsigned,
                                      "requested", strv_json(wl->manifest->caps, wl->manifest->n_caps),
                                      "granted", strv_json(wl->grants, wl->n_grants),
                                      "dropped", dropped_json);
                if (p && wl->signer)
                        json_object_set_new(p, "signer", json_string(wl->signer));
                if (p && run_old)
                        json_object_set_new(p, "previous_version", json_integer((json_int_t) prev));
                osm_call_set_cancel(j->call, NULL, NULL);
                osm_call_reply(j->call, p, false);
        } else
                json_decref(dropped_json);
        if (j->hooks.done)
                j->hooks.done(j->hooks.userdata, NULL, NULL);
        w->installing = false;
        wl_gc_bundles(w);
        job_free(j);
}

static void after_work_cb(uv_work_t *req, int status) {
        install_job *j = req->data;
        if (status == UV_ECANCELED && !j->err_name)
                job_fail(j, OSM_E_INTERNAL_ERROR, "cancelled");
        if (j->w->stopped) {
                /* The subsystem has stopped (its database is closing): record nothing.
                 * A half-unpacked directory is removed at the next start. */
                if (j->call) {
                        osm_call_set_cancel(j->call, NULL, NULL);
                        osm_call_errorf(j->call, OSM_E_NOT_AVAILABLE, "the daemon is stopping");
                }
                if (j->hooks.done)
                        j->hooks.done(j->hooks.userdata, OSM_E_NOT_AVAILABLE, "the daemon is stopping");
                job_free(j);
                return;
        }
        if (j->err_name) {
                job_finish_error(j);
                return;
        }
        if (j->phase == 1)
                check_and_unpack(j);
        else
                record(j);
}

/* Start installing the bundle from url (when not NULL) or fd (a regular file, taken), with
 * the operator's grants (strings, syntax checked, at most OSM_MANIFEST_MAX_CAPS). The
 * answer to call (or to hooks->done; either may be NULL) comes when the install has
 * finished. 0, or -ENOMEM (fd closed). */
int wl_install_begin(osm_workloads *w, osm_call *call, const char *url, int fd, json_t *grants,
                     bool allow_unsigned, bool allow_downgrade, const wl_install_hooks *hooks) {
        size_t i;
        json_t *g;
        install_job *j = calloc(1, sizeof *j);
        if (!j) {
                osm_close(fd);
                return -ENOMEM;
        }
        j->w = w;
        j->call = call;
        j->src_fd = fd;
        j->tmp_fd = -1;
        j->max_size = w->d->cfg.max_bundle_size ? w->d->cfg.max_bundle_size : OSM_BUNDLE_DEFAULT_MAX_SIZE;
        j->fetch_timeout_us = w->d->cfg.fetch_timeout_us;
        j->allow_unsigned = allow_unsigned;
        j->allow_downgrade = allow_downgrade;
        j->url = url ? strdup(url) : NULL;
        j->grants = calloc(json_array_size(grants) + 1, sizeof(char *));
        bool oom = false;
        if (hooks) {
                j->hooks = *hooks;
                j->hooks.expect_name = hooks->expect_name ? strdup(hooks->expect_name) : NULL;
                j->hooks.expect_id = hooks->expect_id ? strdup(hooks->expect_id) : NULL;
                j->hooks.source = hooks->source ? strdup(hooks->source) : NULL;
                oom = (hooks->expect_name && !j->hooks.expect_name) || (hooks->expect_id && !j->hooks.expect_id) ||
                      (hooks->source && !j->hooks.source);
        }
        if ((url && !j->url) || !j->grants || oom) {
                job_free(j);
                return -ENOMEM;
        }
        json_array_foreach(grants, i, g) {
                bool dup = false;
                for (size_t k = 0; k < j->n_grants; k++)
                        dup = dup || strcmp(j->grants[k], json_string_value(g)) == 0;
                if (!dup && !(j->grants[j->n_grants++] = strdup(json_string_value(g)))) {
                        job_free(j);
                        return -ENOMEM;
                }
        }
        w->installing = true;
        w->open_handles++;
        j->holds_ref = true;
        if (call && osm_call_tenant(call))
                snprintf(j->caller_tenant, sizeof j->caller_tenant, "%s", osm_call_tenant(call));
        if (hooks && hooks->tenant && !(j->tenant = strdup(hooks->tenant))) {
                job_free(j);
                return -ENOMEM;
        }
        if (call)
                osm_call_set_cancel(call, job_cancel, j);
        start_phase(j, 1);
        return 0;
}
