/* federation.h: the federation subsystem's state, shared by its files. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "daemon/daemon.h"
#include "fed-api.h"
#include "fed-db.h"
#include "fed-http.h"
#include "fed-proto.h"

#define FED_BATCH_RECORDS   1000            /* records in one push */
#define FED_BATCH_BYTES     (1024u * 1024u) /* body bytes in one push, about */
#define FED_MAX_RECORDS_IN  5000            /* records accepted in one push */
#define FED_RATE_PER_S      50.0            /* requests per second per remote, sustained */
#define FED_RATE_BURST      100.0
#define FED_NONCE_CAPACITY  65536           /* 50/s × 600 s window × 2 remotes, roughly */
#define FED_RETRY_MIN_MS    500
#define FED_RETRY_MAX_MS    15000
#define FED_AUDIT_MAX_ROWS  1000000
#define FED_REFUSAL_ROWS    100             /* refusal audit rows per minute; the rest summed */
#define FED_MAX_UPLOADS     4               /* bodies being received from one remote at once */

typedef struct fed_remote fed_remote;
typedef struct fed_fetch fed_fetch;
typedef struct fed_watch fed_watch;
typedef struct fed_catchup fed_catchup;

#define FED_WINDOW 2   /* requests in flight per remote */

typedef struct fed_slot {
        fed_remote *remote;
        fed_call *call;                 /* NULL: the slot is free */
        const char *kind;               /* "hello" or "records" */
        int64_t first_seq, last_seq;    /* the batch's outbox range */
        unsigned n;
        int64_t audit_id;
        uint8_t sig[OSM_SIG_BYTES];     /* the request's signature: the response is bound to it */
} fed_slot;

struct fed_remote {
        struct osm_federation *f;
        char *name;
        char *url;
        uint8_t pk[OSM_PUBKEY_BYTES];
        char key[OSM_PUBKEY_B64];
        char id[OSM_SPACE_ID_LEN + 1];
        uint8_t *box_key;               /* FED_BOX_KEY_BYTES, sodium_malloc'd */

        int64_t last_contact_us;
        char *last_error;
        bool ever_failed, failing;
        bool need_hello;
        uint64_t queued;                /* records in the outbox */
        uint64_t dropped, sent, received; /* since start (the db keeps totals) */

        /* requests in flight: batches are pipelined so that preparing the next one
         * overlaps the remote storing the last */
        fed_slot slots[FED_WINDOW];
        int64_t sent_upto;              /* the highest sequence in flight, 0 if none */

        uv_timer_t *retry;
        uint64_t backoff_ms;

        unsigned uploads;               /* requests of this remote being received */

        /* inbound rate limit (token bucket) */
        double tokens;
        uint64_t tokens_mono_us;

        fed_remote *next;
};

typedef struct osm_federation {
        osm_daemon *d;
        fed_db *db;
        uv_check_t *commit;
        uv_timer_t *prune;
        bool release_pending;   /* pruned: drop the cached pages once committed */
        bool enabled;
        char listen[80];
        int64_t listen_started_us;
        fed_server *server;
        fed_client *client;
        fed_nonce_cache *nonces;
        fed_remote *remotes;
        fed_fetch *fetches;
        fed_watch *watches;
        fed_catchup *catchups;          /* store queries in flight at start-up */

        uint64_t requests_in, requests_refused, requests_out, bytes_out, connections_out;
        uint64_t refused[_FED_REFUSAL_MAX];
        uint64_t log_window_us;
        /* refusal audit rows: at most FED_REFUSAL_ROWS a minute, the rest summed up */
        uint64_t refusal_window_us;
        unsigned refusal_rows;
        uint64_t refusal_skipped, refusal_skipped_bytes;
        unsigned log_in_window, log_suppressed;
} osm_federation;

/* --- federation.c: the subsystem --- */
/* Listen on listen and start the client; on failure everything is off again and err says
 * what failed. */
