/* jsonl.c: JSON Lines from a stream, one line at a time with a bound on its length, so
 * that put --batch streams input of any size in constant memory. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "cli/jsonl.h"
#include "osmose/json-check.h"

int osm_jsonl_init(osm_jsonl *r, FILE *f, size_t max) {
        memset(r, 0, sizeof(*r));
        r->f = f;
        r->max = max;
        r->buf = malloc(max + 2);
        return r->buf ? 0 : -ENOMEM;
}

void osm_jsonl_done(osm_jsonl *r) {
        free(r->buf);
        r->buf = NULL;
}

static bool blank(const char *s, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
                        return false;
        return true;
}

/* The next line: its tree in *out, or with is_object only whether it is an object. */
static int next_line(osm_jsonl *r, json_t **out, bool *is_object, osm_error *err) {
        if (out)
                *out = NULL;
        if (!r->buf)
                return osm_error_set(err, -ENOMEM, 0, "out of memory");
        for (;;) {
                /* Read up to a newline or max+1 bytes: a line that does not fit is too long.
                 * (getline would grow without bound; fgets would hide NUL bytes.) */
                size_t n = 0;
                int ch = 0;
                while (n < r->max + 1 && (ch = getc_unlocked(r->f)) != EOF) {
                        r->buf[n++] = (char) ch;
                        if (ch == '\n')
                                break;
                }
                if (n == 0) {
                        if (ferror(r->f))
                                return osm_error_set(err, -EIO, 0, "cannot read input: %s", strerror(errno));
                        return 0;
                }
                r->line++;
                if (r->buf[n - 1] != '\n' && n == r->max + 1)
                        return osm_error_set(err, -EMSGSIZE, 0, "line longer than %zu bytes", r->max);
                r->buf[n] = 0;
                r->last_len = n;
                if (memchr(r->buf, 0, n))
                        return osm_error_set(err, -EINVAL, 0, "invalid JSON: a NUL byte in the line");
                if (blank(r->buf, n))
                        continue;
                /* A caller that only needs to know the line is an object is spared the tree
                 * when the quick look is sure of it; else jansson decides (and words it). */
                if (is_object && osm_json_object_certain(r->buf, n)) {
                        *is_object = true;
                        return 1;
                }
                json_error_t e;
                json_t *v = json_loadb(r->buf, n, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &e);
                if (!v)
                        return osm_error_set(err, -EINVAL, 0, "invalid JSON at column %d: %s", e.column, e.text);
                if (is_object) {
                        *is_object = json_is_object(v);
                        json_decref(v);
                } else
                        *out = v;
                return 1;
        }
}

int osm_jsonl_next(osm_jsonl *r, json_t **out, osm_error *err) {
        return next_line(r, out, NULL, err);
}

int osm_jsonl_next_checked(osm_jsonl *r, bool *is_object, osm_error *err) {
        return next_line(r, NULL, is_object, err);
}
