/* discovery.h: building discovery as other subsystems use it in-process: the room's
 * service catalog, publishing services on behalf of workload instances, and watching
 * changes. The Varlink interface io.osmose.Discovery is served on top of the same calls. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "daemon/discovery/catalog.h"

struct osm_daemon;
typedef struct osm_discovery osm_discovery;

/* The discovery subsystem (registered in daemon.c's table); state in d->discovery. */
struct osm_subsystem;
extern const struct osm_subsystem osm_discovery_subsystem;

/* Resolved services of the room, of type (NULL: all), as an array of Service objects
 * (see io.osmose.Discovery.varlink). New reference; NULL on ENOMEM or when discovery is
 * off (disc NULL). */
json_t *osm_discovery_services(osm_discovery *disc, const char *type);
/* Peer records, as Peer objects. New reference. */
json_t *osm_discovery_peers(osm_discovery *disc);

/* --- publishing on behalf of someone (e.g. a workload instance) --- */

typedef struct osm_discovery_pub osm_discovery_pub;

#define OSM_DISCOVERY_MAX_PUBS 64   /* publications at a time (each is an Avahi entry group) */
#define OSM_DISCOVERY_MAX_TXT  1300 /* bytes of TXT data: fits one packet (RFC 6763 §6.2) */

/* Publish a service: name (an mDNS instance name, 1..63 bytes of UTF-8), type (e.g.
 * "_http._tcp"), port, txt (NULL or an object of string values, each "key=value" at most
 * 255 bytes, OSM_DISCOVERY_MAX_TXT bytes in all). The service stays published — and is published again
 * after an avahi-daemon restart, under an alternative name after a name conflict —
 * until osm_discovery_withdraw(). Returns 0, -EINVAL (err says what), -ENOSPC (too
 * many publications), -ENOMEM, -ENODEV (discovery is off). */
int osm_discovery_publish(osm_discovery *disc, const char *name, const char *type, uint16_t port,
                          json_t *txt, osm_discovery_pub **out, osm_error *err);
/* Withdraw and free. Accepts NULL, returns NULL. Safe after the subsystem stopped. */
osm_discovery_pub *osm_discovery_withdraw(osm_discovery_pub *pub);
/* The name it is published under now (may differ after a conflict), and whether Avahi
 * has established it on the network. */
const char *osm_discovery_pub_name(const osm_discovery_pub *pub);
bool osm_discovery_pub_established(const osm_discovery_pub *pub);

/* --- watching --- */

typedef struct osm_discovery_sub osm_discovery_sub;

/* Called for each change: kind, event, the entry (borrowed). The callback may
 * unsubscribe itself (or others). */
typedef void (*osm_discovery_fn)(osm_dcat_kind kind, osm_dcat_event ev, json_t *obj, void *userdata);

/* Subscribe to peers (OSM_DCAT_PEER) or services (OSM_DCAT_SERVICE, only of type unless
 * NULL). Returns 0 or -ENOMEM/-ENODEV. */
int osm_discovery_subscribe(osm_discovery *disc, osm_dcat_kind kind, const char *type,
                            osm_discovery_fn fn, void *userdata, osm_discovery_sub **out);
/* Accepts NULL, returns NULL. Safe after the subsystem stopped. */
osm_discovery_sub *osm_discovery_unsubscribe(osm_discovery_sub *sub);
