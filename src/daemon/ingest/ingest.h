/* ingest.h: MQTT ingest, the subsystem that subscribes to brokers and stores what devices
 * publish: one bridge per [ingest.NAME] section or `osmosectl ingest add`. */
#pragma once

#include <jansson.h>

#include "daemon/ingest/ingest-map.h"

struct osm_daemon;
typedef struct osm_ingest osm_ingest;

struct osm_subsystem;
extern const struct osm_subsystem osm_ingest_subsystem;

/* --- for iface-ingest.c --- */

/* Bridges with their definition and run-time state (Bridge objects). New reference. */
json_t *osm_ingest_list(osm_ingest *ing);
/* Add a bridge (persisted in STATE/ingest.json, then started). 0, -EEXIST, -EINVAL (err),
 * -ENOSPC (too many bridges), -errno writing the file. */
int osm_ingest_add(osm_ingest *ing, const osm_ingest_def *def, osm_error *err);
/* Remove a CLI-added bridge: stopped, forgotten. -ENOENT, -EPERM (defined in the config file). */
int osm_ingest_remove(osm_ingest *ing, const char *name);
/* _mqtt._tcp services discovery has seen (never connected to by themselves). New reference;
 * NULL when discovery is not running. */
json_t *osm_ingest_discovered(osm_ingest *ing);

struct osm_server;
int osm_ingest_iface_register(osm_ingest *ing, struct osm_server *server);
