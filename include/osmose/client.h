/* client.h: the client side of the control protocol; osmosectl's commands call this, never the socket. */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "osmose/varlink.h"

typedef struct osm_client osm_client;

/* The socket to use: explicit path, else $OSMOSE_SOCKET, else the installed default. */
const char *osm_client_default_socket(const char *explicit_path);

/* Connect to path. Returns 0 or -errno (ENOENT/ECONNREFUSED: no daemon). */
int osm_client_connect(const char *path, osm_client **out);
osm_client *osm_client_free(osm_client *c);
OSM_DEFINE_CLEANUP(osm_client *, osm_client_free)
#define _cleanup_client_ _cleanup_(osm_client_freep)

/* An error reply, or a transport failure. */
typedef struct osm_client_error {
        char *name;         /* Varlink error name, or NULL for a transport error */
        json_t *parameters; /* error parameters, may be NULL */
        char message[256];  /* a one-line human explanation */
} osm_client_error;
void osm_client_error_clear(osm_client_error *e);

/* Call method with params (borrowed; NULL means {}), passing fds along (may be 0).
 * On success returns 0 and *reply holds the reply parameters (owned by the caller).
 * On an error reply returns -EREMOTEIO and fills *err. On transport failure -errno and
 * *err->message. If reply_fds is non-NULL, fds received with the reply are stored there
 * (up to *n_reply_fds on input; count on output); others are closed. */
int osm_client_call(osm_client *c, const char *method, json_t *params,
                    const int *fds, size_t n_fds,
                    json_t **reply, int *reply_fds, size_t *n_reply_fds,
                    osm_client_error *err);

/* The same without fds for parameters already serialized (params_len bytes of one JSON
 * object that the caller vouches for; the daemon checks it like any other). */
int osm_client_call_raw(osm_client *c, const char *method, const char *params, size_t params_len,
                        json_t **reply, osm_client_error *err);
/* osm_client_call_raw in its two halves: send the call (all of it is written when this
 * returns), then read its reply. */
int osm_client_send_raw(osm_client *c, const char *method, const char *params, size_t params_len,
                        osm_client_error *err);
int osm_client_read_reply(osm_client *c, json_t **reply, osm_client_error *err);

/* Call without reading the reply into a tree: *text (NUL-terminated, *len bytes) is the
 * reply message as received, {"parameters":…} or {"error":…}, for a caller that reads it
 * itself or times the daemon apart from parsing (bench/store-query.c). It is lent, not
 * copied: it stays valid until the next call or read on c. */
int osm_client_call_text(osm_client *c, const char *method, json_t *params, const char **text, size_t *len,
                         osm_client_error *err);

/* Call with "more": true. cb is invoked for each reply (continues true/false); a
 * non-zero return from cb stops reading and is returned. Returns 0 after the last reply. */
typedef int (*osm_client_stream_cb)(json_t *params, bool continues, void *userdata);
int osm_client_call_more(osm_client *c, const char *method, json_t *params,
                         osm_client_stream_cb cb, void *userdata, osm_client_error *err);
/* The same in two steps: send the call, and later read its replies (so that a caller can
 * do something else between, such as query what came before a Watch it started). */
int osm_client_start_more(osm_client *c, const char *method, json_t *params, osm_client_error *err);
int osm_client_read_more(osm_client *c, osm_client_stream_cb cb, void *userdata, osm_client_error *err);

/* The raw fd, for callers that wait on it together with other fds. */
int osm_client_fd(osm_client *c);
