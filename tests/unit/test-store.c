/* test-store.c: unit tests of the store's C API (records, queries, watches, retention,
 * budget, idempotent remote ids, objects with dedup, refcounts, gc and encryption). */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <uv.h>

#include "daemon/store/store.h"
#include "tap.h"

static uv_loop_t *loop;
static char dir[256];

/* Run the loop until *flag is set or about 10 s passed. */
static void run_until(volatile bool *flag) {
        uint64_t start = uv_now(loop);
        while (!*flag && uv_now(loop) - start < 10000) {
                uv_run(loop, UV_RUN_NOWAIT);
                usleep(1000);
                uv_update_time(loop);
        }
}

typedef struct put_state {
        int n_done, n_ok, n_dup, last_r;
        char last_id[OSM_STORE_MAX_ID];
        char first_id[OSM_STORE_MAX_ID];
        bool all;
        int want;
} put_state;

static void on_put(int r, const char *id, int64_t t, bool dup, void *ud) {
        put_state *p = ud;
        p->n_done++;
        p->last_r = r;
        if (r == 0) {
                p->n_ok++;
                if (p->n_ok == 1)
                        snprintf(p->first_id, sizeof(p->first_id), "%s", id);
                snprintf(p->last_id, sizeof(p->last_id), "%s", id);
        }
        if (dup)
                p->n_dup++;
        if (p->n_done == p->want)
                p->all = true;
}

static int put_n(osm_store *s, const char *coll, int n, int64_t t0, put_state *ps) {
        *ps = (put_state) { .want = n };
        for (int i = 0; i < n; i++) {
                json_t *b = json_pack("{s:i, s:s}", "i", i, "pad", "some sensor reading");
                osm_store_put_req req = { .collection = coll, .writer = "user:test", .body = b,
                                          .time_us = t0 ? t0 + i : 0 };
                int r = osm_store_put(s, &req, on_put, ps, NULL);
                json_decref(b);
                if (r < 0)
                        return r;
        }
        run_until(&ps->all);
        return 0;
}

typedef struct query_state {
        bool done;
        int r;
        json_t *records;
        char cursor[64];
        bool has_cursor;
} query_state;

static void on_query(int r, json_t *records, const char *cursor, void *ud) {
        query_state *q = ud;
        q->r = r;
        q->records = records;
        q->has_cursor = cursor != NULL;
        if (cursor)
                snprintf(q->cursor, sizeof(q->cursor), "%s", cursor);
        q->done = true;
}

static int query(osm_store *s, osm_store_query_req *req, query_state *q) {
        *q = (query_state) {};
        int r = osm_store_query(s, req, on_query, q);
        if (r < 0)
                return r;
        run_until(&q->done);
        return q->r;
}

typedef struct text_state {
        bool done;
        int r;
        json_t *params;
} text_state;

static void on_query_text(int r, const char *params, size_t len, void *ud) {
        text_state *t = ud;
        t->r = r;
        t->params = r < 0 ? NULL : json_loadb(params, len, 0, NULL);
        t->done = true;
}

static int watched;
static void on_watch(const osm_record *rec, void *ud) {
        watched++;
}

typedef struct done_state {
        bool done;
        int r;
} done_state;
static void on_done(int r, void *ud) {
        done_state *d = ud;
        d->r = r;
        d->done = true;
}

typedef struct obj_state {
        bool done;
        int r;
        char hash[OSM_HASH_HEX];
        uint64_t size;
        bool created;
} obj_state;
static void on_obj(int r, const char *hash, uint64_t size, bool created, void *ud) {
        obj_state *o = ud;
        o->r = r;
        if (hash)
                snprintf(o->hash, sizeof(o->hash), "%s", hash);
        o->size = size;
        o->created = created;
        o->done = true;
}

static int object_put_bytes(osm_store *s, const void *data, size_t len, bool pin, obj_state *o) {
        char path[512];
        snprintf(path, sizeof(path), "%s/input", dir);
        int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0 || write(fd, data, len) != (ssize_t) len)
                return -EIO;
        lseek(fd, 0, SEEK_SET);
        *o = (obj_state) {};
        int r = osm_store_object_put_fd(s, fd, pin, on_obj, o);
        if (r < 0)
                return r;
        run_until(&o->done);
        return o->r;
}

