/* daemon.c: osmosed's life: configuration, identity, the control socket, subsystems in
 * order, signals, sd_notify and the watchdog, reload and graceful shutdown. */
#include "build-config.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <stdlib.h>

#include "daemon/daemon.h"
#include "daemon/sd-daemon.h"
#include "osmose/log.h"

#define SHUTDOWN_GRACE_MS 5000

extern const osm_subsystem osm_store_subsystem;
#if HAVE_AVAHI
extern const osm_subsystem osm_discovery_subsystem;
#endif
extern const osm_subsystem osm_sandbox_subsystem;
extern const osm_subsystem osm_tenants_subsystem;
extern const osm_subsystem osm_workloads_subsystem;
extern const osm_subsystem osm_api_subsystem;
extern const osm_subsystem osm_channels_subsystem;

/* Subsystems in start order; stopped in reverse. Each entry is defined in its folder. */
#if HAVE_MHD
extern const osm_subsystem osm_federation_subsystem;
#endif
#if HAVE_BUILDING
extern const osm_subsystem osm_building_subsystem;
#endif
#if HAVE_MOSQUITTO
extern const osm_subsystem osm_ingest_subsystem;
#endif
const osm_subsystem *const osm_subsystems[] = {
        NULL,   /* placeholder so the array is never empty; skipped */
        &osm_store_subsystem,
#if HAVE_AVAHI
        &osm_discovery_subsystem,
#endif
        &osm_sandbox_subsystem,
        &osm_tenants_subsystem,    /* before workloads: quotas, leases and owners */
        &osm_workloads_subsystem,
        &osm_api_subsystem,   /* after workloads: it sets the workloads' API hooks */
        &osm_channels_subsystem,   /* after workloads: it installs and restarts them */
#if HAVE_MHD
        &osm_federation_subsystem,
#endif
#if HAVE_BUILDING
        &osm_building_subsystem,   /* after federation: building queries use its audit log */
#endif
#if HAVE_MOSQUITTO
        &osm_ingest_subsystem,   /* after the store it writes to; stopped before it */
#endif
};
const size_t osm_n_subsystems = OSM_ARRAY_SIZE(osm_subsystems);

const char *osm_health_name(osm_health h) {
        switch (h) {
        case OSM_HEALTH_OK: return "ok";
        case OSM_HEALTH_DEGRADED: return "degraded";
        case OSM_HEALTH_DISABLED: return "disabled";
        case OSM_HEALTH_FAILED: return "failed";
        }
        return "failed";
}

void osm_status_set(json_t *obj, osm_health h, const char *detail) {
        json_object_set_new(obj, "health", json_string(osm_health_name(h)));
        if (detail)
                json_object_set_new(obj, "detail", json_string(detail));
        else
                json_object_del(obj, "detail");
}

/* ---------- configuration ---------- */

int osm_daemon_load_config(const osm_daemon_opts *o, osm_config *cfg, char **used_path, osm_error_list *errs) {
        int r = osm_config_defaults(cfg, o->state_dir);
        if (r < 0)
                return r;
        char def[4096];
        const char *path = o->config_path;
        bool explicit = path != NULL;
        if (!path) {
                if (o->state_dir)
                        snprintf(def, sizeof def, "%s/osmosed.conf", o->state_dir);
                else
                        snprintf(def, sizeof def, "%s/osmosed.conf", OSM_SYSCONFDIR);
                path = def;
        }
        int problems = 0;
        r = osm_config_load(cfg, path, errs);
        if (r == -ENOENT && !explicit) {
                path = NULL;   /* no file: the embedded defaults */
        } else if (r < 0) {
                osm_error_list_add(errs, "%s: cannot read: %s", path, strerror(-r));
                return r;
        } else {
                problems += r;
        }
        if (o->state_dir)
                osm_config_set(cfg, "daemon", "state-dir", o->state_dir, NULL);
        if (o->socket_path)
                osm_config_set(cfg, "daemon", "socket", o->socket_path, NULL);
        if (o->name)
                osm_config_set(cfg, "daemon", "name", o->name, NULL);
        problems += osm_config_validate(cfg, errs);
        if (used_path)
                *used_path = path ? strdup(path) : NULL;
        return problems;
}

