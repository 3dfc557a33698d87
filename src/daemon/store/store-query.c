/* store-query.c: queries on the thread pool (pages with a cursor) and the list of collections. */
#include <fcntl.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "daemon/store/store-internal.h"
#include "osmose/varlink.h"
#include "daemon/store/store-params.h"

/* ---- queries ---- */

#define QUERY_INLINE_US 150   /* how long a query may run on the loop before the pool takes it */

typedef struct query_work {
        uv_work_t req;
        osm_store *s;
        osm_store_query_req q;
        osm_store_query_cb cb;
        void *userdata;
        int64_t cur_ts, cur_seq;
        bool has_cursor;
        int r;
        json_t *records;          /* tree mode */
        osm_store_query_text_cb text_cb;
        osm_jbuf text;            /* text mode: the reply's parameters, {"records":[…],"cursor":…} */
        char cursor[64];
        bool more;
        /* text mode: what every record of the page shares, written once */
        osm_jbuf id_head;         /* {"id":"ORIGIN- */
        osm_jbuf coll_part;       /* ,"collection":"NAME","time": */
        osm_jbuf writer_part;     /* ,"writer":"WRITER","body": for last_writer */
        char *last_writer;
        /* while it runs: its reader, its statements, and how far the page has got */
        sqlite3 *db;
        sqlite3_stmt *cs, *st;
        size_t n, bytes;
        int64_t last_ts, last_seq;
        uint64_t deadline_us;     /* run on the loop: when it goes on in the pool; 0 in the pool */
        bool retry;               /* on the loop: stopped inside a step (busy, a long step), */
                                  /* to start over in the pool */
        char buf[];
} query_work;

static json_t *record_json(const char *origin, sqlite3_stmt *st, const char *coll, size_t *bytes) {
        int64_t seq = sqlite3_column_int64(st, 0);
        int64_t ts = sqlite3_column_int64(st, 1);
        const char *rid = (const char *) sqlite3_column_text(st, 2);
        const char *writer = (const char *) sqlite3_column_text(st, 3);
        const char *body = (const char *) sqlite3_column_text(st, 4);
        int blen = sqlite3_column_bytes(st, 4);
        char id[OSM_STORE_MAX_ID];
        if (rid)
                snprintf(id, sizeof(id), "%s", rid);
        else
                snprintf(id, sizeof(id), "%s-%" PRId64, origin, seq);
        json_t *b = json_loadb(body ? body : "null", body ? (size_t) blen : 4, JSON_DECODE_ANY, NULL);
        if (!b)
                b = json_stringn(body ? body : "", body ? (size_t) blen : 0);
        *bytes += (size_t) blen + 128;
        return json_pack("{s:s, s:s, s:I, s:s, s:o}", "id", id, "collection", coll,
                         "time", (json_int_t) ts, "writer", writer ? writer : "", "body", b);
}

/* Can a stored body go into a reply as it is? Bodies are written by osm_vl_dump() of a
 * JSON object (store-put.c), so they are compact JSON without a raw NUL; this cheap look
 * keeps a row that is not (a damaged file) from breaking the reply's framing: such a row
 * takes record_json()'s way, parsed, or as a string if it does not parse. */
static bool body_spliceable(const char *body, int blen) {
        return body && blen >= 2 && body[0] == '{' && body[blen - 1] == '}' && !memchr(body, 0, (size_t) blen);
}

/* The record as record_json() builds it, written straight into b: the body is spliced
 * as stored, not parsed into a tree and serialized again (the same text for a body
 * osm_vl_dump wrote: it is what a parse and a dump give back), after a comma if it is not
 * the page's first. Its seq and ts go to *seq and *ts. */
