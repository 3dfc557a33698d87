/* store.c: durable JSON records in SQLite (WAL): a writer thread doing group commit,
 * incremental retention, a database budget, queries on the thread pool, and watches. */
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

#define BATCH_MAX_OPS     8192          /* ops in one transaction at most */
#define BATCH_MAX_BYTES   (16u << 20)   /* body bytes in one transaction at most */
#define RETENTION_STEP    2000          /* rows deleted per retention transaction at most */
#define RETENTION_TICK_S  1             /* the writer looks at retention this often when idle */
#define BUDGET_SLACK_PAGES 64           /* headroom over the budget for bookkeeping writes */
#define MAX_QUEUED_OPS    200000        /* back-pressure: refuse puts beyond this queue length */

/* The writer's cached view of one row of the collections table. */
struct store_coll {
        store_coll *next;
        int64_t id;
        int64_t records;
        int64_t bytes;
        osm_store_retention ret;
        bool dirty;
        char name[];
};

struct osm_store_watch {
        struct osm_store_watch *next;
        osm_store *store;
        osm_store_watch_cb cb;
        void *userdata;
        bool dead;
        char pattern[];
};

static const char schema_sql[] =
        "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;"
        "CREATE TABLE IF NOT EXISTS collections("
        "  id INTEGER PRIMARY KEY,"
        "  name TEXT NOT NULL UNIQUE,"
        "  records INTEGER NOT NULL DEFAULT 0,"
        "  bytes INTEGER NOT NULL DEFAULT 0,"
        "  max_age INTEGER NOT NULL DEFAULT 0,"
        "  max_records INTEGER NOT NULL DEFAULT 0,"
        "  max_bytes INTEGER NOT NULL DEFAULT 0,"
        "  created INTEGER NOT NULL);"
        /* seq never repeats (AUTOINCREMENT), so local ids stay unique even after retention
         * emptied a collection; rid holds the id of a record from another space. */
        "CREATE TABLE IF NOT EXISTS records("
        "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
        "  coll INTEGER NOT NULL,"
        "  ts INTEGER NOT NULL,"
        "  rid TEXT,"
        "  writer TEXT NOT NULL,"
        "  body TEXT NOT NULL);"
        "CREATE INDEX IF NOT EXISTS records_by_time ON records(coll, ts);"
        "CREATE UNIQUE INDEX IF NOT EXISTS records_by_rid ON records(rid) WHERE rid IS NOT NULL;"
        "CREATE TABLE IF NOT EXISTS objects("
        "  hash TEXT PRIMARY KEY,"
        "  size INTEGER NOT NULL,"
        "  enc INTEGER NOT NULL,"
        "  refs INTEGER NOT NULL DEFAULT 0,"
        "  pinned INTEGER NOT NULL DEFAULT 0,"
        "  created INTEGER NOT NULL) WITHOUT ROWID;";

int store_sqlite_errno(sqlite3 *db, int rc) {
        switch (rc & 0xff) {
        case SQLITE_OK: case SQLITE_ROW: case SQLITE_DONE: return 0;
        case SQLITE_NOMEM: return -ENOMEM;
        case SQLITE_FULL:
                /* the disk is full (SQLite clears the errno then), or the page cap that
                 * backs the budget was hit: the writer tells them apart (full_reason) */
                return -ENOSPC;
        case SQLITE_BUSY: case SQLITE_LOCKED: return -EBUSY;
        case SQLITE_CONSTRAINT: return -EEXIST;
        case SQLITE_READONLY: case SQLITE_PERM: case SQLITE_AUTH: return -EACCES;
        case SQLITE_CORRUPT: case SQLITE_NOTADB: return -EUCLEAN;
        case SQLITE_CANTOPEN: return -ENOENT;
        case SQLITE_IOERR:
                return sqlite3_system_errno(db) == ENOSPC ? -ENOSPC : -EIO;
        default: return -EIO;
        }
}

int store_db_open(const char *path, bool writer, sqlite3 **out) {
        sqlite3 *db = NULL;
        int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (writer ? SQLITE_OPEN_CREATE : 0);
        int rc = sqlite3_open_v2(path, &db, flags, NULL);
        if (rc != SQLITE_OK) {
                int r = store_sqlite_errno(db, rc);
                sqlite3_close(db);
                return r ? r : -EIO;
        }
        sqlite3_extended_result_codes(db, 1);
        sqlite3_busy_timeout(db, 10000);
        /* WAL + synchronous=FULL: every commit syncs the WAL, so an acknowledged write
         * survives a power cut; throughput comes from grouping many writes per commit. */
        const char *pragmas = writer
                ? "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=OFF;"
                  "PRAGMA journal_size_limit=67108864; PRAGMA cache_size=-8192;"
                : "PRAGMA synchronous=FULL; PRAGMA query_only=1; PRAGMA cache_size=-2048;";
        rc = sqlite3_exec(db, pragmas, NULL, NULL, NULL);
        if (rc != SQLITE_OK) {
                int r = store_sqlite_errno(db, rc);
                sqlite3_close(db);
                return r ? r : -EIO;
        }
        *out = db;
        return 0;
}

sqlite3 *store_pool_get(osm_store *s) {
        sqlite3 *db = NULL;
        pthread_mutex_lock(&s->pool_lock);
        if (s->n_pool > 0)
                db = s->pool[--s->n_pool];
        pthread_mutex_unlock(&s->pool_lock);
        if (!db && store_db_open(s->db_path, false, &db) < 0)
                return NULL;
        return db;
}

void store_pool_put(osm_store *s, sqlite3 *db) {
        pthread_mutex_lock(&s->pool_lock);
        if (s->n_pool < OSM_ARRAY_SIZE(s->pool)) {
                s->pool[s->n_pool++] = db;
                db = NULL;
        }
        pthread_mutex_unlock(&s->pool_lock);
        sqlite3_close(db);
}

