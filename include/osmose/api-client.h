/* api-client.h: a small C client of the workload API (io.osmose.Api) for programs that run
 * as Osmose workloads: connect to /run/osmose/api.sock, then put and query records, watch
 * collections, read the room's services and publish one's own.
 *
 * Every function returns 0 on success or a negative errno; -EREMOTEIO means the daemon
 * answered with an error, described in *err (its Varlink name, e.g.
 * OSM_E_PERMISSION_DENIED, its parameters, and a one-line message). Calls refused
 * with io.osmose.Api.RateLimited are retried after the delay the daemon asks for (a few
 * times) before the error is returned. Link with libosmose and jansson. */
#pragma once

#include <jansson.h>
#include <stdint.h>

#include "osmose/client.h"

#define OSM_API_SOCKET "/run/osmose/api.sock"

typedef struct osm_api_client osm_api_client;

/* Connect: path NULL means $OSMOSE_API, else OSM_API_SOCKET. */
int osm_api_connect(const char *path, osm_api_client **out);
osm_api_client *osm_api_close(osm_api_client *c);
OSM_DEFINE_CLEANUP(osm_api_client *, osm_api_close)
#define _cleanup_api_client_ _cleanup_(osm_api_closep)

/* The capability a PermissionDenied error names ("store:write:rooms/x"), or NULL. */
const char *osm_api_error_grant(const osm_client_error *err);
/* Is err the Varlink error name? */
bool osm_api_error_is(const osm_client_error *err, const char *name);

/* Who am I: {instance, workload, grants[], manifest?, limits{}, usage{}} (owned). */
int osm_api_info(osm_api_client *c, json_t **out, osm_client_error *err);

/* Store a record (body borrowed; any JSON object) in a collection the workload may write;
 * returns once it is durable. id (may be NULL) receives the record id (64 bytes). */
int osm_api_put(osm_api_client *c, const char *collection, json_t *body, char id[64], osm_client_error *err);

/* Store an array of objects (borrowed) in one call; *stored (may be NULL) counts them. */
int osm_api_put_batch(osm_api_client *c, const char *collection, json_t *records, size_t *stored,
                      osm_client_error *err);

/* Records of collection in [since_us, until_us) (0: no bound), oldest first, at most limit
 * (0: all; pages are followed). *records is an array of {id, collection, time, writer,
 * body} (owned). */
int osm_api_query(osm_api_client *c, const char *collection, int64_t since_us, int64_t until_us,
                  size_t limit, json_t **records, osm_client_error *err);

/* Watch records committed from now on to collections matching pattern ("sensors/ *"
 * without the space): cb gets each record (borrowed); a non-zero return from cb ends the
 * watch and is returned. Blocks; use a connection of its own for it. */
typedef int (*osm_api_record_cb)(json_t *record, void *userdata);
int osm_api_watch(osm_api_client *c, const char *pattern, osm_api_record_cb cb, void *userdata,
                  osm_client_error *err);

/* The room's services, all or of type ("_ipp._tcp"), as an array (owned). */
int osm_api_services(osm_api_client *c, const char *type, json_t **out, osm_client_error *err);

/* Publish a service of a granted type on port (name NULL: the workload's name; txt NULL or
 * an object of strings, borrowed); *id (may be NULL) names it for osm_api_withdraw. */
int osm_api_publish(osm_api_client *c, const char *type, uint16_t port, const char *name, json_t *txt,
                    int64_t *id, osm_client_error *err);
int osm_api_withdraw(osm_api_client *c, int64_t id, osm_client_error *err);

/* Any io.osmose.Api method by its short name ("Info"), params borrowed; *reply owned. */
int osm_api_call(osm_api_client *c, const char *method, json_t *params, json_t **reply, osm_client_error *err);