static void record_text(query_work *w, sqlite3_stmt *st, bool comma, size_t *bytes, int64_t *seq, int64_t *ts) {
        osm_jbuf *b = &w->text;
        const char *origin = w->s->origin, *coll = w->q.collection;
        const char *body = (const char *) sqlite3_column_text(st, 4);
        int blen = sqlite3_column_bytes(st, 4);
        *seq = sqlite3_column_int64(st, 0);
        *ts = sqlite3_column_int64(st, 1);
        if (!body_spliceable(body, blen)) {
                if (comma)
                        osm_jbuf_put(b, ",", 1);
                json_t *rec = record_json(origin, st, coll, bytes);
                if (!rec)
                        b->failed = true;
                osm_jbuf_value(b, rec);
                json_decref(rec);
                return;
        }
        /* The pieces every record of the page shares are written once (a page's records
         * have one collection and mostly one writer); each record is then one reserve and
         * a few copies (a call for each piece cost about as much as the row's read). */
        if (!w->id_head.len) {
                osm_jbuf_put(&w->id_head, "{\"id\":\"", 7);
                osm_jbuf_put(&w->id_head, origin, strlen(origin));   /* hex */
                osm_jbuf_put(&w->id_head, "-", 1);
                osm_jbuf_put(&w->coll_part, ",\"collection\":", 14);
                osm_jbuf_string(&w->coll_part, coll);
                osm_jbuf_put(&w->coll_part, ",\"time\":", 8);
        }
        const char *writer = (const char *) sqlite3_column_text(st, 3);
        if (!writer)
                writer = "";
        if (!w->last_writer || strcmp(writer, w->last_writer) != 0) {
                free(w->last_writer);
                w->last_writer = strdup(writer);
                w->writer_part.len = 0;
                osm_jbuf_put(&w->writer_part, ",\"writer\":", 10);
                osm_jbuf_string(&w->writer_part, writer);
                osm_jbuf_put(&w->writer_part, ",\"body\":", 8);
                if (!w->last_writer)
                        b->failed = true;
        }
        if (w->id_head.failed || w->coll_part.failed || w->writer_part.failed) {
                b->failed = true;
                return;
        }
        const char *rid = (const char *) sqlite3_column_text(st, 2);
        char num[22], t[21];
        size_t nn = 0, tn = osm_fmt_int(t, *ts);
        if (rid) {   /* a record named by its writer: rare, written piece by piece */
                if (comma)
                        osm_jbuf_put(b, ",", 1);
                osm_jbuf_put(b, "{\"id\":", 6);
                osm_jbuf_string(b, rid);
        } else {     /* "ORIGIN-SEQ", as record_json writes it */
                nn = osm_fmt_int(num, *seq);
                num[nn++] = '"';
        }
        size_t need = (rid ? 0 : comma + w->id_head.len + nn) + w->coll_part.len + tn + w->writer_part.len +
                      (size_t) blen + 1;
        if (!osm_jbuf_reserve(b, need))
                return;
        char *p = b->p + b->len;
        if (!rid) {
                if (comma)
                        *p++ = ',';
                memcpy(p, w->id_head.p, w->id_head.len);
                p += w->id_head.len;
                memcpy(p, num, nn);
                p += nn;
        }
        memcpy(p, w->coll_part.p, w->coll_part.len);
        p += w->coll_part.len;
        memcpy(p, t, tn);
        p += tn;
        memcpy(p, w->writer_part.p, w->writer_part.len);
        p += w->writer_part.len;
        memcpy(p, body, (size_t) blen);
        p += blen;
        *p++ = '}';
        b->len = (size_t) (p - b->p);
        *bytes += (size_t) blen + 128;
}

/* A statement of a pooled reader, prepared once and kept there (the pool closes its
 * connections with store_db_close, which finalizes them): preparing the two statements of
 * a query cost about as much as running it for a short window. Found again by its text;
 * the caller resets it when done. */
static int reader_stmt(sqlite3 *db, const char *sql, sqlite3_stmt **out) {
        for (sqlite3_stmt *p = sqlite3_next_stmt(db, NULL); p; p = sqlite3_next_stmt(db, p))
                if (!sqlite3_stmt_busy(p) && strcmp(sqlite3_sql(p), sql) == 0) {
                        *out = p;
                        return SQLITE_OK;
                }
        return sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, out, NULL);
}

