/* store-params.h: checking the parameters of io.osmose.Store calls (shared by the control
 * socket, the workload API and the fuzz harness). */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "daemon/store/store.h"

#define OSM_STORE_MAX_BATCH 10000   /* records in one PutBatch */

/* Put: fills req (borrowed pointers into params; writer left NULL). Returns 0 or -EINVAL
 * with err saying what is wrong (kind OSM_STORE_BAD_NAME for the collection's name). */
int osm_store_parse_put(json_t *params, osm_store_put_req *req, osm_error *err);
/* PutBatch: the collection and the shape of records (each record is checked when queued). */
int osm_store_check_batch(json_t *params, osm_error *err);
/* Query: fills q (borrowed). On -EINVAL/-ERANGE *param is the offending parameter's name
 * (for InvalidParameter). */
int osm_store_parse_query(json_t *params, osm_store_query_req *q, const char **param);
/* SetRetention: on -EINVAL/-ERANGE *param is the offending parameter's name. */
int osm_store_parse_retention(json_t *params, const char **collection, osm_store_retention *ret,
                              const char **param);
/* A record id from another space: "<16 hex digits>-<decimal sequence>". */
bool osm_store_id_valid(const char *id);
/* A query cursor "<time>.<sequence>". Returns 0 or -EINVAL. */
int osm_store_parse_cursor(const char *c, int64_t *ts, int64_t *seq);
