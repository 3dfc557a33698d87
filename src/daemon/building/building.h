/* building.h: the building subsystem as other subsystems see it — is this room in a
 * building, the building's trusted publisher keys, and replicated SQL for other state
 * kept building-wide (channels, rollouts). */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "osmose/error.h"

struct osm_daemon;

/* The result of an asynchronous building call, on the loop. error is NULL on success
 * (then rows holds the result of a query: an array of arrays; NULL for exec), else a
 * Varlink error name (io.osmose.Building.Quorum when there is no quorum) and message. */
typedef void (*osm_building_cb)(void *userdata, const char *error, const char *message, json_t *rows);

bool osm_building_active(struct osm_daemon *d);
/* Is key (URL-safe base64) trusted building-wide? From the replicated state's last copy;
 * callable from any thread. */
bool osm_building_trusts(struct osm_daemon *d, const char *key_b64);

/* Run SQL (one statement or several, params a JSON array or NULL) on the replicated
 * database; cb runs on the loop. Returns 0, or -ENOTCONN outside a building. */
int osm_building_exec(struct osm_daemon *d, const char *sql, json_t *params, osm_building_cb cb, void *userdata);
int osm_building_query(struct osm_daemon *d, const char *sql, json_t *params, osm_building_cb cb, void *userdata);

/* Bundles by hash between members (share.c). Every function may be called from any
 * thread, and does nothing (or -ENOTCONN) outside a building. */
/* Hand a copy that arrived from a member (fd at offset 0, size bytes as the member
 * announced) to the caller, which verifies it by its id and keeps it: 0 taken, or < 0
 * refused (err says why; the next member is tried). */
typedef int (*osm_building_take_fn)(void *arg, int fd, uint64_t size, osm_error *err);
/* Fetch bundle id (size bytes; 0: any size up to the bundle limit) from the members that
 * keep it, one after another, each copy written to a temporary file in tmp_dir and given
 * to take. Blocks (a thread pool's thread). 0 when a copy was taken, -ENOENT when no
 * member has it or none served a copy that was taken, -ENOTCONN outside a building. */
int osm_building_fetch_bundle(struct osm_daemon *d, const char *id, uint64_t size, const char *tmp_dir,
                              osm_building_take_fn take, void *arg);
/* Record in the building that this room keeps bundle id (size bytes) and serves it to
 * the other members. */
void osm_building_holds(struct osm_daemon *d, const char *id, uint64_t size);
