/* bridge.h: one MQTT bridge (broker connection, subscriptions, storing) on the loop. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <uv.h>

#include "daemon/ingest/ingest-map.h"

struct osm_store;
typedef struct osm_bridge osm_bridge;

/* Make a bridge for def (copied): checks the password file, opens STATE/ingest/NAME.inflight.
 * Nothing is connected until osm_bridge_start. Returns 0 or -errno with err. */
int osm_bridge_new(uv_loop_t *loop, struct osm_store *store, const char *state_dir, const char *space_id,
                   const osm_ingest_def *def, osm_bridge **out, osm_error *err);
/* Recover from the in-flight file, then connect (and reconnect with backoff, for ever). */
void osm_bridge_start(osm_bridge *b);
/* Disconnect without acknowledging anything more and free (once the store has answered
 * every record in flight, which may be after this returns). Accepts NULL, returns NULL. */
osm_bridge *osm_bridge_free(osm_bridge *b);

const char *osm_bridge_name(const osm_bridge *b);
const osm_ingest_def *osm_bridge_def(const osm_bridge *b);
bool osm_bridge_connected(const osm_bridge *b);
/* The Bridge object of io.osmose.Ingest: definition, state and counters. New reference. */
json_t *osm_bridge_json(const osm_bridge *b);
