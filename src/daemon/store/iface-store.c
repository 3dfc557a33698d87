/* iface-store.c: the store subsystem: opens the store and serves io.osmose.Store over the
 * control socket (records, collections, retention, watches, objects as fds). */
#include <inttypes.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>

#include "daemon/daemon.h"
#include "daemon/store/store.h"
#include "daemon/store/store-params.h"
#include "daemon/store/store-reply.h"
#include "daemon/tenant/tenants.h"
#include "osmose/log.h"


/* The writer recorded for a call over the control socket: the local user. */
static void writer_for_call(osm_call *call, char *buf, size_t size) {
        const struct ucred *cr = osm_call_cred(call);
        uid_t uid = cr ? cr->uid : (uid_t) -1;
        struct passwd pw, *res = NULL;
        char tmp[1024];
        if (getpwuid_r(uid, &pw, tmp, sizeof(tmp), &res) == 0 && res && pw.pw_name)
                snprintf(buf, size, "user:%s", pw.pw_name);
        else
                snprintf(buf, size, "user:%u", (unsigned) uid);
}

/* A tenant's members reach only collections under tenants/NAME/ (patterns too); anything
 * else is refused here, before the store sees it. 0, or the PermissionDenied reply sent. */
static int tenant_scope(osm_call *call, const char *name) {
        const char *tenant = osm_call_tenant(call);
        if (!tenant || osm_tenant_collection_ok(tenant, name))
                return 0;
        osm_call_errorf(call, OSM_E_PERMISSION_DENIED, "tenant %s may use only collections under %s%s/",
                        tenant, OSM_TENANT_STORE_PREFIX, tenant);
        return -EPERM;
}

/* A call waiting for the store: the call pointer goes NULL if the client leaves first. */
typedef struct pending {
        osm_call *call;
        osm_daemon *d;
        bool dead;              /* cancel ran */
        osm_store_batch batch;  /* PutBatch */
        osm_store_watch *watch;
        /* SetRetention */
        osm_store_retention ret;
        char name[OSM_STORE_MAX_NAME + 1];
} pending;

static void pending_cancel(osm_call *c, void *userdata) {
        pending *p = userdata;
        p->call = NULL;
}

static pending *pending_new(osm_call *call, osm_daemon *d) {
        pending *p = calloc(1, sizeof(*p));
        if (!p)
                return NULL;
        p->call = call;
        p->d = d;
        osm_store_batch_init(&p->batch);
        osm_call_set_cancel(call, pending_cancel, p);
        return p;
}

/* Reply to an error r from the store; why is our message for it, or NULL. */
static void reply_store_error(osm_call *call, osm_daemon *d, int r, const char *why, const char *name) {
        osm_error e = { .code = r };
        if (why)
                snprintf(e.message, sizeof(e.message), "%s", why);
        osm_store_failure f = { .code = r, .err = &e, .collection = name };
        osm_store_reply_error(call, OSM_STORE_IFACE_STORE, &d->cfg, &f);
}

/* Reply to a put the store refused with err (size: the record's, if known). */
static void reply_put_error(osm_call *call, osm_daemon *d, const osm_error *err, size_t size, const char *name) {
        osm_store_failure f = { .code = err->code, .err = err, .collection = name, .size = size };
        osm_store_reply_error(call, OSM_STORE_IFACE_STORE, &d->cfg, &f);
}

/* ---- Put ---- */

static void put_done(int r, const char *id, int64_t time_us, bool duplicate, void *userdata) {
        pending *p = userdata;
        if (p->call) {
                if (r < 0)
                        reply_store_error(p->call, p->d, r, NULL, NULL);
                else
                        osm_call_reply(p->call, osm_reply_store_put(id, (int64_t) time_us), false);
        }
        free(p);
}

