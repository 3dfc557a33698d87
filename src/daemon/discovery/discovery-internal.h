/* discovery-internal.h: the discovery subsystem's state, shared by its own files only. */
#pragma once

#include <uv.h>

#include "daemon/daemon.h"
#include "daemon/dl-avahi.h"
#include "daemon/discovery/avahi-uv.h"
#include "daemon/discovery/catalog.h"
#include "daemon/discovery/discovery.h"

#define OSM_DISCOVERY_PROTOCOL_VERSION 1

typedef struct osm_browser {
        struct osm_browser *next;
        osm_discovery *disc;
        char *type;
        AvahiServiceBrowser *browser;   /* NULL while Avahi is away */
        bool configured;                /* named in the configuration (or built in) */
} osm_browser;

/* A presence waiting to be resolved, or being resolved. */
typedef struct osm_resolve_job {
        struct osm_resolve_job *prev, *next;
        osm_discovery *disc;
        int iface, proto;
        char *name, *type, *domain;
        AvahiServiceResolver *resolver; /* NULL while queued */
} osm_resolve_job;

typedef struct osm_ratelimit {
        uint64_t window_start_us;
        unsigned count, suppressed;
} osm_ratelimit;

struct osm_discovery_pub {
        osm_discovery_pub *prev, *next;
        osm_discovery *disc;            /* NULL once the subsystem stopped */
        char *name;                     /* current name (an alternative after a conflict) */
        char *type;
        uint16_t port;
        AvahiStringList *txt;
        AvahiEntryGroup *group;
        bool established;
        bool own;                       /* our _osmose._tcp record */
};

struct osm_discovery_sub {
        osm_discovery_sub *prev, *next;
        osm_discovery *disc;            /* NULL once the subsystem stopped */
        osm_dcat_kind kind;
        char *type;
        osm_discovery_fn fn;
        void *userdata;
        bool dead;
};

struct osm_discovery {
        osm_daemon *d;
        osm_dcat *cat;
        char *state_path;               /* state_dir/discovery.json */
        bool enabled;

        /* Avahi */
        osm_avahi_poll *poll;
        AvahiClient *client;
        AvahiClientState state;
        int last_error;                 /* AVAHI_ERR_* of the last failure, 0 if none */
        osm_error no_library;           /* why libavahi-client cannot be loaded (code 0: it can) */
        char no_bus[128];               /* the system bus socket that is missing, or "" */
        bool connected_once;
        uv_timer_t retry_timer;         /* re-create the client (deferred, backing off) */
        unsigned retry_ms;
        uv_timer_t sweep_timer;         /* after a reconnect: drop what was not seen again */
        uv_timer_t save_timer;          /* peer list written at most this often */
        bool save_pending;
        unsigned n_closing;             /* timers still closing at stop; the last frees */

        /* our own _osmose._tcp record */
        osm_discovery_pub *self;
        char *configured_name;
        unsigned name_conflicts;

        /* browsing */
        AvahiServiceTypeBrowser *type_browser;
        osm_browser *browsers;
        size_t n_browsers;
        uint64_t dropped_types;
        osm_resolve_job *queue_head, *queue_tail;
        osm_resolve_job *inflight;
        size_t n_queued, n_inflight;
        uint64_t dropped_resolves;

        osm_discovery_pub *pubs;
        size_t n_pubs;
        osm_discovery_sub *subs;
        unsigned dispatching;

        osm_ratelimit rl_cap, rl_txt;
        struct osm_vl_watch *watches;   /* Varlink streams (iface-discovery.c) */
};

/* iface-discovery.c */
int osm_discovery_iface_register(osm_discovery *disc);
void osm_discovery_iface_stop(osm_discovery *disc);

/* discovery.c */
bool osm_discovery_available(const osm_discovery *disc);
/* Log at most a burst of messages per window for one kind of LAN noise. */
bool osm_disc_ratelimit_ok(osm_ratelimit *rl);
bool osm_disc_client_running(const osm_discovery *disc);
/* The port our record announces: the federation port, or 0 (see discovery.c). */
uint16_t osm_disc_federation_port(const osm_config *cfg);

/* peers.c */
int osm_discovery_save_now(osm_discovery *disc);
void osm_disc_subs_sweep(osm_discovery *disc);
void osm_disc_catalog_notify(osm_dcat_kind kind, osm_dcat_event ev, json_t *obj, void *userdata);
void osm_disc_load_peers(osm_discovery *disc);

/* browse.c */
void osm_disc_jobs_start(osm_discovery *disc);
void osm_disc_jobs_clear(osm_discovery *disc, bool free_resolvers);
void osm_disc_browse_all(osm_discovery *disc);
void osm_disc_browsers_configure(osm_discovery *disc);
void osm_disc_browsers_free(osm_discovery *disc);

/* publish.c */
void osm_disc_publish_all(osm_discovery *disc);
void osm_disc_add_publications(osm_discovery *disc, json_t *services, const char *type);
void osm_disc_pub_free(osm_discovery_pub *pub);
int osm_disc_self_configure(osm_discovery *disc);
