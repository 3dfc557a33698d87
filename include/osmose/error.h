/* error.h: the one error convention of Osmose's C code (osm_error). */
#pragma once

#include <stddef.h>

#include "osmose/util.h"

/*
 * A function that can fail returns 0 (or a count) on success and a negative errno on
 * failure, converted at the syscall or library boundary (as libuv's UV__ERR, systemd's
 * "return -errno"). When its caller needs more than the errno — a sentence for a person,
 * or which of several wire errors it is — the function takes `osm_error *err` as its last
 * parameter. err may be NULL. On failure the function fills it with osm_error_set() and
 * still returns the same negative errno; on success it leaves it alone. Library code does
 * not log: the caller logs once, with its context, or puts the message on the wire.
 *
 *     osm_error err = {};
 *     int r = osm_store_put(s, &req, cb, userdata, &err);
 *     if (r < 0)
 *             reply(err.code, err.kind, err.message);
 *
 * kind is 0 unless a module names finer cases that share an errno (the store's
 * OSM_STORE_BAD_NAME: a bad collection name and a bad record are both -EINVAL): callers
 * choose the wire error by code and kind, never by searching the message.
 *
 * The same shape as crun's libcrun_error_t, but on the stack: no allocation to fail or
 * to free, and a message cut at OSM_ERROR_MAX bytes.
 *
 * A check that returns a verdict of its own protocol rather than an errno (fed-proto's
 * fed_refusal) fills err the same way, with the verdict as kind.
 *
 * The store, federation and workload-API code follow this. Older shapes remain
 * elsewhere and go as those files are next changed: `const char **why` (a static
 * string), `char *err, size_t errsize` (osm_errorf) and `FILE *errors` (config).
 */
#define OSM_ERROR_MAX 256

typedef struct osm_error {
        int code;                       /* negative errno; 0 while nothing failed */
        int kind;                       /* the module's finer case, 0 if none */
        char message[OSM_ERROR_MAX];    /* one line, for a person */
} osm_error;

/* Fill *err (if not NULL) with code, kind and the formatted message; return code, so that
 * a failure reads `return osm_error_set(err, -EINVAL, 0, "…", …);`. */
int osm_error_set(osm_error *err, int code, int kind, const char *fmt, ...) OSM_PRINTF(4, 5);

/* The message of err, or a fallback when err is NULL or holds none. */
static inline const char *osm_error_message(const osm_error *err, const char *fallback) {
        return err && err->message[0] ? err->message : fallback;
}
