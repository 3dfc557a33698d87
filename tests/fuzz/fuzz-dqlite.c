/* fuzz-dqlite.c: our dqlite client's response decoding (what a node — or anything that
 * answers on its socket — sends back). The first byte picks the response type; the rest
 * is the body. Decoders must refuse, never read past the body or leak. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/building/dq-client.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size < 1)
                return 0;
        /* A copy of exactly the body's size, so that ASan sees any overread. */
        size_t n = size - 1;
        uint8_t *b = malloc(n ? n : 1);
        memcpy(b, data + 1, n);
        switch (data[0] % 5) {
        case 0: {
                uint64_t code;
                char msg[64];
                osm_dq_decode_failure(b, n, &code, msg, sizeof msg);
                break;
        }
        case 1: {
                uint64_t id;
                char addr[OSM_DQ_ADDR_MAX];
                osm_dq_decode_server(b, n, &id, addr, sizeof addr);
                break;
        }
        case 2: {
                osm_dq_node *nodes = NULL;
                size_t nn = 0;
                if (osm_dq_decode_servers(b, n, &nodes, &nn) == 0 && nn > OSM_DQ_MAX_NODES)
                        abort();
                free(nodes);
                break;
        }
        case 3: {
                uint64_t a, c;
                osm_dq_decode_result(b, n, &a, &c);
                break;
        }
        case 4: {
                json_t *cols = NULL, *rows = NULL;
                bool more = false;
                /* Two batches in a row, as a multi-batch result set arrives. */
                int r = osm_dq_decode_rows(b, n, &cols, &rows, &more);
                if (r == 0)
                        osm_dq_decode_rows(b, n, &cols, &rows, &more);
                json_decref(cols);
                json_decref(rows);
                break;
        }
        }
        free(b);
        return 0;
}