static bool same_str(const char *a, const char *b) {
        return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* ---------- the control socket ---------- */

/* Bind the control socket like ntpd's control.c: refuse if a live daemon answers,
 * remove a stale socket, bind under a umask so it is never briefly too open. */
static int open_control_socket(const osm_config *cfg, gid_t *gid_allowed, bool *activated) {
        *activated = false;
        *gid_allowed = (gid_t) -1;
        if (cfg->socket_group && *cfg->socket_group) {
                struct group *g = getgrnam(cfg->socket_group);
                if (g)
                        *gid_allowed = g->gr_gid;
                else
                        log_notice("group '%s' does not exist: only root and uid %u have full access",
                                   cfg->socket_group, (unsigned) geteuid());
        }
#if HAVE_SYSTEMD
        int n = osm_sd_listen_fds();
        if (n < 0)
                log_warning("systemd's $LISTEN_FDS: %s; binding the socket", strerror(-n));
        if (n > 1) {
                log_error("systemd passed %d sockets; expected one", n);
                return -EINVAL;
        }
        if (n == 1 && osm_sd_is_listening_unix(OSM_SD_LISTEN_FDS_START, SOCK_STREAM) > 0) {
                int fd = OSM_SD_LISTEN_FDS_START;
                fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
                *activated = true;
                log_info("control: using the socket passed by systemd");
                return fd;
        }
#endif
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        if (strlen(cfg->socket_path) >= sizeof sa.sun_path)
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, cfg->socket_path);

        _cleanup_close_ int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (probe < 0)
                return -errno;
        if (connect(probe, (struct sockaddr *) &sa, sizeof sa) == 0) {
                log_error("another osmosed already answers on %s", cfg->socket_path);
                return -EADDRINUSE;
        }
        if (errno == ECONNREFUSED) {
                struct stat st;
                if (lstat(cfg->socket_path, &st) == 0 && S_ISSOCK(st.st_mode)) {
                        log_notice("control: removing stale socket %s", cfg->socket_path);
                        unlink(cfg->socket_path);
                }
        }
        _cleanup_free_ char *dir = strdup(cfg->socket_path);
        if (!dir)
                return -ENOMEM;
        *strrchr(dir, '/') = 0;
        if (*dir)
                osm_mkdir_p(dir, 0755);

        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        mode_t old = umask(0777 & ~cfg->socket_mode);
        int r = bind(fd, (struct sockaddr *) &sa, sizeof sa);
        umask(old);
        if (r < 0) {
                r = -errno;
                log_error("cannot bind %s: %s", cfg->socket_path, strerror(-r));
                return r;
        }
        if (chmod(cfg->socket_path, cfg->socket_mode) < 0)
                log_warning("control: chmod %s: %m", cfg->socket_path);
        if (*gid_allowed != (gid_t) -1 && chown(cfg->socket_path, (uid_t) -1, *gid_allowed) < 0)
                log_warning("control: chown %s to group %s: %m", cfg->socket_path, cfg->socket_group);
        if (listen(fd, SOMAXCONN) < 0)
                return -errno;
        return steal_fd(&fd);
}

static osm_server_limits limits_from(const osm_config *cfg) {
        return (osm_server_limits) {
                .max_connections = (unsigned) cfg->max_connections,
                .max_message = cfg->max_message_size,
                .max_buffered = cfg->max_buffered,
                .idle_timeout_ms = cfg->idle_timeout_us / 1000,
                .partial_timeout_ms = cfg->partial_timeout_us / 1000,
        };
}

/* ---------- status ---------- */

/* Shape a status hook's object as the interface's Subsystem type: name, health and
 * detail stay; every other key a hook added moves into "info". Consumes o. */
