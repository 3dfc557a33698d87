/* api.c: the workload API's server and connections (the store's methods are in api-store.c,
 * discovery's in api-discovery.c): one Varlink server per workload instance, on a socket made for
 * that instance alone and bound at /run/osmose/api.sock in its sandbox, serving
 * io.osmose.Api with every call checked against the instance's grants at call time and
 * per-instance limits (calls/s, bytes written, watches, publications).
 *
 * The socket is the credential: whoever can connect to it speaks for the instance, so it
 * lives in a directory only root can traverse (state_dir/api/<instance>/, 0700) and is
 * reachable only through the sandbox's bind mount; its owner is the host uid that the
 * sandbox's uid 0 maps to. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon/api/api-internal.h"
#include "daemon/daemon.h"
#include "daemon/store/store.h"
#include "osmose/grant.h"
#include "osmose/log.h"
#include "daemon/workload/workloads.h"
#include "osmose/manifest.h"

#define REVOKE_CHECK_MS 250        /* how often open watches and publications are re-checked */

static void api_unref(osm_api *a);

/* ---------- instances' lifetime ---------- */

void api_inst_unref(api_inst *in) {
        if (--in->refs > 0)
                return;
        osm_api *a = in->api;
        free(in->dir);
        free(in->path);
        free(in);
        api_unref(a);
}

static void on_server_freed(void *userdata) {
        api_inst *in = userdata;
        in->server = NULL;
        api_inst_unref(in);
}

static void on_revoke_timer(uv_timer_t *t);

/* Removing an ended instance's socket and directory goes to the loop's thread pool: on
 * ext4 the last of those names to go waits for the journal (about half a millisecond
 * here, just after the instance's end was committed), which the loop, answering the next
 * call, need not wait for. Only the directory made for the instance is emptied (its
 * device and inode are checked), in case a new one took its name meanwhile. */
typedef struct api_rm {
        uv_work_t req;
        char *dir;
        dev_t dev;
        ino_t ino;
} api_rm;