static ssize_t read_fd_all(int fd, char *buf, size_t max) {
        size_t got = 0;
        for (;;) {
                ssize_t n = read(fd, buf + got, max - got);
                if (n <= 0)
                        return n < 0 ? -1 : (ssize_t) got;
                got += (size_t) n;
                if (got == max)
                        return (ssize_t) got;
        }
}

static osm_store *open_store(osm_store_options *o) {
        osm_store *s = NULL;
        osm_error err = {};
        int r = osm_store_open(loop, o, &s, &err);
        tap_ok(r == 0, "open store (%s)", osm_error_message(&err, "ok"));
        return s;
}

static void close_store(osm_store *s) {
        osm_store_close(s);
        uv_run(loop, UV_RUN_DEFAULT);
}

static bool file_contains(const char *path, const void *needle, size_t n) {
        char buf[65536];
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return false;
        ssize_t k = read(fd, buf, sizeof(buf));
        close(fd);
        return k > 0 && memmem(buf, (size_t) k, needle, n) != NULL;
}


/* Each case has a store of its own: a fresh directory and loop (made in the case's
 * child process, see tap.h). */
static osm_store_options store_options(void) {
        snprintf(dir, sizeof(dir), "/tmp/osm-test-store-XXXXXX");
        if (!mkdtemp(dir))
                abort();
        static uv_loop_t l;
        uv_loop_init(&l);
        loop = &l;
        return (osm_store_options) {
                .state_dir = dir, .space_id = "0123456789abcdef0123456789abcdef",
                .max_record_size = 4096,
        };
}

static void remove_dir(void) {
        char cmd[600];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        tap_ok(system(cmd) == 0, "remove the store's directory");
}

/* Every page of a range as the reply text and as trees: the same records and cursors. */
static void test_query_text(void) {
        osm_store_options o = store_options();
        osm_store *s = open_store(&o);
        if (!s)
                return;
        /* records of two writers, some named by an origin, bodies of several shapes */
        json_t *bodies = json_pack("[{s:i, s:s}, {s:{s:[b,n]}}, {}, {s:f}, {s:[i,i]}]", "i", 1, "s", "a\"b\\c\u00e9",
                                   "deep", "x", true, "r", 20.9, "a", 2, 3);
        put_state ps = { .want = 40 };
        int64_t t0 = INT64_C(1700000000000000);
        for (int i = 0; i < 40; i++) {
                char id[64];
                snprintf(id, sizeof id, "fedcba9876543210-%d", i);
                osm_store_put_req req = { .collection = "mixed", .writer = i % 3 ? "user:test" : "workload:w-1",
                                          .body = json_array_get(bodies, (size_t) i % json_array_size(bodies)),
                                          .time_us = t0 + i / 2, .id = i % 4 == 1 ? id : NULL };
                osm_store_put(s, &req, on_put, &ps, NULL);
        }
        run_until(&ps.all);
        TAP_EQ_INT(ps.n_ok, 40, "40 mixed records stored");
        /* bodies a damaged file could hold take the parse-and-write way: JSON that is not
         * an object, and text that is not JSON */
        char path[300];
        snprintf(path, sizeof path, "%s/store.db", dir);
        sqlite3 *db = NULL;
        TAP_OK(sqlite3_open(path, &db) == SQLITE_OK &&
               sqlite3_exec(db, "UPDATE records SET body='[1,2]' WHERE seq % 9 = 3;"
                                "UPDATE records SET body='not json' WHERE seq % 9 = 6", NULL, NULL, NULL) == SQLITE_OK,
               "some bodies damaged behind the store's back");
        sqlite3_close(db);
        int pages = 0, same = 0, records = 0;
        for (int reverse = 0; reverse < 2; reverse++) {
                char cursor[64] = "";
                for (int k = 0; k < 20; k++) {
                        osm_store_query_req q = { .collection = "mixed", .since_us = INT64_MIN, .until_us = INT64_MAX,
                                                  .limit = 7, .reverse = reverse, .cursor = cursor[0] ? cursor : NULL };
                        query_state qs;
                        text_state ts = {};
                        if (query(s, &q, &qs) < 0 || osm_store_query_text(s, &q, on_query_text, &ts) < 0)
                                break;
                        run_until(&ts.done);
                        pages++;
                        json_t *want = json_pack("{s:O}", "records", qs.records);
                        if (qs.has_cursor)
                                json_object_set_new(want, "cursor", json_string(qs.cursor));
                        same += ts.r == 0 && json_equal(ts.params, want);
                        records += (int) json_array_size(qs.records);
                        json_decref(want);
                        json_decref(ts.params);
                        json_decref(qs.records);
                        if (!qs.has_cursor)
                                break;
                        snprintf(cursor, sizeof cursor, "%s", qs.cursor);
                }
        }
        TAP_EQ_INT(records, 80, "both directions page through the 40 records");
        TAP_OK(pages == 12 && same == pages, "every page's text is its tree (%d of %d pages)", same, pages);
        json_decref(bodies);
        close_store(s);
        remove_dir();
}

