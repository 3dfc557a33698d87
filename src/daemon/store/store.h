/* store.h: the local store's C API for the other subsystems: durable JSON records in
 * SQLite (WAL, group commit), a watch on new records, and content-addressed objects. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "osmose/error.h"
#include "osmose/identity.h"

typedef struct osm_store osm_store;

/* osm_error kinds of the store's -EINVAL: the collection's name, not the record, is wrong
 * (io.osmose.Store.InvalidName rather than InvalidRecord). */
enum {
        OSM_STORE_BAD_NAME = 1,
};

#define OSM_STORE_MAX_NAME      128      /* bytes in a collection name */
#define OSM_STORE_MAX_WRITER    128      /* bytes in a writer string */
#define OSM_STORE_MAX_ID        64       /* bytes in a record id */
#define OSM_STORE_PAGE_RECORDS  1000     /* records in one query page at most */
#define OSM_STORE_PAGE_BYTES    (768u * 1024u)   /* body bytes in one query page (fits a message) */

typedef struct osm_store_options {
        const char *state_dir;        /* the database is state_dir/store.db, objects in state_dir/objects */
        const char *space_id;         /* this space's id: the origin of records written here */
        uint64_t db_budget;           /* bytes of database pages in use; 0: no budget */
        uint64_t max_record_size;     /* bytes of a record's body (compact JSON) */
        uint64_t commit_delay_us;     /* wait up to this long to let a batch grow; 0: no wait */
        bool encrypt_objects;         /* new objects are encrypted at rest */
        uint64_t max_object_size;     /* bytes of one object; 0: no limit */
        uint64_t min_free;            /* bytes an object put must leave free on the state fs */
} osm_store_options;

/* Open (creating if needed) the database and object directory under o->state_dir and start
 * the writer thread. Returns 0 or -errno, with err (may be NULL) saying what failed. */
int osm_store_open(uv_loop_t *loop, const osm_store_options *o, osm_store **out, osm_error *err);
/* Apply new limits (budget, record size, commit delay, encryption of new objects). */
void osm_store_set_options(osm_store *s, const osm_store_options *o);
/* Finish queued writes, stop the writer thread, close everything. Pending callbacks run
 * (with -ECANCELED for what could not be done) before this returns. */
void osm_store_close(osm_store *s);

/* --- records --- */

/* A record as handed to watchers and query callbacks (all borrowed). */
typedef struct osm_record {
        const char *id;           /* "<origin prefix>-<sequence>" */
        const char *collection;
        int64_t time_us;          /* µs since the epoch */
        const char *writer;       /* "user:NAME", "workload:NAME", "peer:ID", "remote:SPACEID" */
        const char *body;         /* compact JSON text */
} osm_record;

/* The result of a put: 0, or -EINVAL (bad name/body), -EMSGSIZE (over max_record_size),
 * -EDQUOT (database budget reached), -ENOSPC (disk full), -EIO, -ECANCELED (store closing).
 * id/time_us are valid for the call only. duplicate: an idempotent put of a record that was
 * already there (same id): nothing was written, id names the existing record. */
typedef void (*osm_store_put_cb)(int r, const char *id, int64_t time_us, bool duplicate, void *userdata);

typedef struct osm_store_put_req {
        const char *collection;
        const char *writer;
        json_t *body;             /* borrowed; any JSON value */
        int64_t time_us;          /* 0: now */
        const char *id;           /* NULL for a new local record; else an origin's id (federation) */
} osm_store_put_req;

/* Queue a record for the next group commit; cb runs on the loop once the transaction that
 * holds it is durable (synchronous=FULL in WAL mode), or failed. Checks that can fail at
 * once (name, size, id, budget already exceeded) return -errno here, err (may be NULL)
 * says what, and cb never runs. */
int osm_store_put(osm_store *s, const osm_store_put_req *req, osm_store_put_cb cb, void *userdata,
                  osm_error *err);

/* Queue n records as osm_store_put does, all at once (a writer that wakes in between never
 * splits them across transactions); cb runs once per record, in order. Stops at the first
 * record that fails its checks: returns how many were queued (those before it), with
 * *r (-errno) and err saying why; *r is 0 when all were queued. */
size_t osm_store_put_many(osm_store *s, const osm_store_put_req *reqs, size_t n, osm_store_put_cb cb,
                          void *userdata, int *r, osm_error *err);

/* Check a put without queueing it (what osm_store_put checks first). *body_len is the
 * compact JSON size if known, else 0: it is then computed and stored there. */
int osm_store_check_put(osm_store *s, const osm_store_put_req *req, size_t *body_len, osm_error *err);

typedef struct osm_store_query_req {
        const char *collection;
        int64_t since_us;         /* inclusive; INT64_MIN: no bound */
        int64_t until_us;         /* exclusive; INT64_MAX: no bound */
        uint64_t limit;           /* records in this page (capped at OSM_STORE_PAGE_RECORDS); 0: the cap */
        bool reverse;             /* newest first */
        const char *cursor;       /* NULL, or the cursor of the previous page */
} osm_store_query_req;

/* Read one page of records on the thread pool. cb gets 0 and a JSON array of
 * {id, collection, time, writer, body} (owned by cb: decref it) and a cursor for the next
 * page (NULL if this was the last), or -ENOENT (no such collection), -EINVAL (bad cursor),
 * -EIO. Returns -errno if the request is invalid (cb then never runs). */
