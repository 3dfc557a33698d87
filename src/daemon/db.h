/* db.h: the one way the daemon opens an SQLite database (store, federation, workloads). */
#pragma once

#include <sqlite3.h>
#include <stdbool.h>

#include "osmose/error.h"
#include "osmose/util.h"

/* How long a statement waits for a lock another connection holds before it fails with
 * SQLITE_BUSY (-EBUSY). Every connection of the daemon waits the same: long enough to ride
 * out a checkpoint, a WAL recovery after a crash on a loaded machine, or an operator's
 * sqlite3 holding a lock for a moment; short enough that a connection used on the loop
 * (federation, workloads, the store's small reader) does not stall the daemon for long. */
#define OSM_DB_BUSY_TIMEOUT_MS 5000

OSM_DEFINE_CLEANUP(sqlite3_stmt *, sqlite3_finalize)
#define _cleanup_stmt_ _cleanup_(sqlite3_finalizep)

enum {
        OSM_DB_CREATE = 1 << 0,   /* create the file (0600, before SQLite would use the umask) */
};

/* Open path read-write for one thread at a time (SQLITE_OPEN_NOMUTEX), with extended
 * result codes and the busy timeout, then run pragmas (may be NULL). Returns 0 and *out,
 * or -errno with err saying what failed (nothing is left open). */
int osm_db_open(const char *path, unsigned flags, const char *pragmas, sqlite3 **out, osm_error *err);

/* Prepared statements kept for one connection, each keyed by its SQL, a string literal
 * (its address is the key): a statement run at every launch or every sync is parsed once. */
#define OSM_DB_STMTS 48
typedef struct osm_db_stmts {
        struct {
                const char *sql;
                sqlite3_stmt *st;
        } e[OSM_DB_STMTS];
} osm_db_stmts;

/* sql's statement on db, reset and without bindings; c keeps it (never finalize it: reset
 * it after use, _cleanup_reset_, so that it holds no transaction open). NULL if it cannot
 * be prepared (db's error says why), or if c is full (size it for every statement). */
sqlite3_stmt *osm_db_stmt(osm_db_stmts *c, sqlite3 *db, const char *sql);
/* Finalize them all, before their connection closes. */
void osm_db_stmts_clear(osm_db_stmts *c);

static inline void osm_db_resetp(sqlite3_stmt **st) {
        if (*st)
                sqlite3_reset(*st);
}
#define _cleanup_reset_ _cleanup_(osm_db_resetp)

/* An SQLite result code as a negative errno (0 for OK, ROW, DONE). SQLITE_FULL is
 * -ENOSPC, a constraint -EEXIST, BUSY/LOCKED -EBUSY, corruption -EUCLEAN. */
int osm_db_errno(sqlite3 *db, int rc);