static void stmt_done(sqlite3_stmt *st) {
        if (st) {
                sqlite3_reset(st);   /* ends the read transaction: checkpoints are not held up */
                sqlite3_clear_bindings(st);
        }
}

/* On the loop, a step that fails for a reason the pool would wait out or does not have
 * (a busy database, the progress handler's stop) makes the query start over there. */
static int query_failed(query_work *w, int rc) {
        int primary = rc & 0xff;   /* the readers report extended codes (SQLITE_BUSY_RECOVERY…) */
        if (w->deadline_us && (primary == SQLITE_BUSY || primary == SQLITE_LOCKED || primary == SQLITE_INTERRUPT))
                w->retry = true;
        w->r = osm_db_errno(w->db, rc);
        return -1;
}

/* The query's statements on w->db, prepared and bound: 0, or -1 with w->r set. */
static int query_begin(query_work *w) {
        sqlite3 *db = w->db;
        int rc = reader_stmt(db, "SELECT id FROM collections WHERE name=?1", &w->cs);
        if (rc != SQLITE_OK)
                return query_failed(w, rc);
        sqlite3_bind_text(w->cs, 1, w->q.collection, -1, SQLITE_STATIC);
        rc = sqlite3_step(w->cs);
        if (rc != SQLITE_ROW) {
                if (rc != SQLITE_DONE)
                        return query_failed(w, rc);
                w->r = -ENOENT;
                return -1;
        }
        int64_t coll = sqlite3_column_int64(w->cs, 0);

        /* (coll, ts) is indexed and seq is the rowid, so the index is ordered by
         * (coll, ts, seq): the range and the keyset cursor are one index scan. */
        const char *sql = w->q.reverse
                ? "SELECT seq, ts, rid, writer, body FROM records WHERE coll=?1 AND ts>=?2 AND ts<?3 "
                  "AND (ts, seq) < (?4, ?5) ORDER BY ts DESC, seq DESC LIMIT ?6"
                : "SELECT seq, ts, rid, writer, body FROM records WHERE coll=?1 AND ts>=?2 AND ts<?3 "
                  "AND (ts, seq) > (?4, ?5) ORDER BY ts, seq LIMIT ?6";
        rc = reader_stmt(db, sql, &w->st);
        if (rc != SQLITE_OK)
                return query_failed(w, rc);
        sqlite3_stmt *st = w->st;
        int64_t cts = w->has_cursor ? w->cur_ts : (w->q.reverse ? INT64_MAX : INT64_MIN);
        int64_t cseq = w->has_cursor ? w->cur_seq : (w->q.reverse ? INT64_MAX : INT64_MIN);
        sqlite3_bind_int64(st, 1, coll);
        sqlite3_bind_int64(st, 2, w->q.since_us);
        sqlite3_bind_int64(st, 3, w->q.until_us);
        sqlite3_bind_int64(st, 4, cts);
        sqlite3_bind_int64(st, 5, cseq);
        sqlite3_bind_int64(st, 6, (int64_t) w->q.limit + 1);   /* one more: is there a next page? */

        if (w->text_cb) {
                /* room for the first record; its size then tells what the page needs */
                osm_jbuf_reserve(&w->text, 1024);
                osm_jbuf_put(&w->text, "{\"records\":[", 12);
        } else if (!(w->records = json_array())) {
                w->r = -ENOMEM;
                return -1;
        }
        return 0;
}

/* The page's rows: 1 when it is complete (or failed: w->r), 0 if it ran on the loop until
 * its deadline between two rows, to go on in the pool where it stopped. */