store_op *store_op_new(store_op_kind kind, size_t extra) {
        store_op *op = calloc(1, sizeof(*op) + extra);
        if (op)
                op->kind = kind;
        return op;
}

void store_op_free(store_op *op) {
        if (!op)
                return;
        free(op->tmp_path);
        for (size_t i = 0; i < op->n_unlink; i++)
                free(op->unlink_after[i]);
        free(op->unlink_after);
        free(op);
}

void store_enqueue(osm_store *s, store_op *op) {
        pthread_mutex_lock(&s->lock);
        op->next = NULL;
        *s->q_tail = op;
        s->q_tail = &op->next;
        s->q_len++;
        pthread_cond_signal(&s->cond);
        pthread_mutex_unlock(&s->lock);
}

/* ---- the writer thread ---- */

static int exec_simple(sqlite3 *db, const char *sql) {
        int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
        return rc == SQLITE_OK ? 0 : store_sqlite_errno(db, rc);
}

static int64_t pragma_int(sqlite3 *db, const char *sql) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
                return -1;
        if (sqlite3_step(st) != SQLITE_ROW)
                return -1;
        return sqlite3_column_int64(st, 0);
}

/* Bytes of database pages holding data (free pages are reused before the file grows). */
static uint64_t db_used_bytes(osm_store *s) {
        int64_t pages = pragma_int(s->wdb, "PRAGMA page_count");
        int64_t free_pages = pragma_int(s->wdb, "PRAGMA freelist_count");
        if (pages < 0 || free_pages < 0)
                return atomic_load(&s->used_bytes);
        return (uint64_t) (pages - free_pages) * s->page_size;
}

static void colls_free(osm_store *s) {
        while (s->colls) {
                store_coll *c = s->colls;
                s->colls = c->next;
                free(c);
        }
}

static int colls_load(osm_store *s) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        colls_free(s);
        int rc = sqlite3_prepare_v2(s->wdb,
                "SELECT id, name, records, bytes, max_age, max_records, max_bytes FROM collections",
                -1, &st, NULL);
        if (rc != SQLITE_OK)
                return store_sqlite_errno(s->wdb, rc);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                const char *name = (const char *) sqlite3_column_text(st, 1);
                size_t n = strlen(name ? name : "");
                store_coll *c = calloc(1, sizeof(*c) + n + 1);
                if (!c)
                        return -ENOMEM;
                c->id = sqlite3_column_int64(st, 0);
                memcpy(c->name, name ? name : "", n + 1);
                c->records = sqlite3_column_int64(st, 2);
                c->bytes = sqlite3_column_int64(st, 3);
                c->ret.max_age_us = (uint64_t) sqlite3_column_int64(st, 4);
                c->ret.max_records = (uint64_t) sqlite3_column_int64(st, 5);
                c->ret.max_bytes = (uint64_t) sqlite3_column_int64(st, 6);
                c->next = s->colls;
                s->colls = c;
        }
        return rc == SQLITE_DONE ? 0 : store_sqlite_errno(s->wdb, rc);
}

/* Find or create (inside the open transaction) the collection `name`. */
static int coll_get(osm_store *s, const char *name, bool create, store_coll **out) {
        for (store_coll *c = s->colls; c; c = c->next)
                if (strcmp(c->name, name) == 0) {
                        *out = c;
                        return 0;
                }
        if (!create)
                return -ENOENT;
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(s->wdb, "INSERT INTO collections(name, created) VALUES(?1, ?2)",
                                    -1, &st, NULL);
        if (rc != SQLITE_OK)
                return store_sqlite_errno(s->wdb, rc);
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, osm_now_real_us());
        rc = sqlite3_step(st);
        if (rc != SQLITE_DONE)
                return store_sqlite_errno(s->wdb, rc);
        size_t n = strlen(name);
        store_coll *c = calloc(1, sizeof(*c) + n + 1);
        if (!c)
                return -ENOMEM;
        c->id = sqlite3_last_insert_rowid(s->wdb);
        memcpy(c->name, name, n + 1);
        c->next = s->colls;
        s->colls = c;
        *out = c;
        return 0;
}

static int colls_flush(osm_store *s) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(s->wdb,
                "UPDATE collections SET records=?2, bytes=?3, max_age=?4, max_records=?5, max_bytes=?6 "
                "WHERE id=?1", -1, &st, NULL);
        if (rc != SQLITE_OK)
                return store_sqlite_errno(s->wdb, rc);
        for (store_coll *c = s->colls; c; c = c->next) {
                if (!c->dirty)
                        continue;
                sqlite3_reset(st);
                sqlite3_bind_int64(st, 1, c->id);
                sqlite3_bind_int64(st, 2, c->records);
                sqlite3_bind_int64(st, 3, c->bytes);
                sqlite3_bind_int64(st, 4, (int64_t) c->ret.max_age_us);
                sqlite3_bind_int64(st, 5, (int64_t) c->ret.max_records);
                sqlite3_bind_int64(st, 6, (int64_t) c->ret.max_bytes);
                rc = sqlite3_step(st);
                if (rc != SQLITE_DONE)
                        return store_sqlite_errno(s->wdb, rc);
        }
        return 0;
}

static void colls_clean(osm_store *s) {
        for (store_coll *c = s->colls; c; c = c->next)
                c->dirty = false;
}

/* Prepared statements of the writer, made once. */
typedef struct writer_stmts {
        sqlite3_stmt *insert_local;
        sqlite3_stmt *insert_remote;
        sqlite3_stmt *exists_seq;
} writer_stmts;

