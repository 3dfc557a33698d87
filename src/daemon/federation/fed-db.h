/* fed-db.h: federation's own SQLite database (state/federation.db): the persisted
 * enable/disable choice, remotes, shares, the outbound queue and the audit log. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "osmose/error.h"

typedef struct fed_db fed_db;

/* Open or create path (mode 0600, WAL, synchronous=FULL: the audit must survive a power
 * cut). Returns 0 or -errno; err explains. */
int fed_db_open(const char *path, fed_db **out, osm_error *err);
fed_db *fed_db_close(fed_db *db);
/* Drop the cached pages no statement holds (a room that does not federate touches the
 * database once an hour, for the audit's retention). */
void fed_db_release_memory(fed_db *db);

/* Writes join one transaction that stays open until fed_db_commit() (called once per loop
 * iteration and before any byte leaves). 0 or -EIO. */
int fed_db_commit(fed_db *db);

/* Settings: *out malloc'd or NULL if unset. */
int fed_db_get_setting(fed_db *db, const char *key, char **out);
int fed_db_set_setting(fed_db *db, const char *key, const char *value);

/* Remotes. add: -EEXIST if the name, key or space id is already paired. */
int fed_db_remote_add(fed_db *db, const char *name, const char *url, const char *pubkey,
                      const char *space_id, int64_t now_us);
int fed_db_remote_rm(fed_db *db, const char *name);   /* -ENOENT */
int fed_db_remote_set_url(fed_db *db, const char *name, const char *url);   /* -ENOENT */
/* A JSON array of {name, url, key, space_id, added, last_contact, last_error, sent, received,
 * dropped}. */
int fed_db_remotes(fed_db *db, json_t **out);
int fed_db_remote_contact(fed_db *db, const char *name, int64_t now_us, const char *error);
int fed_db_remote_count(fed_db *db, const char *name, uint64_t sent, uint64_t received,
                        uint64_t dropped);

/* Shares. add: -EEXIST if already shared. rm: -ENOENT. */
/* since_us: records from then on are shared (now, or earlier for a backfill). */
int fed_db_share_add(fed_db *db, const char *collection, const char *remote, int64_t since_us);
int fed_db_share_rm(fed_db *db, const char *collection, const char *remote);
/* A JSON array of {collection, remote, since, high_water}. */
int fed_db_shares(fed_db *db, json_t **out);
int fed_db_share_high_water(fed_db *db, const char *collection, const char *remote, int64_t t);
/* Objects shared with a remote by hash. add: -EEXIST if already. rm: -ENOENT. */
int fed_db_object_share_add(fed_db *db, const char *hash, const char *remote, int64_t now_us);
int fed_db_object_share_rm(fed_db *db, const char *hash, const char *remote);
bool fed_db_object_shared(fed_db *db, const char *hash, const char *remote);
/* Channels served to a remote (share --channel): add (-EEXIST if shared), rm (-ENOENT). */
int fed_db_channel_share_add(fed_db *db, const char *channel, const char *remote, int64_t now_us);
int fed_db_channel_share_rm(fed_db *db, const char *channel, const char *remote);
bool fed_db_channel_shared(fed_db *db, const char *channel, const char *remote);
/* The collections shared with remote, a NULL-terminated array (osm_strv_free). */
int fed_db_shared_collections(fed_db *db, const char *remote, char ***out);

/* Outbox: a record waiting to reach a remote. A record already queued (same remote and
 * id) is not queued twice: *added tells. The bound is the caller's: it keeps the count and
 * drops the oldest with fed_db_outbox_drop_oldest (*dropped: how many went). */
int fed_db_outbox_add(fed_db *db, const char *remote, const char *collection, const char *id,
                      int64_t time_us, const char *body, bool *added);
int fed_db_outbox_drop_oldest(fed_db *db, const char *remote, uint64_t n, uint64_t *dropped);
/* The next batch for remote after sequence after_seq: up to max_records / about max_bytes
 * consecutive records of one collection. *payload is the JSON text
 * {"collection":…,"records":[{"id","time","body"}…]} (malloc'd), *collection its
 * collection (malloc'd), [*first_seq, *last_seq] its range; both NULL and *n 0 if nothing
 * is queued after after_seq. */
int fed_db_outbox_peek(fed_db *db, const char *remote, int64_t after_seq, unsigned max_records,
                       size_t max_bytes, char **payload, char **collection, int64_t *first_seq,
                       int64_t *last_seq, unsigned *n);
/* Remove an acknowledged batch. Returns the number of rows removed or -errno. */
int fed_db_outbox_ack(fed_db *db, const char *remote, int64_t first_seq, int64_t last_seq);
uint64_t fed_db_outbox_count(fed_db *db, const char *remote);
int fed_db_outbox_clear(fed_db *db, const char *remote, const char *collection);

/* Audit. add returns the new row id (> 0) or -errno. */
typedef struct fed_audit_entry {
        int64_t time_us;
        const char *remote;       /* remote name, or NULL */
        const char *peer;         /* network address of the other side */
        const char *direction;    /* "request" (we sent it) or "response" (we answered) */
        const char *kind;         /* "hello", "records", "object", "refusal" */
        const char *collection;   /* may be NULL */
        const char *object;       /* may be NULL */
        int64_t records;
        int64_t bytes;            /* bytes of the body that left */
        const char *status;       /* "sending", "sent", "failed", "served", … */
} fed_audit_entry;
int64_t fed_db_audit_add(fed_db *db, const fed_audit_entry *e);
int fed_db_audit_finish(fed_db *db, int64_t id, int64_t bytes, const char *status);
/* A JSON array of entries with time >= since_us, oldest first, at most limit. */
int fed_db_audit_list(fed_db *db, int64_t since_us, unsigned limit, json_t **out);
/* Delete audit rows older than before_us and beyond max_rows (oldest first). */
int fed_db_audit_prune(fed_db *db, int64_t before_us, uint64_t max_rows, uint64_t *removed);