static json_t *subsystem_entry(json_t *o, bool details) {
        json_t *out = json_object(), *info = json_object_get(o, "info");
        info = json_is_object(info) ? json_incref(info) : json_object();
        const char *key;
        json_t *v;
        json_object_foreach(o, key, v) {
                if (strcmp(key, "name") == 0 || strcmp(key, "health") == 0 || strcmp(key, "detail") == 0)
                        json_object_set(out, key, v);
                else if (strcmp(key, "info") != 0)
                        json_object_set(info, key, v);
        }
        if (details && json_object_size(info))
                json_object_set(out, "info", info);
        json_decref(info);
        json_decref(o);
        return out;
}

json_t *osm_daemon_status(osm_daemon *d, bool details) {
        char pk[OSM_PUBKEY_B64];
        osm_pubkey_encode(d->identity.pk, pk);
        json_t *subs = json_array();
        json_t *ctl = json_pack("{s:s}", "name", "control");
        osm_status_set(ctl, d->stopping ? OSM_HEALTH_DEGRADED : OSM_HEALTH_OK, d->stopping ? "shutting down" : NULL);
        if (details)
                json_object_set_new(ctl, "info", json_pack("{s:i,s:i}", "clients", (int) osm_server_n_clients(d->server),
                                                           "calls", (int) osm_server_in_flight(d->server)));
        json_array_append_new(subs, ctl);
        for (size_t i = 0; i < osm_n_subsystems; i++) {
                const osm_subsystem *s = osm_subsystems[i];
                if (!s)
                        continue;
                json_t *o = json_pack("{s:s}", "name", s->name);
                if (s->status)
                        s->status(d, o);
                if (s->health) {   /* last: health and detail are its alone */
                        char detail[OSM_STATUS_DETAIL_MAX] = "";
                        osm_health h = s->health(d, detail, sizeof detail);
                        osm_status_set(o, h, detail[0] ? detail : NULL);
                }
                if (!json_object_get(o, "health"))
                        osm_status_set(o, OSM_HEALTH_OK, NULL);
                json_array_append_new(subs, subsystem_entry(o, details));
        }
        double uptime = (double) (osm_now_mono_us() - d->started_mono_us) / 1e6;
        return json_pack("{s:s,s:s,s:s,s:s,s:f,s:I,s:i,s:s,s:s,s:o}",
                         "id", d->space_id, "name", d->cfg.name, "public_key", pk, "version", OSM_VERSION,
                         "uptime", uptime, "started", (json_int_t) d->started_real_us, "pid", (int) getpid(),
                         "state_dir", d->cfg.state_dir, "socket", d->cfg.socket_path, "subsystems", subs);
}

static void entry_text(osm_jbuf *b, const char *name, osm_health h, const char *detail) {
        osm_jbuf_put(b, "{\"name\":", 8);
        osm_jbuf_string(b, name);
        osm_jbuf_put(b, ",\"health\":", 10);
        osm_jbuf_string(b, osm_health_name(h));
        if (detail && detail[0]) {
                osm_jbuf_put(b, ",\"detail\":", 10);
                osm_jbuf_string(b, detail);
        }
        osm_jbuf_put(b, "}", 1);
}

/* The document osm_daemon_status(d, false) builds, in the same order, written as text:
 * GetStatus is the call monitoring makes in a loop, and building and freeing the tree was
 * most of its cost (callgrind: 200k instructions a call, now a few thousand). Subsystems
 * without a health hook still go through their status hook. */
