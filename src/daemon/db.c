/* db.c: opening SQLite databases with the daemon's settings, and SQLite codes as errno. */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/db.h"

int osm_db_errno(sqlite3 *db, int rc) {
        switch (rc & 0xff) {
        case SQLITE_OK: case SQLITE_ROW: case SQLITE_DONE: return 0;
        case SQLITE_NOMEM: return -ENOMEM;
        case SQLITE_FULL:
                /* the disk is full (SQLite clears the errno then), or a page cap was hit:
                 * the store's writer tells them apart */
                return -ENOSPC;
        case SQLITE_BUSY: case SQLITE_LOCKED: return -EBUSY;
        case SQLITE_CONSTRAINT: return -EEXIST;
        case SQLITE_READONLY: case SQLITE_PERM: case SQLITE_AUTH: return -EACCES;
        case SQLITE_CORRUPT: case SQLITE_NOTADB: return -EUCLEAN;
        case SQLITE_CANTOPEN: return -ENOENT;
        case SQLITE_IOERR:
                return db && sqlite3_system_errno(db) == ENOSPC ? -ENOSPC : -EIO;
        default: return -EIO;
        }
}

int osm_db_open(const char *path, unsigned flags, const char *pragmas, sqlite3 **out, osm_error *err) {
        if (flags & OSM_DB_CREATE) {
                /* Create it 0600 before SQLite does (SQLite would use the umask, and makes
                 * its -wal and -shm files with the database's mode). */
                int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
                if (fd < 0)
                        return osm_error_set(err, -errno, 0, "cannot create %s: %m", path);
                (void) fchmod(fd, 0600);
                close(fd);
        }
        sqlite3 *db = NULL;
        int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
        if (rc != SQLITE_OK) {
                int r = osm_db_errno(db, rc);
                osm_error_set(err, r ? r : -EIO, 0, "cannot open %s: %s", path, db ? sqlite3_errmsg(db) : "out of memory");
                sqlite3_close(db);
                return r ? r : -EIO;
        }
        sqlite3_extended_result_codes(db, 1);
        sqlite3_busy_timeout(db, OSM_DB_BUSY_TIMEOUT_MS);
        if (pragmas && (rc = sqlite3_exec(db, pragmas, NULL, NULL, NULL)) != SQLITE_OK) {
                int r = osm_db_errno(db, rc);
                osm_error_set(err, r ? r : -EIO, 0, "cannot set up %s: %s", path, sqlite3_errmsg(db));
                sqlite3_close(db);
                return r ? r : -EIO;
        }
        *out = db;
        return 0;
}

sqlite3_stmt *osm_db_stmt(osm_db_stmts *c, sqlite3 *db, const char *sql) {
        size_t i;
        for (i = 0; i < OSM_DB_STMTS && c->e[i].sql; i++)
                if (c->e[i].sql == sql) {
                        sqlite3_reset(c->e[i].st);
                        sqlite3_clear_bindings(c->e[i].st);
                        return c->e[i].st;
                }
        sqlite3_stmt *st = NULL;
        if (i == OSM_DB_STMTS || sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK)
                return NULL;
        c->e[i].sql = sql;
        c->e[i].st = st;
        return st;
}

void osm_db_stmts_clear(osm_db_stmts *c) {
        for (size_t i = 0; i < OSM_DB_STMTS; i++)
                sqlite3_finalize(c->e[i].st);
        *c = (osm_db_stmts) { 0 };
}
