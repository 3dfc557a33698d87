/* api-store.c: the store's part of the workload API: Put, PutBatch, Query, Collections, Watch. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "daemon/api/api-internal.h"
#include "daemon/tenant/tenants.h"
#include "osmose/log.h"
#include "daemon/store/store-params.h"
#include "daemon/store/store-reply.h"

static bool collection_ok(osm_call *call, const char *coll) {
        if (osm_name_valid(coll, OSM_STORE_MAX_NAME, true))
                return true;
        osm_call_fail(call, osm_error_api_invalid_name(coll ? coll : "",
                                 "a collection name is 1-128 bytes of [A-Za-z0-9._-] segments joined by '/', "
                                 "without empty, '.' or '..' segments"));
        return false;
}

/* Require store:KIND:… matching coll; on refusal the call is finished. */
static bool need_store(osm_call *call, const char *const *grants, const char *kind, const char *coll) {
        if (osm_grant_find_store(grants, kind, coll))
                return true;
        char grant[OSM_STORE_MAX_NAME + 32];
        snprintf(grant, sizeof grant, "store:%s:%s", kind, coll);
        api_deny(call, grant, "%s %s needs the grant %s", strcmp(kind, "read") == 0 ? "reading" : "writing", coll, grant);
        return false;
}

/* ---------- store calls ---------- */

/* A store request in flight on behalf of a call. call goes NULL if the client leaves. */
typedef struct api_op {
        osm_call *call;
        api_inst *in;
        osm_store_batch batch;      /* PutBatch */
        uint64_t unstored_bytes;    /* reserved against the quota but not written */
        size_t *sizes;              /* PutBatch: each record's size */
        char name[OSM_STORE_MAX_NAME + 1];
} api_op;

static void op_cancel(osm_call *c, void *userdata) {
        api_op *op = userdata;
        op->call = NULL;
}

static api_op *op_new(osm_call *call, api_inst *in) {
        api_op *op = calloc(1, sizeof *op);
        if (!op) {
                osm_call_errorf(call, OSM_E_INTERNAL_ERROR, "out of memory");
                return NULL;
        }
        op->call = call;
        op->in = in;
        osm_store_batch_init(&op->batch);
        in->refs++;
        osm_call_set_cancel(call, op_cancel, op);
        return op;
}

static void op_free(api_op *op) {
        api_inst *in = op->in;
        if (op->call)
                osm_call_set_cancel(op->call, NULL, NULL);
        free(op->sizes);
        free(op);
        api_inst_unref(in);
}

/* Reply to a store failure r; err may be NULL. */
static void store_error(osm_call *call, api_inst *in, int r, const osm_error *err, const char *coll) {
        osm_store_failure f = { .code = r, .err = err, .collection = coll };
        osm_store_reply_error(call, OSM_STORE_IFACE_API, &in->api->d->cfg, &f);
}

/* The same, with our message for it. */
static void store_error_text(osm_call *call, api_inst *in, int r, const char *why, const char *coll) {
        osm_error e = { .code = r };
        if (why)
                snprintf(e.message, sizeof e.message, "%s", why);
        store_error(call, in, r, &e, coll);
}

static bool reserve_bytes(osm_call *call, api_inst *in, uint64_t n) {
        uint64_t max = in->api->d->cfg.api_max_bytes;
        if (in->bytes_stored + n <= max && in->bytes_stored + n >= in->bytes_stored) {
                in->bytes_stored += n;
                return true;
        }
        char msg[200], b1[32], b2[32];
        snprintf(msg, sizeof msg, "writing %s more would pass this instance's limit of %s (%s written)",
                 osm_format_bytes(n, b1, sizeof b1), osm_format_bytes(max, b2, sizeof b2),
                 osm_format_bytes(in->bytes_stored, b1 + 16, sizeof b1 - 16));
        osm_call_fail(call, osm_error_api_quota_exceeded("bytes_stored", (int64_t) max, msg));
        return false;
}