static int exec_put(osm_store *s, writer_stmts *w, store_op *op, uint64_t *used) {
        store_coll *c;
        int r;

        uint64_t budget = atomic_load(&s->db_budget);
        /* Rows cost about their body plus ~48 bytes of row and index overhead; the
         * estimate runs low (pages are not full), so near the budget the real count of
         * used pages (inside this transaction) decides, row by row. The page cap behind it
         * then never cuts a transaction short, which would fail unrelated writes. */
        uint64_t cost = op->body_len + strlen(op->writer) + 48;
        if (budget > 0 && *used + 2 * cost + 65536 > budget)
                *used = db_used_bytes(s);
        if (budget > 0 && *used + cost > budget)
                return -EDQUOT;

        r = coll_get(s, op->coll, true, &c);
        if (r < 0)
                return r;

        sqlite3_stmt *st;
        if (op->rid) {
                size_t olen = strlen(s->origin);
                /* One of our own records coming back (e.g. through a remote): same row. */
                if (strncmp(op->rid, s->origin, olen) == 0 && op->rid[olen] == '-') {
                        int64_t seq;
                        if (osm_parse_i64(op->rid + olen + 1, &seq) < 0)
                                return -EINVAL;
                        sqlite3_reset(w->exists_seq);
                        sqlite3_bind_int64(w->exists_seq, 1, seq);
                        int rc = sqlite3_step(w->exists_seq);
                        if (rc == SQLITE_ROW) {
                                op->duplicate = true;
                                snprintf(op->id, sizeof(op->id), "%s", op->rid);
                                return 0;
                        }
                        if (rc != SQLITE_DONE)
                                return store_sqlite_errno(s->wdb, rc);
                }
                st = w->insert_remote;
        } else
                st = w->insert_local;

        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, c->id);
        sqlite3_bind_int64(st, 2, op->ts);
        sqlite3_bind_text(st, 3, op->writer, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, op->body, (int) op->body_len, SQLITE_STATIC);
        if (op->rid)
                sqlite3_bind_text(st, 5, op->rid, -1, SQLITE_STATIC);
        int rc = sqlite3_step(st);
        if (rc != SQLITE_DONE)
                return store_sqlite_errno(s->wdb, rc);
        if (op->rid) {
                snprintf(op->id, sizeof(op->id), "%s", op->rid);
                if (sqlite3_changes(s->wdb) == 0) {
                        op->duplicate = true;
                        return 0;
                }
        } else
                snprintf(op->id, sizeof(op->id), "%s-%" PRId64, s->origin, (int64_t) sqlite3_last_insert_rowid(s->wdb));
        c->records++;
        c->bytes += (int64_t) op->body_len;
        c->dirty = true;
        *used += cost;
        return 0;
}

static int exec_retention_set(osm_store *s, store_op *op) {
        store_coll *c;
        int r = coll_get(s, op->coll, true, &c);
        if (r < 0)
                return r;
        c->ret = op->ret;
        c->dirty = true;
        s->retention_due = true;
        return 0;
}

/* SQLITE_FULL means a full disk or the page cap behind the budget: which one? */
static int full_reason(osm_store *s, int r) {
        if (r != -ENOSPC || atomic_load(&s->db_budget) == 0)
                return r;
        int64_t pages = pragma_int(s->wdb, "PRAGMA page_count");
        int64_t max = pragma_int(s->wdb, "PRAGMA max_page_count");
        return pages >= 0 && max > 0 && pages + 8 >= max ? -EDQUOT : r;
}

/* Run one batch of ops in one transaction. Returns the transaction's result: if it is
 * negative, every op of the batch failed with it (nothing of the batch is stored). */
static int run_batch(osm_store *s, writer_stmts *w, store_op *batch) {
        int r = exec_simple(s->wdb, "BEGIN IMMEDIATE");
        if (r < 0)
                return r;

        uint64_t used = db_used_bytes(s);
        for (store_op *op = batch; op; op = op->next) {
                switch (op->kind) {
                case OP_PUT:
                        op->r = exec_put(s, w, op, &used);
                        break;
                case OP_RETENTION:
                        op->r = exec_retention_set(s, op);
                        break;
                case OP_OBJ_COMMIT:
                case OP_OBJ_REF:
                case OP_OBJ_GC:
                        op->r = store_obj_exec(s, op);
                        break;
                }
                /* An op's own problem (budget, not found) fails that op only; a database
                 * error (disk full, I/O) aborts the whole transaction. */
                if (op->r < 0 && op->r != -EDQUOT && op->r != -ENOENT && op->r != -EINVAL &&
                    op->r != -EEXIST) {
                        r = op->r;
                        goto fail;
                }
        }
        r = colls_flush(s);
        if (r < 0)
                goto fail;
        r = exec_simple(s->wdb, "COMMIT");
        if (r < 0)
                goto fail;
        colls_clean(s);
        for (store_op *op = batch; op; op = op->next)
                if (op->kind != OP_PUT && op->kind != OP_RETENTION)
                        store_obj_after_commit(s, op, op->r >= 0);
        return 0;

fail:
        r = full_reason(s, r);
        exec_simple(s->wdb, "ROLLBACK");
        /* the cache may hold changes that were rolled back: reload it */
        if (colls_load(s) < 0)
                colls_free(s);
        for (store_op *op = batch; op; op = op->next) {
                if (op->kind != OP_PUT && op->kind != OP_RETENTION)
                        store_obj_after_commit(s, op, false);
                op->r = r;
                op->duplicate = false;
        }
        return r;
}

/* Delete the oldest rows of c (by time) beyond its retention, at most `budget` rows, inside
 * the open transaction. Returns rows deleted or -errno. */
