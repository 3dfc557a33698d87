/* store-params.c: checks of io.osmose.Store call parameters beyond their Varlink types. */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "osmose/util.h"

#include "daemon/store/store-params.h"

static bool coll_ok(const char *c) {
        return c && osm_name_valid(c, OSM_STORE_MAX_NAME, true);
}

/* An optional integer field: absent or null leaves *out alone. */
static int opt_int(json_t *params, const char *key, int64_t min, int64_t max, int64_t *out) {
        json_t *v = json_object_get(params, key);
        if (!v || json_is_null(v))
                return 0;
        if (!json_is_integer(v))
                return -EINVAL;
        json_int_t i = json_integer_value(v);
        if (i < min || i > max)
                return -ERANGE;
        *out = i;
        return 0;
}

int osm_store_parse_put(json_t *params, osm_store_put_req *req, osm_error *err) {
        *req = (osm_store_put_req) {};
        if (!json_is_object(params)) {
                return osm_error_set(err, -EINVAL, 0, "parameters must be an object");
        }
        req->collection = json_string_value(json_object_get(params, "collection"));
        if (!coll_ok(req->collection)) {
                return osm_error_set(err, -EINVAL, OSM_STORE_BAD_NAME, "invalid collection name: 1-128 bytes of [A-Za-z0-9._-] segments separated by '/'");
        }
        req->body = json_object_get(params, "body");
        if (!req->body) {
                return osm_error_set(err, -EINVAL, 0, "missing body");
        }
        int64_t t = 0;
        if (opt_int(params, "time", 1, INT64_C(253402300799999999), &t) < 0) {
                return osm_error_set(err, -EINVAL, 0, "time must be microseconds since the epoch, before the year 10000");
        }
        req->time_us = t;
        return 0;
}

int osm_store_check_batch(json_t *params, osm_error *err) {
        if (!json_is_object(params)) {
                return osm_error_set(err, -EINVAL, 0, "parameters must be an object");
        }
        if (!coll_ok(json_string_value(json_object_get(params, "collection")))) {
                return osm_error_set(err, -EINVAL, OSM_STORE_BAD_NAME, "invalid collection name: 1-128 bytes of [A-Za-z0-9._-] segments separated by '/'");
        }
        json_t *records = json_object_get(params, "records");
        if (!json_is_array(records)) {
                return osm_error_set(err, -EINVAL, 0, "records must be an array");
        }
        size_t n = json_array_size(records);
        if (n == 0 || n > OSM_STORE_MAX_BATCH) {
                return osm_error_set(err, -EINVAL, 0, "a batch holds 1 to 10000 records");
        }
        int64_t t = 0;
        if (opt_int(params, "time", 1, INT64_C(253402300799999999), &t) < 0) {
                return osm_error_set(err, -EINVAL, 0, "time must be microseconds since the epoch, before the year 10000");
        }
        return 0;
}

int osm_store_parse_query(json_t *params, osm_store_query_req *q, const char **param) {
        *q = (osm_store_query_req) { .since_us = INT64_MIN, .until_us = INT64_MAX };
        if (!json_is_object(params)) {
                *param = "parameters";
                return -EINVAL;
        }
        q->collection = json_string_value(json_object_get(params, "collection"));
        if (!coll_ok(q->collection)) {
                *param = "collection";
                return -EINVAL;
        }
        int64_t limit = 0;
        if (opt_int(params, "since", INT64_MIN, INT64_MAX, &q->since_us) < 0) {
                *param = "since";
                return -EINVAL;
        }
        if (opt_int(params, "until", INT64_MIN, INT64_MAX, &q->until_us) < 0) {
                *param = "until";
                return -EINVAL;
        }
        if (q->since_us > q->until_us) {
                *param = "since";
                return -ERANGE;
        }
        if (opt_int(params, "limit", 0, INT64_MAX, &limit) < 0) {
                *param = "limit";
                return -EINVAL;
        }
        q->limit = (uint64_t) limit;
        json_t *rev = json_object_get(params, "reverse");
        if (rev && !json_is_null(rev)) {
                if (!json_is_boolean(rev)) {
                        *param = "reverse";
                        return -EINVAL;
                }
                q->reverse = json_is_true(rev);
        }
        json_t *cur = json_object_get(params, "cursor");
        if (cur && !json_is_null(cur)) {
                const char *c = json_string_value(cur);
                if (!c || strlen(c) >= 64) {
                        *param = "cursor";
                        return -EINVAL;
                }
                q->cursor = c;
        }
        return 0;
}

int osm_store_parse_retention(json_t *params, const char **collection, osm_store_retention *ret,
                              const char **param) {
        int64_t age = 0, recs = 0, bytes = 0;
        *ret = (osm_store_retention) {};
        if (!json_is_object(params)) {
                *param = "parameters";
                return -EINVAL;
        }
        *collection = json_string_value(json_object_get(params, "collection"));
        if (!coll_ok(*collection)) {
                *param = "collection";
                return -EINVAL;
        }
        if (opt_int(params, "max_age", 0, INT64_MAX, &age) < 0) {
                *param = "max_age";
                return -EINVAL;
        }
        if (opt_int(params, "max_records", 0, INT64_MAX, &recs) < 0) {
                *param = "max_records";
                return -EINVAL;
        }
        if (opt_int(params, "max_bytes", 0, INT64_MAX, &bytes) < 0) {
                *param = "max_bytes";
                return -EINVAL;
        }
        ret->max_age_us = (uint64_t) age;
        ret->max_records = (uint64_t) recs;
        ret->max_bytes = (uint64_t) bytes;
        return 0;
}

bool osm_store_id_valid(const char *id) {
        /* "<16 hex>-<decimal>": an origin space's prefix and its sequence number */
        size_t n = strlen(id);
        if (n < 18 || n >= OSM_STORE_MAX_ID || id[16] != '-')
                return false;
        for (size_t i = 0; i < 16; i++)
                if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
                        return false;
        for (size_t i = 17; i < n; i++)
                if (id[i] < '0' || id[i] > '9')
                        return false;
        return n - 17 <= 19;
}

/* Cursor: "<ts>.<seq>" of the last record returned. */
int osm_store_parse_cursor(const char *c, int64_t *ts, int64_t *seq) {
        char tmp[64];
        if (strlen(c) >= sizeof(tmp))
                return -EINVAL;
        strcpy(tmp, c);
        char *dot = strchr(tmp, '.');
        if (!dot)
                return -EINVAL;
        *dot = 0;
        if (osm_parse_i64(tmp, ts) < 0 || osm_parse_i64(dot + 1, seq) < 0)
                return -EINVAL;
        return 0;
}

