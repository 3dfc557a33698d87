/* discovery.c: the discovery subsystem: the avahi-client on the libuv loop (connect, lose,
 * reconnect), start, stop, status and reload. Browsing and resolving are in browse.c,
 * publishing in publish.c, the peers and the catalog's subscribers in peers.c, the Varlink
 * methods in iface-discovery.c. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <avahi-common/address.h>
#include <avahi-common/alternative.h>
#include <avahi-common/domain.h>
#include <avahi-common/error.h>
#include <avahi-common/malloc.h>
#include <avahi-common/strlst.h>

#include "daemon/discovery/discovery-internal.h"
#include "osmose/log.h"
#include "osmose/varlink.h"

#define RETRY_MAX_MS            10000   /* back-off ceiling for re-creating the client */
#define SWEEP_DELAY_MS          4000    /* after a reconnect, what was not seen again goes */
#define RATELIMIT_WINDOW_US     (10 * 1000000ull)
#define RATELIMIT_BURST         5

/* --- small helpers ----------------------------------------------------------------- */

/* Log at most RATELIMIT_BURST messages per window for one kind of LAN noise. */
bool osm_disc_ratelimit_ok(osm_ratelimit *rl) {
        uint64_t now = osm_now_mono_us();

        if (now - rl->window_start_us > RATELIMIT_WINDOW_US) {
                if (rl->suppressed)
                        log_warning("discovery: %u similar messages suppressed", rl->suppressed);
                rl->window_start_us = now;
                rl->count = rl->suppressed = 0;
        }
        if (rl->count < RATELIMIT_BURST) {
                rl->count++;
                return true;
        }
        rl->suppressed++;
        return false;
}

bool osm_disc_client_running(const osm_discovery *disc) {
        return disc->client && disc->state == AVAHI_CLIENT_S_RUNNING;
}

bool osm_discovery_available(const osm_discovery *disc) {
        return disc && disc->enabled;
}

static const char *avahi_state_name(const osm_discovery *disc) {
        if (!disc->enabled)
                return "off";
        if (!disc->client)
                return "unavailable";
        switch (disc->state) {
        case AVAHI_CLIENT_S_RUNNING:     return "running";
        case AVAHI_CLIENT_S_REGISTERING: return "registering";
        case AVAHI_CLIENT_S_COLLISION:   return "host-name-collision";
        case AVAHI_CLIENT_CONNECTING:    return "waiting";
        case AVAHI_CLIENT_FAILURE:       return "failed";
        }
        return "unknown";
}

/* The port our record announces: the federation port while federation is on and listens
 * beyond loopback, else 0. Port 0 (as Apple's TXT-only _device-info._tcp uses) names no
 * connectable service at all, while a "discard" port 9 would still invite connections,
 * and DESIGN §10 wants nothing in the record to invite one while federation is off. */
uint16_t osm_disc_federation_port(const osm_config *cfg) {
        const char *listen = cfg->federation_listen, *colon;
        uint64_t port;

        if (!cfg->federation_enabled || !listen || !(colon = strrchr(listen, ':')))
                return 0;
        if (strncmp(listen, "127.", 4) == 0 || strncmp(listen, "[::1]", 5) == 0 ||
            strncmp(listen, "localhost:", 10) == 0)
                return 0;
        if (osm_parse_u64(colon + 1, &port) < 0 || port == 0 || port > 65535)
                return 0;
        return (uint16_t) port;
}

/* --- the Avahi client ---------------------------------------------------------------- */

static void client_start(osm_discovery *disc);

/* Drop every Avahi object we hold without freeing it: sym_avahi_client_free() does that
 * (and after a failure their server side is gone anyway). */
static void forget_avahi_objects(osm_discovery *disc) {
        osm_disc_jobs_clear(disc, false);
        disc->type_browser = NULL;
        for (osm_browser *br = disc->browsers; br; br = br->next)
                br->browser = NULL;
        if (disc->self) {
                disc->self->group = NULL;
                disc->self->established = false;
        }
        for (osm_discovery_pub *p = disc->pubs; p; p = p->next) {
                p->group = NULL;
                p->established = false;
        }
}

static void client_teardown(osm_discovery *disc) {
        forget_avahi_objects(disc);
        if (disc->client)
                sym_avahi_client_free(disc->client);
        disc->client = NULL;
        disc->state = AVAHI_CLIENT_FAILURE;
        uv_timer_stop(&disc->sweep_timer);
        /* keep what we knew, until the browsers confirm it again or the sweep */
        osm_dcat_mark_stale(disc->cat);
}

static void retry_timer_cb(uv_timer_t *t) {
        osm_discovery *disc = t->data;

        client_teardown(disc);
        client_start(disc);
}