char *osm_daemon_status_text(osm_daemon *d, size_t *len) {
        /* The key is encoded once (sodium's constant-time base64 was 3k instructions a
         * call), and the pid asked once (glibc's getpid() is a system call each time). */
        static uint8_t pk_of[OSM_PUBKEY_BYTES];
        static char pk[OSM_PUBKEY_B64];
        static pid_t pid;
        if (!pk[0] || memcmp(pk_of, d->identity.pk, sizeof pk_of) != 0) {
                memcpy(pk_of, d->identity.pk, sizeof pk_of);
                osm_pubkey_encode(d->identity.pk, pk);
        }
        if (!pid)
                pid = getpid();
        osm_jbuf b = { .p = malloc(2048), .cap = 2048 };   /* a room's status: about 1 KiB */
        if (!b.p)
                return NULL;
        osm_jbuf_put(&b, "{\"id\":", 6);
        osm_jbuf_string(&b, d->space_id);
        osm_jbuf_put(&b, ",\"name\":", 8);
        osm_jbuf_string(&b, d->cfg.name);
        osm_jbuf_put(&b, ",\"public_key\":", 14);
        osm_jbuf_string(&b, pk);
        osm_jbuf_put(&b, ",\"version\":\"" OSM_VERSION "\",\"uptime\":", sizeof(OSM_VERSION) + 22);
        /* Seconds with their microseconds, by hand: the same double as dividing by 1e6
         * (both are the double nearest that decimal), without printf's %g and strtod. */
        uint64_t up = osm_now_mono_us() - d->started_mono_us;
        char frac[8] = { '.' };
        for (int i = 6; i >= 1; i--, up /= 10)
                frac[i] = (char) ('0' + up % 10);
        osm_jbuf_int(&b, (long long) up);
        osm_jbuf_put(&b, frac, 7);
        osm_jbuf_put(&b, ",\"started\":", 11);
        osm_jbuf_int(&b, (long long) d->started_real_us);
        osm_jbuf_put(&b, ",\"pid\":", 7);
        osm_jbuf_int(&b, (long long) pid);
        osm_jbuf_put(&b, ",\"state_dir\":", 13);
        osm_jbuf_string(&b, d->cfg.state_dir);
        osm_jbuf_put(&b, ",\"socket\":", 10);
        osm_jbuf_string(&b, d->cfg.socket_path);
        osm_jbuf_put(&b, ",\"subsystems\":[", 15);
        entry_text(&b, "control", d->stopping ? OSM_HEALTH_DEGRADED : OSM_HEALTH_OK,
                   d->stopping ? "shutting down" : NULL);
        for (size_t i = 0; i < osm_n_subsystems; i++) {
                const osm_subsystem *s = osm_subsystems[i];
                if (!s)
                        continue;
                osm_jbuf_put(&b, ",", 1);
                if (s->health) {
                        char detail[OSM_STATUS_DETAIL_MAX] = "";
                        osm_health h = s->health(d, detail, sizeof detail);
                        entry_text(&b, s->name, h, detail);
                        continue;
                }
                json_t *o = json_pack("{s:s}", "name", s->name);
                if (s->status)
                        s->status(d, o);
                if (!json_object_get(o, "health"))
                        osm_status_set(o, OSM_HEALTH_OK, NULL);
                json_t *e = subsystem_entry(o, false);
                osm_jbuf_value(&b, e);
                json_decref(e);
        }
        osm_jbuf_put(&b, "]}", 2);
        char *text = osm_jbuf_finish(&b, len);
        if (text)
                (*len)--;   /* without the NUL */
        return text;
}

/* [control] readers as a gid, or -1 (none, or no such group: said in the log). */
static gid_t reader_gid(const osm_config *cfg) {
        if (!cfg->readers || !*cfg->readers)
                return (gid_t) -1;
        struct group *g = getgrnam(cfg->readers);
        if (!g) {
                log_warning("control: [control] readers = %s: no such group; nobody has the reader role",
                            cfg->readers);
                return (gid_t) -1;
        }
        return g->gr_gid;
}

/* ---------- reload ---------- */

static osm_daemon_opts reload_opts;

/* The problems of a configuration file, each line to the log and, for the caller of
 * Daemon.Reload, into an array (at most 32 lines). */
static json_t *problem_lines(const osm_error_list *errs) {
        json_t *a = json_array();
        osm_error_list_print(errs, stderr);
        for (size_t i = 0; i < errs->n_lines && json_array_size(a) < 32; i++)
                json_array_append_new(a, json_string(errs->lines[i]));
        return a;
}

