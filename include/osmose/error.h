/* error.h: the one error convention of Osmose's C code (osm_error, osm_error_list). */
#pragma once

#include <stddef.h>
#include <stdio.h>

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
 * A caller that reads err only after a failure (every failure fills it) need not clear it
 * first; one that may read it after a failure without a message (a -ENOMEM from below)
 * starts from `= {}` and asks osm_error_message(&err, strerror(-r)).
 *
 * A caller that adds its own context wraps the message once, at its level, from an
 * osm_error of its own: `osm_error_set(err, r, 0, "%s/manifest.json: %s", dir, inner.message)`.
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
 * Several problems at once. A checker that goes on after a problem to report all of them
 * (a configuration file, one "path:line: message" per problem) takes `osm_error_list *errs`
 * instead, adds one line per problem with osm_error_list_add() and returns their count.
 * errs may be NULL (count only). The owner prints or sends the lines and frees them with
 * osm_error_list_done(). This is the only other shape: errors are not returned as a
 * pointer to a static string, written into a caller's buffer and size, or printed to a
 * stream.
 */
#define OSM_ERROR_MAX 512

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

typedef struct osm_error_list {
        size_t n;            /* problems added (a line that could not be kept counts too) */
        size_t n_lines;
        char **lines;        /* one line each, without '\n'; owned */
} osm_error_list;

/* Add one problem (formatted, one line; a trailing '\n' is dropped) to l; l may be NULL. */
void osm_error_list_add(osm_error_list *l, const char *fmt, ...) OSM_PRINTF(2, 3);
/* Print each line followed by '\n' to f. */
void osm_error_list_print(const osm_error_list *l, FILE *f);
/* Free the lines; l is empty again. */
void osm_error_list_done(osm_error_list *l);
