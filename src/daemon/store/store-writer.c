/* store-writer.c: the writer thread: group commit (one transaction per batch of queued ops),
 * the database budget, and its cache of the collections table. */
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
#define RETENTION_TICK_S  1             /* the writer looks at retention this often when idle */
#define BUDGET_SLACK_PAGES 64           /* headroom over the budget for bookkeeping writes */

/* ---- the writer thread ---- */

int store_exec(sqlite3 *db, const char *sql) {
        int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
        return rc == SQLITE_OK ? 0 : osm_db_errno(db, rc);
}

int64_t store_pragma_int(sqlite3 *db, const char *sql) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
                return -1;
        if (sqlite3_step(st) != SQLITE_ROW)
                return -1;
        return sqlite3_column_int64(st, 0);
}

/* Bytes of database pages holding data (free pages are reused before the file grows). */
uint64_t store_db_used_bytes(osm_store *s) {
        int64_t pages = store_pragma_int(s->wdb, "PRAGMA page_count");
        int64_t free_pages = store_pragma_int(s->wdb, "PRAGMA freelist_count");
        if (pages < 0 || free_pages < 0)
                return atomic_load(&s->used_bytes);
        return (uint64_t) (pages - free_pages) * s->page_size;
}

void store_colls_free(osm_store *s) {
        while (s->colls) {
                store_coll *c = s->colls;
                s->colls = c->next;
                free(c);
        }
}

int store_colls_load(osm_store *s) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        store_colls_free(s);
        int rc = sqlite3_prepare_v2(s->wdb,
                "SELECT id, name, records, bytes, max_age, max_records, max_bytes FROM collections",
                -1, &st, NULL);
        if (rc != SQLITE_OK)
                return osm_db_errno(s->wdb, rc);
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
        return rc == SQLITE_DONE ? 0 : osm_db_errno(s->wdb, rc);
}

/* Find or create (inside the open transaction) the collection `name`. */
int store_coll_get(osm_store *s, const char *name, bool create, store_coll **out) {
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
                return osm_db_errno(s->wdb, rc);
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, osm_now_real_us());
        rc = sqlite3_step(st);
        if (rc != SQLITE_DONE)
                return osm_db_errno(s->wdb, rc);
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

int store_colls_flush(osm_store *s) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(s->wdb,
                "UPDATE collections SET records=?2, bytes=?3, max_age=?4, max_records=?5, max_bytes=?6 "
                "WHERE id=?1", -1, &st, NULL);
        if (rc != SQLITE_OK)
                return osm_db_errno(s->wdb, rc);
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
                        return osm_db_errno(s->wdb, rc);
        }
        return 0;
}

void store_colls_clean(osm_store *s) {
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
                *used = store_db_used_bytes(s);
        if (budget > 0 && *used + cost > budget)
                return -EDQUOT;

        r = store_coll_get(s, op->coll, true, &c);
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
                                return osm_db_errno(s->wdb, rc);
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
                return osm_db_errno(s->wdb, rc);
        if (op->rid) {
                snprintf(op->id, sizeof(op->id), "%s", op->rid);
                if (sqlite3_changes(s->wdb) == 0) {
                        op->duplicate = true;
                        return 0;
                }
        } else {
                /* "ORIGIN-SEQ" by hand: snprintf costs more than the rest of this for each row */
                size_t olen = strlen(s->origin);
                char num[21];
                size_t nlen = osm_fmt_int(num, (long long) sqlite3_last_insert_rowid(s->wdb));
                memcpy(op->id, s->origin, olen);
                op->id[olen] = '-';
                memcpy(op->id + olen + 1, num, nlen);
                op->id[olen + 1 + nlen] = 0;
        }
        c->records++;
        c->bytes += (int64_t) op->body_len;
        c->dirty = true;
        *used += cost;
        return 0;
}


/* SQLITE_FULL means a full disk or the page cap behind the budget: which one? */
static int full_reason(osm_store *s, int r) {
        if (r != -ENOSPC || atomic_load(&s->db_budget) == 0)
                return r;
        int64_t pages = store_pragma_int(s->wdb, "PRAGMA page_count");
        int64_t max = store_pragma_int(s->wdb, "PRAGMA max_page_count");
        return pages >= 0 && max > 0 && pages + 8 >= max ? -EDQUOT : r;
}

/* Run one batch of ops in one transaction. Returns the transaction's result: if it is
 * negative, every op of the batch failed with it (nothing of the batch is stored). */
static int run_batch(osm_store *s, writer_stmts *w, store_op *batch) {
        int r = store_exec(s->wdb, "BEGIN IMMEDIATE");
        if (r < 0)
                return r;

        uint64_t used = store_db_used_bytes(s);
        for (store_op *op = batch; op; op = op->next) {
                switch (op->kind) {
                case OP_PUT:
                        op->r = exec_put(s, w, op, &used);
                        break;
                case OP_RETENTION:
                        op->r = store_retention_exec(s, op);
                        break;
                case OP_ERASE:
                        op->r = store_erase_exec(s, op);
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
        r = store_colls_flush(s);
        if (r < 0)
                goto fail;
        r = store_exec(s->wdb, "COMMIT");
        if (r < 0)
                goto fail;
        store_colls_clean(s);
        for (store_op *op = batch; op; op = op->next)
                if (op->kind >= OP_OBJ_COMMIT)
                        store_obj_after_commit(s, op, op->r >= 0);
        store_erase_after_commit(s);
        return 0;

fail:
        r = full_reason(s, r);
        store_exec(s->wdb, "ROLLBACK");
        /* the cache may hold changes that were rolled back: reload it */
        if (store_colls_load(s) < 0)
                store_colls_free(s);
        s->erased = false;
        for (store_op *op = batch; op; op = op->next) {
                if (op->kind >= OP_OBJ_COMMIT)
                        store_obj_after_commit(s, op, false);
                op->r = r;
                op->duplicate = false;
        }
        return r;
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
        store_exec(s->wdb, sql);
        *applied = budget;
}

void *store_writer_main(void *arg) {
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
                        /* Without a retention policy there is nothing to do until an op
                         * comes: an idle room's writer does not wake each second. */
                        if (store_has_retention(s)) {
                                struct timespec ts;
                                clock_gettime(CLOCK_REALTIME, &ts);
                                ts.tv_sec += RETENTION_TICK_S;
                                if (pthread_cond_timedwait(&s->cond, &s->lock, &ts) == ETIMEDOUT)
                                        s->retention_due = true;
                        } else {
                                pthread_cond_wait(&s->cond, &s->lock);
                        }
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
                        store_run_retention(s);
                atomic_store(&s->used_bytes, store_db_used_bytes(s));
                if (stop)
                        break;
        }
        sqlite3_finalize(w.insert_local);
        sqlite3_finalize(w.insert_remote);
        sqlite3_finalize(w.exists_seq);
        return NULL;
}