int osm_daemon_reload(osm_daemon *d, json_t **changed, json_t **problems) {
        osm_config nc;
        osm_error_list errs = {};
        int r = osm_daemon_load_config(&reload_opts, &nc, NULL, &errs);
        json_t *lines = problem_lines(&errs);
        osm_error_list_done(&errs);
        if (problems)
                *problems = lines;
        else
                json_decref(lines);
        if (r != 0) {
                log_error("reload: the configuration has %d problem(s); keeping the current one", r < 0 ? 1 : r);
                osm_config_free(&nc);
                return r < 0 ? 1 : r;
        }
        /* Paths cannot move under a running daemon. */
        if (!same_str(nc.state_dir, d->cfg.state_dir) || !same_str(nc.socket_path, d->cfg.socket_path) ||
            !same_str(nc.runtime_dir, d->cfg.runtime_dir)) {
                log_warning("reload: state-dir, socket and runtime-dir changes take effect at the next start");
                free(nc.state_dir);
                free(nc.socket_path);
                free(nc.runtime_dir);
                nc.state_dir = strdup(d->cfg.state_dir);
                nc.socket_path = strdup(d->cfg.socket_path);
                nc.runtime_dir = strdup(d->cfg.runtime_dir);
        }
        json_t *list = json_array();
        for (size_t i = 0; i < osm_config_n_keys; i++) {
                const osm_config_key *k = &osm_config_keys[i];
                const char *pa = (const char *) &d->cfg + k->offset, *pb = (const char *) &nc + k->offset;
                bool diff;
                if (k->type == OSM_CFG_STRING)
                        diff = !same_str(*(char *const *) pa, *(char *const *) pb);
                else if (k->type == OSM_CFG_BOOL)
                        diff = *(const bool *) pa != *(const bool *) pb;
                else if (k->type == OSM_CFG_MODE)
                        diff = *(const mode_t *) pa != *(const mode_t *) pb;
                else if (k->type == OSM_CFG_LOG_LEVEL)
                        diff = *(const int *) pa != *(const int *) pb;
                else
                        diff = *(const uint64_t *) pa != *(const uint64_t *) pb;
                if (diff) {
                        char name[128];
                        snprintf(name, sizeof name, "%s.%s", k->section, k->key);
                        json_array_append_new(list, json_string(name));
                }
        }
        osm_config old = d->cfg;
        d->cfg = nc;
        osm_log_set_level(d->cfg.log_level);
        osm_server_limits lim = limits_from(&d->cfg);
        osm_server_set_limits(d->server, &lim);
        d->reader_gid = reader_gid(&d->cfg);
        osm_server_set_roles(d->server, d->reader_gid, NULL, NULL);   /* the tenants' reload sets its lookup again */
        for (size_t i = 0; i < osm_n_subsystems; i++)
                if (osm_subsystems[i] && osm_subsystems[i]->reload)
                        osm_subsystems[i]->reload(d, &old);
        osm_config_free(&old);
        log_info("configuration reloaded (%zu key(s) changed)", json_array_size(list));
        if (changed)
                *changed = list;
        else
                json_decref(list);
        return 0;
}

/* ---------- signals, watchdog, shutdown ---------- */

typedef struct runtime {
        osm_daemon *d;
        uv_signal_t sigterm, sigint, sighup;
        uv_timer_t watchdog, shutdown;
        uint64_t shutdown_started_us;
        bool socket_activated;
        size_t n_started;
} runtime;

static void notify(const char *msg) {
#if HAVE_SYSTEMD
        int r = osm_sd_notify(msg);
        if (r < 0)
                log_debug("sd_notify %s: %s", msg, strerror(-r));
#else
        (void) msg;
#endif
}

static void close_walk_cb(uv_handle_t *h, void *arg) {
        if (!uv_is_closing(h))
                uv_close(h, NULL);
}