static void method_put(osm_call *call, json_t *params, void *userdata) {
        osm_daemon *d = userdata;
        char writer[OSM_STORE_MAX_WRITER];
        osm_store_put_req req = {};
        osm_error err = {};

        int r = osm_store_parse_put(params, &req, &err);
        if (r < 0) {
                reply_put_error(call, d, &err, 0, req.collection);
                return;
        }
        if (tenant_scope(call, req.collection) < 0 || osm_tenants_check_store(d->tenants, req.collection, call) < 0)
                return;
        writer_for_call(call, writer, sizeof(writer));
        req.writer = writer;
        pending *p = pending_new(call, d);
        if (!p) {
                osm_call_errorf(call, OSM_E_INTERNAL_ERROR, "out of memory");
                return;
        }
        r = osm_store_put(d->store, &req, put_done, p, &err);
        if (r < 0) {
                osm_call_set_cancel(call, NULL, NULL);
                free(p);
                reply_put_error(call, d, &err, json_dumpb(req.body, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY),
                                req.collection);
        }
}

/* ---- PutBatch ---- */

static void batch_one_done(int r, const char *id, int64_t time_us, bool duplicate, void *userdata) {
        pending *p = userdata;
        if (!osm_store_batch_done(&p->batch, r, id, NULL))
                return;
        if (p->call)
                osm_store_batch_reply(p->call, OSM_STORE_IFACE_STORE, &p->d->cfg, &p->batch, p->name);
        free(p);
}

static void method_put_batch(osm_call *call, json_t *params, void *userdata) {
        osm_daemon *d = userdata;
        char writer[OSM_STORE_MAX_WRITER];
        osm_error err = {};
        const char *coll = json_string_value(json_object_get(params, "collection"));
        json_t *records = json_object_get(params, "records");

        int r = osm_store_check_batch(params, &err);
        if (r < 0) {
                reply_put_error(call, d, &err, 0, coll);
                return;
        }
        if (tenant_scope(call, coll) < 0 || osm_tenants_check_store(d->tenants, coll, call) < 0)
                return;
        writer_for_call(call, writer, sizeof(writer));
        pending *p = pending_new(call, d);
        if (!p) {
                osm_call_errorf(call, OSM_E_INTERNAL_ERROR, "out of memory");
                return;
        }
        snprintf(p->name, sizeof(p->name), "%s", coll);
        json_t *t = json_object_get(params, "time");
        int64_t now = json_is_integer(t) ? json_integer_value(t) : osm_now_real_us();
        size_t n = json_array_size(records);
        osm_store_put_req *reqs = calloc(n, sizeof(*reqs));
        if (!reqs) {
                osm_call_set_cancel(call, NULL, NULL);
                free(p);
                osm_call_errorf(call, OSM_E_INTERNAL_ERROR, "out of memory");
                return;
        }
        for (size_t i = 0; i < n; i++)
                reqs[i] = (osm_store_put_req) {
                        .collection = coll, .writer = writer, .body = json_array_get(records, i),
                        /* one batch, one time; the sequence keeps line order within it */
                        .time_us = now,
                };
        osm_store_batch *b = &p->batch;
        b->queued = osm_store_put_many(d->store, reqs, n, batch_one_done, p, &r, &err);
        if (r < 0)
                osm_store_batch_refused(b, b->queued, r, &err,
                                        r == -EMSGSIZE ? osm_vl_dumpb_size(reqs[b->queued].body) : 0);
        free(reqs);
        if (b->queued == 0) {
                osm_call_set_cancel(call, NULL, NULL);
                osm_store_batch_reply(call, OSM_STORE_IFACE_STORE, &d->cfg, b, p->name);
                free(p);
        }
}

/* ---- Query ---- */

static void query_done(int r, const char *params, size_t len, void *userdata) {
        pending *p = userdata;
        if (p->call) {
                if (r < 0)
                        reply_store_error(p->call, p->d, r, r == -EINVAL ? "invalid cursor" : NULL, p->name);
                else
                        osm_call_reply_text(p->call, params, len, false);
        }
        free(p);
}