static void schedule_retry(osm_discovery *disc) {
        unsigned delay = disc->retry_ms;

        disc->retry_ms = OSM_MIN(OSM_MAX(disc->retry_ms * 2, 1000u), (unsigned) RETRY_MAX_MS);
        uv_timer_start(&disc->retry_timer, retry_timer_cb, delay, 0);
}

static void sweep_timer_cb(uv_timer_t *t) {
        osm_discovery *disc = t->data;

        osm_dcat_sweep(disc->cat);
}

static void client_cb(AvahiClient *c, AvahiClientState state, void *userdata) {
        osm_discovery *disc = userdata;
        AvahiClientState old = disc->state;

        /* The first callbacks come from inside sym_avahi_client_new(), before it returns. */
        disc->client = c;
        disc->state = state;

        switch (state) {
        case AVAHI_CLIENT_S_RUNNING:
                log_info("discovery: avahi-daemon is running; publishing and browsing");
                disc->retry_ms = 0;
                disc->last_error = 0;
                osm_disc_publish_all(disc);
                osm_disc_browse_all(disc);
                osm_disc_jobs_start(disc);
                if (disc->connected_once && old != AVAHI_CLIENT_S_REGISTERING && old != AVAHI_CLIENT_S_COLLISION)
                        uv_timer_start(&disc->sweep_timer, sweep_timer_cb, SWEEP_DELAY_MS, 0);
                disc->connected_once = true;
                break;
        case AVAHI_CLIENT_S_COLLISION:
        case AVAHI_CLIENT_S_REGISTERING:
                /* The host name is being (re)established: our records go until it is. */
                if (disc->self && disc->self->group)
                        sym_avahi_entry_group_reset(disc->self->group);
                for (osm_discovery_pub *p = disc->pubs; p; p = p->next)
                        if (p->group)
                                sym_avahi_entry_group_reset(p->group);
                break;
        case AVAHI_CLIENT_FAILURE:
                disc->last_error = sym_avahi_client_errno(c);
                log_warning("discovery: lost avahi-daemon (%s); serving what was last seen, reconnecting",
                            avahi_strerror(disc->last_error));
                /* Not from inside the client's own callback: re-create it from the loop. */
                schedule_retry(disc);
                break;
        case AVAHI_CLIENT_CONNECTING:
                log_notice("discovery: avahi-daemon is not running; waiting for it");
                break;
        }
}

/* Is there a system bus to reach avahi-daemon on? Only a single unix:path= address (or
 * libdbus's default) is checked; any other address is left to libdbus to try. */
static bool system_bus_present(char *where, size_t size) {
        const char *addr = getenv("DBUS_SYSTEM_BUS_ADDRESS");
        const char *path = "/var/run/dbus/system_bus_socket";   /* libdbus's default */
        struct stat st;

        if (addr && *addr) {
                if (strncmp(addr, "unix:path=", 10) != 0 || strpbrk(addr + 10, ",;"))
                        return true;
                path = addr + 10;
        }
        snprintf(where, size, "%s", path);
        return stat(path, &st) == 0 && S_ISSOCK(st.st_mode);
}

static void client_start(osm_discovery *disc) {
        AvahiClient *c;
        int err = 0;

        /* Without a system bus nothing can reach avahi-daemon: wait for one (retrying as
         * below) before mapping libavahi-client and the D-Bus stack under it (libdbus,
         * libsystemd, libgcrypt, lz4, zstd, lzma: about 1.2 MiB resident). */
        if (!system_bus_present(disc->no_bus, sizeof disc->no_bus)) {
                forget_avahi_objects(disc);
                disc->client = NULL;
                disc->state = AVAHI_CLIENT_FAILURE;
                if (disc->last_error != AVAHI_ERR_NO_DAEMON)
                        log_warning("discovery: no system bus at %s; retrying", disc->no_bus);
                disc->last_error = AVAHI_ERR_NO_DAEMON;
                schedule_retry(disc);
                return;
        }
        disc->no_bus[0] = '\0';
        /* libavahi-client is mapped from the first time discovery can run; without it
         * discovery stays degraded and says what to install. */
        disc->no_library = (osm_error) {};
        if (osm_dl_avahi(&disc->no_library) < 0) {
                log_error("discovery: %s; discovery is unavailable", disc->no_library.message);
                disc->client = NULL;
                disc->state = AVAHI_CLIENT_FAILURE;
                return;
        }
        disc->state = AVAHI_CLIENT_CONNECTING;
        c = sym_avahi_client_new(osm_avahi_poll_get(disc->poll), AVAHI_CLIENT_NO_FAIL, client_cb, disc, &err);
        if (!c) {
                /* No system bus (or no memory): nothing will tell us when it appears. */
                forget_avahi_objects(disc);
                disc->client = NULL;
                disc->state = AVAHI_CLIENT_FAILURE;
                if (err != disc->last_error)
                        log_warning("discovery: cannot reach avahi-daemon: %s; retrying", avahi_strerror(err));
                disc->last_error = err;
                schedule_retry(disc);
                return;
        }
        disc->client = c;
}