static void put_done(int r, const char *id, int64_t time_us, bool duplicate, void *userdata) {
        api_op *op = userdata;
        if (r < 0)
                op->in->bytes_stored -= OSM_MIN(op->in->bytes_stored, op->unstored_bytes);
        if (op->call) {
                if (r < 0)
                        store_error(op->call, op->in, r, NULL, op->name);
                else
                        osm_call_reply(op->call, osm_reply_api_put(id, (int64_t) time_us), false);
                op->call = NULL;
        }
        op_free(op);
}

static void m_put(osm_call *call, json_t *params, void *userdata) {
        api_inst *in = userdata;
        const char *const *grants = api_enter(call, in);
        if (!grants)
                return;
        osm_store_put_req req = { 0 };
        osm_error err = {};
        int r = osm_store_parse_put(params, &req, &err);
        if (r < 0 && err.kind == OSM_STORE_BAD_NAME) {
                collection_ok(call, req.collection);
                return;
        }
        if (r < 0) {
                store_error(call, in, r, &err, req.collection);
                return;
        }
        if (!need_store(call, grants, "write", req.collection) ||
            osm_tenants_check_store(in->api->d->tenants, req.collection, call) < 0)
                return;
        req.writer = in->writer;
        size_t len = 0;
        r = osm_store_check_put(in->api->d->store, &req, &len, &err);
        if (r < 0) {
                store_error(call, in, r, &err, req.collection);
                return;
        }
        if (!reserve_bytes(call, in, len))
                return;
        api_op *op = op_new(call, in);
        if (!op) {
                in->bytes_stored -= len;
                return;
        }
        op->unstored_bytes = len;
        snprintf(op->name, sizeof op->name, "%s", req.collection);
        r = osm_store_put(in->api->d->store, &req, put_done, op, &err);
        if (r < 0) {
                in->bytes_stored -= len;
                osm_call_set_cancel(call, NULL, NULL);
                op->call = NULL;
                op_free(op);
                store_error(call, in, r, &err, req.collection);
        }
}

static void batch_finish(api_op *op) {
        if (op->call) {
                osm_store_batch_reply(op->call, OSM_STORE_IFACE_API, &op->in->api->d->cfg, &op->batch, op->name);
                op->call = NULL;
        }
        op_free(op);
}

static void batch_one_done(int r, const char *id, int64_t time_us, bool duplicate, void *userdata) {
        api_op *op = userdata;
        size_t index;
        bool all = osm_store_batch_done(&op->batch, r, id, &index);
        if (r < 0)
                op->in->bytes_stored -= OSM_MIN(op->in->bytes_stored, op->sizes[index]);
        if (all)
                batch_finish(op);
}

static void m_put_batch(osm_call *call, json_t *params, void *userdata) {
        api_inst *in = userdata;
        const char *const *grants = api_enter(call, in);
        if (!grants)
                return;
        osm_store *store = in->api->d->store;
        const char *coll = json_string_value(json_object_get(params, "collection"));
        json_t *records = json_object_get(params, "records");
        osm_error err = {};
        if (!collection_ok(call, coll) || !need_store(call, grants, "write", coll) ||
            osm_tenants_check_store(in->api->d->tenants, coll, call) < 0)
                return;
        int r = osm_store_check_batch(params, &err);
        if (r < 0) {
                store_error(call, in, r, &err, coll);
                return;
        }
        size_t n = json_array_size(records);
        _cleanup_free_ size_t *sizes = calloc(n ? n : 1, sizeof *sizes);
        if (!sizes) {
                osm_call_errorf(call, OSM_E_INTERNAL_ERROR, "out of memory");
                return;
        }
        /* Check every record first: a bad one refuses the batch before anything is
         * stored, and the quota is charged for the whole batch at once. */
        int64_t now = osm_now_real_us();
        uint64_t total = 0;
        for (size_t i = 0; i < n; i++) {
                osm_store_put_req req = { .collection = coll, .writer = in->writer,
                                          .body = json_array_get(records, i), .time_us = now };
                r = osm_store_check_put(store, &req, &sizes[i], &err);
                if (r < 0) {
                        osm_store_failure f = { .code = r, .err = &err, .collection = coll, .index = i };
                        osm_store_reply_error(call, OSM_STORE_IFACE_API, &in->api->d->cfg, &f);
                        return;
                }
                total += sizes[i];
        }
        if (!reserve_bytes(call, in, total))
                return;
        api_op *op = op_new(call, in);
        if (!op) {
                in->bytes_stored -= total;
                return;
        }
        op->sizes = steal_pointer(&sizes);
        snprintf(op->name, sizeof op->name, "%s", coll);
        for (size_t i = 0; i < n; i++) {
                osm_store_put_req req = { .collection = coll, .writer = in->writer,
                                          .body = json_array_get(records, i), .time_us = now };
                r = osm_store_put(store, &req, batch_one_done, op, &err);
                if (r < 0) {
                        for (size_t k = i; k < n; k++)
                                in->bytes_stored -= OSM_MIN(in->bytes_stored, op->sizes[k]);
                        osm_store_batch_refused(&op->batch, i, r, &err, 0);
                        break;
                }
                op->batch.queued++;
        }
        if (op->batch.queued == 0 || op->batch.done == op->batch.queued)
                batch_finish(op);
}

