/* fuzz-store.c: the store's parameter checks (Put, PutBatch, Query, SetRetention, cursors,
 * record ids, hashes) and the time/size/duration parsing that osmosectl query/retention use. */
#include <stdint.h>
#include <string.h>

#include "daemon/store/store-params.h"
#include "osmose/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *why = NULL, *coll = NULL;
        osm_error err;
        json_t *p = json_loadb((const char *) data, size, JSON_DECODE_ANY, NULL);
        if (p) {
                osm_store_put_req req;
                osm_store_query_req q;
                osm_store_retention ret;
                if (osm_store_parse_put(p, &req, &err) == 0) {
                        /* what the store does next with an accepted body: size it and encode it */
                        size_t n = json_dumpb(req.body, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY);
                        char *buf = malloc(n + 1);
                        if (buf && json_dumpb(req.body, buf, n, JSON_COMPACT | JSON_ENCODE_ANY) != n)
                                abort();
                        free(buf);
                }
                osm_store_check_batch(p, &err);
                if (osm_store_parse_query(p, &q, &why) == 0) {
                        int64_t ts, seq;
                        if (q.since_us > q.until_us)
                                abort();   /* the parser must refuse an empty range */
                        if (q.cursor)
                                osm_store_parse_cursor(q.cursor, &ts, &seq);
                }
                osm_store_parse_retention(p, &coll, &ret, &why);
                json_decref(p);
        }

        /* the raw bytes as one of the strings a client sends */
        char s[160];
        size_t n = size < sizeof(s) - 1 ? size : sizeof(s) - 1;
        memcpy(s, data, n);
        s[n] = 0;
        int64_t a, b;
        uint64_t u;
        osm_store_parse_cursor(s, &a, &b);
        osm_store_id_valid(s);
        osm_store_hash_valid(s);
        osm_name_valid(s, OSM_STORE_MAX_NAME, true);
        osm_parse_time(s, INT64_C(1795000000000000), &a);
        osm_parse_duration(s, &u);
        osm_parse_size(s, &u);
        osm_parse_u64(s, &u);
        return 0;
}
