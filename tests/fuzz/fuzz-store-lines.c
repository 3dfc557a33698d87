/* fuzz-store-lines.c: the JSON Lines reader behind osmosectl put --batch (bounded lines,
 * NUL bytes, invalid JSON, blank lines), and its check-only way (osm_jsonl_next_checked)
 * against the way that builds the tree: same lines, same verdicts, same messages. */
#include <stdint.h>
#include <stdio.h>

/* The reader is part of osmosectl, not of a library: compile it in. */
#include "src/cli/jsonl.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size == 0)
                return 0;
        FILE *f = fmemopen((void *) data, size, "r");
        FILE *g = fmemopen((void *) data, size, "r");
        if (!f || !g) {
                if (f)
                        fclose(f);
                if (g)
                        fclose(g);
                return 0;
        }
        osm_jsonl r, c;
        if (osm_jsonl_init(&r, f, 256) == 0 && osm_jsonl_init(&c, g, 256) == 0) {
                size_t last_line = 0;
                for (;;) {
                        json_t *v = NULL;
                        bool is_object = false;
                        osm_error why = { 0 }, why_c = { 0 };
                        int k = osm_jsonl_next(&r, &v, &why);
                        int kc = osm_jsonl_next_checked(&c, &is_object, &why_c);
                        if (k != kc || r.line != c.line)
                                abort();   /* the two ways read the same lines */
                        if (k < 0 && strcmp(why.message, why_c.message) != 0)
                                abort();   /* and word the same failure */
                        if (k == 1 && is_object != json_is_object(v))
                                abort();
                        if (k <= 0)
                                break;
                        if (r.line <= last_line || r.last_len > 257)
                                abort();   /* lines count up; no line exceeds the bound */
                        last_line = r.line;
                        json_decref(v);
                }
        }
        osm_jsonl_done(&r);
        osm_jsonl_done(&c);
        fclose(f);
        fclose(g);
        return 0;
}