/* A short page is answered on the loop, before the call returns (no thread hops); a page
 * that takes longer goes on in the pool from the row it got to: the same records either way,
 * in order, with the cursor to the next page. */
static void test_query_inline(void) {
        osm_store_options o = store_options();
        osm_store *s = open_store(&o);
        if (!s)
                return;
        char pad[401];
        memset(pad, 'p', 400);
        pad[400] = 0;
        enum { N = 1500 };
        put_state ps = { .want = N };
        int64_t t0 = INT64_C(1700000000000000);
        for (int i = 0; i < N; i++) {
                json_t *body = json_pack("{s:i, s:s}", "i", i, "pad", pad);
                osm_store_put_req req = { .collection = "long", .writer = "user:test", .body = body,
                                          .time_us = t0 + i };
                osm_store_put(s, &req, on_put, &ps, NULL);
                json_decref(body);
        }
        run_until(&ps.all);
        TAP_EQ_INT(ps.n_ok, N, "1500 records of 400-byte bodies stored");

        /* The first query opens a reader in the pool; later ones find it free. Tried a
         * few times: the loop's thread can be preempted past the deadline on a busy host. */
        int inline_done = 0, same = 0;
        for (int k = 0; k < 20; k++) {
                osm_store_query_req q = { .collection = "long", .since_us = t0 + 10 * k, .until_us = t0 + 10 * k + 5,
                                          .limit = 100 };
                text_state ts = {};
                query_state qs;
                if (osm_store_query_text(s, &q, on_query_text, &ts) < 0)
                        break;
                inline_done += k > 0 && ts.done;
                run_until(&ts.done);
                if (query(s, &q, &qs) == 0) {
                        json_t *want = json_pack("{s:O}", "records", qs.records);
                        same += ts.r == 0 && json_array_size(qs.records) == 5 && json_equal(ts.params, want);
                        json_decref(want);
                        json_decref(qs.records);
                }
                json_decref(ts.params);
        }
        TAP_OK(inline_done > 0, "a page of 5 records is answered before the call returns (%d of 19)", inline_done);
        TAP_EQ_INT(same, 20, "each is the same page as the tree's");

        /* Two pages of the whole range: the first (1000 records, 500 KB) runs past the
         * loop's deadline and is finished in the pool. */
        char cursor[64] = "";
        int pages = 0, pooled = 0, records = 0, in_order = 1, agree = 0;
        int64_t next = 0;
        for (int k = 0; k < 3; k++) {
                osm_store_query_req q = { .collection = "long", .since_us = INT64_MIN, .until_us = INT64_MAX,
                                          .limit = 1000, .cursor = cursor[0] ? cursor : NULL };
                text_state ts = {};
                query_state qs;
                if (osm_store_query_text(s, &q, on_query_text, &ts) < 0)
                        break;
                pooled += !ts.done;
                run_until(&ts.done);
                pages++;
                json_t *recs = json_object_get(ts.params, "records");
                for (size_t j = 0; j < json_array_size(recs); j++) {
                        json_t *b = json_object_get(json_array_get(recs, j), "body");
                        in_order &= json_integer_value(json_object_get(b, "i")) == next++ &&
                                    strcmp(json_string_value(json_object_get(b, "pad")), pad) == 0;
                }
                records += (int) json_array_size(recs);
                if (query(s, &q, &qs) == 0) {
                        json_t *want = json_pack("{s:O}", "records", qs.records);
                        if (qs.has_cursor)
                                json_object_set_new(want, "cursor", json_string(qs.cursor));
                        agree += ts.r == 0 && json_equal(ts.params, want);
                        json_decref(want);
                        json_decref(qs.records);
                }
                const char *c = json_string_value(json_object_get(ts.params, "cursor"));
                snprintf(cursor, sizeof cursor, "%s", c ? c : "");
                json_decref(ts.params);
                if (!c)
                        break;
        }
        TAP_OK(pages == 2 && records == N && in_order, "two pages hold the 1500 records in order (%d pages, %d)",
               pages, records);
        TAP_OK(pooled >= 1, "the page of 1000 was finished in the pool (%d of %d pages)", pooled, pages);
        TAP_EQ_INT(agree, pages, "both pages are the tree's pages");
        close_store(s);
        remove_dir();
}