static int query_rows(query_work *w) {
        sqlite3_stmt *st = w->st;
        uint64_t limit = w->q.limit;
        int rc;
        for (;;) {
                if (w->deadline_us && w->n % 8 == 0 && w->n && osm_now_mono_us() >= w->deadline_us)
                        return 0;
                if ((rc = sqlite3_step(st)) != SQLITE_ROW)
                        break;
                if (w->n >= limit || w->bytes >= OSM_STORE_PAGE_BYTES) {
                        w->more = true;
                        break;
                }
                if (w->text_cb) {
                        size_t before = w->text.len;
                        record_text(w, st, w->n > 0, &w->bytes, &w->last_seq, &w->last_ts);
                        /* room for a page of records like the first at once: no copy of a
                         * grown buffer each time it doubles (realloc copies it whole) */
                        if (w->n == 0)
                                osm_jbuf_reserve(&w->text, OSM_MIN((w->text.len - before + 32) * (limit - 1),
                                                                   (size_t) OSM_STORE_PAGE_BYTES + 64 * 1024));
                        if (w->text.failed) {
                                w->r = -ENOMEM;
                                return 1;
                        }
                } else {
                        json_t *rec = record_json(w->s->origin, st, w->q.collection, &w->bytes);
                        if (!rec || json_array_append_new(w->records, rec) < 0) {
                                w->r = -ENOMEM;
                                return 1;
                        }
                        w->last_ts = sqlite3_column_int64(st, 1);
                        w->last_seq = sqlite3_column_int64(st, 0);
                }
                w->n++;
        }
        if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
                query_failed(w, rc);
                return 1;
        }
        if (w->more)
                snprintf(w->cursor, sizeof(w->cursor), "%" PRId64 ".%" PRId64, w->last_ts, w->last_seq);
        if (w->text_cb) {
                osm_jbuf_put(&w->text, "]", 1);
                if (w->more) {
                        osm_jbuf_put(&w->text, ",\"cursor\":", 10);
                        osm_jbuf_string(&w->text, w->cursor);
                }
                osm_jbuf_put(&w->text, "}", 1);
                if (w->text.failed) {
                        w->r = -ENOMEM;
                        return 1;
                }
        }
        w->r = 0;
        return 1;
}

/* The statements reset (which ends the read transaction) and the reader back in the pool. */
static void query_end(query_work *w) {
        stmt_done(w->st);
        stmt_done(w->cs);
        w->st = w->cs = NULL;
        if (w->db)
                store_pool_put(w->s, w->db);
        w->db = NULL;
}

static void query_run(uv_work_t *req) {
        query_work *w = req->data;
        if (!w->db) {
                if (!(w->db = store_pool_get(w->s))) {
                        w->r = -EIO;
                        return;
                }
                if (query_begin(w) < 0) {
                        query_end(w);
                        return;
                }
        }
        query_rows(w);
        query_end(w);
}

/* On the loop: a step that has run past the deadline by as long again stops (it returns
 * SQLITE_INTERRUPT); the query starts over in the pool. */
static int query_progress(void *arg) {
        const query_work *w = arg;
        return osm_now_mono_us() >= w->deadline_us + QUERY_INLINE_US;
}

/* A text query starts on the loop, on a reader free in the pool: a short page is done
 * there, without the two thread hops (to a pool thread and back) that were most of its
 * time. For QUERY_INLINE_US at most, with no busy wait: a longer page goes on in the pool
 * from the row it got to, and one that could not start (a busy database) starts over
 * there. True if it is done; otherwise its reader and statements are w's still, or none.
 * (It bounds the loop's wait, which is why a long page does not run there to its end.) */
static bool query_inline(query_work *w) {
        w->db = store_pool_take_free(w->s);
        if (!w->db)
                return false;
        sqlite3_busy_timeout(w->db, 0);
        w->deadline_us = osm_now_mono_us() + QUERY_INLINE_US;
        sqlite3_progress_handler(w->db, 1000, query_progress, w);
        int done = query_begin(w) < 0 ? 1 : query_rows(w);
        sqlite3_progress_handler(w->db, 0, NULL, NULL);
        sqlite3_busy_timeout(w->db, OSM_DB_BUSY_TIMEOUT_MS);
        w->deadline_us = 0;
        if (done && w->retry) {
                query_end(w);
                json_decref(w->records);
                w->records = NULL;
                w->text.len = 0;
                w->text.failed = false;
                w->n = w->bytes = 0;
                w->more = w->retry = false;
                w->r = 0;
                return false;
        }
        if (done)
                query_end(w);
        return done;
}