static void query_done(int r, const char *params, size_t len, void *userdata) {
        api_op *op = userdata;
        if (op->call) {
                if (r < 0)
                        store_error_text(op->call, op->in, r, r == -EINVAL ? "invalid cursor" : NULL, op->name);
                else
                        osm_call_reply_text(op->call, params, len, false);
                op->call = NULL;
        }
        op_free(op);
}

static void m_query(osm_call *call, json_t *params, void *userdata) {
        api_inst *in = userdata;
        const char *const *grants = api_enter(call, in);
        if (!grants)
                return;
        const char *coll = json_string_value(json_object_get(params, "collection"));
        if (!collection_ok(call, coll) || !need_store(call, grants, "read", coll))
                return;
        osm_store_query_req q;
        const char *why = NULL;
        int r = osm_store_parse_query(params, &q, &why);
        if (r < 0) {
                osm_call_invalid_param(call, why ? why : "");
                return;
        }
        api_op *op = op_new(call, in);
        if (!op)
                return;
        snprintf(op->name, sizeof op->name, "%s", coll);
        r = osm_store_query_text(in->api->d->store, &q, query_done, op);
        if (r < 0) {
                osm_call_set_cancel(call, NULL, NULL);
                op->call = NULL;
                op_free(op);
                store_error_text(call, in, r, r == -EINVAL ? "invalid cursor" : NULL, coll);
        }
}

static void m_collections(osm_call *call, json_t *params, void *userdata) {
        api_inst *in = userdata;
        const char *const *grants = api_enter(call, in);
        if (!grants)
                return;
        json_t *all = NULL;
        int r = osm_store_collections(in->api->d->store, &all);
        if (r < 0) {
                store_error_text(call, in, r, "cannot list the collections", NULL);
                return;
        }
        json_t *mine = json_array();
        size_t i;
        json_t *c;
        json_array_foreach(all, i, c) {
                const char *name = json_string_value(json_object_get(c, "name"));
                if (name && osm_grant_find_store(grants, "read", name))
                        json_array_append_new(mine, json_pack("{s:s, s:O?, s:O?, s:O?}", "name", name, "records",
                                                              json_object_get(c, "records"), "oldest",
                                                              json_object_get(c, "oldest"), "newest",
                                                              json_object_get(c, "newest")));
        }
        json_decref(all);
        osm_call_reply(call, osm_reply_api_collections(mine), false);
}

/* ---------- watches ---------- */

static void watch_unlink(api_watch *w) {
        api_inst *in = w->in;
        if (w->prev)
                w->prev->next = w->next;
        else
                in->watches = w->next;
        if (w->next)
                w->next->prev = w->prev;
        in->n_watches--;
        osm_store_watch_remove(w->sw);
}

/* End a watch whose grant went away: its stream ends with PermissionDenied. */
static void watch_revoke(api_watch *w) {
        osm_call *call = w->call;
        char grant[OSM_GRANT_MAX_NAME + 16];
        snprintf(grant, sizeof grant, "store:read:%s", w->pattern);
        watch_unlink(w);
        osm_call_set_cancel(call, NULL, NULL);
        free(w);
        api_deny(call, grant, "the grant to read %s was revoked", grant + 11);
}