static void test_records(void) {
        osm_store_options o = store_options();
        osm_store *s = open_store(&o);
        if (!s)
                return;

        /* puts and ids */
        osm_store_watch *w = osm_store_watch_add(s, "sensors/*", on_watch, NULL);
        put_state ps;
        int64_t t0 = INT64_C(1700000000000000);
        tap_ok(put_n(s, "sensors/temp", 2500, t0, &ps) == 0, "queue 2500 puts");
        TAP_EQ_INT(ps.n_ok, 2500, "all 2500 puts acknowledged");
        tap_ok(strncmp(ps.first_id, "0123456789abcdef-", 17) == 0, "id has the origin prefix (%s)", ps.first_id);
        TAP_EQ_INT(watched, 2500, "the watch saw every committed record");
        osm_store_watch_remove(w);

        /* other collection does not match the watch */
        tap_ok(put_n(s, "other", 3, 0, &ps) == 0 && ps.n_ok == 3, "put into another collection");
        TAP_EQ_INT(watched, 2500, "a removed watch sees nothing more");

        /* validation */
        json_t *b = json_pack("{s:s}", "x", "y");
        osm_store_put_req bad = { .collection = "a/../b", .writer = "user:test", .body = b };
        osm_error err = {};
        TAP_EQ_INT(osm_store_put(s, &bad, on_put, &ps, &err), -EINVAL, "a name with .. is refused");
        TAP_EQ_INT(err.kind, OSM_STORE_BAD_NAME, "…as a bad name (the error's kind, not its message)");
        bad.collection = "bad\nname";
        TAP_EQ_INT(osm_store_put(s, &bad, on_put, &ps, &err), -EINVAL, "a name with a control character is refused");
        char longname[300];
        memset(longname, 'a', sizeof(longname) - 1);
        longname[sizeof(longname) - 1] = 0;
        bad.collection = longname;
        TAP_EQ_INT(osm_store_put(s, &bad, on_put, &ps, &err), -EINVAL, "an over-long name is refused");
        json_t *big = json_pack("{s:s%}", "x", longname, (size_t) 299);
        char huge[5000];
        memset(huge, 'x', sizeof(huge) - 1);
        huge[sizeof(huge) - 1] = 0;
        json_decref(big);
        big = json_pack("{s:s}", "x", huge);
        osm_store_put_req toobig = { .collection = "sensors/temp", .writer = "user:test", .body = big };
        TAP_EQ_INT(osm_store_put(s, &toobig, on_put, &ps, &err), -EMSGSIZE, "a record over the size limit is refused");
        json_decref(big);
        osm_store_put_req badid = { .collection = "x", .writer = "user:test", .body = b, .id = "zz-1" };
        err = (osm_error) {};
        TAP_EQ_INT(osm_store_put(s, &badid, on_put, &ps, &err), -EINVAL, "a malformed remote id is refused");
        TAP_EQ_INT(err.kind, 0, "…as a bad record, not a bad name");
        tap_ok(err.code == -EINVAL && err.message[0], "…with its code and a message (%s)", err.message);

        /* a batch queued at once stops at its first bad record; those before it are stored */
        {
                json_t *ok1 = json_pack("{s:i}", "m", 1), *ok2 = json_pack("{s:i}", "m", 2);
                json_t *huge2 = json_pack("{s:s}", "x", huge);
                osm_store_put_req reqs[3] = {
                        { .collection = "many", .writer = "user:test", .body = ok1 },
                        { .collection = "many", .writer = "user:test", .body = ok2 },
                        { .collection = "many", .writer = "user:test", .body = huge2 },
                };
                int r = 0;
                ps = (put_state) { .want = 2 };
                size_t queued = osm_store_put_many(s, reqs, 3, on_put, &ps, &r, &err);
                TAP_EQ_INT(queued, 2, "put_many queues the records before a bad one");
                TAP_EQ_INT(r, -EMSGSIZE, "…and says why it stopped");
                run_until(&ps.all);
                TAP_EQ_INT(ps.n_ok, 2, "…and they are stored");
                json_decref(ok1);
                json_decref(ok2);
                json_decref(huge2);
        }

        /* idempotent remote records */
        osm_store_put_req remote = { .collection = "shared", .writer = "remote:fedcba9876543210", .body = b,
                                     .id = "fedcba9876543210-42", .time_us = t0 };
        ps = (put_state) { .want = 2 };
        osm_store_put(s, &remote, on_put, &ps, NULL);
        osm_store_put(s, &remote, on_put, &ps, NULL);
        run_until(&ps.all);
        TAP_EQ_INT(ps.n_ok, 2, "both puts of a remote record succeed");
        TAP_EQ_INT(ps.n_dup, 1, "the second is a duplicate");
        tap_ok(strcmp(ps.last_id, "fedcba9876543210-42") == 0, "the remote id is kept (%s)", ps.last_id);
        json_decref(b);

        /* queries */
        osm_store_query_req q = { .collection = "sensors/temp", .since_us = INT64_MIN, .until_us = INT64_MAX };
        query_state qs;
        int total = 0, pages = 0;
        char cursor[64] = "";
        do {
                q.cursor = cursor[0] ? cursor : NULL;
                if (query(s, &q, &qs) < 0)
                        break;
                total += (int) json_array_size(qs.records);
                pages++;
                snprintf(cursor, sizeof(cursor), "%s", qs.has_cursor ? qs.cursor : "");
                json_decref(qs.records);
        } while (qs.has_cursor);
        TAP_EQ_INT(total, 2500, "paging returns every record once");
        TAP_EQ_INT(pages, 3, "in pages of 1000");

        q = (osm_store_query_req) { .collection = "sensors/temp", .since_us = t0 + 100, .until_us = t0 + 200 };
        tap_ok(query(s, &q, &qs) == 0, "range query");
        TAP_EQ_INT(json_array_size(qs.records), 100, "[since, until) selects 100 records");
        json_t *first = json_array_get(qs.records, 0);
        TAP_EQ_INT(json_integer_value(json_object_get(first, "time")), t0 + 100, "oldest first");
        TAP_EQ_INT(json_integer_value(json_object_get(json_object_get(first, "body"), "i")), 100, "body comes back as JSON");
        tap_ok(!qs.has_cursor, "no cursor after the last page");
        json_decref(qs.records);

        q = (osm_store_query_req) { .collection = "sensors/temp", .since_us = INT64_MIN, .until_us = INT64_MAX,
                                    .limit = 5, .reverse = true };
        tap_ok(query(s, &q, &qs) == 0, "reverse query with a limit");
        TAP_EQ_INT(json_array_size(qs.records), 5, "limit 5");
        TAP_EQ_INT(json_integer_value(json_object_get(json_array_get(qs.records, 0), "time")), t0 + 2499,
                   "newest first");
        tap_ok(qs.has_cursor, "a cursor when more records match");
        json_decref(qs.records);

        q = (osm_store_query_req) { .collection = "nope", .since_us = INT64_MIN, .until_us = INT64_MAX };
        TAP_EQ_INT(query(s, &q, &qs), -ENOENT, "querying a missing collection: ENOENT");
        q.collection = "sensors/temp";
        q.cursor = "garbage";
        TAP_EQ_INT(osm_store_query(s, &q, on_query, &qs), -EINVAL, "a bad cursor is refused");

        /* retention */
        done_state ds = {};
        osm_store_retention ret = { .max_records = 1000 };
        tap_ok(osm_store_set_retention(s, "sensors/temp", &ret, true, on_done, &ds) == 0, "set retention");
        run_until(&ds.done);
        TAP_EQ_INT(ds.r, 0, "retention set");
        int64_t records = -1;
        for (int i = 0; i < 50 && records != 1000; i++) {
                json_t *cols = NULL;
                osm_store_collections(s, &cols);
                size_t k;
                json_t *c;
                json_array_foreach(cols, k, c)
                        if (strcmp(json_string_value(json_object_get(c, "name")), "sensors/temp") == 0)
                                records = json_integer_value(json_object_get(c, "records"));
                json_decref(cols);
                if (records != 1000) {
                        bool never = false;
                        uv_update_time(loop);
                        uint64_t until = uv_now(loop) + 100;
                        while (uv_now(loop) < until && !never) {
                                uv_run(loop, UV_RUN_NOWAIT);
                                usleep(5000);
                                uv_update_time(loop);
                        }
                }
        }
        TAP_EQ_INT(records, 1000, "retention trimmed the collection to 1000 records");
        q = (osm_store_query_req) { .collection = "sensors/temp", .since_us = INT64_MIN, .until_us = INT64_MAX, .limit = 1 };
        query(s, &q, &qs);
        TAP_EQ_INT(json_integer_value(json_object_get(json_array_get(qs.records, 0), "time")), t0 + 1500,
                   "the oldest records went first");
        json_decref(qs.records);
        close_store(s);
        remove_dir();
}

