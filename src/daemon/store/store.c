/* store.c: durable JSON records in SQLite (WAL): opening and closing the store, its connections,
 * the writer's queue and the completions handed back to the loop. */
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
        /* Erasures done on request (delete COLLECTION): what, how many, when. */
        "CREATE TABLE IF NOT EXISTS erasures("
        "  time INTEGER NOT NULL, collection TEXT NOT NULL, until INTEGER, writer TEXT,"
        "  records INTEGER NOT NULL, bytes INTEGER NOT NULL);"
        "CREATE TABLE IF NOT EXISTS objects("
        "  hash TEXT PRIMARY KEY,"
        "  size INTEGER NOT NULL,"
        "  enc INTEGER NOT NULL,"
        "  refs INTEGER NOT NULL DEFAULT 0,"
        "  pinned INTEGER NOT NULL DEFAULT 0,"
        "  created INTEGER NOT NULL) WITHOUT ROWID;";

int store_db_open(const char *path, bool writer, sqlite3 **out) {
        /* WAL + synchronous=FULL: every commit syncs the WAL, so an acknowledged write
         * survives a power cut; throughput comes from grouping many writes per commit. */
        const char *pragmas = writer
                ? "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=OFF; PRAGMA secure_delete=ON;"
                  "PRAGMA journal_size_limit=67108864; PRAGMA cache_size=-8192;"
                : "PRAGMA synchronous=FULL; PRAGMA query_only=1; PRAGMA cache_size=-2048;";
        return osm_db_open(path, writer ? OSM_DB_CREATE : 0, pragmas, out, NULL);
}

sqlite3 *store_pool_get(osm_store *s) {
        sqlite3 *db = store_pool_take_free(s);
        if (!db && store_db_open(s->db_path, false, &db) < 0)
                return NULL;
        return db;
}

/* A reader that is open and free in the pool, or NULL (none is opened: for the loop). */
sqlite3 *store_pool_take_free(osm_store *s) {
        sqlite3 *db = NULL;
        pthread_mutex_lock(&s->pool_lock);
        if (s->n_pool > 0)
                db = s->pool[--s->n_pool];
        pthread_mutex_unlock(&s->pool_lock);
        return db;
}

/* Close a pooled reader with the statements it keeps (store-query.c). */
static void store_db_close(sqlite3 *db) {
        for (sqlite3_stmt *p; db && (p = sqlite3_next_stmt(db, NULL));)
                sqlite3_finalize(p);
        sqlite3_close(db);
}

void store_pool_put(osm_store *s, sqlite3 *db) {
        pthread_mutex_lock(&s->pool_lock);
        if (s->n_pool < OSM_ARRAY_SIZE(s->pool)) {
                s->pool[s->n_pool++] = db;
                db = NULL;
        }
        pthread_mutex_unlock(&s->pool_lock);
        store_db_close(db);
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

/* ---- completions on the loop ---- */

static void op_complete(osm_store *s, store_op *op) {
        switch (op->kind) {
        case OP_PUT:
                if (op->r >= 0 && !op->duplicate && s->watches)
                        store_watches_notify(s, op);
                if (op->put_cb)
                        op->put_cb(op->r, op->r >= 0 ? op->id : NULL, op->ts, op->duplicate, op->userdata);
                break;
        case OP_RETENTION:
        case OP_ERASE:
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
                return osm_db_errno(s->wdb, rc);
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
                return osm_db_errno(s->wdb, rc);
        sqlite3_bind_text(st, 1, s->origin, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        return rc == SQLITE_DONE ? 0 : osm_db_errno(s->wdb, rc);
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
        store_colls_free(s);
        store_obj_fini(s);
        for (size_t i = 0; i < s->n_pool; i++)
                store_db_close(s->pool[i]);
        sqlite3_close(s->rdb);
        sqlite3_close(s->wdb);
        store_watches_free(s);
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

int osm_store_open(uv_loop_t *loop, const osm_store_options *o, osm_store **out, osm_error *err) {
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
                osm_error_set(err, r, 0, "out of memory");
                goto fail;
        }
        r = osm_mkdir_p(o->state_dir, 0700);
        if (r < 0) {
                osm_error_set(err, r, 0, "cannot create the state directory");
                goto fail;
        }
        bool existed = access(s->db_path, F_OK) == 0;
        r = store_db_open(s->db_path, true, &s->wdb);
        if (r < 0) {
                osm_error_set(err, r, 0, "cannot open the database");
                goto fail;
        }
        r = store_exec(s->wdb, schema_sql);
        if (r < 0) {
                osm_error_set(err, r, 0, "cannot create the database schema");
                goto fail;
        }
        if (!existed)
                store_fsync_dir(o->state_dir);   /* the new database file's name is durable too */
        s->page_size = (uint32_t) store_pragma_int(s->wdb, "PRAGMA page_size");
        if (s->page_size == 0 || s->page_size > 65536)
                s->page_size = 4096;
        r = ensure_origin(s, o->space_id);
        if (r < 0) {
                osm_error_set(err, r, 0, "cannot read the database's origin");
                goto fail;
        }
        r = store_colls_load(s);
        if (r < 0) {
                osm_error_set(err, r, 0, "cannot read the collections");
                goto fail;
        }
        atomic_store(&s->used_bytes, store_db_used_bytes(s));
        r = store_db_open(s->db_path, false, &s->rdb);
        if (r < 0) {
                osm_error_set(err, r, 0, "cannot open a database reader");
                goto fail;
        }
        r = store_obj_init(s, err);
        if (r < 0)
                goto fail;

        r = uv_async_init(loop, &s->async, on_async);
        if (r < 0) {
                osm_error_set(err, r, 0, "cannot create the writer's wake-up handle");
                goto fail;
        }
        s->async.data = s;
        r = -pthread_create(&s->writer, NULL, store_writer_main, s);
        if (r < 0) {
                osm_error_set(err, r, 0, "cannot start the writer thread");
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

uint64_t osm_store_db_used(osm_store *s) {
        return atomic_load(&s->used_bytes);
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
