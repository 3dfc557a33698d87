/* store-raw.c: the ingest baseline: the same JSON Lines inserted straight into SQLite with
 * the same durability as osmosed (WAL, synchronous=FULL) and the same schema and index, in
 * transactions of the same size as osmosectl put --batch sends (1000 rows).
 * Usage: store-raw DB ROWS_PER_TXN < lines.jsonl   — prints "rows seconds". */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        return (double) t.tv_sec + (double) t.tv_nsec / 1e9;
}

static void check(sqlite3 *db, int rc, const char *what) {
        if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
                fprintf(stderr, "store-raw: %s: %s\n", what, sqlite3_errmsg(db));
                exit(1);
        }
}

int main(int argc, char **argv) {
        if (argc != 3) {
                fprintf(stderr, "usage: store-raw DB ROWS_PER_TXN < lines\n");
                return 2;
        }
        int per = atoi(argv[2]);
        sqlite3 *db;
        sqlite3_stmt *ins;
        check(NULL, sqlite3_open(argv[1], &db), "open");
        check(db, sqlite3_exec(db,
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                "CREATE TABLE IF NOT EXISTS records(seq INTEGER PRIMARY KEY AUTOINCREMENT, coll INTEGER NOT NULL,"
                " ts INTEGER NOT NULL, rid TEXT, writer TEXT NOT NULL, body TEXT NOT NULL);"
                "CREATE INDEX IF NOT EXISTS records_by_time ON records(coll, ts);", NULL, NULL, NULL), "schema");
        check(db, sqlite3_prepare_v2(db, "INSERT INTO records(coll, ts, writer, body) VALUES(1, ?1, 'user:root', ?2)",
                                     -1, &ins, NULL), "prepare");
        char *line = NULL;
        size_t cap = 0;
        ssize_t n;
        long rows = 0;
        double t0 = now();
        check(db, sqlite3_exec(db, "BEGIN", NULL, NULL, NULL), "begin");
        while ((n = getline(&line, &cap, stdin)) > 0) {
                if (line[n - 1] == '\n')
                        line[--n] = 0;
                struct timespec t;
                clock_gettime(CLOCK_REALTIME, &t);
                sqlite3_reset(ins);
                sqlite3_bind_int64(ins, 1, (sqlite3_int64) t.tv_sec * 1000000 + t.tv_nsec / 1000);
                sqlite3_bind_text(ins, 2, line, (int) n, SQLITE_STATIC);
                check(db, sqlite3_step(ins), "insert");
                if (++rows % per == 0) {
                        check(db, sqlite3_exec(db, "COMMIT; BEGIN", NULL, NULL, NULL), "commit");
                }
        }
        check(db, sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), "commit");
        double t1 = now();
        printf("%ld %.3f\n", rows, t1 - t0);
        sqlite3_finalize(ins);
        sqlite3_close(db);
        free(line);
        return 0;
}
