/* catalog.h: what discovery knows about the room: the services seen (one entry per name,
 * type and domain, merged over interfaces and protocols) and the peers, derived from the
 * _osmose._tcp services. No Avahi and no I/O: the subsystem feeds it browse and resolve
 * events, tests feed it directly. Everything a LAN can grow here is capped. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "daemon/discovery/txt.h"

#define OSM_OSMOSE_SERVICE_TYPE "_osmose._tcp"
#define OSM_DCAT_MAX_PRESENCES  8   /* (interface, protocol) pairs tracked per service */

typedef struct osm_dcat osm_dcat;

typedef enum osm_dcat_kind {
        OSM_DCAT_SERVICE,
        OSM_DCAT_PEER,
} osm_dcat_kind;

typedef enum osm_dcat_event {
        OSM_DCAT_ADDED,
        OSM_DCAT_CHANGED,
        OSM_DCAT_REMOVED,       /* a service left; a peer is gone (it stays listed) */
} osm_dcat_event;

const char *osm_dcat_event_name(osm_dcat_kind kind, osm_dcat_event ev);

/* Called for every change; obj (borrowed) is the entry as listed. */
typedef void (*osm_dcat_notify_fn)(osm_dcat_kind kind, osm_dcat_event ev, json_t *obj, void *userdata);

typedef struct osm_dcat_limits {
        size_t max_services;    /* entries, resolved or not */
        size_t max_peers;       /* records, present or gone */
} osm_dcat_limits;

/* own_id: this space's id (a peer claiming it is a conflict). notify may be NULL. */
int osm_dcat_new(const osm_dcat_limits *limits, const char *own_id,
                 osm_dcat_notify_fn notify, void *userdata, osm_dcat **out);
osm_dcat *osm_dcat_free(osm_dcat *c);
void osm_dcat_set_limits(osm_dcat *c, const osm_dcat_limits *limits);

/* Flags of a browse event. */
enum {
        OSM_DCAT_LOCAL = 1 << 0,        /* published on this host */
        OSM_DCAT_OWN   = 1 << 1,        /* published by this daemon itself */
};

/* A browser saw name/type/domain on (iface, proto). Returns 1 if this presence is new
 * (the caller should resolve it), 0 if already known, -ENOSPC if the service cap is
 * reached (ignored and counted), -EINVAL if a string is empty or too long. */
int osm_dcat_seen(osm_dcat *c, int iface, int proto, const char *name, const char *type,
                  const char *domain, unsigned flags);

typedef struct osm_dcat_resolution {
        const char *host;
        const char *address;            /* text form, may be NULL */
        uint16_t port;
        const osm_txt_item *txt;        /* wire order */
        size_t n_txt;
} osm_dcat_resolution;

/* A resolver answered for a presence. Returns 0, -ENOENT if the presence is unknown
 * (it went away meanwhile), -ENOMEM. */
int osm_dcat_resolved(osm_dcat *c, int iface, int proto, const char *name, const char *type,
                      const char *domain, const osm_dcat_resolution *res);

/* A browser lost the service on (iface, proto); the service goes when its last presence
 * does, and a peer published as that service is marked gone. */
void osm_dcat_lost(osm_dcat *c, int iface, int proto, const char *name, const char *type,
                   const char *domain);

/* The browsers are gone (avahi-daemon went away): forget every presence but keep the
 * entries, so that a reconnect can re-confirm them without flapping; osm_dcat_sweep()
 * later removes (or marks gone) those nobody confirmed. */
void osm_dcat_mark_stale(osm_dcat *c);
void osm_dcat_sweep(osm_dcat *c);

/* Listings, new references: resolved services (of type, unless NULL), sorted by type and
 * name; and all peer records sorted by name. NULL on ENOMEM. */
json_t *osm_dcat_services(osm_dcat *c, const char *type);
json_t *osm_dcat_peers(osm_dcat *c);

/* Set a peer's trust. Trust goes to one gateway: if several records claim the id,
 * trusting fails with -EADDRINUSE and *instances (new reference, may be NULL) lists
 * them; untrusting clears all of them. -ENOENT if no record has the id. */
int osm_dcat_trust(osm_dcat *c, const char *id, bool trusted, json_t **instances);

/* Persistence of the peer records: save makes {"version":1,"peers":[…]}; load adds the
 * records of such a document (all gone until seen again), skipping invalid ones
 * (*skipped counts them). load returns 0 or -EINVAL (err) if doc is not such a document. */
json_t *osm_dcat_save(osm_dcat *c);
int osm_dcat_load(osm_dcat *c, json_t *doc, size_t *skipped, osm_error *err);

typedef struct osm_dcat_stats {
        size_t services;                /* entries, resolved or not */
        size_t gateway_services;        /* of them, _osmose._tcp ones (room apart: max_peers) */
        size_t services_listed;         /* resolved */
        size_t peers;
        size_t peers_present;
        size_t peers_conflicting;
        bool own_id_claimed;            /* someone else on the LAN announces our id */
        uint64_t dropped_services;      /* over the cap */
        uint64_t dropped_peers;
        uint64_t invalid_peer_records;  /* _osmose._tcp records with a bad TXT */
} osm_dcat_stats;
void osm_dcat_get_stats(osm_dcat *c, osm_dcat_stats *st);

/* Text from the LAN made safe to show: invalid UTF-8 and control characters become
 * U+FFFD. Returns a new JSON string (NULL on ENOMEM). */
json_t *osm_json_text(const char *s);
