/* fetch.h: one HTTP(S) GET into a file with libcurl, bounded in size and time, for the
 * subsystems that fetch bundles and channel lists (run it on the thread pool). */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "osmose/error.h"

typedef struct osm_fetch_opts {
        uint64_t max_size;           /* bytes; more is refused (-EFBIG) */
        uint64_t timeout_us;         /* the whole transfer */
        const int *abort_flag;       /* read atomically; non-zero aborts (-ECANCELED) */
        uint64_t *bytes;             /* if not NULL: bytes received (also on failure) */
} osm_fetch_opts;

/* GET url (http or https only, redirects to http(s) followed, at most 5) into fd from
 * its current offset. Returns 0, or -EFBIG, -ECANCELED, -EIO (transfer failed: err says
 * why in one line), or another -errno. */
int osm_fetch_url(const char *url, int fd, const osm_fetch_opts *o, osm_error *err);

/* Is u an http:// or https:// URL of at most max bytes without spaces or controls? */
int osm_fetch_url_ok(const char *u, size_t max);