static void test_objects(void) {
        osm_store_options o = store_options();
        osm_store *s = open_store(&o);
        if (!s)
                return;
        done_state ds = {};
        osm_store_query_req q;
        query_state qs;

        /* objects */
        obj_state os;
        const char content[] = "hello objects\n";
        tap_ok(object_put_bytes(s, content, strlen(content), true, &os) == 0, "object put");
        uint8_t dg[32];
        char hex[65];
        crypto_generichash(dg, 32, (const uint8_t *) content, strlen(content), NULL, 0);
        sodium_bin2hex(hex, sizeof(hex), dg, 32);
        tap_ok(strcmp(os.hash, hex) == 0, "object hash is BLAKE2b-256 of the content (%s)", os.hash);
        tap_ok(os.created, "first put creates the object");
        char opath[512];
        snprintf(opath, sizeof(opath), "%s/objects/%.2s/%s", dir, hex, hex + 2);
        tap_ok(access(opath, F_OK) == 0, "stored as objects/ab/cdef…");
        tap_ok(object_put_bytes(s, content, strlen(content), false, &os) == 0 && !os.created,
               "identical content is stored once");
        /* the second copy's temp file goes after the reply, from the thread pool */
        char tmpdir[300];
        snprintf(tmpdir, sizeof tmpdir, "%s/objects/tmp", dir);
        int left = -1;
        for (int i = 0; i < 200 && left != 0; i++) {
                uv_run(loop, UV_RUN_NOWAIT);
                left = 0;
                DIR *td = opendir(tmpdir);
                for (struct dirent *e; td && (e = readdir(td));)
                        left += e->d_name[0] != '.';
                if (td)
                        closedir(td);
                if (left)
                        usleep(5000);
        }
        TAP_EQ_INT(left, 0, "…and its spare copy is removed");
        int fd = -1;
        uint64_t size = 0;
        tap_ok(osm_store_object_open(s, hex, &fd, &size) == 0, "object open");
        char rb[256];
        ssize_t n = read_fd_all(fd, rb, sizeof(rb));
        close(fd);
        tap_ok(n == (ssize_t) strlen(content) && memcmp(rb, content, (size_t) n) == 0, "object content reads back");
        TAP_EQ_INT(osm_store_object_open(s, "abc", &fd, &size), -EINVAL, "a hash that is not a hash");
        TAP_EQ_INT(osm_store_object_open(s, "0000000000000000000000000000000000000000000000000000000000000000", &fd, &size),
                   -ENOENT, "a missing object");

        /* unpin: still referenced once (the second put) so it stays; drop the ref: gone */
        ds = (done_state) {};
        osm_store_object_ref(s, hex, 0, true, on_done, &ds);
        run_until(&ds.done);
        tap_ok(ds.r == 0 && access(opath, F_OK) == 0, "unpinned but referenced: kept");
        ds = (done_state) {};
        osm_store_object_ref(s, hex, -1, false, on_done, &ds);
        run_until(&ds.done);
        tap_ok(ds.r == 1 && access(opath, F_OK) != 0, "no pin, no reference: deleted");

        /* gc takes stray files */
        char stray[512];
        snprintf(stray, sizeof(stray), "%s/objects/ff", dir);
        mkdir(stray, 0700);
        snprintf(stray, sizeof(stray), "%s/objects/ff/%062d", dir, 0);
        close(open(stray, O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
        ds = (done_state) {};
        osm_store_object_gc(s, on_done, &ds);
        run_until(&ds.done);
        tap_ok(ds.r >= 1 && access(stray, F_OK) != 0, "gc removes a file without a row (%d)", ds.r);

        close_store(s);

        /* reopen: data persists; encryption on */
        json_t *b = json_pack("{s:s}", "x", "y");
        osm_store_put_req remote = { .collection = "shared", .writer = "remote:fedcba9876543210", .body = b,
                                     .id = "fedcba9876543210-42", .time_us = INT64_C(1700000000000000) };
        s = open_store(&o);
        if (!s)
                return;
        put_state ps = { .want = 1 };
        osm_store_put(s, &remote, on_put, &ps, NULL);
        run_until(&ps.all);
        json_decref(b);
        close_store(s);
        o.encrypt_objects = true;
        s = open_store(&o);
        if (!s)
                return;
        q = (osm_store_query_req) { .collection = "shared", .since_us = INT64_MIN, .until_us = INT64_MAX };
        tap_ok(query(s, &q, &qs) == 0 && json_array_size(qs.records) == 1, "records survive a reopen");
        json_decref(qs.records);
        char keypath[512];
        struct stat st;
        snprintf(keypath, sizeof(keypath), "%s/object.key", dir);
        tap_ok(stat(keypath, &st) == 0 && (st.st_mode & 0777) == 0600, "object.key made with mode 0600");

        static char secret[300000];
        for (size_t i = 0; i < sizeof(secret); i++)
                secret[i] = (char) ('a' + i % 26);
        memcpy(secret, "TOPSECRET", 9);
        tap_ok(object_put_bytes(s, secret, sizeof(secret), true, &os) == 0, "encrypted object put");
        snprintf(opath, sizeof(opath), "%s/objects/%.2s/%s", dir, os.hash, os.hash + 2);
        tap_ok(!file_contains(opath, "TOPSECRET", 9), "the file on disk does not hold the plaintext");
        tap_ok(osm_store_object_open(s, os.hash, &fd, &size) == 0, "encrypted object open");
        static char back[sizeof(secret) + 10];
        n = read_fd_all(fd, back, sizeof(back));
        close(fd);
        tap_ok(n == (ssize_t) sizeof(secret) && memcmp(back, secret, sizeof(secret)) == 0,
               "encrypted object decrypts to its content (%zd bytes)", n);
        /* exactly one chunk multiple: the final block is empty */
        tap_ok(object_put_bytes(s, secret, 65536 * 2, true, &os) == 0, "encrypted object of exactly two chunks");
        tap_ok(osm_store_object_open(s, os.hash, &fd, &size) == 0, "open it");
        n = read_fd_all(fd, back, sizeof(back));
        close(fd);
        TAP_EQ_INT(n, 65536 * 2, "reads back whole");
        close_store(s);
        remove_dir();
}

static void test_budget(void) {
        osm_store_options o = store_options();
        osm_store *s = open_store(&o);
        if (!s)
                return;
        put_state ps;
        osm_error err = {};
        /* budget */
        osm_store_options small = o;
        small.db_budget = 1;   /* already past it */
        osm_store_set_options(s, &small);
        json_t *b2 = json_pack("{s:i}", "x", 1);
        osm_store_put_req req = { .collection = "sensors/temp", .writer = "user:test", .body = b2 };
        int r = osm_store_put(s, &req, on_put, &ps, &err);
        TAP_EQ_INT(r, -EDQUOT, "past the budget a put is refused");
        json_decref(b2);
        osm_store_set_options(s, &o);
        tap_ok(put_n(s, "sensors/temp", 10, 0, &ps) == 0 && ps.n_ok == 10, "writes work again under the budget");

        close_store(s);
        remove_dir();
}

int main(int argc, char **argv) {
        if (sodium_init() < 0)
                return 1;
        static const tap_case cases[] = {
                TAP_CASE(test_records),
                TAP_CASE(test_query_text),
                TAP_CASE(test_query_inline),
                TAP_CASE(test_objects),
                TAP_CASE(test_budget),
        };
        return tap_run(cases, TAP_N_CASES(cases), argc, argv);
}