static int retention_one(osm_store *s, store_coll *c, int budget) {
        _cleanup_stmt_ sqlite3_stmt *sel = NULL, *del = NULL;
        int deleted = 0, rc;

        rc = sqlite3_prepare_v2(s->wdb,
                "SELECT seq, ts, length(CAST(body AS BLOB)) FROM records WHERE coll=?1 ORDER BY ts, seq LIMIT ?2",
                -1, &sel, NULL);
        if (rc == SQLITE_OK)
                rc = sqlite3_prepare_v2(s->wdb, "DELETE FROM records WHERE seq=?1", -1, &del, NULL);
        if (rc != SQLITE_OK)
                return store_sqlite_errno(s->wdb, rc);

        int64_t cutoff = c->ret.max_age_us > 0 ? osm_now_real_us() - (int64_t) c->ret.max_age_us : INT64_MIN;
        int64_t *seqs = calloc((size_t) budget, sizeof(int64_t));
        int64_t *lens = calloc((size_t) budget, sizeof(int64_t));
        int n = 0;
        if (!seqs || !lens) {
                free(seqs);
                free(lens);
                return -ENOMEM;
        }
        int64_t records = c->records, bytes = c->bytes;
        sqlite3_bind_int64(sel, 1, c->id);
        sqlite3_bind_int(sel, 2, budget);
        while (n < budget && (rc = sqlite3_step(sel)) == SQLITE_ROW) {
                int64_t ts = sqlite3_column_int64(sel, 1);
                bool over = ts < cutoff ||
                        (c->ret.max_records > 0 && (uint64_t) records > c->ret.max_records) ||
                        (c->ret.max_bytes > 0 && (uint64_t) bytes > c->ret.max_bytes);
                if (!over)
                        break;
                seqs[n] = sqlite3_column_int64(sel, 0);
                lens[n] = sqlite3_column_int64(sel, 2);
                records--;
                bytes -= lens[n];
                n++;
        }
        sqlite3_reset(sel);
        int r = 0;
        for (int i = 0; i < n; i++) {
                sqlite3_reset(del);
                sqlite3_bind_int64(del, 1, seqs[i]);
                rc = sqlite3_step(del);
                if (rc != SQLITE_DONE) {
                        r = store_sqlite_errno(s->wdb, rc);
                        break;
                }
                c->records--;
                c->bytes -= lens[i];
                c->dirty = true;
                deleted++;
        }
        free(seqs);
        free(lens);
        return r < 0 ? r : deleted;
}

/* One bounded retention transaction over all collections with a policy. Sets
 * s->retention_due again if work is left, so writes get their turn in between. */
static void run_retention(osm_store *s) {
        int left = RETENTION_STEP, r;
        s->retention_due = false;
        bool any = false;
        for (store_coll *c = s->colls; c; c = c->next)
                if (c->ret.max_age_us || c->ret.max_records || c->ret.max_bytes)
                        any = true;
        if (!any)
                return;
        r = exec_simple(s->wdb, "BEGIN IMMEDIATE");
        if (r < 0)
                return;
        for (store_coll *c = s->colls; c && left > 0; c = c->next) {
                if (!(c->ret.max_age_us || c->ret.max_records || c->ret.max_bytes))
                        continue;
                r = retention_one(s, c, left);
                if (r < 0)
                        goto fail;
                left -= r;
        }
        r = colls_flush(s);
        if (r < 0)
                goto fail;
        r = exec_simple(s->wdb, "COMMIT");
        if (r < 0)
                goto fail;
        colls_clean(s);
        if (left == 0)
                s->retention_due = true;
        return;
fail:
        exec_simple(s->wdb, "ROLLBACK");
        if (colls_load(s) < 0)
                colls_free(s);
}

static void apply_budget(osm_store *s, uint64_t *applied) {
        uint64_t budget = atomic_load(&s->db_budget);
        if (budget == *applied)
                return;
        char sql[96];
        /* The hard cap behind the per-record check: SQLite refuses to grow the file past
         * it (SQLITE_FULL), whatever the estimate said. 0 restores SQLite's maximum. */
        uint64_t pages = budget ? budget / s->page_size + BUDGET_SLACK_PAGES +
                                  2 * atomic_load(&s->max_record_size) / s->page_size
                                : 4294967294u;
        snprintf(sql, sizeof(sql), "PRAGMA max_page_count=%" PRIu64, pages);
        exec_simple(s->wdb, sql);
        *applied = budget;
}

