/* fuzz-json-check.c: the quick checks of json-check.c against jansson, as their callers
 * use them: osm_json_object_certain() says yes only where jansson accepts a JSON object
 * (osmosectl put --batch would let an invalid line through), osm_json_object_canonical()
 * only where the text is byte for byte what osm_vl_dump() writes for that object (the
 * daemon stores it as the record's body), and osm_json_object_scan() finds the elements
 * of a call's parameters.records and its method as jansson reads them. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "osmose/json-check.h"
#include "osmose/varlink.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct element_seen {
        const char *p;
        size_t n;
        bool canonical;
} element_seen;

typedef struct walk {
        element_seen *seen;
        size_t n, cap;
} walk;

static void same_text(json_t *v, const char *text, size_t len) {
        size_t n;
        char *dump = osm_vl_dump(v, &n);
        if (!dump || n - 1 != len || memcmp(dump, text, len) != 0)
                abort();
        free(dump);
}

/* kept, to be compared once the scan said the text is certain (elements come before) */
static bool element(void *userdata, const char *value, size_t len, bool canonical) {
        walk *w = userdata;
        if (w->n == w->cap) {
                w->cap = w->cap ? 2 * w->cap : 16;
                w->seen = realloc(w->seen, w->cap * sizeof(*w->seen));
                if (!w->seen)
                        abort();
        }
        w->seen[w->n++] = (element_seen) { value, len, canonical };
        return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *text = (const char *) data;
        bool certain = osm_json_object_certain(text, size);
        bool canonical = osm_json_object_canonical(text, size);
        json_t *v = json_loadb(text, size, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
        if (certain && !json_is_object(v))
                abort();
        if (canonical && !certain)
                abort();
        if (canonical)
                same_text(v, text, size);
        if (certain) {   /* compacted: the same values, and canonical stands for them as above */
                char *c = malloc(size);
                size_t n = osm_json_compact(text, size, c);
                json_t *cv = json_loadb(c, n, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
                if (n > size || !json_equal(cv, v))
                        abort();
                if (osm_json_object_canonical(c, n))
                        same_text(v, c, n);
                json_decref(cv);
                free(c);
        }
        /* the scan of a call for its parameters.records and its method */
        json_t *arr = json_object_get(json_object_get(v, "parameters"), "records");
        walk w = { 0 };
        const char *const path[] = { "parameters", "records" };
        osm_json_scan_spec spec = { .path = path, .path_len = 2, .fn = element, .userdata = &w, .top_key = "method" };
        bool scanned = osm_json_object_scan(text, size, &spec);
        if (scanned != certain)
                abort();
        if (scanned) {
                if (spec.found != json_is_array(arr) || w.n != json_array_size(arr))
                        abort();
                /* each element as jansson read it; canonical ones as the dumper writes them */
                for (size_t i = 0; i < w.n; i++) {
                        json_t *mine = json_loadb(w.seen[i].p, w.seen[i].n, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
                        json_t *theirs = json_array_get(arr, i);
                        if (!mine || !json_equal(mine, theirs))
                                abort();
                        if (w.seen[i].canonical)
                                same_text(theirs, w.seen[i].p, w.seen[i].n);
                        json_decref(mine);
                }
                json_t *m = json_object_get(v, "method");
                json_t *mine = spec.top_value ? json_loadb(spec.top_value, spec.top_value_len, JSON_DECODE_ANY, NULL) : NULL;
                if (!m != !spec.top_value || (m && !json_equal(m, mine)))
                        abort();
                json_decref(mine);
        }
        free(w.seen);
        json_decref(v);
        return 0;
}