typedef void (*osm_store_query_cb)(int r, json_t *records, const char *cursor, void *userdata);
int osm_store_query(osm_store *s, const osm_store_query_req *q, osm_store_query_cb cb, void *userdata);
/* The same page as JSON text: params is the reply's parameters, {"records": the array,
 * "cursor": the cursor if there is one}, serialized (len bytes, not NUL-terminated,
 * borrowed for the callback), NULL when r < 0. The reply path of Store.Query and
 * Api.Query: stored bodies are spliced in, not parsed and re-encoded, and the reply is
 * written on the thread pool, not on the loop. */
typedef void (*osm_store_query_text_cb)(int r, const char *params, size_t len, void *userdata);
int osm_store_query_text(osm_store *s, const osm_store_query_req *q, osm_store_query_text_cb cb, void *userdata);

/* Watch committed records of collections matching pattern (fnmatch with FNM_PATHNAME:
 * "sensors/temp", "sensors/ *", "*"). cb runs on the loop once per record, in commit
 * order, after the record is durable. Returns a handle or NULL (ENOMEM/EINVAL). */
typedef struct osm_store_watch osm_store_watch;
typedef void (*osm_store_watch_cb)(const osm_record *rec, void *userdata);
osm_store_watch *osm_store_watch_add(osm_store *s, const char *pattern, osm_store_watch_cb cb, void *userdata);
/* Remove a watch; safe to call from within its own callback. */
void osm_store_watch_remove(osm_store_watch *w);

/* Collections with counts and retention: a JSON array of
 * {name, records, bytes, oldest, newest, max_age, max_records, max_bytes} (0: no limit).
 * Read on the loop from a small table. Returns 0 and *out (owned) or -errno. */
int osm_store_collections(osm_store *s, json_t **out);

typedef struct osm_store_retention {
        uint64_t max_age_us;      /* 0: no limit */
        uint64_t max_records;
        uint64_t max_bytes;
} osm_store_retention;

/* Set a collection's retention (creating the collection if create, else -ENOENT for one
 * that does not exist); applied incrementally by the writer thread in small
 * transactions. cb gets 0 or -errno. */
typedef void (*osm_store_done_cb)(int r, void *userdata);
int osm_store_set_retention(osm_store *s, const char *collection, const osm_store_retention *ret, bool create,
                            osm_store_done_cb cb, void *userdata);

/* Erase records of collection: those before until_us (INT64_MAX: all) written by writer
 * (NULL: anyone), so that their bytes are gone from the database and its WAL. cb gets the
 * number deleted or -errno (-ENOENT: no such collection). Recorded in the erasures table. */
int osm_store_erase(osm_store *s, const char *collection, int64_t until_us, const char *writer,
                    osm_store_done_cb cb, void *userdata);

/* Database figures for status: used bytes, budget, records queued. */
void osm_store_stats(osm_store *s, json_t *obj);
uint64_t osm_store_db_used(osm_store *s);

/* --- objects --- */

/* Is s 64 lowercase hex digits? */
bool osm_store_hash_valid(const char *s);

/* Read fd to its end on the thread pool (it is taken and closed), hashing (BLAKE2b-256)
 * and writing a temp file, synced and renamed into objects/ab/cdef… (once per content).
 * pin: mark the object pinned (kept until unpinned); else a reference is added.
 * cb: 0 and the hex hash, size and whether the content was new; or -ENOSPC, -EIO,
 * -ETIMEDOUT (the fd stalled), -ECANCELED. Returns -EBUSY if too many transfers run. */
typedef void (*osm_store_object_cb)(int r, const char *hash, uint64_t size, bool created, void *userdata);
int osm_store_object_put_fd(osm_store *s, int fd, bool pin, osm_store_object_cb cb, void *userdata);

/* Open an object for reading its plain content: *out_fd is a read-only fd of the file, or
 * (when encrypted at rest) the read end of a pipe fed by a thread that decrypts. Returns 0,
 * -EINVAL (not a hash), -ENOENT, -errno. */
int osm_store_object_open(osm_store *s, const char *hash, int *out_fd, uint64_t *out_size);

/* Objects: a JSON array of {hash, size, refs, pinned, encrypted, created}. */
int osm_store_objects(osm_store *s, json_t **out);

/* Add (delta > 0) or drop (delta < 0) references, or unpin (unpin = true, delta 0). An
 * object with no reference and no pin is deleted by the same transaction's follow-up.
 * cb gets 0 or -ENOENT. */
int osm_store_object_ref(osm_store *s, const char *hash, int delta, bool unpin,
                         osm_store_done_cb cb, void *userdata);

/* Is the object referenced by a record of one of collections (NULL-terminated): does
 * its hash appear in a record's body? On the thread pool; cb gets 1 (yes), 0 (no) or
 * -errno. Returns 0, -EINVAL (not a hash), -ECANCELED, -ENOMEM. */
int osm_store_object_referenced(osm_store *s, const char *hash, const char *const *collections,
                                osm_store_done_cb cb, void *userdata);

/* Collect garbage now: delete unreferenced, unpinned objects and stray files.
 * cb gets the number removed (>= 0) or -errno. */
int osm_store_object_gc(osm_store *s, osm_store_done_cb cb, void *userdata);
