/* store-internal.h: what the store's files (store.c, store-writer.c, store-put.c, store-retention.c,
 * store-query.c, store-watch.c, objects.c) share. */
#pragma once

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>

#include "daemon/db.h"
#include "daemon/store/store.h"
#include "osmose/identity.h"
#include "osmose/util.h"


typedef enum store_op_kind {
        OP_PUT,
        OP_RETENTION,
        OP_ERASE,
        OP_OBJ_COMMIT,
        OP_OBJ_REF,
        OP_OBJ_GC,
} store_op_kind;

/* One unit of work for the writer thread. Ops are queued by the loop, executed by the
 * writer inside one transaction per batch, and handed back to the loop for their callback. */
typedef struct store_op {
        struct store_op *next;
        store_op_kind kind;
        int r;
        void *userdata;

        /* OP_PUT: strings live in buf (after the struct) */
        const char *coll;
        const char *writer;
        const char *body;
        size_t body_len;
        const char *rid;          /* given id (federation) or NULL */
        int64_t ts;
        bool duplicate;
        char id[OSM_STORE_MAX_ID];
        osm_store_put_cb put_cb;

        /* OP_RETENTION */
        osm_store_retention ret;
        bool create;              /* retention: make the collection if it does not exist */

        /* objects */
        char hash[OSM_HASH_HEX];
        char *tmp_path;           /* OP_OBJ_COMMIT: the synced temp file (owned) */
        bool tmp_spare;           /* …of content stored already: unlinked from the loop's pool */
        uint64_t size;
        bool enc;
        bool pin;
        bool created;
        int delta;
        bool unpin;
        char **unlink_after;      /* hashes whose files go once the transaction committed */
        size_t n_unlink;
        osm_store_object_cb obj_cb;
        osm_store_done_cb done_cb;

        char buf[];
} store_op;

typedef struct store_coll store_coll;

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

struct osm_store {
        uv_loop_t *loop;
        char *state_dir;
        char *db_path;
        char *obj_dir;
        char *tmp_dir;
        char origin[17];          /* id prefix of records written here */

        /* limits: written on the loop, read by the writer (atomics for a consistent read) */
        _Atomic uint64_t db_budget;
        _Atomic uint64_t max_record_size;
        _Atomic uint64_t max_object_size;
        _Atomic uint64_t min_free;
        _Atomic uint64_t commit_delay_us;
        _Atomic bool encrypt_objects;

        sqlite3 *rdb;             /* the loop's reader (small tables) */
        pthread_mutex_t pool_lock;
        sqlite3 *pool[4];         /* readers for the thread pool */
        size_t n_pool;

        /* writer thread and its queue */
        pthread_t writer;
        bool writer_started;
        sqlite3 *wdb;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        store_op *q_head, **q_tail;
        size_t q_len;
        bool stop;
        bool retention_due;
        bool erased;              /* the transaction erased records: checkpoint after it */
        store_op *done_head, **done_tail;
        uv_async_t async;
        store_coll *colls;        /* writer's cache of the collections table */
        uint32_t page_size;

        _Atomic uint64_t used_bytes;
        _Atomic uint64_t committed_batches;
        _Atomic uint64_t committed_records;

        struct osm_store_watch *watches;
        unsigned watch_iterating;
        bool watch_dirty;

        unsigned n_works;         /* uv_work requests in flight */
        unsigned n_transfers;     /* object transfers in flight */
        bool closing;
        bool async_closed;

        uint8_t *obj_key;         /* sodium_malloc'd, or NULL while no key is loaded */
};

/* Queue an op for the writer (takes it). */
void store_enqueue(osm_store *s, store_op *op);
store_op *store_op_new(store_op_kind kind, size_t extra);
void store_op_free(store_op *op);

/* Open a connection with the store's settings (the writer's creates the file). */
int store_db_open(const char *path, bool writer, sqlite3 **out);
/* Borrow/return a pooled reader connection (thread pool side). */
sqlite3 *store_pool_get(osm_store *s);
sqlite3 *store_pool_take_free(osm_store *s);
void store_pool_put(osm_store *s, sqlite3 *db);
/* fsync a directory (after a rename or create in it). Returns 0 or -errno. */
int store_fsync_dir(const char *path);

/* store-writer.c: the writer thread and what it shares with opening the store */
void *store_writer_main(void *arg);
/* sqlite3_exec without rows: 0 or -errno. */
int store_exec(sqlite3 *db, const char *sql);
/* The integer a one-row statement (a PRAGMA) answers, or -1. */
int64_t store_pragma_int(sqlite3 *db, const char *sql);
/* Bytes of database pages holding data (free pages are reused before the file grows). */
uint64_t store_db_used_bytes(osm_store *s);
/* The writer's cache of the collections table: (re)load, find or create (inside the open
 * transaction), write back what changed, forget the changes once committed, free. */
int store_colls_load(osm_store *s);
int store_coll_get(osm_store *s, const char *name, bool create, store_coll **out);
int store_colls_flush(osm_store *s);
void store_colls_clean(osm_store *s);
void store_colls_free(osm_store *s);

/* store-retention.c, run by the writer */
/* OP_RETENTION: set a collection's policy (inside the batch's transaction). */
int store_retention_exec(osm_store *s, store_op *op);
/* One bounded retention transaction; sets s->retention_due again if work is left. */
void store_run_retention(osm_store *s);
bool store_has_retention(const osm_store *s);   /* a collection has a policy (writer thread) */

/* store-erase.c, run by the writer */
int store_erase_exec(osm_store *s, store_op *op);
void store_erase_after_commit(osm_store *s);

/* store-watch.c, on the loop */
/* Call the watches matching op's collection (a committed put). */
void store_watches_notify(osm_store *s, store_op *op);
void store_watches_free(osm_store *s);

/* objects.c, run by the writer inside its transaction */
int store_obj_exec(osm_store *s, store_op *op);
void store_obj_after_commit(osm_store *s, store_op *op, bool committed);
int store_obj_init(osm_store *s, osm_error *err);
void store_obj_fini(osm_store *s);
void store_obj_done(osm_store *s, store_op *op);
void store_work_done(osm_store *s);