static void method_query(osm_call *call, json_t *params, void *userdata) {
        osm_daemon *d = userdata;
        osm_store_query_req q;
        const char *why = NULL;
        int r = osm_store_parse_query(params, &q, &why);
        if (r < 0) {
                osm_call_invalid_param(call, why ? why : "");
                return;
        }
        if (tenant_scope(call, q.collection) < 0)
                return;
        pending *p = pending_new(call, d);
        if (!p) {
                osm_call_errorf(call, OSM_E_INTERNAL_ERROR, "out of memory");
                return;
        }
        snprintf(p->name, sizeof(p->name), "%s", q.collection);
        r = osm_store_query_text(d->store, &q, query_done, p);
        if (r < 0) {
                osm_call_set_cancel(call, NULL, NULL);
                free(p);
                reply_store_error(call, d, r, r == -EINVAL ? "invalid cursor" : NULL, q.collection);
        }
}

/* A tenant sees its own collections; operators and readers see every name. */
static json_t *visible_collections(osm_call *call, json_t *arr) {
        const char *tenant = osm_call_tenant(call);
        if (!tenant || !arr)
                return arr;
        json_t *mine = json_array();
        size_t i;
        json_t *c;
        json_array_foreach(arr, i, c)
                if (osm_tenant_collection_ok(tenant, json_string_value(json_object_get(c, "name"))))
                        json_array_append(mine, c);
        json_decref(arr);
        return mine;
}

static void method_collections(osm_call *call, json_t *params, void *userdata) {
        osm_daemon *d = userdata;
        json_t *arr = NULL;
        int r = osm_store_collections(d->store, &arr);
        if (r < 0) {
                reply_store_error(call, d, r, "cannot list the collections", NULL);
                return;
        }
        osm_call_reply(call, json_pack("{s:o}", "collections", visible_collections(call, arr)), false);
}

static void retention_done(int r, void *userdata) {
        pending *p = userdata;
        if (p->call) {
                if (r < 0)
                        reply_store_error(p->call, p->d, r, NULL, p->name);
                else
                        osm_call_reply(p->call, json_pack("{s:s, s:I, s:I, s:I}", "collection", p->name,
                                "max_age", (json_int_t) p->ret.max_age_us,
                                "max_records", (json_int_t) p->ret.max_records,
                                "max_bytes", (json_int_t) p->ret.max_bytes), false);
        }
        free(p);
}

static void method_set_retention(osm_call *call, json_t *params, void *userdata) {
        osm_daemon *d = userdata;
        osm_store_retention ret;
        const char *coll = NULL, *why = NULL;
        int r = osm_store_parse_retention(params, &coll, &ret, &why);
        if (r < 0) {
                if (why && strcmp(why, "collection") == 0)
                        reply_put_error(call, d, &(osm_error) { -EINVAL, OSM_STORE_BAD_NAME, "invalid collection name" },
                                        0, coll);
                else
                        osm_call_invalid_param(call, why ? why : "");
                return;
        }
        if (tenant_scope(call, coll) < 0)
                return;
        pending *p = pending_new(call, d);
        if (!p) {
                osm_call_errorf(call, OSM_E_INTERNAL_ERROR, "out of memory");
                return;
        }
        p->ret = ret;
        snprintf(p->name, sizeof(p->name), "%s", coll);
        r = osm_store_set_retention(d->store, coll, &ret, json_is_true(json_object_get(params, "create")),
                                    retention_done, p);
        if (r < 0) {
                osm_call_set_cancel(call, NULL, NULL);
                free(p);
                reply_store_error(call, d, r, NULL, coll);
        }
}

/* ---- Delete (erasure) ---- */

static void delete_done(int r, void *userdata) {
        pending *p = userdata;
        if (p->call) {
                if (r < 0)
                        reply_store_error(p->call, p->d, r, NULL, p->name);
                else {
                        log_notice("store: erased %d records of %s on request", r, p->name);
                        osm_call_reply(p->call, json_pack("{s:s, s:i}", "collection", p->name, "deleted", r), false);
                }
        }
        free(p);
}