static void rm_dir_now(const char *dir, dev_t dev, ino_t ino) {
        int dfd = open(dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        struct stat st;
        if (dfd < 0)
                return;
        if (fstat(dfd, &st) == 0 && st.st_dev == dev && st.st_ino == ino) {
                unlinkat(dfd, "api.sock", 0);
                rmdir(dir);
        }
        close(dfd);
}

static void rm_work(uv_work_t *req) {
        api_rm *rm = req->data;
        rm_dir_now(rm->dir, rm->dev, rm->ino);
}

static void rm_done(uv_work_t *req, int status) {
        api_rm *rm = req->data;
        free(rm->dir);
        free(rm);
}

static void inst_remove_dir(api_inst *in, bool later) {
        if (!in->dir)
                return;
        api_rm *rm = later ? calloc(1, sizeof *rm) : NULL;
        if (rm) {
                rm->req.data = rm;
                rm->dir = steal_pointer(&in->dir);
                rm->dev = in->dir_dev;
                rm->ino = in->dir_ino;
                if (uv_queue_work(in->api->d->loop, &rm->req, rm_work, rm_done) == 0)
                        return;
                in->dir = steal_pointer(&rm->dir);
                free(rm);
        }
        rm_dir_now(in->dir, in->dir_dev, in->dir_ino);
}

/* The instance has ended for good: its socket goes, its clients are cut (their watches
 * end), its publications are withdrawn. Store requests in flight finish later and
 * release the last references. With later, its directory is removed off the loop. */
static void inst_destroy(api_inst *in, bool later) {
        osm_api *a = in->api;
        if (in->destroyed)
                return;
        in->destroyed = true;
        if (in->prev)
                in->prev->next = in->next;
        else
                a->insts = in->next;
        if (in->next)
                in->next->prev = in->prev;
        a->n_live--;
        if (!a->insts)   /* nobody left to re-check: an idle room does not wake for it */
                uv_timer_stop(&a->revoke_timer);
        api_pubs_free(in);
        /* The listening fd is closed before the names go: a connect in between is
         * refused, it never reaches a socket nobody will accept on. */
        if (in->server)
                osm_server_stop_accepting(in->server);
        inst_remove_dir(in, later);
        if (in->server)
                osm_server_free(in->server, on_server_freed, in);   /* watch cancels run here */
        else
                api_inst_unref(in);
}

static api_inst *inst_find(osm_api *a, const char *id) {
        for (api_inst *in = a->insts; in; in = in->next)
                if (strcmp(in->id, id) == 0)
                        return in;
        return NULL;
}

/* ---------- checks every call goes through ---------- */

/* The grants the instance's workload holds now, or NULL if the instance has ended. */
const char *const *api_inst_grants(api_inst *in) {
        const char *workload = NULL;
        const char *const *grants = NULL;
        if (in->destroyed || !in->api->d->workloads ||
            osm_workloads_instance_info(in->api->d->workloads, in->id, &workload, &grants) < 0)
                return NULL;
        static const char *const none[] = { NULL };
        return grants ? grants : none;
}

/* A refused call is answered only after the delay it is told to wait: a client that calls
 * in a loop is slowed to the rate instead of making the daemon spin on refusals (calls
 * on one connection run one at a time, and connections per instance are bounded). */
typedef struct refusal {
        uv_timer_t timer;
        osm_call *call;
        osm_vl_error error;   /* the RateLimited error to send (its params owned) */
} refusal;

static void on_refusal_closed(uv_handle_t *h) {
        refusal *rf = h->data;
        json_decref(rf->error.params);
        free(rf);
}

static void on_refusal_timer(uv_timer_t *t) {
        refusal *rf = t->data;
        osm_call *call = rf->call;
        osm_call_set_cancel(call, NULL, NULL);
        osm_vl_error e = rf->error;
        rf->error.params = NULL;
        osm_call_fail(call, e);
        uv_close((uv_handle_t *) &rf->timer, on_refusal_closed);
}

static void refusal_cancel(osm_call *c, void *userdata) {
        refusal *rf = userdata;
        uv_close((uv_handle_t *) &rf->timer, on_refusal_closed);
}

static void refuse_later(api_inst *in, osm_call *call, int64_t delay_ms, osm_vl_error error) {
        refusal *rf = calloc(1, sizeof *rf);
        if (!rf) {
                osm_call_fail(call, error);
                return;
        }
        rf->call = call;
        rf->error = error;
        uv_timer_init(in->api->d->loop, &rf->timer);
        rf->timer.data = rf;
        osm_call_set_cancel(call, refusal_cancel, rf);
        uv_timer_start(&rf->timer, on_refusal_timer, (uint64_t) OSM_MIN(delay_ms, 1000), 0);
}

/* Admit a call: the instance still runs, and its token bucket has a token. On refusal
 * the call is finished with an error (a RateLimited one after its delay) and NULL
 * returned; else the current grants. */
const char *const *api_enter(osm_call *call, api_inst *in) {
        const osm_config *cfg = &in->api->d->cfg;
        in->calls++;
        uint64_t now = osm_now_mono_us();
        double rate = (double) cfg->api_calls_per_second, burst = (double) cfg->api_burst;
        in->tokens = fmin(burst, in->tokens + (double) (now - in->refill_us) * rate / 1e6);
        in->refill_us = now;
        if (in->tokens < 1.0) {
                in->refused++;
                int64_t retry_ms = OSM_MAX((int64_t) ceil((1.0 - in->tokens) * 1000.0 / rate), 1);
                char msg[160];
                snprintf(msg, sizeof msg, "more than %" PRIu64 " calls per second (burst %" PRIu64 "); retry in %" PRId64 " ms",
                         cfg->api_calls_per_second, cfg->api_burst, retry_ms);
                refuse_later(in, call, retry_ms,
                             osm_error_api_rate_limited((int64_t) cfg->api_calls_per_second, retry_ms, msg));
                return NULL;
        }
        in->tokens -= 1.0;
        const char *const *grants = api_inst_grants(in);
        if (!grants) {
                osm_call_errorf(call, OSM_E_NOT_AVAILABLE, "instance %s has ended", in->id);
                return NULL;
        }
        return grants;
}

void api_deny(osm_call *call, const char *grant, const char *fmt, ...) {
        char msg[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        osm_call_fail(call, osm_error_permission_denied(msg, grant));
}

/* ---------- who am I ---------- */

static void m_info(osm_call *call, json_t *params, void *userdata) {
        api_inst *in = userdata;
        const char *const *grants = api_enter(call, in);
        if (!grants)
                return;
        const osm_config *cfg = &in->api->d->cfg;
        json_t *g = json_array();
        for (const char *const *p = grants; *p; p++)
                json_array_append_new(g, json_string(*p));
        json_t *o = json_pack("{s:s, s:s, s:o, s:{s:I, s:I, s:I, s:I, s:I}, s:{s:I, s:I, s:I, s:i, s:i}}",
                              "instance", in->id, "workload", in->workload, "grants", g,
                              "limits", "calls_per_second", (json_int_t) cfg->api_calls_per_second,
                              "burst", (json_int_t) cfg->api_burst, "bytes_stored", (json_int_t) cfg->api_max_bytes,
                              "watches", (json_int_t) cfg->api_max_watches,
                              "publications", (json_int_t) cfg->api_max_publications,
                              "usage", "calls", (json_int_t) in->calls, "refused", (json_int_t) in->refused,
                              "bytes_stored", (json_int_t) in->bytes_stored, "watches", (int) in->n_watches,
                              "publications", (int) in->n_pubs);
        const osm_manifest *m = osm_workloads_instance_manifest(in->api->d->workloads, in->id);
        if (o && m)
                json_object_set_new(o, "manifest", osm_manifest_to_json(m));
        osm_call_reply(call, o, false);
}

/* ---------- introspection, restricted to what this socket serves ---------- */

static bool iface_served(const char *name) {
        return name && (strcmp(name, OSM_I_VARLINK) == 0 || strcmp(name, OSM_I_OSMOSE) == 0 ||
                        strcmp(name, OSM_I_API) == 0);
}

static void m_get_info(osm_call *call, json_t *params, void *userdata) {
        osm_call_reply(call, json_pack("{s:s, s:s, s:s, s:s, s:[s, s, s]}", "vendor", "Osmose", "product",
                                       "osmosed workload API", "version", OSM_VERSION, "url", "https://osmose.invalid/",
                                       "interfaces", OSM_I_VARLINK, OSM_I_OSMOSE, OSM_I_API), false);
}

static void m_get_description(osm_call *call, json_t *params, void *userdata) {
        const char *name = json_string_value(json_object_get(params, "interface"));
        const osm_vl_interface *i = iface_served(name) ? osm_vl_find_interface(name) : NULL;
        if (!i) {
                osm_call_fail(call, osm_error_varlink_interface_not_found(name ? name : ""));
                return;
        }
        osm_call_reply(call, osm_reply_varlink_get_interface_description(i->description), false);
}

/* Any method of the daemon's other interfaces (Store, Workload, Daemon…): a workload
 * never reaches them, whatever it holds. */
static void m_not_for_workloads(osm_call *call, json_t *params, void *userdata) {
        api_deny(call, NULL, "%s is not part of the workload API; workloads use io.osmose.Api", osm_call_method(call));
}

static const osm_method api_methods[] = {
        { OSM_M_API_INFO,         m_info,         OSM_ACCESS_PUBLIC },
        { OSM_M_VARLINK_GET_INFO, m_get_info,    OSM_ACCESS_PUBLIC },
        { OSM_M_VARLINK_GET_INTERFACE_DESCRIPTION, m_get_description, OSM_ACCESS_PUBLIC },
};

static int build_deny_table(osm_api *a) {
        size_t n = 0;
        for (size_t i = 0; i < osm_vl_n_interfaces; i++)
                if (!iface_served(osm_vl_interfaces[i]->name))
                        n += osm_vl_interfaces[i]->n_methods;
        a->deny = calloc(n ? n : 1, sizeof *a->deny);
        if (!a->deny)
                return -ENOMEM;
        for (size_t i = 0; i < osm_vl_n_interfaces; i++) {
                const osm_vl_interface *vi = osm_vl_interfaces[i];
                if (iface_served(vi->name))
                        continue;
                for (size_t k = 0; k < vi->n_methods; k++)
                        a->deny[a->n_deny++] = (osm_method) { vi->methods[k].name, m_not_for_workloads, OSM_ACCESS_PUBLIC };
        }
        return 0;
}

/* ---------- creating an instance's socket ---------- */

/* Bind a listening socket at dir/api.sock. sun_path holds 108 bytes and the state
 * directory may be deep, so the bind goes through /proc/self/fd/N of the directory when
 * the full path would not fit. */
static int bind_socket(const char *dir, const char *path, uid_t owner) {
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        _cleanup_close_ int dfd = -1;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        if (strlen(path) < sizeof sa.sun_path)
                snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
        else {
                dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
                if (dfd < 0)
                        return -errno;
                snprintf(sa.sun_path, sizeof sa.sun_path, "/proc/self/fd/%d/api.sock", dfd);
        }
        mode_t old = umask(0177);   /* never briefly open to others */
        int r = bind(fd, (struct sockaddr *) &sa, sizeof sa);
        umask(old);
        if (r < 0)
                return -errno;
        /* The sandbox's uid 0 is owner on the host: it alone may connect (0600). If the
         * daemon cannot chown (not root), the mapped uid is its own and owns it already. */
        if (geteuid() == 0 && chown(path, owner, owner) < 0)
                return -errno;
        if (listen(fd, 64) < 0)
                return -errno;
        return steal_fd(&fd);
}

static osm_server_limits inst_limits(const osm_config *cfg) {
        return (osm_server_limits) {
                .max_connections = (unsigned) cfg->api_max_connections,
                .max_message = cfg->max_message_size,
                .max_buffered = cfg->max_buffered,
                .idle_timeout_ms = 0,   /* a workload may keep its connection for its whole life */
                .partial_timeout_ms = cfg->partial_timeout_us / 1000,
        };
}

int osm_api_instance_create(osm_api *a, const char *instance_id, const char *workload, char *path, size_t size) {
        if (!a || a->stopped)
                return -ENODEV;
        if (!osm_name_valid(instance_id, MAX_INSTANCE_ID, false) || !osm_name_valid(workload, MAX_INSTANCE_ID, false))
                return -EINVAL;
        api_inst *old = inst_find(a, instance_id);
        if (old)
                inst_destroy(old, false);
        api_inst *in = calloc(1, sizeof *in);
        if (!in)
                return -ENOMEM;
        in->api = a;
        in->refs = 1;
        a->refs++;
        snprintf(in->id, sizeof in->id, "%s", instance_id);
        snprintf(in->workload, sizeof in->workload, "%s", workload);
        snprintf(in->writer, sizeof in->writer, "workload:%s", workload);
        in->tokens = (double) a->d->cfg.api_burst;
        in->refill_us = osm_now_mono_us();
        in->destroyed = true;   /* not in the list until it is complete */
        int r;
        if (asprintf(&in->dir, "%s/%s", a->dir, instance_id) < 0 || asprintf(&in->path, "%s/api.sock", in->dir) < 0) {
                in->dir = in->path = NULL;
                r = -ENOMEM;
                goto fail;
        }
        if (strlen(in->path) >= size) {
                r = -ENAMETOOLONG;
                goto fail;
        }
        /* A stale directory of an earlier daemon: remove its socket, then make it ours. */
        unlink(in->path);
        if (mkdir(in->dir, 0700) < 0 && errno != EEXIST) {
                r = -errno;
                goto fail;
        }
        struct stat st;
        if (lstat(in->dir, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid()) {
                r = -EPERM;
                goto fail;
        }
        in->dir_dev = st.st_dev;
        in->dir_ino = st.st_ino;
        if ((st.st_mode & 07777) != 0700 && chmod(in->dir, 0700) < 0) {
                r = -errno;
                goto fail;
        }
        /* Owned by the root of the instance's own host id range (every workload has one). */
        uint64_t owner = osm_workloads_instance_uid_base(a->d->workloads, instance_id);
        int fd = bind_socket(in->dir, in->path, (uid_t) (owner ? owner : a->d->cfg.uid_base));
        if (fd < 0) {
                r = fd;
                goto fail;
        }
        osm_server_limits lim = inst_limits(&a->d->cfg);
        r = osm_server_new(a->d->loop, fd, OSM_SERVER_ANY_PEER, &lim, &in->server);
        if (r < 0) {
                close(fd);
                goto fail;
        }
        in->refs++;   /* held by the server until on_server_freed */
        if ((r = osm_server_add_methods(in->server, api_methods, OSM_ARRAY_SIZE(api_methods), in)) < 0 ||
            (r = osm_server_add_methods(in->server, api_store_methods, api_store_n_methods, in)) < 0 ||
            (r = osm_server_add_methods(in->server, api_discovery_methods, api_discovery_n_methods, in)) < 0 ||
            (r = osm_server_add_methods(in->server, a->deny, a->n_deny, in)) < 0)
                goto fail;
        in->destroyed = false;
        if (!a->insts)
                uv_timer_start(&a->revoke_timer, on_revoke_timer, REVOKE_CHECK_MS, REVOKE_CHECK_MS);
        in->next = a->insts;
        if (a->insts)
                a->insts->prev = in;
        a->insts = in;
        a->n_live++;
        snprintf(path, size, "%s", in->path);
        log_debug("api: instance %s: socket %s", instance_id, in->path);
        api_inst_unref(in);   /* the creation reference; the server's remains */
        return 0;
fail:
        if (in->path)
                unlink(in->path);
        if (in->dir)
                rmdir(in->dir);
        if (in->server)
                osm_server_free(in->server, on_server_freed, in);
        api_inst_unref(in);
        return r;
}

void osm_api_instance_destroy(osm_api *a, const char *instance_id) {
        if (!a)
                return;
        api_inst *in = inst_find(a, instance_id);
        if (in)
                inst_destroy(in, true);
}

static int hook_create(void *userdata, const char *instance_id, const char *workload, char *path, size_t size) {
        return osm_api_instance_create(userdata, instance_id, workload, path, size);
}

static void hook_destroy(void *userdata, const char *instance_id) {
        osm_api_instance_destroy(userdata, instance_id);
}

static const osm_workload_api_hooks hooks = { .create = hook_create, .destroy = hook_destroy };

/* ---------- revokes while nothing is happening ---------- */

/* A watch on a quiet collection or a published service must also end when its grant is
 * revoked: look at them a few times a second (cheap: grant lists are short). */
static void on_revoke_timer(uv_timer_t *t) {
        osm_api *a = t->data;
        /* Watches and publications were allowed by the grants of their time: while no grant
         * changed there is nothing to withdraw (an ended instance's destroy hook does it), and
         * a room with many instances need not look each one up four times a second. */
        if (!a->d->workloads)
                return;
        uint64_t gen = osm_workloads_grants_generation(a->d->workloads);
        if (gen == a->revoke_gen)
                return;
        a->revoke_gen = gen;
        for (api_inst *in = a->insts; in; in = in->next) {
                const char *const *grants = api_inst_grants(in);
                if (!grants)
                        continue;   /* ended: the destroy hook follows */
                api_watches_revoke(in, grants);
                api_pubs_revoke(in, grants);
        }
}

/* ---------- the subsystem ---------- */

static void api_free(osm_api *a) {
        free(a->deny);
        free(a->dir);
        free(a);
}

static void api_unref(osm_api *a) {
        if (--a->refs == 0 && a->stopped)
                api_free(a);
}

static void on_timer_closed(uv_handle_t *h) {
        api_unref(h->data);
}

/* Remove sockets left by an earlier run (instances do not survive the daemon). */
static void remove_stale(const char *dir) {
        DIR *dp = opendir(dir);
        if (!dp)
                return;
        struct dirent *e;
        while ((e = readdir(dp))) {
                if (e->d_name[0] == '.')
                        continue;
                char p[4200];
                snprintf(p, sizeof p, "%s/%s/api.sock", dir, e->d_name);
                unlink(p);
                snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
                rmdir(p);
        }
        closedir(dp);
}

static int api_start(osm_daemon *d) {
        osm_api *a = calloc(1, sizeof *a);
        if (!a)
                return -ENOMEM;
        a->d = d;
        a->refs = 1;   /* the timer */
        if (asprintf(&a->dir, "%s/api", d->cfg.runtime_dir) < 0) {
                a->dir = NULL;
                api_free(a);
                return -ENOMEM;
        }
        int r = osm_mkdir_p(a->dir, 0700);
        if (r < 0 || chmod(a->dir, 0700) < 0) {
                log_error("api: cannot create %s: %s", a->dir, strerror(r < 0 ? -r : errno));
                api_free(a);
                return r < 0 ? r : -errno;
        }
        remove_stale(a->dir);
        if ((r = build_deny_table(a)) < 0) {
                api_free(a);
                return r;
        }
        uv_timer_init(d->loop, &a->revoke_timer);
        a->revoke_timer.data = a;
        a->revoke_gen = UINT64_MAX;   /* started with the first instance's socket */
        uv_unref((uv_handle_t *) &a->revoke_timer);
        d->api = a;
        if (d->workloads)
                osm_workloads_set_api_hooks(d->workloads, &hooks, a);
        return 0;
}

static void api_stop(osm_daemon *d) {
        osm_api *a = d->api;
        if (!a)
                return;
        if (d->workloads)
                osm_workloads_set_api_hooks(d->workloads, NULL, NULL);
        while (a->insts)
                inst_destroy(a->insts, false);
        d->api = NULL;
        a->stopped = true;
        uv_close((uv_handle_t *) &a->revoke_timer, on_timer_closed);
}

static osm_health api_health(osm_daemon *d, char *detail, size_t size) {
        if (!d->api) {
                snprintf(detail, size, "not running");
                return OSM_HEALTH_FAILED;
        }
        if (!d->workloads) {
                snprintf(detail, size, "the workload subsystem is not running");
                return OSM_HEALTH_DISABLED;
        }
        snprintf(detail, size, "%u instance socket(s)", d->api->n_live);
        return OSM_HEALTH_OK;
}

static void api_status(osm_daemon *d, json_t *obj) {
        osm_api *a = d->api;
        if (a && d->workloads)
                json_object_set_new(obj, "info", json_pack("{s:i, s:b}", "instances", (int) a->n_live, "discovery",
                                                           HAVE_AVAHI && d->discovery != NULL));
}

const osm_subsystem osm_api_subsystem = {
        .name = "api",
        .start = api_start,
        .stop = api_stop,
        .health = api_health,
        .status = api_status,
};