static void finish_shutdown(runtime *rt) {
        osm_daemon *d = rt->d;
        for (size_t i = rt->n_started; i-- > 0;) {
                const osm_subsystem *s = osm_subsystems[i];
                if (s && s->stop) {
                        log_debug("stopping %s", s->name);
                        s->stop(d);
                }
        }
        rt->n_started = 0;
        osm_server_free(d->server, NULL, NULL);
        d->server = NULL;
        uv_walk(d->loop, close_walk_cb, NULL);
}

static void on_shutdown_tick(uv_timer_t *t) {
        runtime *rt = t->data;
        unsigned busy = osm_server_in_flight(rt->d->server);
        uint64_t waited = (osm_now_mono_us() - rt->shutdown_started_us) / 1000;
        if (busy > 0 && waited < SHUTDOWN_GRACE_MS)
                return;
        if (busy > 0)
                log_warning("shutdown: %u call(s) still in flight after %d ms; cancelling", busy, SHUTDOWN_GRACE_MS);
        uv_timer_stop(t);
        finish_shutdown(rt);
}

static void begin_shutdown(runtime *rt, const char *why) {
        osm_daemon *d = rt->d;
        if (d->stopping)
                return;
        d->stopping = true;
        log_info("%s: shutting down", why);
        notify("STOPPING=1");
        osm_server_stop_accepting(d->server);
        if (!rt->socket_activated)
                unlink(d->cfg.socket_path);
        rt->shutdown_started_us = osm_now_mono_us();
        uv_timer_start(&rt->shutdown, on_shutdown_tick, 0, 10);
}

