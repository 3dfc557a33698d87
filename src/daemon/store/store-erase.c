/* store-erase.c: erasure on request (a privacy request, say): delete a collection's records,
 * all or those before a time or of one writer, so that their bytes are gone from the files —
 * the writer runs with secure_delete (freed space is overwritten with zeros) and the WAL is
 * checkpointed and truncated after the erasing transaction. Each erasure is recorded in the
 * erasures table (what, how many, when; not the content). */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "daemon/store/store-internal.h"
#include "osmose/log.h"

/* OP_ERASE, inside the batch's transaction: -ENOENT for an unknown collection; else the
 * number of records deleted (op->size gets their bytes). */
int store_erase_exec(osm_store *s, store_op *op) {
        store_coll *c;
        int r = store_coll_get(s, op->coll, false, &c);
        if (r < 0)
                return r;
        _cleanup_stmt_ sqlite3_stmt *cnt = NULL, *del = NULL, *log = NULL;
        static const char where[] = " WHERE coll=?1 AND ts<?2 AND (?3 IS NULL OR writer=?3)";
        char sql[256];
        snprintf(sql, sizeof(sql), "SELECT count(*), coalesce(sum(length(CAST(body AS BLOB))), 0) FROM records%s", where);
        int rc = sqlite3_prepare_v2(s->wdb, sql, -1, &cnt, NULL);
        if (rc == SQLITE_OK) {
                snprintf(sql, sizeof(sql), "DELETE FROM records%s", where);
                rc = sqlite3_prepare_v2(s->wdb, sql, -1, &del, NULL);
        }
        if (rc == SQLITE_OK)
                rc = sqlite3_prepare_v2(s->wdb, "INSERT INTO erasures(time, collection, until, writer, records, bytes)"
                                        " VALUES(?1, ?2, ?3, ?4, ?5, ?6)", -1, &log, NULL);
        if (rc != SQLITE_OK)
                return osm_db_errno(s->wdb, rc);
        sqlite3_stmt *both[] = { cnt, del };
        for (size_t k = 0; k < 2; k++) {
                sqlite3_bind_int64(both[k], 1, c->id);
                sqlite3_bind_int64(both[k], 2, op->ts);
                if (op->writer)
                        sqlite3_bind_text(both[k], 3, op->writer, -1, SQLITE_STATIC);
        }
        if ((rc = sqlite3_step(cnt)) != SQLITE_ROW)
                return osm_db_errno(s->wdb, rc);
        int64_t n = sqlite3_column_int64(cnt, 0), bytes = sqlite3_column_int64(cnt, 1);
        if ((rc = sqlite3_step(del)) != SQLITE_DONE)
                return osm_db_errno(s->wdb, rc);
        sqlite3_bind_int64(log, 1, osm_now_real_us());
        sqlite3_bind_text(log, 2, op->coll, -1, SQLITE_STATIC);
        if (op->ts != INT64_MAX)
                sqlite3_bind_int64(log, 3, op->ts);
        if (op->writer)
                sqlite3_bind_text(log, 4, op->writer, -1, SQLITE_STATIC);
        sqlite3_bind_int64(log, 5, n);
        sqlite3_bind_int64(log, 6, bytes);
        if ((rc = sqlite3_step(log)) != SQLITE_DONE)
                return osm_db_errno(s->wdb, rc);
        c->records -= n;
        c->bytes -= bytes;
        c->dirty = true;
        op->size = (uint64_t) bytes;
        s->erased = true;
        return n > INT32_MAX ? INT32_MAX : (int) n;
}

/* After an erasing transaction committed: copy the WAL into the database and truncate it,
 * so that no old page image with erased content stays in the WAL file. Readers may hold it
 * back for a moment: try a few times. */
void store_erase_after_commit(osm_store *s) {
        if (!s->erased)
                return;
        s->erased = false;
        for (int k = 0; k < 50; k++) {
                int busy = 0, log_frames = 0, done = 0;
                int rc = sqlite3_wal_checkpoint_v2(s->wdb, NULL, SQLITE_CHECKPOINT_TRUNCATE, &log_frames, &done);
                (void) busy;
                if (rc == SQLITE_OK)
                        return;
                struct timespec ts = { 0, 20 * 1000 * 1000 };
                nanosleep(&ts, NULL);
        }
        log_warning("store: the WAL could not be truncated after an erasure (readers kept it busy); "
                    "the next checkpoint will");
}

int osm_store_erase(osm_store *s, const char *collection, int64_t until_us, const char *writer,
                    osm_store_done_cb cb, void *userdata) {
        if (s->closing)
                return -ECANCELED;
        if (!collection || !osm_name_valid(collection, OSM_STORE_MAX_NAME, true))
                return -EINVAL;
        size_t n = strlen(collection) + 1, w = writer ? strlen(writer) + 1 : 0;
        if (w > 256)
                return -EINVAL;
        store_op *op = store_op_new(OP_ERASE, n + w);
        if (!op)
                return -ENOMEM;
        op->coll = memcpy(op->buf, collection, n);
        op->writer = writer ? memcpy(op->buf + n, writer, w) : NULL;
        op->ts = until_us;
        op->done_cb = cb;
        op->userdata = userdata;
        store_enqueue(s, op);
        return 0;
}
