/* federation.h: the federation subsystem's state, shared by its files. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "daemon/daemon.h"
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
