/* store-reply.h: a store failure, or a batch's outcome, as a Varlink reply: the one mapping
 * from errno to wire error for io.osmose.Store (the control socket) and io.osmose.Api
 * (workloads, whose set of errors is smaller). */
#pragma once

#include <stddef.h>

#include "daemon/config.h"
#include "daemon/control/server.h"
#include "daemon/store/store.h"
#include "osmose/error.h"

typedef enum osm_store_iface {
        OSM_STORE_IFACE_STORE,    /* io.osmose.Store */
        OSM_STORE_IFACE_API,      /* io.osmose.Api */
        _OSM_STORE_IFACE_MAX,
} osm_store_iface;

/* What failed: the code (-errno), with the store's kind and message if it gave one. */
typedef struct osm_store_failure {
        int code;
        const osm_error *err;     /* may be NULL: a failure reported by a callback */
        const char *collection;   /* the collection of the call */
        size_t index, stored;     /* a batch's failed record, and how many were stored */
        size_t size;              /* the failed record's size, 0 if not known */
} osm_store_failure;

/* Finish call with the wire error of iface for f (limits named from cfg). */
void osm_store_reply_error(osm_call *call, osm_store_iface iface, const osm_config *cfg,
                           const osm_store_failure *f);

/* The completions of one PutBatch: records of a batch may land in more than one
 * transaction, and callbacks run in record order. */
typedef struct osm_store_batch {
        size_t queued, done, stored;
        size_t bad_index;                 /* the first failed record, SIZE_MAX: none */
        osm_error bad;                    /* its failure (code, and a message if known) */
        size_t bad_size;
        char first[OSM_STORE_MAX_ID], last[OSM_STORE_MAX_ID];
        size_t first_index, last_index;
} osm_store_batch;

void osm_store_batch_init(osm_store_batch *b);
/* Count the completion of the next record (r and id as osm_store_put_cb has them); *index
 * gets its index. Returns true when every queued record has completed. */
bool osm_store_batch_done(osm_store_batch *b, int r, const char *id, size_t *index);
/* Record i could not be queued (osm_store_put_many stopped there): err, its size. */
void osm_store_batch_refused(osm_store_batch *b, size_t i, int r, const osm_error *err, size_t size);
/* Finish call: the first failure as osm_store_reply_error does, else {stored, first, last}. */
void osm_store_batch_reply(osm_call *call, osm_store_iface iface, const osm_config *cfg,
                           const osm_store_batch *b, const char *collection);