int fed_network_start(osm_federation *f, const char *listen, osm_error *err);
/* Stop listening, cancel what is in flight (fetches fail with FederationDisabled). */
void fed_network_stop(osm_federation *f);
/* uv_close callback for handles that were calloc'd. */
void fed_close_free(uv_handle_t *h);

/* --- fed-remote.c: remotes in memory --- */
fed_remote *fed_remote_by_name(osm_federation *f, const char *name);
fed_remote *fed_remote_by_pk(osm_federation *f, const uint8_t pk[OSM_PUBKEY_BYTES]);
/* Make a remote from its name, URL and key (not yet linked into f->remotes). 0, -ENOMEM,
 * -EINVAL (an unusable key). */
int fed_remote_new(osm_federation *f, const char *name, const char *url, const char *key,
                   fed_remote **out);
/* Cancel what is in flight and free. NULL is fine. */
void fed_remote_free(fed_remote *r);
/* Abort what is in flight (disable, removal); the audit rows get status (if not NULL). */
void fed_remote_cancel(fed_remote *r, const char *status);
/* Free a slot and recompute how far the batches in flight reach. */
void fed_slot_release(fed_slot *sl);
/* Is a request of r in flight? */
bool fed_remote_busy(const fed_remote *r);
/* off, offline, syncing, never or idle. */
const char *fed_remote_state(const fed_remote *r);
/* Mark r failing with a message (logged once when it changes, kept in the db). */
void fed_remote_set_error(fed_remote *r, const char *fmt, ...) OSM_PRINTF(2, 3);
/* Retry later, the wait doubling up to FED_RETRY_MAX_MS. */
void fed_remote_backoff(fed_remote *r);

/* --- fed-push.c: outgoing requests and the outbox --- */
/* Fill r's window with requests while there is work. */
void fed_remote_pump(fed_remote *r);
/* Encrypt plaintext to r, sign, write the audit entry (durably, before anything leaves)
 * and post it to r's URL + path. On success the audit row id and the request's signature
 * are returned. */
int fed_send_signed(osm_federation *f, fed_remote *r, const char *path, const char *kind,
                    const void *pt, size_t pt_len, const uint8_t *box_key,
                    const char *collection, const char *object, int64_t records,
                    fed_call_cb cb, void *userdata, fed_call **out_call, int64_t *out_audit,
                    uint8_t out_sig[OSM_SIG_BYTES]);
/* A remote's refusal body {"error":…,"message":…} as one line. */
void fed_refusal_text(long status, const uint8_t *body, size_t len, char *buf, size_t size);
/* Queue a record for r (bounded by federation_max_queue: the oldest go) and pump. */
void fed_outbox_enqueue(osm_federation *f, fed_remote *r, const char *collection, const char *id,
                        int64_t time_us, const char *body);

/* --- fed-serve.c: serving requests --- */
extern const fed_server_ops fed_serve_ops;

/* --- fed-share.c: sharing --- */
/* Make the set of store watches match the shares table. */
void fed_watches_sync(osm_federation *f);
/* Ask the store for what each share may have missed before a crash. */
void fed_catchup_start(osm_federation *f);
int fed_catchup_one(osm_federation *f, const char *collection, const char *remote, int64_t since);
/* Drop the watches and orphan the catch-up queries still in the store (at stop). */
void fed_share_stop(osm_federation *f);

/* --- fed-fetch.c: object fetches --- */
/* Fetch the object with hash h from r and answer call once the store has it. */
void fed_fetch_start(osm_federation *f, osm_call *call, fed_remote *r, const uint8_t h[OSM_HASH_BYTES]);
/* Answer the fetch's call (if still there) with error and free it. */
void fed_fetch_fail(fed_fetch *ft, const char *error, const char *fmt, ...) OSM_PRINTF(3, 4);

/* --- iface-federation.c: the Varlink methods --- */
int fed_iface_register(osm_federation *f);
