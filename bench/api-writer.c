/* api-writer.c: a workload for bench/api.sh: writes N records through the workload API
 * (PutBatch of B records, or one Put per record with B = 1) and prints records/s. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "osmose/api-client.h"

static double now_s(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
        if (argc < 4) {
                fprintf(stderr, "usage: api-writer COLLECTION N BATCH\n");
                return 2;
        }
        const char *coll = argv[1];
        long n = atol(argv[2]), batch = atol(argv[3]);
        if (n < 1 || batch < 1 || batch > 10000)
                return 2;
        osm_api_client *api = NULL;
        osm_call_error err = { 0 };
        int r = osm_api_connect(NULL, &api);
        if (r < 0) {
                fprintf(stderr, "api-writer: connect: %d\n", r);
                return 1;
        }
        double t0 = now_s();
        for (long i = 0; i < n; i += batch) {
                long k = i + batch > n ? n - i : batch;
                if (batch == 1) {
                        json_t *body = json_pack("{s:I, s:s, s:f}", "seq", (json_int_t) i, "sensor", "temp", "value", 20.0 + (double) (i % 50) / 10.0);
                        r = osm_api_put(api, coll, body, NULL, &err);
                        json_decref(body);
                } else {
                        json_t *recs = json_array();
                        for (long j = 0; j < k; j++)
                                json_array_append_new(recs, json_pack("{s:I, s:s, s:f}", "seq", (json_int_t) (i + j), "sensor",
                                                                      "temp", "value", 20.0 + (double) ((i + j) % 50) / 10.0));
                        r = osm_api_put_batch(api, coll, recs, NULL, &err);
                        json_decref(recs);
                }
                if (r < 0) {
                        fprintf(stderr, "api-writer: %s\n", err.message);
                        return 1;
                }
        }
        double dt = now_s() - t0;
        printf("records %ld seconds %.6f rate %.0f\n", n, dt, (double) n / dt);
        osm_api_close(api);
        return 0;
}
