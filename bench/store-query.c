/* store-query.c: query latency by time range through osmosed (io.osmose.Store.Query over the
 * socket) beside the same range read straight from the database with sqlite3.
 * Usage: store-query SOCKET DB COLLECTION QUERIES WINDOW_US LIMIT
 * Prints p50 and p99 in microseconds of ours (call to whole reply received, as the raw side
 * gets its rows as text), raw SQLite, how many records a query returned on each side, and
 * p50 and p99 of ours with the client's parse of the reply into a jansson tree added (what
 * a client that builds a tree pays on top: jansson, not the daemon). */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "osmose/client.h"

static double now_us(void) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        return (double) t.tv_sec * 1e6 + (double) t.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return x < y ? -1 : x > y;
}

static int64_t edge(osm_client *c, const char *coll, bool newest) {
        json_t *p = json_pack("{s:s, s:i, s:b}", "collection", coll, "limit", 1, "reverse", newest);
        json_t *rep = NULL;
        osm_client_error err = { 0 };
        int64_t t = -1;
        if (osm_client_call(c, "io.osmose.Store.Query", p, NULL, 0, &rep, NULL, NULL, &err) == 0)
                t = json_integer_value(json_object_get(json_array_get(json_object_get(rep, "records"), 0), "time"));
        else
                fprintf(stderr, "store-query: %s\n", err.message);
        osm_client_error_clear(&err);
        json_decref(p);
        json_decref(rep);
        return t;
}

/* ours: one call over the socket, records as JSON; *us to the whole reply received, *full_us
 * with its parse into a tree added */
static int query_ours(osm_client *c, const char *coll, int64_t since, int64_t window, int limit, double *us,
                      double *full_us, long *got) {
        json_t *p = json_pack("{s:s, s:I, s:I, s:i}", "collection", coll, "since", (json_int_t) since,
                              "until", (json_int_t) (since + window), "limit", limit);
        const char *text = NULL;
        size_t len = 0;
        osm_client_error err = { 0 };
        double t0 = now_us();
        if (osm_client_call_text(c, "io.osmose.Store.Query", p, &text, &len, &err) < 0) {
                fprintf(stderr, "store-query: %s\n", err.message);
                return -1;
        }
        *us = now_us() - t0;
        osm_vl_reply rep;
        osm_error why;
        if (osm_vl_parse_reply(text, len, &rep, &why) < 0) {
                fprintf(stderr, "store-query: bad reply: %s\n", why.message);
                return -1;
        }
        if (rep.error) {
                fprintf(stderr, "store-query: %s\n", rep.error);
                return -1;
        }
        *full_us = now_us() - t0;
        *got += (long) json_array_size(json_object_get(rep.parameters, "records"));
        osm_vl_reply_done(&rep);
        json_decref(p);
        return 0;
}

/* raw: the same range from SQLite, every column read; returns its time in µs */
static double query_raw(sqlite3_stmt *cs, sqlite3_stmt *st, const char *coll, int64_t since, int64_t window,
                        int limit, long *got) {
        double t0 = now_us();
        sqlite3_reset(cs);
        sqlite3_bind_text(cs, 1, coll, -1, SQLITE_STATIC);
        sqlite3_step(cs);
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, sqlite3_column_int64(cs, 0));
        sqlite3_bind_int64(st, 2, since);
        sqlite3_bind_int64(st, 3, since + window);
        sqlite3_bind_int(st, 4, limit);
        while (sqlite3_step(st) == SQLITE_ROW) {
                (void) sqlite3_column_text(st, 4);
                (void) sqlite3_column_text(st, 3);
                (*got)++;
        }
        return now_us() - t0;
}

int main(int argc, char **argv) {
        if (argc != 7) {
                fprintf(stderr, "usage: store-query SOCKET DB COLLECTION QUERIES WINDOW_US LIMIT\n");
                return 2;
        }
        const char *coll = argv[3];
        int n = atoi(argv[4]);
        int64_t window = atoll(argv[5]);
        int limit = atoi(argv[6]);
        osm_client *c = NULL;
        if (osm_client_connect(argv[1], &c) < 0) {
                fprintf(stderr, "store-query: cannot connect to %s\n", argv[1]);
                return 1;
        }
        int64_t lo = edge(c, coll, false), hi = edge(c, coll, true);
        if (lo < 0 || hi <= lo + window) {
                fprintf(stderr, "store-query: collection too small\n");
                return 1;
        }
        sqlite3 *db;
        sqlite3_stmt *cs, *st;
        if (sqlite3_open_v2(argv[2], &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
            sqlite3_prepare_v2(db, "SELECT id FROM collections WHERE name=?1", -1, &cs, NULL) != SQLITE_OK ||
            sqlite3_prepare_v2(db, "SELECT seq, ts, rid, writer, body FROM records WHERE coll=?1 AND ts>=?2 AND ts<?3 "
                               "ORDER BY ts, seq LIMIT ?4", -1, &st, NULL) != SQLITE_OK) {
                fprintf(stderr, "store-query: %s\n", sqlite3_errmsg(db));
                return 1;
        }
        double *ours = calloc((size_t) n, sizeof(double)), *raw = calloc((size_t) n, sizeof(double));
        double *full = calloc((size_t) n, sizeof(double));
        long got_ours = 0, got_raw = 0;
        srand(42);
        for (int i = 0; i < n; i++) {
                int64_t since = lo + (int64_t) ((double) rand() / RAND_MAX * (double) (hi - lo - window));
                /* who goes first alternates: neither side always finds the range's pages
                 * warmed by the other */
                for (int side = 0; side < 2; side++) {
                        if ((side == 0) == (i % 2 == 0)) {
                                if (query_ours(c, coll, since, window, limit, &ours[i], &full[i], &got_ours) < 0)
                                        return 1;
                        } else
                                raw[i] = query_raw(cs, st, coll, since, window, limit, &got_raw);
                }
        }
        qsort(ours, (size_t) n, sizeof(double), cmp);
        qsort(raw, (size_t) n, sizeof(double), cmp);
        qsort(full, (size_t) n, sizeof(double), cmp);
        printf("%.0f %.0f %.0f %.0f %.1f %.1f %.0f %.0f\n", ours[n / 2], ours[n * 99 / 100], raw[n / 2],
               raw[n * 99 / 100], (double) got_ours / n, (double) got_raw / n, full[n / 2], full[n * 99 / 100]);
        sqlite3_finalize(cs);
        sqlite3_finalize(st);
        sqlite3_close(db);
        osm_client_free(c);
        free(ours);
        free(raw);
        free(full);
        return 0;
}
