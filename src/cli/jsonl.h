/* jsonl.h: a bounded JSON Lines reader for osmosectl put --batch (one record per line). */
#pragma once

#include <jansson.h>
#include <stdio.h>

#include "osmose/error.h"

typedef struct osm_jsonl {
        FILE *f;
        char *buf;             /* one line: max + 2 bytes */
        size_t max;            /* longest line accepted, in bytes (newline excluded) */
        size_t line;           /* number of the line last read (1-based) */
        size_t last_len;       /* its length */
} osm_jsonl;

/* Read from f (not owned); lines longer than max bytes are an error. */
int osm_jsonl_init(osm_jsonl *r, FILE *f, size_t max);
/* The next record: returns 1 and *out (owned), 0 at the end of input, or -EINVAL/-EMSGSIZE/
 * -EIO with err naming the problem of line r->line. Blank lines are skipped. */
int osm_jsonl_next(osm_jsonl *r, json_t **out, osm_error *err);
/* The same for a caller that needs only whether the line is a JSON object (*is_object), not
 * its tree: most lines are then checked without building one. */
int osm_jsonl_next_checked(osm_jsonl *r, bool *is_object, osm_error *err);
void osm_jsonl_done(osm_jsonl *r);