static void on_signal(uv_signal_t *h, int signum) {
        runtime *rt = h->data;
        if (signum == SIGHUP) {
                notify("RELOADING=1");
                osm_daemon_reload(rt->d, NULL, NULL);
                notify("READY=1");
                return;
        }
        begin_shutdown(rt, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

static void on_watchdog(uv_timer_t *t) {
        notify("WATCHDOG=1");
}

static void raise_nofile(void) {
        /* 1,000 clients at once need more than the usual soft limit of 1024 fds. */
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
                rl.rlim_cur = rl.rlim_max > 65536 ? 65536 : rl.rlim_max;
                setrlimit(RLIMIT_NOFILE, &rl);
        }
}

int osm_daemon_run(const osm_daemon_opts *o) {
        osm_daemon dd = { 0 };
        osm_daemon *d = &dd;
        runtime rt = { .d = d };
        int exit_code = 1;
        reload_opts = *o;

        signal(SIGPIPE, SIG_IGN);
        osm_error_list errs = {};
        int r = osm_daemon_load_config(o, &d->cfg, &d->config_path, &errs);
        osm_error_list_print(&errs, stderr);
        osm_error_list_done(&errs);
        if (r != 0) {
                log_error("configuration has problems; not starting (osmosed --check-config tells more)");
                osm_config_free(&d->cfg);
                return 1;
        }
        osm_log_set_level(d->cfg.log_level);
        if (osm_crypto_init() < 0) {
                log_error("libsodium failed to initialize");
                goto out;
        }
        raise_nofile();

        r = osm_mkdir_p(d->cfg.state_dir, 0700);
        if (r < 0) {
                log_error("cannot create state directory %s: %s", d->cfg.state_dir, strerror(-r));
                goto out;
        }
        /* The state directory holds the secret key and the room's data: ours alone. */
        struct stat st;
        if (stat(d->cfg.state_dir, &st) == 0 && (st.st_mode & 077)) {
                log_notice("state directory %s was mode %04o; making it 0700", d->cfg.state_dir,
                           (unsigned) (st.st_mode & 07777));
                if (chmod(d->cfg.state_dir, 0700) < 0)
                        log_warning("chmod %s: %m", d->cfg.state_dir);
        }
        char keypath[4200];
        snprintf(keypath, sizeof keypath, "%s/identity.key", d->cfg.state_dir);
        bool created;
        osm_error why = {};
        r = osm_keypair_load_or_create(keypath, &d->identity, &created, &why);
        if (r < 0) {
                log_error("identity %s: %s (%s); refusing to start — it is never replaced silently",
                          keypath, why.message, strerror(-r));
                goto out;
        }
        osm_space_id(d->identity.pk, d->space_id);
        log_info("space %s \"%s\" (%s identity)", d->space_id, d->cfg.name, created ? "new" : "existing");

        gid_t gid_allowed;
        int lfd = open_control_socket(&d->cfg, &gid_allowed, &rt.socket_activated);
        if (lfd < 0)
                goto out;

        d->loop = uv_default_loop();
        d->started_real_us = osm_now_real_us();
        d->started_mono_us = osm_now_mono_us();
        osm_server_limits lim = limits_from(&d->cfg);
        r = osm_server_new(d->loop, lfd, gid_allowed, &lim, &d->server);
        if (r < 0) {
                close(lfd);
                log_error("control server: %s", uv_strerror(r));
                goto out;
        }
        d->reader_gid = reader_gid(&d->cfg);
        osm_server_set_roles(d->server, d->reader_gid, NULL, NULL);
        if (osm_server_add_methods(d->server, osm_service_methods, osm_n_service_methods, d) < 0 ||
            osm_server_add_methods(d->server, osm_daemon_methods, osm_n_daemon_methods, d) < 0) {
                log_error("built-in methods do not match the interface files");
                goto out;
        }
        for (size_t i = 0; i < osm_n_subsystems; i++) {
                const osm_subsystem *s = osm_subsystems[i];
                if (!s)
                        continue;
                r = s->start(d);
                if (r < 0) {
                        log_error("%s: cannot start: %s", s->name, strerror(-r));
                        rt.n_started = i;
                        goto out;
                }
                rt.n_started = i + 1;
        }

        uv_signal_init(d->loop, &rt.sigterm);
        uv_signal_init(d->loop, &rt.sigint);
        uv_signal_init(d->loop, &rt.sighup);
        rt.sigterm.data = rt.sigint.data = rt.sighup.data = &rt;
        uv_signal_start(&rt.sigterm, on_signal, SIGTERM);
        uv_signal_start(&rt.sigint, on_signal, SIGINT);
        uv_signal_start(&rt.sighup, on_signal, SIGHUP);
        uv_timer_init(d->loop, &rt.shutdown);
        rt.shutdown.data = &rt;
        uv_timer_init(d->loop, &rt.watchdog);
#if HAVE_SYSTEMD
        uint64_t wd_us = osm_sd_watchdog_usec();
        if (wd_us > 0) {
                uv_timer_start(&rt.watchdog, on_watchdog, wd_us / 2000, wd_us / 2000);
                log_info("watchdog every %llu ms", (unsigned long long) (wd_us / 2000));
        }
#endif
        (void) on_watchdog;
        /* Starting up needs more heap than serving (the sandbox's seccomp filter is
         * compiled, schemas are read): give the pages freed since back to the system, or
         * an idle daemon keeps holding them (about 400 KiB, bench/footprint.sh). */
        malloc_trim(0);
        log_info("osmosed %s ready on %s", OSM_VERSION, d->cfg.socket_path);
        notify("READY=1\nSTATUS=serving");

        uv_run(d->loop, UV_RUN_DEFAULT);
        exit_code = 0;
        log_info("stopped");
out:
        if (rt.n_started) {
                for (size_t i = rt.n_started; i-- > 0;)
                        if (osm_subsystems[i] && osm_subsystems[i]->stop)
                                osm_subsystems[i]->stop(d);
        }
        if (d->loop) {
                if (d->server) {
                        osm_server_free(d->server, NULL, NULL);
                        d->server = NULL;
                        if (!rt.socket_activated && exit_code != 0)
                                unlink(d->cfg.socket_path);
                }
                uv_walk(d->loop, close_walk_cb, NULL);
                uv_run(d->loop, UV_RUN_DEFAULT);
                uv_loop_close(d->loop);
        }
        osm_keypair_clear(&d->identity);
        osm_config_free(&d->cfg);
        free(d->config_path);
        return exit_code;
}