static void method_delete(osm_call *call, json_t *params, void *userdata) {
        osm_daemon *d = userdata;
        const char *coll = json_string_value(json_object_get(params, "collection"));
        const char *writer = json_string_value(json_object_get(params, "writer"));
        json_t *until = json_object_get(params, "until");
        if (!coll || !osm_name_valid(coll, OSM_STORE_MAX_NAME, true)) {
                reply_put_error(call, d, &(osm_error) { -EINVAL, OSM_STORE_BAD_NAME, "invalid collection name" }, 0,
                                coll ? coll : "");
                return;
        }
        if (writer && (!writer[0] || strlen(writer) > 255)) {
                osm_call_invalid_param(call, "writer");
                return;
        }
        pending *p = pending_new(call, d);
        if (!p) {
                osm_call_errorf(call, OSM_E_INTERNAL_ERROR, "out of memory");
                return;
        }
        snprintf(p->name, sizeof(p->name), "%s", coll);
        int r = osm_store_erase(d->store, coll, until ? json_integer_value(until) : INT64_MAX, writer, delete_done, p);
        if (r < 0) {
                osm_call_set_cancel(call, NULL, NULL);
                free(p);
                reply_store_error(call, d, r, NULL, coll);
        }
}

/* ---- Watch ---- */

static void watch_record(const osm_record *rec, void *userdata) {
        pending *p = userdata;
        if (!p->call)
                return;
        json_t *body = json_loads(rec->body, JSON_DECODE_ANY, NULL);
        json_t *o = json_pack("{s:{s:s, s:s, s:I, s:s, s:o}}", "record", "id", rec->id, "collection",
                              rec->collection, "time", (json_int_t) rec->time_us, "writer", rec->writer,
                              "body", body ? body : json_null());
        osm_call_reply(p->call, o, true);
}

static void watch_cancel(osm_call *c, void *userdata) {
        pending *p = userdata;
        osm_store_watch_remove(p->watch);
        free(p);
}

static void method_watch(osm_call *call, json_t *params, void *userdata) {
        osm_daemon *d = userdata;
        const char *pattern = json_string_value(json_object_get(params, "pattern"));
        if (!osm_call_more(call)) {
                osm_call_invalid_param(call, "more");   /* Watch streams records: call it with "more": true */
                return;
        }
        if (!pattern || !*pattern || strlen(pattern) > OSM_STORE_MAX_NAME) {
                osm_call_invalid_param(call, "pattern");
                return;
        }
        if (tenant_scope(call, pattern) < 0)
                return;
        pending *p = calloc(1, sizeof(*p));
        if (!p) {
                osm_call_errorf(call, OSM_E_INTERNAL_ERROR, "out of memory");
                return;
        }
        p->call = call;
        p->d = d;
        p->watch = osm_store_watch_add(d->store, pattern, watch_record, p);
        if (!p->watch) {
                free(p);
                osm_call_invalid_param(call, "pattern");
                return;
        }
        osm_call_set_cancel(call, watch_cancel, p);
}

/* ---- objects ---- */

static void object_put_done(int r, const char *hash, uint64_t size, bool created, void *userdata) {
        pending *p = userdata;
        if (p->call) {
                if (r < 0)
                        reply_store_error(p->call, p->d, r,
                                          r == -ETIMEDOUT ? "the content stopped arriving" : "cannot store the object", NULL);
                else
                        osm_call_reply(p->call, json_pack("{s:s, s:I, s:b}", "hash", hash, "size", (json_int_t) size,
                                                          "created", created), false);
        }
        free(p);
}

static void method_object_put(osm_call *call, json_t *params, void *userdata) {
        osm_daemon *d = userdata;
        json_t *pin = json_object_get(params, "pin");
        if (osm_call_n_fds(call) != 1) {
                osm_call_errorf(call, OSM_E_INVALID_MESSAGE,
                                "pass exactly one file descriptor with the content (got %zu)", osm_call_n_fds(call));
                return;
        }
        int fd = osm_call_take_fd(call, 0);
        pending *p = pending_new(call, d);
        if (!p) {
                osm_close(fd);
                osm_call_errorf(call, OSM_E_INTERNAL_ERROR, "out of memory");
                return;
        }
        int r = osm_store_object_put_fd(d->store, fd, pin ? json_is_true(pin) : true, object_put_done, p);
        if (r < 0) {
                osm_call_set_cancel(call, NULL, NULL);
                free(p);
                reply_store_error(call, d, r, r == -EBUSY ? "too many object transfers; try again" : "cannot store the object", NULL);
        }
}

