/* fed-db.c: federation's SQLite database: settings, remotes, shares, outbox and audit. */
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "daemon/db.h"
#include "fed-db.h"
#include "osmose/util.h"
#include "osmose/varlink.h"

struct fed_db {
        sqlite3 *db;
        bool in_tx;
        osm_db_stmts stmts;
};

static const char schema[] =
        "CREATE TABLE IF NOT EXISTS settings(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "CREATE TABLE IF NOT EXISTS remotes("
        "  name TEXT PRIMARY KEY, url TEXT NOT NULL, pubkey TEXT NOT NULL UNIQUE,"
        "  space_id TEXT NOT NULL UNIQUE, added_us INTEGER NOT NULL,"
        "  last_contact_us INTEGER NOT NULL DEFAULT 0, last_error TEXT,"
        "  sent INTEGER NOT NULL DEFAULT 0, received INTEGER NOT NULL DEFAULT 0,"
        "  dropped INTEGER NOT NULL DEFAULT 0);"
        "CREATE TABLE IF NOT EXISTS shares("
        "  collection TEXT NOT NULL, remote TEXT NOT NULL, since_us INTEGER NOT NULL,"
        "  high_water_us INTEGER NOT NULL, PRIMARY KEY(collection, remote));"
        /* Objects (and bundles, which are objects) the operator shared with a remote. */
        "CREATE TABLE IF NOT EXISTS object_shares("
        "  hash TEXT NOT NULL, remote TEXT NOT NULL, added_us INTEGER NOT NULL, PRIMARY KEY(hash, remote));"
        /* Channels (their lists, and the bundles they list) served to a remote. */
        "CREATE TABLE IF NOT EXISTS channel_shares("
        "  channel TEXT NOT NULL, remote TEXT NOT NULL, added_us INTEGER NOT NULL, PRIMARY KEY(channel, remote));"
        "CREATE TABLE IF NOT EXISTS outbox("
        "  seq INTEGER PRIMARY KEY AUTOINCREMENT, remote TEXT NOT NULL, collection TEXT NOT NULL,"
        "  record_id TEXT NOT NULL, time_us INTEGER NOT NULL, body TEXT NOT NULL,"
        "  UNIQUE(remote, record_id));"
        "CREATE INDEX IF NOT EXISTS outbox_remote ON outbox(remote, seq);"
        "CREATE TABLE IF NOT EXISTS audit("
        "  id INTEGER PRIMARY KEY AUTOINCREMENT, time_us INTEGER NOT NULL, remote TEXT, peer TEXT,"
        "  direction TEXT NOT NULL, kind TEXT NOT NULL, collection TEXT, object TEXT,"
        "  records INTEGER NOT NULL DEFAULT 0, bytes INTEGER NOT NULL DEFAULT 0,"
        "  status TEXT NOT NULL);"
        "CREATE INDEX IF NOT EXISTS audit_time ON audit(time_us);";

/* A prepared statement for sql (a string literal), reset and cleared, or NULL. */
static sqlite3_stmt *stmt(fed_db *db, const char *sql) {
        return osm_db_stmt(&db->stmts, db->db, sql);
}

static int begin(fed_db *db) {
        if (db->in_tx)
                return 0;
        if (sqlite3_exec(db->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
                return -EIO;
        db->in_tx = true;
        return 0;
}

int fed_db_commit(fed_db *db) {
        if (!db || !db->in_tx)
                return 0;
        db->in_tx = false;
        if (sqlite3_exec(db->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
                sqlite3_exec(db->db, "ROLLBACK", NULL, NULL, NULL);
                return -EIO;
        }
        return 0;
}

void fed_db_release_memory(fed_db *db) {
        if (db)
                sqlite3_db_release_memory(db->db);
}

static int step_done(sqlite3_stmt *st) {
        int r = sqlite3_step(st);
        int ret = (r == SQLITE_DONE || r == SQLITE_ROW) ? 0 : ((r & 0xff) == SQLITE_CONSTRAINT ? -EEXIST : -EIO);
        sqlite3_reset(st);
        return ret;
}

/* Step an UPDATE or DELETE of one row: -ENOENT if it changed nothing, else commit. */
static int step_changed_commit(fed_db *db, sqlite3_stmt *st) {
        int r = step_done(st);
        if (r < 0)
                return r;
        if (sqlite3_changes(db->db) == 0)
                return -ENOENT;
        return fed_db_commit(db);
}

int fed_db_open(const char *path, fed_db **out, osm_error *err) {
        fed_db *db = calloc(1, sizeof(*db));
        if (!db)
                return osm_error_set(err, -ENOMEM, 0, "out of memory");
        int r = osm_db_open(path, OSM_DB_CREATE, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", &db->db, err);
        if (r < 0) {
                free(db);
                return r;
        }
        int rc = sqlite3_exec(db->db, schema, NULL, NULL, NULL);
        if (rc != SQLITE_OK) {
                r = osm_db_errno(db->db, rc);
                osm_error_set(err, r, 0, "cannot set up the federation database: %s", sqlite3_errmsg(db->db));
                fed_db_close(db);
                return r;
        }
        *out = db;
        return 0;
}

fed_db *fed_db_close(fed_db *db) {
        if (!db)
                return NULL;
        fed_db_commit(db);
        osm_db_stmts_clear(&db->stmts);
        sqlite3_close(db->db);
        free(db);
        return NULL;
}

int fed_db_get_setting(fed_db *db, const char *key, char **out) {
        sqlite3_stmt *st = stmt(db, "SELECT value FROM settings WHERE key = ?");
        if (!st)
                return -EIO;
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        *out = NULL;
        if (sqlite3_step(st) == SQLITE_ROW) {
                *out = strdup((const char *) sqlite3_column_text(st, 0));
                if (!*out) {
                        sqlite3_reset(st);
                        return -ENOMEM;
                }
        }
        sqlite3_reset(st);
        return 0;
}

int fed_db_set_setting(fed_db *db, const char *key, const char *value) {
        sqlite3_stmt *st = stmt(db, "INSERT OR REPLACE INTO settings(key, value) VALUES(?, ?)");
        if (!st || begin(db) < 0)
                return -EIO;
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
        int r = step_done(st);
        return r < 0 ? r : fed_db_commit(db);
}

int fed_db_remote_add(fed_db *db, const char *name, const char *url, const char *pubkey,
                      const char *space_id, int64_t now_us) {
        sqlite3_stmt *st = stmt(db, "INSERT INTO remotes(name, url, pubkey, space_id, added_us) VALUES(?,?,?,?,?)");
        if (!st || begin(db) < 0)
                return -EIO;
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, url, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, pubkey, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, space_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 5, now_us);
        int r = step_done(st);
        return r < 0 ? r : fed_db_commit(db);
}

int fed_db_remote_set_url(fed_db *db, const char *name, const char *url) {
        sqlite3_stmt *st = stmt(db, "UPDATE remotes SET url = ? WHERE name = ?");
        if (!st || begin(db) < 0)
                return -EIO;
        sqlite3_bind_text(st, 1, url, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
        return step_changed_commit(db, st);
}

int fed_db_remote_rm(fed_db *db, const char *name) {
        sqlite3_stmt *st = stmt(db, "DELETE FROM remotes WHERE name = ?");
        if (!st || begin(db) < 0)
                return -EIO;
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        int r = step_done(st);
        if (r < 0)
                return r;
        if (sqlite3_changes(db->db) == 0)
                return -ENOENT;
        st = stmt(db, "DELETE FROM shares WHERE remote = ?");
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        step_done(st);
        st = stmt(db, "DELETE FROM object_shares WHERE remote = ?");
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        step_done(st);
        st = stmt(db, "DELETE FROM channel_shares WHERE remote = ?");
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        step_done(st);
        st = stmt(db, "DELETE FROM outbox WHERE remote = ?");
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        step_done(st);
        return fed_db_commit(db);
}

static json_t *col_json(sqlite3_stmt *st, int i) {
        switch (sqlite3_column_type(st, i)) {
        case SQLITE_INTEGER:
                return json_integer(sqlite3_column_int64(st, i));
        case SQLITE_TEXT:
                return json_stringn((const char *) sqlite3_column_text(st, i), (size_t) sqlite3_column_bytes(st, i));
        default:
                return json_null();
        }
}

/* Rows of st as an array of objects named by names[] (one per column). */
static int rows_json(sqlite3_stmt *st, const char *const *names, size_t n, json_t **out) {
        json_t *arr = json_array();
        if (!arr)
                return -ENOMEM;
        int r;
        while ((r = sqlite3_step(st)) == SQLITE_ROW) {
                json_t *o = json_object();
                for (size_t i = 0; i < n; i++)
                        json_object_set_new(o, names[i], col_json(st, (int) i));
                json_array_append_new(arr, o);
        }
        sqlite3_reset(st);
        if (r != SQLITE_DONE) {
                json_decref(arr);
                return -EIO;
        }
        *out = arr;
        return 0;
}

int fed_db_remotes(fed_db *db, json_t **out) {
        static const char *const names[] = { "name", "url", "key", "space_id", "added",
                                             "last_contact", "last_error", "sent", "received", "dropped" };
        sqlite3_stmt *st = stmt(db, "SELECT name, url, pubkey, space_id, added_us, last_contact_us, last_error,"
                                    " sent, received, dropped FROM remotes ORDER BY name");
        if (!st)
                return -EIO;
        return rows_json(st, names, OSM_ARRAY_SIZE(names), out);
}

int fed_db_remote_contact(fed_db *db, const char *name, int64_t now_us, const char *error) {
        sqlite3_stmt *st;
        if (error) {
                st = stmt(db, "UPDATE remotes SET last_error = ? WHERE name = ?");
                if (!st || begin(db) < 0)
                        return -EIO;
                sqlite3_bind_text(st, 1, error, -1, SQLITE_STATIC);
        } else {
                st = stmt(db, "UPDATE remotes SET last_contact_us = ?, last_error = NULL WHERE name = ?");
                if (!st || begin(db) < 0)
                        return -EIO;
                sqlite3_bind_int64(st, 1, now_us);
        }
        sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
        return step_done(st);
}

int fed_db_remote_count(fed_db *db, const char *name, uint64_t sent, uint64_t received,
                        uint64_t dropped) {
        sqlite3_stmt *st = stmt(db, "UPDATE remotes SET sent = sent + ?, received = received + ?,"
                                    " dropped = dropped + ? WHERE name = ?");
        if (!st || begin(db) < 0)
                return -EIO;
        sqlite3_bind_int64(st, 1, (int64_t) sent);
        sqlite3_bind_int64(st, 2, (int64_t) received);
        sqlite3_bind_int64(st, 3, (int64_t) dropped);
        sqlite3_bind_text(st, 4, name, -1, SQLITE_STATIC);
        return step_done(st);
}

int fed_db_share_add(fed_db *db, const char *collection, const char *remote, int64_t since_us) {
        sqlite3_stmt *st = stmt(db, "INSERT INTO shares(collection, remote, since_us, high_water_us) VALUES(?,?,?,?)");
        if (!st || begin(db) < 0)
                return -EIO;
        sqlite3_bind_text(st, 1, collection, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, remote, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, since_us);
        sqlite3_bind_int64(st, 4, since_us);
        int r = step_done(st);
        return r < 0 ? r : fed_db_commit(db);
}

int fed_db_share_rm(fed_db *db, const char *collection, const char *remote) {
        sqlite3_stmt *st = stmt(db, "DELETE FROM shares WHERE collection = ? AND remote = ?");
        if (!st || begin(db) < 0)
                return -EIO;
        sqlite3_bind_text(st, 1, collection, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, remote, -1, SQLITE_STATIC);
        int r = step_done(st);
        if (r < 0)
                return r;
        if (sqlite3_changes(db->db) == 0)
                return -ENOENT;
        r = fed_db_outbox_clear(db, remote, collection);
        return r < 0 ? r : fed_db_commit(db);
}

int fed_db_shares(fed_db *db, json_t **out) {
        static const char *const names[] = { "collection", "remote", "since", "high_water" };
        sqlite3_stmt *st = stmt(db, "SELECT collection, remote, since_us, high_water_us FROM shares ORDER BY remote, collection");
        if (!st)
                return -EIO;
        return rows_json(st, names, OSM_ARRAY_SIZE(names), out);
}

int fed_db_object_share_add(fed_db *db, const char *hash, const char *remote, int64_t now_us) {
        sqlite3_stmt *st = stmt(db, "INSERT INTO object_shares(hash, remote, added_us) VALUES(?,?,?)");
        if (!st || begin(db) < 0)
                return -EIO;
        sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, remote, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, now_us);
        int r = step_done(st);
        return r < 0 ? r : fed_db_commit(db);
}

int fed_db_object_share_rm(fed_db *db, const char *hash, const char *remote) {
        sqlite3_stmt *st = stmt(db, "DELETE FROM object_shares WHERE hash = ? AND remote = ?");
        if (!st || begin(db) < 0)
                return -EIO;
        sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, remote, -1, SQLITE_STATIC);
        return step_changed_commit(db, st);
}

bool fed_db_object_shared(fed_db *db, const char *hash, const char *remote) {
        sqlite3_stmt *st = stmt(db, "SELECT 1 FROM object_shares WHERE hash = ? AND remote = ?");
        if (!st)
                return false;
        sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, remote, -1, SQLITE_STATIC);
        bool yes = sqlite3_step(st) == SQLITE_ROW;
        sqlite3_reset(st);
        return yes;
}

int fed_db_channel_share_add(fed_db *db, const char *channel, const char *remote, int64_t now_us) {
        sqlite3_stmt *st = stmt(db, "INSERT INTO channel_shares(channel, remote, added_us) VALUES(?,?,?)");
        if (!st || begin(db) < 0)
                return -EIO;
        sqlite3_bind_text(st, 1, channel, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, remote, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, now_us);
        int r = step_done(st);
        return r < 0 ? r : fed_db_commit(db);
}

int fed_db_channel_share_rm(fed_db *db, const char *channel, const char *remote) {
        sqlite3_stmt *st = stmt(db, "DELETE FROM channel_shares WHERE channel = ? AND remote = ?");
        if (!st || begin(db) < 0)
                return -EIO;
        sqlite3_bind_text(st, 1, channel, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, remote, -1, SQLITE_STATIC);
        return step_changed_commit(db, st);
}

bool fed_db_channel_shared(fed_db *db, const char *channel, const char *remote) {
        sqlite3_stmt *st = stmt(db, "SELECT 1 FROM channel_shares WHERE channel = ? AND remote = ?");
        if (!st)
                return false;
        sqlite3_bind_text(st, 1, channel, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, remote, -1, SQLITE_STATIC);
        bool yes = sqlite3_step(st) == SQLITE_ROW;
        sqlite3_reset(st);
        return yes;
}

int fed_db_shared_collections(fed_db *db, const char *remote, char ***out) {
        sqlite3_stmt *st = stmt(db, "SELECT collection FROM shares WHERE remote = ? ORDER BY collection");
        if (!st)
                return -EIO;
        sqlite3_bind_text(st, 1, remote, -1, SQLITE_STATIC);
        size_t n = 0, cap = 8;
        char **v = calloc(cap + 1, sizeof(char *));
        int rc;
        while (v && (rc = sqlite3_step(st)) == SQLITE_ROW) {
                if (n == cap) {
                        char **nv = realloc(v, (cap * 2 + 1) * sizeof(char *));
                        if (!nv)
                                break;
                        v = nv;
                        cap *= 2;
                }
                if (!(v[n] = strdup((const char *) sqlite3_column_text(st, 0))))
                        break;
                v[++n] = NULL;
        }
        sqlite3_reset(st);
        if (!v)
                return -ENOMEM;
        *out = v;
        return 0;
}

int fed_db_share_high_water(fed_db *db, const char *collection, const char *remote, int64_t t) {
        sqlite3_stmt *st = stmt(db, "UPDATE shares SET high_water_us = MAX(high_water_us, ?) WHERE collection = ? AND remote = ?");
        if (!st || begin(db) < 0)
                return -EIO;
        sqlite3_bind_int64(st, 1, t);
        sqlite3_bind_text(st, 2, collection, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, remote, -1, SQLITE_STATIC);
        return step_done(st);
}

uint64_t fed_db_outbox_count(fed_db *db, const char *remote) {
        sqlite3_stmt *st = stmt(db, "SELECT COUNT(*) FROM outbox WHERE remote = ?");
        if (!st)
                return 0;
        sqlite3_bind_text(st, 1, remote, -1, SQLITE_STATIC);
        uint64_t n = 0;
        if (sqlite3_step(st) == SQLITE_ROW)
                n = (uint64_t) sqlite3_column_int64(st, 0);
        sqlite3_reset(st);
        return n;
}

int fed_db_outbox_add(fed_db *db, const char *remote, const char *collection, const char *id,
                      int64_t time_us, const char *body, bool *added) {
        sqlite3_stmt *st = stmt(db, "INSERT OR IGNORE INTO outbox(remote, collection, record_id, time_us, body) VALUES(?,?,?,?,?)");
        if (!st || begin(db) < 0)
                return -EIO;
        sqlite3_bind_text(st, 1, remote, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, collection, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, time_us);
        sqlite3_bind_text(st, 5, body, -1, SQLITE_STATIC);
        int r = step_done(st);
        *added = r == 0 && sqlite3_changes(db->db) > 0;
        return r;
}

int fed_db_outbox_drop_oldest(fed_db *db, const char *remote, uint64_t n, uint64_t *dropped) {
        *dropped = 0;
        sqlite3_stmt *st = stmt(db, "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox WHERE remote = ? ORDER BY seq LIMIT ?)");
        if (!st || begin(db) < 0)
                return -EIO;
        sqlite3_bind_text(st, 1, remote, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (int64_t) n);
        int r = step_done(st);
        if (r < 0)
                return r;
        *dropped = (uint64_t) sqlite3_changes(db->db);
        return 0;
}

int fed_db_outbox_peek(fed_db *db, const char *remote, int64_t after_seq, unsigned max_records,
                       size_t max_bytes, char **payload, char **collection, int64_t *first_seq,
                       int64_t *last_seq, unsigned *n) {
        *payload = NULL;
        *collection = NULL;
        *n = 0;
        sqlite3_stmt *st = stmt(db, "SELECT seq, collection, record_id, time_us, body FROM outbox"
                                    " WHERE remote = ? AND seq > ? ORDER BY seq LIMIT ?");
        if (!st)
                return -EIO;
        sqlite3_bind_text(st, 1, remote, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, after_seq);
        sqlite3_bind_int64(st, 3, max_records);
        /* The payload is written as text rather than built with jansson: the names are
         * validated collection names and store ids (no character needs escaping) and the
         * bodies are the compact JSON the store committed, so parsing and re-serializing
         * them would only cost time (it was a quarter of the sender's CPU). */
        char *buf = NULL;
        size_t buf_len = 0;
        FILE *out = open_memstream(&buf, &buf_len);
        if (!out)
                return -ENOMEM;
        _cleanup_free_ char *coll = NULL;
        size_t bytes = 0;
        int r;
        while ((r = sqlite3_step(st)) == SQLITE_ROW) {
                const char *c = (const char *) sqlite3_column_text(st, 1);
                const char *id = (const char *) sqlite3_column_text(st, 2);
                const char *body = (const char *) sqlite3_column_text(st, 4);
                size_t blen = (size_t) sqlite3_column_bytes(st, 4);
                /* A batch is a run of consecutive rows of one collection, so that its
                 * acknowledgement is a plain range of sequence numbers. */
                if (coll && strcmp(coll, c) != 0)
                        break;
                if (*n > 0 && bytes + blen > max_bytes)
                        break;
                if (!coll) {
                        if (!(coll = strdup(c)))
                                break;
                        fprintf(out, "{\"collection\":\"%s\",\"records\":[", coll);
                        *first_seq = sqlite3_column_int64(st, 0);
                }
                fprintf(out, "%s{\"id\":\"%s\",\"time\":%lld,\"body\":", *n ? "," : "", id,
                        (long long) sqlite3_column_int64(st, 3));
                fwrite(body, 1, blen, out);
                fputc('}', out);
                *last_seq = sqlite3_column_int64(st, 0);
                bytes += blen;
                (*n)++;
        }
        sqlite3_reset(st);
        if (*n > 0)
                fputs("]}", out);
        bool failed = ferror(out);
        fclose(out);
        if (failed || (r != SQLITE_DONE && r != SQLITE_ROW) || (*n > 0 && !coll)) {
                free(buf);
                *n = 0;
                return failed ? -ENOMEM : -EIO;
        }
        if (*n == 0) {
                free(buf);
                return 0;
        }
        *payload = buf;
        *collection = steal_pointer(&coll);
        return 0;
}

int fed_db_outbox_ack(fed_db *db, const char *remote, int64_t first_seq, int64_t last_seq) {
        sqlite3_stmt *st = stmt(db, "DELETE FROM outbox WHERE remote = ? AND seq BETWEEN ? AND ?");
        if (!st || begin(db) < 0)
                return -EIO;
        sqlite3_bind_text(st, 1, remote, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, first_seq);
        sqlite3_bind_int64(st, 3, last_seq);
        int r = step_done(st);
        return r < 0 ? r : sqlite3_changes(db->db);
}

int fed_db_outbox_clear(fed_db *db, const char *remote, const char *collection) {
        sqlite3_stmt *st = stmt(db, "DELETE FROM outbox WHERE remote = ? AND collection = ?");
        if (!st || begin(db) < 0)
                return -EIO;
        sqlite3_bind_text(st, 1, remote, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, collection, -1, SQLITE_STATIC);
        return step_done(st);
}

static void bind_text_or_null(sqlite3_stmt *st, int i, const char *s) {
        if (s)
                sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
        else
                sqlite3_bind_null(st, i);
}

int64_t fed_db_audit_add(fed_db *db, const fed_audit_entry *e) {
        sqlite3_stmt *st = stmt(db, "INSERT INTO audit(time_us, remote, peer, direction, kind, collection, object,"
                                    " records, bytes, status) VALUES(?,?,?,?,?,?,?,?,?,?)");
        if (!st || begin(db) < 0)
                return -EIO;
        sqlite3_bind_int64(st, 1, e->time_us);
        bind_text_or_null(st, 2, e->remote);
        bind_text_or_null(st, 3, e->peer);
        sqlite3_bind_text(st, 4, e->direction, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, e->kind, -1, SQLITE_STATIC);
        bind_text_or_null(st, 6, e->collection);
        bind_text_or_null(st, 7, e->object);
        sqlite3_bind_int64(st, 8, e->records);
        sqlite3_bind_int64(st, 9, e->bytes);
        sqlite3_bind_text(st, 10, e->status, -1, SQLITE_STATIC);
        int r = step_done(st);
        if (r < 0)
                return r;
        return sqlite3_last_insert_rowid(db->db);
}

int fed_db_audit_finish(fed_db *db, int64_t id, int64_t bytes, const char *status) {
        sqlite3_stmt *st = stmt(db, "UPDATE audit SET bytes = ?, status = ? WHERE id = ?");
        if (!st || begin(db) < 0)
                return -EIO;
        sqlite3_bind_int64(st, 1, bytes);
        sqlite3_bind_text(st, 2, status, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, id);
        return step_done(st);
}

int fed_db_audit_list(fed_db *db, int64_t since_us, unsigned limit, json_t **out) {
        static const char *const names[] = { "id", "time", "remote", "peer", "direction", "kind",
                                             "collection", "object", "records", "bytes", "status" };
        /* the newest limit entries (as journalctl -n), printed oldest first */
        sqlite3_stmt *st = stmt(db, "SELECT * FROM (SELECT id, time_us, remote, peer, direction, kind, collection,"
                                    " object, records, bytes, status FROM audit WHERE time_us >= ?"
                                    " ORDER BY id DESC LIMIT ?) ORDER BY id");
        if (!st)
                return -EIO;
        sqlite3_bind_int64(st, 1, since_us);
        sqlite3_bind_int64(st, 2, limit);
        return rows_json(st, names, OSM_ARRAY_SIZE(names), out);
}

int fed_db_audit_prune(fed_db *db, int64_t before_us, uint64_t max_rows, uint64_t *removed) {
        *removed = 0;
        sqlite3_stmt *st = stmt(db, "DELETE FROM audit WHERE time_us < ?");
        if (!st || begin(db) < 0)
                return -EIO;
        sqlite3_bind_int64(st, 1, before_us);
        int r = step_done(st);
        if (r < 0)
                return r;
        *removed += (uint64_t) sqlite3_changes(db->db);
        st = stmt(db, "DELETE FROM audit WHERE id <= (SELECT MAX(id) FROM audit) - ?");
        if (!st)
                return -EIO;
        sqlite3_bind_int64(st, 1, (int64_t) max_rows);
        r = step_done(st);
        if (r < 0)
                return r;
        *removed += (uint64_t) sqlite3_changes(db->db);
        return fed_db_commit(db);
}
