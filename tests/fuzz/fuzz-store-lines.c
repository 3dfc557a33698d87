/* fuzz-store-lines.c: the JSON Lines reader behind osmosectl put --batch (bounded lines,
 * NUL bytes, invalid JSON, blank lines). */
#include <stdint.h>
#include <stdio.h>

/* The reader is part of osmosectl, not of a library: compile it in. */
#include "src/cli/jsonl.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size == 0)
                return 0;
        FILE *f = fmemopen((void *) data, size, "r");
        if (!f)
                return 0;
        osm_jsonl r;
        if (osm_jsonl_init(&r, f, 256) == 0) {
                size_t last_line = 0;
                for (;;) {
                        json_t *v = NULL;
                        osm_error why;
                        int k = osm_jsonl_next(&r, &v, &why);
                        if (k <= 0)
                                break;
                        if (r.line <= last_line || r.last_len > 257)
                                abort();   /* lines count up; no line exceeds the bound */
                        last_line = r.line;
                        json_decref(v);
                }
        }
        osm_jsonl_done(&r);
        fclose(f);
        return 0;
}
