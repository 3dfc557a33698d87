/* api-writer.c: a workload for bench/api.sh: writes N records through the workload API
 * (PutBatch of B records, or one Put per record with B = 1) on C connections at once
 * (each waits for its batch to be durable before the next, so two connections let one
 * batch travel while the other commits) and prints records/s. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "osmose/api-client.h"

static double now_s(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

typedef struct job {
        const char *coll;
        long from, n, batch;
        int r;
} job;

static void *writer(void *arg) {
        job *jb = arg;
        const char *coll = jb->coll;
        long n = jb->from + jb->n, batch = jb->batch;
        osm_api_client *api = NULL;
        osm_client_error err = { 0 };
        int r = osm_api_connect(NULL, &api);
        if (r < 0) {
                fprintf(stderr, "api-writer: connect: %d\n", r);
                jb->r = r;
                return NULL;
        }
        for (long i = jb->from; i < n; i += batch) {
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
                        jb->r = r;
                        break;
                }
        }
        osm_api_close(api);
        return NULL;
}

int main(int argc, char **argv) {
        if (argc < 4) {
                fprintf(stderr, "usage: api-writer COLLECTION N BATCH [CONNECTIONS]\n");
                return 2;
        }
        long n = atol(argv[2]), batch = atol(argv[3]), conns = argc > 4 ? atol(argv[4]) : 1;
        if (n < 1 || batch < 1 || batch > 10000 || conns < 1 || conns > 8)
                return 2;
        job jobs[8];
        pthread_t th[8];
        double t0 = now_s();
        for (long c = 0; c < conns; c++) {
                jobs[c] = (job) { .coll = argv[1], .from = n * c / conns, .n = n * (c + 1) / conns - n * c / conns,
                                  .batch = batch };
                pthread_create(&th[c], NULL, writer, &jobs[c]);
        }
        int r = 0;
        for (long c = 0; c < conns; c++) {
                pthread_join(th[c], NULL);
                r = r ? r : jobs[c].r;
        }
        double dt = now_s() - t0;
        if (r < 0)
                return 1;
        printf("records %ld seconds %.6f rate %.0f\n", n, dt, (double) n / dt);
        return 0;
}