static void *writer_main(void *arg) {
        osm_store *s = arg;
        writer_stmts w = {};
        uint64_t budget_applied = UINT64_MAX;

        sqlite3_prepare_v3(s->wdb, "INSERT INTO records(coll, ts, writer, body) VALUES(?1, ?2, ?3, ?4)",
                           -1, SQLITE_PREPARE_PERSISTENT, &w.insert_local, NULL);
        sqlite3_prepare_v3(s->wdb, "INSERT OR IGNORE INTO records(coll, ts, writer, body, rid) "
                           "VALUES(?1, ?2, ?3, ?4, ?5)", -1, SQLITE_PREPARE_PERSISTENT, &w.insert_remote, NULL);
        sqlite3_prepare_v3(s->wdb, "SELECT 1 FROM records WHERE seq=?1", -1, SQLITE_PREPARE_PERSISTENT,
                           &w.exists_seq, NULL);

        for (;;) {
                store_op *batch = NULL, **tail = &batch;
                size_t n = 0, bytes = 0;

                pthread_mutex_lock(&s->lock);
                if (!s->q_head && !s->stop && !s->retention_due) {
                        struct timespec ts;
                        clock_gettime(CLOCK_REALTIME, &ts);
                        ts.tv_sec += RETENTION_TICK_S;
                        if (pthread_cond_timedwait(&s->cond, &s->lock, &ts) == ETIMEDOUT)
                                s->retention_due = true;
                }
                uint64_t delay = atomic_load(&s->commit_delay_us);
                if (s->q_head && delay > 0 && s->q_len < 64 && !s->stop) {
                        /* let a small batch grow a little: more writes per sync */
                        struct timespec ts;
                        clock_gettime(CLOCK_REALTIME, &ts);
                        uint64_t ns = (uint64_t) ts.tv_nsec + delay * 1000;
                        ts.tv_sec += (time_t) (ns / 1000000000u);
                        ts.tv_nsec = (long) (ns % 1000000000u);
                        pthread_cond_timedwait(&s->cond, &s->lock, &ts);
                }
                while (s->q_head && n < BATCH_MAX_OPS && bytes < BATCH_MAX_BYTES) {
                        store_op *op = s->q_head;
                        s->q_head = op->next;
                        if (!s->q_head)
                                s->q_tail = &s->q_head;
                        s->q_len--;
                        op->next = NULL;
                        *tail = op;
                        tail = &op->next;
                        n++;
                        bytes += op->body_len;
                }
                bool stop = s->stop && !s->q_head;
                pthread_mutex_unlock(&s->lock);

                apply_budget(s, &budget_applied);
                if (batch) {
                        size_t n_put = 0;
                        run_batch(s, &w, batch);
                        for (store_op *op = batch; op; op = op->next)
                                if (op->kind == OP_PUT && op->r >= 0 && !op->duplicate)
                                        n_put++;
                        atomic_fetch_add(&s->committed_batches, 1);
                        atomic_fetch_add(&s->committed_records, n_put);
                        pthread_mutex_lock(&s->lock);
                        *s->done_tail = batch;
                        s->done_tail = tail;
                        pthread_mutex_unlock(&s->lock);
                        uv_async_send(&s->async);
                }
                if (s->retention_due && !stop)
                        run_retention(s);
                atomic_store(&s->used_bytes, db_used_bytes(s));
                if (stop)
                        break;
        }
        sqlite3_finalize(w.insert_local);
        sqlite3_finalize(w.insert_remote);
        sqlite3_finalize(w.exists_seq);
        return NULL;
}

/* ---- completions on the loop ---- */

static void watches_notify(osm_store *s, store_op *op) {
        osm_record rec = {
                .id = op->id, .collection = op->coll, .time_us = op->ts,
                .writer = op->writer, .body = op->body,
        };
        s->watch_iterating++;
        for (struct osm_store_watch *w = s->watches; w; w = w->next)
                if (!w->dead && fnmatch(w->pattern, op->coll, FNM_PATHNAME) == 0)
                        w->cb(&rec, w->userdata);
        s->watch_iterating--;
        if (s->watch_iterating == 0 && s->watch_dirty) {
                struct osm_store_watch **p = &s->watches;
                while (*p) {
                        if ((*p)->dead) {
                                struct osm_store_watch *d = *p;
                                *p = d->next;
                                free(d);
                        } else
                                p = &(*p)->next;
                }
                s->watch_dirty = false;
        }
}

static void op_complete(osm_store *s, store_op *op) {
        switch (op->kind) {
        case OP_PUT:
                if (op->r >= 0 && !op->duplicate && s->watches)
                        watches_notify(s, op);
                if (op->put_cb)
                        op->put_cb(op->r, op->r >= 0 ? op->id : NULL, op->ts, op->duplicate, op->userdata);
                break;
        case OP_RETENTION:
                if (op->done_cb)
                        op->done_cb(op->r, op->userdata);
                break;
        default:
                store_obj_done(s, op);
                break;
        }
        store_op_free(op);
}

static void drain_done(osm_store *s) {
        for (;;) {
                pthread_mutex_lock(&s->lock);
                store_op *list = s->done_head;
                s->done_head = NULL;
                s->done_tail = &s->done_head;
                pthread_mutex_unlock(&s->lock);
                if (!list)
                        return;
                while (list) {
                        store_op *op = list;
                        list = op->next;
                        op_complete(s, op);
                }
        }
}

static void on_async(uv_async_t *a) {
        drain_done(a->data);
}

/* ---- open and close ---- */

static int ensure_origin(osm_store *s, const char *space_id) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(s->wdb, "SELECT value FROM meta WHERE key='origin'", -1, &st, NULL);
        if (rc != SQLITE_OK)
                return store_sqlite_errno(s->wdb, rc);
        if (sqlite3_step(st) == SQLITE_ROW) {
                snprintf(s->origin, sizeof(s->origin), "%s", (const char *) sqlite3_column_text(st, 0));
                return 0;
        }
        /* The origin prefix is fixed when the database is made: ids already handed out keep
         * their meaning even if the space's key is later replaced. */
        snprintf(s->origin, sizeof(s->origin), "%.16s", space_id && *space_id ? space_id : "0000000000000000");
        sqlite3_finalize(st);
        st = NULL;
        rc = sqlite3_prepare_v2(s->wdb, "INSERT INTO meta(key, value) VALUES('origin', ?1)", -1, &st, NULL);
        if (rc != SQLITE_OK)
                return store_sqlite_errno(s->wdb, rc);
        sqlite3_bind_text(st, 1, s->origin, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        return rc == SQLITE_DONE ? 0 : store_sqlite_errno(s->wdb, rc);
}

int store_fsync_dir(const char *path) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        return fsync(fd) < 0 ? -errno : 0;
}

void osm_store_set_options(osm_store *s, const osm_store_options *o) {
        atomic_store(&s->db_budget, o->db_budget);
        atomic_store(&s->max_record_size, o->max_record_size ? o->max_record_size : 1u << 20);
        atomic_store(&s->max_object_size, o->max_object_size);
        atomic_store(&s->min_free, o->min_free);
        atomic_store(&s->commit_delay_us, OSM_MIN(o->commit_delay_us, (uint64_t) 1000000));
        atomic_store(&s->encrypt_objects, o->encrypt_objects);
        pthread_mutex_lock(&s->lock);
        pthread_cond_signal(&s->cond);
        pthread_mutex_unlock(&s->lock);
}