static void method_object_get(osm_call *call, json_t *params, void *userdata) {
        osm_daemon *d = userdata;
        const char *hash = json_string_value(json_object_get(params, "hash"));
        int fd = -1;
        uint64_t size = 0;
        if (!osm_store_hash_valid(hash)) {
                osm_call_fail(call, osm_error_store_invalid_hash(hash ? hash : "",
                                                                 "not an object hash: expected 64 lowercase hex digits"));
                return;
        }
        int r = osm_store_object_open(d->store, hash, &fd, &size);
        if (r == -ENOENT) {
                osm_call_fail(call, osm_error_store_no_such_object(hash, "no such object"));
                return;
        }
        if (r < 0) {
                reply_store_error(call, d, r, "cannot open the object", NULL);
                return;
        }
        osm_call_reply_fds(call, json_pack("{s:I}", "size", (json_int_t) size), false, &fd, 1);
        osm_close(fd);
}

static void method_object_list(osm_call *call, json_t *params, void *userdata) {
        osm_daemon *d = userdata;
        json_t *arr = NULL;
        int r = osm_store_objects(d->store, &arr);
        if (r < 0) {
                reply_store_error(call, d, r, "cannot list the objects", NULL);
                return;
        }
        osm_call_reply(call, json_pack("{s:o}", "objects", arr), false);
}

static void object_rm_done(int r, void *userdata) {
        pending *p = userdata;
        if (p->call) {
                if (r == -ENOENT)
                        osm_call_fail(p->call, osm_error_store_no_such_object(p->name, "no such object"));
                else if (r < 0)
                        reply_store_error(p->call, p->d, r, "cannot remove the object", NULL);
                else
                        osm_call_reply(p->call, json_pack("{s:b}", "deleted", r > 0), false);
        }
        free(p);
}

static void method_object_remove(osm_call *call, json_t *params, void *userdata) {
        osm_daemon *d = userdata;
        const char *hash = json_string_value(json_object_get(params, "hash"));
        if (!osm_store_hash_valid(hash)) {
                osm_call_fail(call, osm_error_store_invalid_hash(hash ? hash : "",
                                                                 "not an object hash: expected 64 lowercase hex digits"));
                return;
        }
        pending *p = pending_new(call, d);
        if (!p) {
                osm_call_errorf(call, OSM_E_INTERNAL_ERROR, "out of memory");
                return;
        }
        snprintf(p->name, sizeof(p->name), "%s", hash);
        int r = osm_store_object_ref(d->store, hash, 0, true, object_rm_done, p);
        if (r < 0) {
                osm_call_set_cancel(call, NULL, NULL);
                free(p);
                reply_store_error(call, d, r, "cannot remove the object", NULL);
        }
}

static void gc_done(int r, void *userdata) {
        pending *p = userdata;
        if (p->call) {
                if (r < 0)
                        reply_store_error(p->call, p->d, r, "garbage collection failed", NULL);
                else
                        osm_call_reply(p->call, json_pack("{s:i}", "removed", r), false);
        }
        free(p);
}

static void method_object_gc(osm_call *call, json_t *params, void *userdata) {
        osm_daemon *d = userdata;
        pending *p = pending_new(call, d);
        if (!p) {
                osm_call_errorf(call, OSM_E_INTERNAL_ERROR, "out of memory");
                return;
        }
        int r = osm_store_object_gc(d->store, gc_done, p);
        if (r < 0) {
                osm_call_set_cancel(call, NULL, NULL);
                free(p);
                reply_store_error(call, d, r, "garbage collection failed", NULL);
        }
}