static int discovery_enable(osm_discovery *disc) {
        int r;

        disc->enabled = true;
        r = osm_avahi_poll_new(disc->d->loop, &disc->poll);
        if (r < 0)
                return r;
        r = osm_disc_self_configure(disc);
        if (r < 0)
                return r;
        osm_disc_browsers_configure(disc);
        disc->retry_ms = 0;
        disc->connected_once = false;
        client_start(disc);
        return 0;
}

static void discovery_disable(osm_discovery *disc) {
        if (!disc->enabled)
                return;
        disc->enabled = false;
        uv_timer_stop(&disc->retry_timer);
        /* Withdraw our records before the client goes (goodbye packets). */
        if (disc->self) {
                osm_disc_pub_free(disc->self);
                disc->self = NULL;
        }
        for (osm_discovery_pub *p = disc->pubs; p; p = p->next)
                if (p->group) {
                        sym_avahi_entry_group_free(p->group);
                        p->group = NULL;
                }
        osm_disc_jobs_clear(disc, true);
        client_teardown(disc);
        osm_disc_browsers_free(disc);
        disc->poll = osm_avahi_poll_free(disc->poll);
        /* Nothing is seen while off: services go, peers are gone (and stay listed). */
        osm_dcat_sweep(disc->cat);
}

/* --- the subsystem ------------------------------------------------------------------- */

static osm_dcat_limits limits_of(const osm_config *cfg) {
        return (osm_dcat_limits) {
                .max_services = (size_t) cfg->discovery_max_services,
                .max_peers = (size_t) cfg->discovery_max_peers,
        };
}

static void free_when_closed(uv_handle_t *h) {
        osm_discovery *disc = h->data;

        /* the three timers close in no promised order; the last one frees */
        if (--disc->n_closing == 0)
                free(disc);
}

static int discovery_start(osm_daemon *d) {
        osm_discovery *disc;
        osm_dcat_limits lim = limits_of(&d->cfg);
        int r;

        disc = calloc(1, sizeof(*disc));
        if (!disc)
                return -ENOMEM;
        disc->d = d;
        uv_timer_init(d->loop, &disc->retry_timer);
        uv_timer_init(d->loop, &disc->sweep_timer);
        uv_timer_init(d->loop, &disc->save_timer);
        disc->retry_timer.data = disc->sweep_timer.data = disc->save_timer.data = disc;
        /* These timers must not keep the loop alive on their own at shutdown. */
        uv_unref((uv_handle_t *) &disc->retry_timer);
        uv_unref((uv_handle_t *) &disc->sweep_timer);
        uv_unref((uv_handle_t *) &disc->save_timer);
        d->discovery = disc;

        if (asprintf(&disc->state_path, "%s/discovery.json", d->cfg.state_dir) < 0) {
                disc->state_path = NULL;
                return -ENOMEM;
        }
        r = osm_dcat_new(&lim, d->space_id, osm_disc_catalog_notify, disc, &disc->cat);
        if (r < 0)
                return r;
        osm_disc_load_peers(disc);
        r = osm_discovery_iface_register(disc);
        if (r < 0)
                return r;

        if (!d->cfg.discovery_enabled) {
                log_info("discovery: off ([discovery] enabled = no)");
                return 0;
        }
        return discovery_enable(disc);
}

static void discovery_stop(osm_daemon *d) {
        osm_discovery *disc = d->discovery;

        if (!disc)
                return;
        osm_discovery_iface_stop(disc);
        discovery_disable(disc);

        /* Publications and subscriptions belong to their owners: detach them. */
        while (disc->pubs) {
                osm_discovery_pub *p = disc->pubs;
                disc->pubs = p->next;
                p->prev = p->next = NULL;
                p->disc = NULL;
        }
        osm_disc_subs_sweep(disc);
        while (disc->subs) {
                osm_discovery_sub *s = disc->subs;
                disc->subs = s->next;
                s->prev = s->next = NULL;
                s->disc = NULL;
        }
        if (disc->save_pending) {
                int r = osm_discovery_save_now(disc);
                if (r < 0)
                        log_error("discovery: cannot write %s: %s", disc->state_path, strerror(-r));
        }
        disc->cat = osm_dcat_free(disc->cat);
        free(disc->state_path);
        free(disc->configured_name);
        d->discovery = NULL;

        disc->n_closing = 3;
        uv_close((uv_handle_t *) &disc->retry_timer, free_when_closed);
        uv_close((uv_handle_t *) &disc->sweep_timer, free_when_closed);
        uv_close((uv_handle_t *) &disc->save_timer, free_when_closed);
}

