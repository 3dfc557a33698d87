/* aggregator.c: an example Osmose workload: averages the numbers in the records of every
 * sensors/ collection it may read over each window (an hour by default) and writes one
 * summary record per window to rooms/summary (osmosectl query rooms/summary shows them).
 *
 *   sensor-aggregator [--interval SECONDS] [--once]
 *
 * --once summarises the last interval, writes it and exits.
 *
 * It needs the grants store:read:sensors/ * and store:write:rooms/summary. Everything
 * goes through include/osmose/api-client.h over /run/osmose/api.sock. It serves nothing
 * on the network: a sandbox without the network grant has only its own loopback, so a
 * page it served would be reachable from nowhere, and it claims none. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "osmose/api-client.h"

typedef struct status {
        int64_t windows, written, last_records;
        char last_id[64];
        char last_error[600];
} status;

static int64_t now_us(void) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Add every number at the top level of body into sums/counts (objects keyed by field). */
static void accumulate(json_t *body, json_t *sums, json_t *counts) {
        const char *key;
        json_t *v;
        json_object_foreach(body, key, v) {
                if (!json_is_number(v))
                        continue;
                double x = json_number_value(v);
                if (!isfinite(x))
                        continue;
                json_t *s = json_object_get(sums, key);
                json_object_set_new(sums, key, json_real((s ? json_real_value(s) : 0.0) + x));
                json_t *c = json_object_get(counts, key);
                json_object_set_new(counts, key, json_integer((c ? json_integer_value(c) : 0) + 1));
        }
}

/* One window [from, until): the mean of each numeric field of each readable sensors/
 * collection, written as one record. */
static int summarise(osm_api_client *api, int64_t from, int64_t until, status *st) {
        osm_client_error err = { 0 };
        json_t *info = NULL, *colls = NULL;
        int r = osm_api_call(api, "Collections", NULL, &info, &err);
        if (r < 0)
                goto fail;
        colls = json_incref(json_object_get(info, "collections"));
        json_t *sensors = json_object();
        size_t i, total = 0;
        json_t *c;
        json_array_foreach(colls, i, c) {
                const char *name = json_string_value(json_object_get(c, "name"));
                if (!name || strncmp(name, "sensors/", 8) != 0)
                        continue;
                json_t *records = NULL;
                r = osm_api_query(api, name, from, until, 0, &records, &err);
                if (r < 0) {
                        json_decref(sensors);
                        goto fail;
                }
                json_t *sums = json_object(), *counts = json_object(), *rec;
                size_t k;
                json_array_foreach(records, k, rec)
                        accumulate(json_object_get(rec, "body"), sums, counts);
                json_t *means = json_object();
                const char *key;
                json_t *s;
                json_object_foreach(sums, key, s)
                        json_object_set_new(means, key, json_real(json_real_value(s) /
                                                                  (double) json_integer_value(json_object_get(counts, key))));
                json_object_set_new(sensors, name, json_pack("{s:i, s:o}", "records", (int) json_array_size(records),
                                                             "mean", means));
                total += json_array_size(records);
                json_decref(sums);
                json_decref(counts);
                json_decref(records);
        }
        json_t *summary = json_pack("{s:I, s:I, s:o}", "from", (json_int_t) from, "until", (json_int_t) until,
                                    "sensors", sensors);
        r = osm_api_put(api, "rooms/summary", summary, st->last_id, &err);
        json_decref(summary);
        if (r < 0)
                goto fail;
        st->windows++;
        st->written++;
        st->last_records = (int64_t) total;
        st->last_error[0] = 0;
        printf("window of %zu record(s) summarised as %s\n", total, st->last_id);
        fflush(stdout);
fail:
        if (r < 0) {
                snprintf(st->last_error, sizeof st->last_error, "%s%s%s", err.name ? err.name : "", err.name ? ": " : "",
                         err.message);
                fprintf(stderr, "summary failed: %s\n", st->last_error);
        }
        osm_client_error_clear(&err);
        json_decref(colls);
        json_decref(info);
        return r;
}

int main(int argc, char **argv) {
        static const struct option opts[] = {
                { "interval", required_argument, NULL, 'i' },
                { "once", no_argument, NULL, '1' },
                {},
        };
        long interval = 3600;
        bool once = false;
        int o;
        while ((o = getopt_long(argc, argv, "i:", opts, NULL)) != -1) {
                switch (o) {
                case 'i': interval = strtol(optarg, NULL, 10); break;
                case '1': once = true; break;
                default:
                        fprintf(stderr, "usage: sensor-aggregator [--interval SECONDS] [--once]\n");
                        return 2;
                }
        }
        if (interval < 1) {
                fprintf(stderr, "sensor-aggregator: bad --interval\n");
                return 2;
        }
        osm_api_client *api = NULL;
        int r = osm_api_connect(NULL, &api);
        if (r < 0) {
                fprintf(stderr, "sensor-aggregator: cannot reach the workload API: %s\n", strerror(-r));
                return 1;
        }
        osm_client_error err = { 0 };
        json_t *info = NULL;
        if (osm_api_info(api, &info, &err) == 0) {
                printf("running as %s (workload %s)\n", json_string_value(json_object_get(info, "instance")),
                       json_string_value(json_object_get(info, "workload")));
                json_decref(info);
        }
        osm_client_error_clear(&err);

        status st = { 0 };
        fflush(stdout);

        /* --once: summarise the interval that has just passed; else windows from now on. */
        int64_t window_start = now_us() - (once ? (int64_t) interval * 1000000 : 0);
        do {
                int64_t end = window_start + (int64_t) interval * 1000000;
                while (!once && now_us() < end) {
                        int wait_ms = (int) ((end - now_us()) / 1000) + 1;
                        (void) poll(NULL, 0, wait_ms);
                }
                if (once)
                        end = now_us();
                if (summarise(api, window_start, end, &st) < 0 && once)
                        r = -1;
                window_start = end;
        } while (!once);
        osm_api_close(api);
        return r < 0 ? 1 : 0;
}