static const osm_method store_methods[] = {
        { OSM_M_STORE_PUT,          method_put,           OSM_ACCESS_TENANT },
        { OSM_M_STORE_PUT_BATCH,     method_put_batch,     OSM_ACCESS_TENANT },
        { OSM_M_STORE_QUERY,        method_query,         OSM_ACCESS_TENANT },
        { OSM_M_STORE_COLLECTIONS,  method_collections,   OSM_ACCESS_MONITOR },
        { OSM_M_STORE_SET_RETENTION, method_set_retention, OSM_ACCESS_TENANT },
        { OSM_M_STORE_DELETE,       method_delete,        OSM_ACCESS_WRITE },
        { OSM_M_STORE_WATCH,        method_watch,         OSM_ACCESS_TENANT },
        { OSM_M_STORE_OBJECT_PUT,    method_object_put,    OSM_ACCESS_WRITE },
        { OSM_M_STORE_OBJECT_GET,    method_object_get,    OSM_ACCESS_READ },
        { OSM_M_STORE_OBJECT_LIST,   method_object_list,   OSM_ACCESS_READ },
        { OSM_M_STORE_OBJECT_REMOVE, method_object_remove, OSM_ACCESS_WRITE },
        { OSM_M_STORE_OBJECT_GC,     method_object_gc,     OSM_ACCESS_WRITE },
};

/* ---- the subsystem ---- */

static void options_from_config(const osm_daemon *d, osm_store_options *o) {
        *o = (osm_store_options) {
                .state_dir = d->cfg.state_dir,
                .space_id = d->space_id,
                .db_budget = d->cfg.db_budget,
                .max_record_size = d->cfg.max_record_size,
                .commit_delay_us = d->cfg.commit_delay_us,
                .encrypt_objects = d->cfg.encrypt_objects,
                .max_object_size = d->cfg.max_object_size,
                .min_free = d->cfg.min_free,
        };
}

static int store_start(osm_daemon *d) {
        osm_store_options o;
        osm_error err = {};
        options_from_config(d, &o);
        int r = osm_store_open(d->loop, &o, &d->store, &err);
        if (r < 0) {
                log_error("store: %s (%s): %s", osm_error_message(&err, "cannot open"), d->cfg.state_dir, strerror(-r));
                return r;
        }
        /* PutBatch's records reach the store as the text they came in (see varlink.c) */
        r = osm_vl_set_raw_objects(OSM_M_STORE_PUT_BATCH, "records");
        if (r >= 0)
                r = osm_server_add_methods(d->server, store_methods, OSM_ARRAY_SIZE(store_methods), d);
        if (r < 0) {
                log_error("store: cannot register io.osmose.Store: %s", strerror(-r));
                osm_store_close(d->store);
                d->store = NULL;
                return r;
        }
        return 0;
}

static void store_stop(osm_daemon *d) {
        osm_store_close(d->store);
        d->store = NULL;
}

static osm_health store_health(osm_daemon *d, char *detail, size_t size) {
        char b1[32], b2[32];
        if (!d->store) {
                snprintf(detail, size, "not open");
                return OSM_HEALTH_FAILED;
        }
        uint64_t used = osm_store_db_used(d->store);
        if (d->cfg.db_budget > 0)
                snprintf(detail, size, "database %s of %s budget%s", osm_format_bytes(used, b1, sizeof(b1)),
                         osm_format_bytes(d->cfg.db_budget, b2, sizeof(b2)),
                         used >= d->cfg.db_budget ? " (full: writes refused)" : "");
        else
                snprintf(detail, size, "database %s, no budget", osm_format_bytes(used, b1, sizeof(b1)));
        return d->cfg.db_budget > 0 && used >= d->cfg.db_budget ? OSM_HEALTH_DEGRADED : OSM_HEALTH_OK;
}

static void store_status(osm_daemon *d, json_t *obj) {
        if (d->store)
                osm_store_stats(d->store, obj);
}

static void store_reload(osm_daemon *d, const osm_config *old) {
        osm_store_options o;
        options_from_config(d, &o);
        osm_store_set_options(d->store, &o);
}

const osm_subsystem osm_store_subsystem = {
        .name = "store",
        .start = store_start,
        .stop = store_stop,
        .health = store_health,
        .status = store_status,
        .reload = store_reload,
};