static void store_free(osm_store *s) {
        if (!s)
                return;
        colls_free(s);
        store_obj_fini(s);
        for (size_t i = 0; i < s->n_pool; i++)
                sqlite3_close(s->pool[i]);
        sqlite3_close(s->rdb);
        sqlite3_close(s->wdb);
        while (s->watches) {
                struct osm_store_watch *w = s->watches;
                s->watches = w->next;
                free(w);
        }
        pthread_mutex_destroy(&s->lock);
        pthread_cond_destroy(&s->cond);
        pthread_mutex_destroy(&s->pool_lock);
        free(s->state_dir);
        free(s->db_path);
        free(s->obj_dir);
        free(s->tmp_dir);
        free(s);
}

static void on_async_closed(uv_handle_t *h);

int osm_store_open(uv_loop_t *loop, const osm_store_options *o, osm_store **out, const char **why) {
        const char *dummy;
        if (!why)
                why = &dummy;
        *why = NULL;
        if (!o->state_dir)
                return -EINVAL;

        osm_store *s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->loop = loop;
        pthread_mutex_init(&s->lock, NULL);
        pthread_cond_init(&s->cond, NULL);
        pthread_mutex_init(&s->pool_lock, NULL);
        s->q_tail = &s->q_head;
        s->done_tail = &s->done_head;
        osm_store_set_options(s, o);

        int r = -ENOMEM;
        if (!(s->state_dir = strdup(o->state_dir)) ||
            asprintf(&s->db_path, "%s/store.db", o->state_dir) < 0 ||
            asprintf(&s->obj_dir, "%s/objects", o->state_dir) < 0 ||
            asprintf(&s->tmp_dir, "%s/objects/tmp", o->state_dir) < 0) {
                s->db_path = s->obj_dir = s->tmp_dir = NULL;
                *why = "out of memory";
                goto fail;
        }
        r = osm_mkdir_p(o->state_dir, 0700);
        if (r < 0) {
                *why = "cannot create the state directory";
                goto fail;
        }
        bool existed = access(s->db_path, F_OK) == 0;
        r = store_db_open(s->db_path, true, &s->wdb);
        if (r < 0) {
                *why = "cannot open the database";
                goto fail;
        }
        r = exec_simple(s->wdb, schema_sql);
        if (r < 0) {
                *why = "cannot create the database schema";
                goto fail;
        }
        if (!existed)
                store_fsync_dir(o->state_dir);   /* the new database file's name is durable too */
        s->page_size = (uint32_t) pragma_int(s->wdb, "PRAGMA page_size");
        if (s->page_size == 0 || s->page_size > 65536)
                s->page_size = 4096;
        r = ensure_origin(s, o->space_id);
        if (r < 0) {
                *why = "cannot read the database's origin";
                goto fail;
        }
        r = colls_load(s);
        if (r < 0) {
                *why = "cannot read the collections";
                goto fail;
        }
        atomic_store(&s->used_bytes, db_used_bytes(s));
        r = store_db_open(s->db_path, false, &s->rdb);
        if (r < 0) {
                *why = "cannot open a database reader";
                goto fail;
        }
        r = store_obj_init(s, why);
        if (r < 0)
                goto fail;

        r = uv_async_init(loop, &s->async, on_async);
        if (r < 0) {
                *why = "cannot create the writer's wake-up handle";
                goto fail;
        }
        s->async.data = s;
        r = -pthread_create(&s->writer, NULL, writer_main, s);
        if (r < 0) {
                *why = "cannot start the writer thread";
                /* the handle is closed by the loop later; s is freed then */
                s->closing = true;
                uv_close((uv_handle_t *) &s->async, on_async_closed);
                return r;
        }
        s->writer_started = true;
        *out = s;
        return 0;
fail:
        store_free(s);
        return r;
}

static void maybe_free(osm_store *s) {
        if (s->closing && s->async_closed && s->n_works == 0)
                store_free(s);
}

static void on_async_closed(uv_handle_t *h) {
        osm_store *s = h->data;
        s->async_closed = true;
        maybe_free(s);
}

void store_work_done(osm_store *s) {
        s->n_works--;
        maybe_free(s);
}

void osm_store_close(osm_store *s) {
        if (!s)
                return;
        /* refuse new work first: callbacks run below must not queue ops nobody executes */
        s->closing = true;
        pthread_mutex_lock(&s->lock);
        s->stop = true;
        pthread_cond_signal(&s->cond);
        pthread_mutex_unlock(&s->lock);
        if (s->writer_started)
                pthread_join(s->writer, NULL);
        s->writer_started = false;
        drain_done(s);
        /* in-flight queries and transfers finish on their own and then free the store */
        uv_close((uv_handle_t *) &s->async, on_async_closed);
}

/* ---- puts ---- */

static bool writer_valid(const char *w) {
        size_t n = strnlen(w, OSM_STORE_MAX_WRITER + 1);
        if (n == 0 || n > OSM_STORE_MAX_WRITER)
                return false;
        for (size_t i = 0; i < n; i++)
                if ((unsigned char) w[i] < 0x20 || w[i] == 0x7f)
                        return false;
        return true;
}

