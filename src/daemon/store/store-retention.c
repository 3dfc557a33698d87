/* store-retention.c: retention policies: setting them, and the writer's bounded deletions. */
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

#define RETENTION_STEP    2000          /* rows deleted per retention transaction at most */

int store_retention_exec(osm_store *s, store_op *op) {
        store_coll *c;
        int r = store_coll_get(s, op->coll, op->create, &c);
        if (r < 0)
                return r;
        c->ret = op->ret;
        c->dirty = true;
        s->retention_due = true;
        return 0;
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
                return osm_db_errno(s->wdb, rc);

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
                        r = osm_db_errno(s->wdb, rc);
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

bool store_has_retention(const osm_store *s) {
        for (const store_coll *c = s->colls; c; c = c->next)
                if (c->ret.max_age_us || c->ret.max_records || c->ret.max_bytes)
                        return true;
        return false;
}

/* One bounded retention transaction over all collections with a policy. Sets
 * s->retention_due again if work is left, so writes get their turn in between. */
void store_run_retention(osm_store *s) {
        int left = RETENTION_STEP, r;
        s->retention_due = false;
        if (!store_has_retention(s))
                return;
        r = store_exec(s->wdb, "BEGIN IMMEDIATE");
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
        r = store_colls_flush(s);
        if (r < 0)
                goto fail;
        r = store_exec(s->wdb, "COMMIT");
        if (r < 0)
                goto fail;
        store_colls_clean(s);
        if (left == 0)
                s->retention_due = true;
        return;
fail:
        store_exec(s->wdb, "ROLLBACK");
        if (store_colls_load(s) < 0)
                store_colls_free(s);
}

int osm_store_set_retention(osm_store *s, const char *collection, const osm_store_retention *ret, bool create,
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
        op->create = create;
        op->done_cb = cb;
        op->userdata = userdata;
        store_enqueue(s, op);
        return 0;
}