static osm_health discovery_health(osm_daemon *d, char *detail, size_t size) {
        osm_discovery *disc = d->discovery;
        if (!disc) {
                snprintf(detail, size, "not started");
                return OSM_HEALTH_FAILED;
        }
        if (!disc->enabled) {
                snprintf(detail, size, "off in the configuration ([discovery] enabled = no)");
                return OSM_HEALTH_DISABLED;
        }
        if (!osm_disc_client_running(disc)) {
                if (disc->no_library.code < 0)
                        snprintf(detail, size, "%s", disc->no_library.message);
                else if (disc->no_bus[0])
                        snprintf(detail, size, "no system bus at %s (for avahi-daemon); retrying", disc->no_bus);
                else if (disc->client && disc->state == AVAHI_CLIENT_CONNECTING)
                        snprintf(detail, size, "avahi-daemon is not running; waiting for it");
                else if (disc->client)
                        snprintf(detail, size, "avahi-daemon is registering its host name");
                else
                        snprintf(detail, size, "avahi-daemon not reachable (%s); retrying",
                                 avahi_strerror(disc->last_error));
                return OSM_HEALTH_DEGRADED;
        }
        osm_dcat_stats st;
        osm_dcat_get_stats(disc->cat, &st);
        if (st.own_id_claimed) {
                snprintf(detail, size, "another gateway on the LAN announces this space's id");
                return OSM_HEALTH_DEGRADED;
        }
        const char *published = disc->self ? disc->self->name : NULL;
        bool conflict = disc->self && disc->configured_name && strcmp(disc->self->name, disc->configured_name) != 0;
        snprintf(detail, size, "published as '%s'%s%s%s; %zu of %zu peers present; %zu services",
                 published ? published : "", conflict ? " (name conflict: '" : "",
                 conflict ? disc->configured_name : "", conflict ? "' is taken)" : "",
                 st.peers_present, st.peers, st.services_listed);
        return OSM_HEALTH_OK;
}

static void discovery_status(osm_daemon *d, json_t *obj) {
        osm_discovery *disc = d->discovery;
        if (!disc)
                return;
        osm_dcat_stats st;
        osm_dcat_get_stats(disc->cat, &st);
        const char *published = disc->self ? disc->self->name : NULL;
        bool conflict = disc->self && disc->configured_name && strcmp(disc->self->name, disc->configured_name) != 0;
        json_t *info = json_object();
        json_object_set_new(obj, "info", info);
        json_object_set_new(info, "avahi", json_string(avahi_state_name(disc)));
        json_object_set_new(info, "published_name", published ? osm_json_text(published) : json_null());
        json_object_set_new(info, "name_conflict", json_boolean(conflict));
        json_object_set_new(info, "peers", json_integer((json_int_t) st.peers));
        json_object_set_new(info, "peers_present", json_integer((json_int_t) st.peers_present));
        json_object_set_new(info, "peers_conflicting", json_integer((json_int_t) st.peers_conflicting));
        json_object_set_new(info, "own_id_claimed", json_boolean(st.own_id_claimed));
        json_object_set_new(info, "services", json_integer((json_int_t) st.services_listed));
        json_object_set_new(info, "browsed_types", json_integer((json_int_t) disc->n_browsers));
        json_object_set_new(info, "dropped_services", json_integer((json_int_t) st.dropped_services));
        json_object_set_new(info, "dropped_peers", json_integer((json_int_t) st.dropped_peers));
        json_object_set_new(info, "dropped_types", json_integer((json_int_t) disc->dropped_types));
        json_object_set_new(info, "invalid_peer_records", json_integer((json_int_t) st.invalid_peer_records));
}

static void discovery_reload(osm_daemon *d, const osm_config *old) {
        osm_discovery *disc = d->discovery;
        osm_dcat_limits lim = limits_of(&d->cfg);
        const osm_config *cfg = &d->cfg;
        bool renamed, port_changed;

        if (!disc)
                return;
        osm_dcat_set_limits(disc->cat, &lim);
        if (!cfg->discovery_enabled) {
                if (disc->enabled)
                        log_info("discovery: switched off");
                discovery_disable(disc);
                return;
        }
        if (!disc->enabled) {
                log_info("discovery: switched on");
                if (discovery_enable(disc) < 0)
                        log_error("discovery: cannot start: out of memory");
                return;
        }
        renamed = !old->name || !cfg->name || strcmp(old->name, cfg->name) != 0;
        port_changed = osm_disc_federation_port(old) != osm_disc_federation_port(cfg);
        if (renamed || port_changed)
                osm_disc_self_configure(disc);
        osm_disc_browsers_configure(disc);
}

const osm_subsystem osm_discovery_subsystem = {
        .name = "discovery",
        .start = discovery_start,
        .stop = discovery_stop,
        .health = discovery_health,
        .status = discovery_status,
        .reload = discovery_reload,
};

