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

/* An SQLite result code as a negative errno (0 for OK, ROW, DONE). SQLITE_FULL is
 * -ENOSPC, a constraint -EEXIST, BUSY/LOCKED -EBUSY, corruption -EUCLEAN. */
int osm_db_errno(sqlite3 *db, int rc);