static void query_free(query_work *w) {
        free(w->text.p);
        free(w->id_head.p);
        free(w->coll_part.p);
        free(w->writer_part.p);
        free(w->last_writer);
        free(w);
}

static void query_after(uv_work_t *req, int status) {
        query_work *w = req->data;
        osm_store *s = w->s;
        if (status < 0 && w->r == 0)
                w->r = -ECANCELED;
        if (w->text_cb)
                w->text_cb(w->r, w->r < 0 ? NULL : w->text.p, w->r < 0 ? 0 : w->text.len, w->userdata);
        else if (w->r < 0) {
                json_decref(w->records);
                w->cb(w->r, NULL, NULL, w->userdata);
        } else
                w->cb(0, w->records, w->more ? w->cursor : NULL, w->userdata);
        query_free(w);
        store_work_done(s);
}

static int query_start(osm_store *s, const osm_store_query_req *q, osm_store_query_cb cb,
                       osm_store_query_text_cb text_cb, void *userdata) {
        if (s->closing)
                return -ECANCELED;
        if (!q->collection || !osm_name_valid(q->collection, OSM_STORE_MAX_NAME, true))
                return -EINVAL;
        if (q->since_us > q->until_us)
                return -ERANGE;
        size_t n = strlen(q->collection) + 1;
        query_work *w = calloc(1, sizeof(*w) + n);
        if (!w)
                return -ENOMEM;
        if (q->cursor) {
                if (osm_store_parse_cursor(q->cursor, &w->cur_ts, &w->cur_seq) < 0) {
                        free(w);
                        return -EINVAL;
                }
                w->has_cursor = true;
        }
        w->s = s;
        w->q = *q;
        w->q.collection = memcpy(w->buf, q->collection, n);
        w->q.cursor = NULL;
        if (w->q.limit == 0 || w->q.limit > OSM_STORE_PAGE_RECORDS)
                w->q.limit = OSM_STORE_PAGE_RECORDS;
        w->cb = cb;
        w->text_cb = text_cb;
        w->userdata = userdata;
        w->req.data = w;
        /* On the loop only while the pool has nothing else of the store's: under many
         * clients' queries the pool's threads run them side by side, and the loop stays
         * free for the calls behind them. */
        bool quiet = s->n_works == 0;
        s->n_works++;
        if (text_cb && quiet && query_inline(w)) {
                query_after(&w->req, 0);
                return 0;
        }
        int r = uv_queue_work(s->loop, &w->req, query_run, query_after);
        if (r < 0) {
                s->n_works--;
                query_end(w);
                query_free(w);
                return r;
        }
        return 0;
}

int osm_store_query(osm_store *s, const osm_store_query_req *q, osm_store_query_cb cb, void *userdata) {
        return query_start(s, q, cb, NULL, userdata);
}

int osm_store_query_text(osm_store *s, const osm_store_query_req *q, osm_store_query_text_cb cb, void *userdata) {
        return query_start(s, q, NULL, cb, userdata);
}

/* ---- is an object referenced by records of some collections? ---- */

typedef struct ref_work {
        uv_work_t req;
        osm_store *s;
        char hash[65];
        char **colls;             /* NULL-terminated */
        osm_store_done_cb cb;
        void *userdata;
        int r;
} ref_work;