int osm_store_check_put(osm_store *s, const osm_store_put_req *req, size_t *body_len, const char **why) {
        const char *dummy;
        if (!why)
                why = &dummy;
        if (!req->collection || !osm_name_valid(req->collection, OSM_STORE_MAX_NAME, true)) {
                *why = "invalid collection name: 1-128 bytes of [A-Za-z0-9._-] segments separated by '/'";
                return -EINVAL;
        }
        if (!req->writer || !writer_valid(req->writer)) {
                *why = "invalid writer";
                return -EINVAL;
        }
        if (req->id && !osm_store_id_valid(req->id)) {
                *why = "invalid record id: expected <16 hex digits>-<sequence>";
                return -EINVAL;
        }
        if (!req->body) {
                *why = "missing body";
                return -EINVAL;
        }
        if (req->time_us < 0 || req->time_us > INT64_C(253402300799999999)) {
                *why = "time out of range";
                return -ERANGE;
        }
        uint64_t max = atomic_load(&s->max_record_size);
        size_t n = *body_len;
        if (n == 0) {
                /* jansson can size the compact text without building it */
                n = json_dumpb(req->body, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY);
                if (n == 0) {
                        *why = "the body cannot be encoded as JSON";
                        return -EINVAL;
                }
        }
        if (n > max) {
                *why = "record too large";
                return -EMSGSIZE;
        }
        uint64_t budget = atomic_load(&s->db_budget);
        if (budget > 0 && atomic_load(&s->used_bytes) + n > budget) {
                *why = "database budget reached";
                return -EDQUOT;
        }
        *body_len = n;
        return 0;
}

/* Check req and build its op (not queued). */
static int put_op_new(osm_store *s, const osm_store_put_req *req, osm_store_put_cb cb, void *userdata,
                      const char **why, store_op **out) {
        if (s->closing) {
                *why = "the store is closing";
                return -ECANCELED;
        }
        /* encode once; the checks use its length */
        size_t body_len = 0;
        _cleanup_free_ char *text = req->body ? osm_vl_dump(req->body, &body_len) : NULL;
        if (text)
                body_len--;   /* osm_vl_dump counts the NUL */
        if (!text && req->body) {
                *why = "the body cannot be encoded as JSON";
                return -EINVAL;
        }
        int r = osm_store_check_put(s, req, &body_len, why);
        if (r < 0)
                return r;
        if (s->q_len > MAX_QUEUED_OPS) {   /* racy read is fine: a soft bound */
                *why = "too many writes queued";
                return -EBUSY;
        }
        size_t lc = strlen(req->collection) + 1, lw = strlen(req->writer) + 1;
        size_t li = req->id ? strlen(req->id) + 1 : 0;
        store_op *op = store_op_new(OP_PUT, lc + lw + li + body_len + 1);
        if (!op) {
                *why = "out of memory";
                return -ENOMEM;
        }
        char *p = op->buf;
        op->coll = memcpy(p, req->collection, lc);
        p += lc;
        op->writer = memcpy(p, req->writer, lw);
        p += lw;
        if (req->id) {
                op->rid = memcpy(p, req->id, li);
                p += li;
        }
        memcpy(p, text, body_len + 1);
        op->body = p;
        op->body_len = body_len;
        op->ts = req->time_us ? req->time_us : osm_now_real_us();
        op->put_cb = cb;
        op->userdata = userdata;
        *out = op;
        return 0;
}

int osm_store_put(osm_store *s, const osm_store_put_req *req, osm_store_put_cb cb, void *userdata,
                  const char **why) {
        const char *dummy;
        store_op *op;
        int r = put_op_new(s, req, cb, userdata, why ? why : &dummy, &op);
        if (r < 0)
                return r;
        store_enqueue(s, op);
        return 0;
}

size_t osm_store_put_many(osm_store *s, const osm_store_put_req *reqs, size_t n, osm_store_put_cb cb,
                          void *userdata, int *r, const char **why) {
        const char *dummy;
        store_op *head = NULL, **tail = &head;
        size_t i;
        *r = 0;
        for (i = 0; i < n; i++) {
                store_op *op;
                *r = put_op_new(s, &reqs[i], cb, userdata, why ? why : &dummy, &op);
                if (*r < 0)
                        break;
                *tail = op;
                tail = &op->next;
        }
        if (!head)
                return 0;
        /* one append, one wake-up: the writer never takes half of it */
        pthread_mutex_lock(&s->lock);
        *s->q_tail = head;
        s->q_tail = tail;
        s->q_len += i;
        pthread_cond_signal(&s->cond);
        pthread_mutex_unlock(&s->lock);
        return i;
}

int osm_store_set_retention(osm_store *s, const char *collection, const osm_store_retention *ret,
                            osm_store_done_cb cb, void *userdata) {
        if (s->closing)
                return -ECANCELED;
        if (!collection || !osm_name_valid(collection, OSM_STORE_MAX_NAME, true))
                return -EINVAL;
        if (ret->max_age_us > INT64_MAX || ret->max_records > INT64_MAX || ret->max_bytes > INT64_MAX)
                return -ERANGE;
        size_t n = strlen(collection) + 1;
        store_op *op = store_op_new(OP_RETENTION, n);
        if (!op)
                return -ENOMEM;
        op->coll = memcpy(op->buf, collection, n);
        op->ret = *ret;
        op->done_cb = cb;
        op->userdata = userdata;
        store_enqueue(s, op);
        return 0;
}

/* ---- queries ---- */