static void watch_record(const osm_record *rec, void *userdata) {
        api_watch *w = userdata;
        /* Check again for each record: a revoke takes effect before the next one. */
        const char *const *grants = api_inst_grants(w->in);
        if (!grants || !osm_grant_find_watch(grants, w->pattern) || !osm_grant_find_store(grants, "read", rec->collection)) {
                watch_revoke(w);
                return;
        }
        json_t *body = json_loads(rec->body, JSON_DECODE_ANY, NULL);
        json_t *o = json_pack("{s:{s:s, s:s, s:I, s:s, s:o}}", "record", "id", rec->id, "collection", rec->collection,
                              "time", (json_int_t) rec->time_us, "writer", rec->writer, "body", body ? body : json_null());
        /* w may be freed by this call (the client is dropped if it does not read). */
        osm_call_reply(w->call, o, true);
}

static void watch_cancel(osm_call *c, void *userdata) {
        api_watch *w = userdata;
        watch_unlink(w);
        free(w);
}

static void m_watch(osm_call *call, json_t *params, void *userdata) {
        api_inst *in = userdata;
        const char *const *grants = api_enter(call, in);
        if (!grants)
                return;
        const char *pattern = json_string_value(json_object_get(params, "pattern"));
        if (!osm_call_more(call)) {
                osm_call_invalid_param(call, "more");   /* Watch streams records: call it with "more": true */
                return;
        }
        if (!osm_grant_watch_pattern_valid(pattern)) {
                /* a collection name in which a star stands for any part of one segment */
                osm_call_invalid_param(call, "pattern");
                return;
        }
        if (!osm_grant_find_watch(grants, pattern)) {
                char grant[OSM_GRANT_MAX_NAME + 16];
                snprintf(grant, sizeof grant, "store:read:%s", pattern);
                api_deny(call, grant, "watching %s needs a read grant covering it, such as %s", pattern, grant);
                return;
        }
        uint64_t max = in->api->d->cfg.api_max_watches;
        if (in->n_watches >= max) {
                osm_call_fail(call, osm_error_api_quota_exceeded("watches", (int64_t) max,
                                                                 "this instance has as many watches open as it may"));
                return;
        }
        api_watch *w = calloc(1, sizeof *w);
        if (!w) {
                osm_call_errorf(call, OSM_E_INTERNAL_ERROR, "out of memory");
                return;
        }
        w->in = in;
        w->call = call;
        snprintf(w->pattern, sizeof w->pattern, "%s", pattern);
        w->sw = osm_store_watch_add(in->api->d->store, pattern, watch_record, w);
        if (!w->sw) {
                free(w);
                osm_call_errorf(call, OSM_E_INTERNAL_ERROR, "cannot add a watch");
                return;
        }
        w->next = in->watches;
        if (in->watches)
                in->watches->prev = w;
        in->watches = w;
        in->n_watches++;
        osm_call_set_cancel(call, watch_cancel, w);
}

/* End the watches of in whose grant went away. */
void api_watches_revoke(api_inst *in, const char *const *grants) {
        for (api_watch *w = in->watches, *next; w; w = next) {
                next = w->next;
                if (!osm_grant_find_watch(grants, w->pattern))
                watch_revoke(w);
        }
}

const osm_method api_store_methods[] = {
        { OSM_M_API_PUT,          m_put,          OSM_ACCESS_PUBLIC },
        { OSM_M_API_PUT_BATCH,     m_put_batch,    OSM_ACCESS_PUBLIC },
        { OSM_M_API_QUERY,        m_query,        OSM_ACCESS_PUBLIC },
        { OSM_M_API_COLLECTIONS,  m_collections,  OSM_ACCESS_PUBLIC },
        { OSM_M_API_WATCH,        m_watch,        OSM_ACCESS_PUBLIC },
};
const size_t api_store_n_methods = OSM_ARRAY_SIZE(api_store_methods);