static void ref_run(uv_work_t *req) {
        ref_work *w = req->data;
        sqlite3 *db = store_pool_get(w->s);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        if (!db) {
                w->r = -EIO;
                return;
        }
        /* A reference is the hash as text in a record body: 64 hex digits do not occur
         * by chance. One scan of each collection's rows, stopping at the first. */
        int rc = sqlite3_prepare_v2(db, "SELECT 1 FROM records WHERE coll = (SELECT id FROM collections WHERE name=?1)"
                                        " AND instr(body, ?2) > 0 LIMIT 1", -1, &st, NULL);
        w->r = rc == SQLITE_OK ? 0 : osm_db_errno(db, rc);
        for (char **c = w->colls; w->r == 0 && c && *c; c++) {
                sqlite3_reset(st);
                sqlite3_bind_text(st, 1, *c, -1, SQLITE_STATIC);
                sqlite3_bind_text(st, 2, w->hash, -1, SQLITE_STATIC);
                rc = sqlite3_step(st);
                if (rc == SQLITE_ROW)
                        w->r = 1;
                else if (rc != SQLITE_DONE)
                        w->r = osm_db_errno(db, rc);
        }
        sqlite3_finalize(st);
        st = NULL;
        store_pool_put(w->s, db);
}

static void ref_after(uv_work_t *req, int status) {
        ref_work *w = req->data;
        osm_store *s = w->s;
        if (status < 0 && w->r >= 0)
                w->r = -ECANCELED;
        w->cb(w->r, w->userdata);
        osm_strv_free(w->colls);
        free(w);
        store_work_done(s);
}

int osm_store_object_referenced(osm_store *s, const char *hash, const char *const *collections,
                                osm_store_done_cb cb, void *userdata) {
        if (s->closing)
                return -ECANCELED;
        if (!osm_store_hash_valid(hash))
                return -EINVAL;
        size_t n = 0;
        while (collections && collections[n])
                n++;
        ref_work *w = calloc(1, sizeof(*w));
        if (!w || !(w->colls = calloc(n + 1, sizeof(char *)))) {
                free(w);
                return -ENOMEM;
        }
        for (size_t k = 0; k < n; k++)
                if (!(w->colls[k] = strdup(collections[k]))) {
                        osm_strv_free(w->colls);
                        free(w);
                        return -ENOMEM;
                }
        snprintf(w->hash, sizeof(w->hash), "%s", hash);
        w->s = s;
        w->cb = cb;
        w->userdata = userdata;
        w->req.data = w;
        int r = uv_queue_work(s->loop, &w->req, ref_run, ref_after);
        if (r < 0) {
                osm_strv_free(w->colls);
                free(w);
                return r;
        }
        s->n_works++;
        return 0;
}

int osm_store_collections(osm_store *s, json_t **out) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        json_auto_t *arr = json_array();
        if (!arr)
                return -ENOMEM;
        /* oldest/newest come from the (coll, ts) index: two seeks per collection */
        int rc = sqlite3_prepare_v2(s->rdb,
                "SELECT name, records, bytes, max_age, max_records, max_bytes,"
                " (SELECT ts FROM records WHERE coll=c.id ORDER BY ts LIMIT 1),"
                " (SELECT ts FROM records WHERE coll=c.id ORDER BY ts DESC LIMIT 1) "
                "FROM collections c ORDER BY name", -1, &st, NULL);
        if (rc != SQLITE_OK)
                return osm_db_errno(s->rdb, rc);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                json_t *o = json_pack("{s:s, s:I, s:I, s:I, s:I, s:I}",
                        "name", (const char *) sqlite3_column_text(st, 0),
                        "records", (json_int_t) sqlite3_column_int64(st, 1),
                        "bytes", (json_int_t) sqlite3_column_int64(st, 2),
                        "max_age", (json_int_t) sqlite3_column_int64(st, 3),
                        "max_records", (json_int_t) sqlite3_column_int64(st, 4),
                        "max_bytes", (json_int_t) sqlite3_column_int64(st, 5));
                if (!o)
                        return -ENOMEM;
                if (sqlite3_column_type(st, 6) != SQLITE_NULL) {
                        json_object_set_new(o, "oldest", json_integer(sqlite3_column_int64(st, 6)));
                        json_object_set_new(o, "newest", json_integer(sqlite3_column_int64(st, 7)));
                }
                json_array_append_new(arr, o);
        }
        if (rc != SQLITE_DONE)
                return osm_db_errno(s->rdb, rc);
        *out = steal_pointer(&arr);
        return 0;
}