typedef struct query_work {
        uv_work_t req;
        osm_store *s;
        osm_store_query_req q;
        osm_store_query_cb cb;
        void *userdata;
        int64_t cur_ts, cur_seq;
        bool has_cursor;
        int r;
        json_t *records;
        char cursor[64];
        bool more;
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

static void query_run(uv_work_t *req) {
        query_work *w = req->data;
        osm_store *s = w->s;
        sqlite3 *db = store_pool_get(s);
        _cleanup_stmt_ sqlite3_stmt *cs = NULL, *st = NULL;
        int rc;

        if (!db) {
                w->r = -EIO;
                return;
        }
        rc = sqlite3_prepare_v2(db, "SELECT id FROM collections WHERE name=?1", -1, &cs, NULL);
        if (rc != SQLITE_OK) {
                w->r = store_sqlite_errno(db, rc);
                goto out;
        }
        sqlite3_bind_text(cs, 1, w->q.collection, -1, SQLITE_STATIC);
        rc = sqlite3_step(cs);
        if (rc != SQLITE_ROW) {
                w->r = rc == SQLITE_DONE ? -ENOENT : store_sqlite_errno(db, rc);
                goto out;
        }
        int64_t coll = sqlite3_column_int64(cs, 0);

        /* (coll, ts) is indexed and seq is the rowid, so the index is ordered by
         * (coll, ts, seq): the range and the keyset cursor are one index scan. */
        const char *sql = w->q.reverse
                ? "SELECT seq, ts, rid, writer, body FROM records WHERE coll=?1 AND ts>=?2 AND ts<?3 "
                  "AND (ts, seq) < (?4, ?5) ORDER BY ts DESC, seq DESC LIMIT ?6"
                : "SELECT seq, ts, rid, writer, body FROM records WHERE coll=?1 AND ts>=?2 AND ts<?3 "
                  "AND (ts, seq) > (?4, ?5) ORDER BY ts, seq LIMIT ?6";
        rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
        if (rc != SQLITE_OK) {
                w->r = store_sqlite_errno(db, rc);
                goto out;
        }
        int64_t cts = w->has_cursor ? w->cur_ts : (w->q.reverse ? INT64_MAX : INT64_MIN);
        int64_t cseq = w->has_cursor ? w->cur_seq : (w->q.reverse ? INT64_MAX : INT64_MIN);
        uint64_t limit = w->q.limit;
        sqlite3_bind_int64(st, 1, coll);
        sqlite3_bind_int64(st, 2, w->q.since_us);
        sqlite3_bind_int64(st, 3, w->q.until_us);
        sqlite3_bind_int64(st, 4, cts);
        sqlite3_bind_int64(st, 5, cseq);
        sqlite3_bind_int64(st, 6, (int64_t) limit + 1);   /* one more: is there a next page? */

        w->records = json_array();
        if (!w->records) {
                w->r = -ENOMEM;
                goto out;
        }
        size_t bytes = 0, n = 0;
        int64_t last_ts = 0, last_seq = 0;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                if (n >= limit || bytes >= OSM_STORE_PAGE_BYTES) {
                        w->more = true;
                        break;
                }
                json_t *rec = record_json(s->origin, st, w->q.collection, &bytes);
                if (!rec || json_array_append_new(w->records, rec) < 0) {
                        w->r = -ENOMEM;
                        goto out;
                }
                last_ts = sqlite3_column_int64(st, 1);
                last_seq = sqlite3_column_int64(st, 0);
                n++;
        }
        if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
                w->r = store_sqlite_errno(db, rc);
                goto out;
        }
        if (w->more)
                snprintf(w->cursor, sizeof(w->cursor), "%" PRId64 ".%" PRId64, last_ts, last_seq);
        w->r = 0;
out:
        sqlite3_finalize(st);
        st = NULL;
        sqlite3_finalize(cs);
        cs = NULL;
        store_pool_put(s, db);
}

static void query_after(uv_work_t *req, int status) {
        query_work *w = req->data;
        osm_store *s = w->s;
        if (status < 0 && w->r == 0)
                w->r = -ECANCELED;
        if (w->r < 0) {
                json_decref(w->records);
                w->cb(w->r, NULL, NULL, w->userdata);
        } else
                w->cb(0, w->records, w->more ? w->cursor : NULL, w->userdata);
        free(w);
        store_work_done(s);
}

int osm_store_query(osm_store *s, const osm_store_query_req *q, osm_store_query_cb cb, void *userdata) {
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
        w->userdata = userdata;
        w->req.data = w;
        int r = uv_queue_work(s->loop, &w->req, query_run, query_after);
        if (r < 0) {
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
                return store_sqlite_errno(s->rdb, rc);
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
                return store_sqlite_errno(s->rdb, rc);
        *out = steal_pointer(&arr);
        return 0;
}

void osm_store_stats(osm_store *s, json_t *obj) {
        pthread_mutex_lock(&s->lock);
        size_t queued = s->q_len;
        pthread_mutex_unlock(&s->lock);
        json_object_set_new(obj, "db_used", json_integer((json_int_t) atomic_load(&s->used_bytes)));
        json_object_set_new(obj, "db_budget", json_integer((json_int_t) atomic_load(&s->db_budget)));
        json_object_set_new(obj, "queued", json_integer((json_int_t) queued));
        json_object_set_new(obj, "commits", json_integer((json_int_t) atomic_load(&s->committed_batches)));
        json_object_set_new(obj, "records_written",
                            json_integer((json_int_t) atomic_load(&s->committed_records)));
}

/* ---- watches ---- */

osm_store_watch *osm_store_watch_add(osm_store *s, const char *pattern, osm_store_watch_cb cb, void *userdata) {
        size_t n = strnlen(pattern, OSM_STORE_MAX_NAME + 1);
        if (n == 0 || n > OSM_STORE_MAX_NAME || !cb) {
                errno = EINVAL;
                return NULL;
        }
        osm_store_watch *w = calloc(1, sizeof(*w) + n + 1);
        if (!w)
                return NULL;
        memcpy(w->pattern, pattern, n);
        w->store = s;
        w->cb = cb;
        w->userdata = userdata;
        w->next = s->watches;
        s->watches = w;
        return w;
}

void osm_store_watch_remove(osm_store_watch *w) {
        if (!w)
                return;
        osm_store *s = w->store;
        if (s->watch_iterating > 0) {
                w->dead = true;
                s->watch_dirty = true;
                return;
        }
        for (osm_store_watch **p = &s->watches; *p; p = &(*p)->next)
                if (*p == w) {
                        *p = w->next;
                        break;
                }
        free(w);
}
