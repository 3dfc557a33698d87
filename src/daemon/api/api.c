/* api.c: the workload API: one Varlink server per workload instance, on a socket made for
 * that instance alone and bound at /run/osmose/api.sock in its sandbox, serving
 * io.osmose.Api with every call checked against the instance's grants at call time and
 * per-instance limits (calls/s, bytes written, watches, publications).
 *
 * The socket is the credential: whoever can connect to it speaks for the instance, so it
 * lives in a directory only root can traverse (state_dir/api/<instance>/, 0700) and is
 * reachable only through the sandbox's bind mount; its owner is the host uid that the
 * sandbox's uid 0 maps to. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon/api/api.h"
#include "daemon/daemon.h"
#include "daemon/store/store-params.h"
#include "daemon/store/store.h"
#include "osmose/grant.h"
#include "osmose/log.h"

#if __has_include("daemon/workload/workloads.h")
#include "daemon/workload/workloads.h"
#include "osmose/manifest.h"
#define API_HAVE_WORKLOADS 1
#else
#define API_HAVE_WORKLOADS 0
#endif
#if HAVE_AVAHI && __has_include("daemon/discovery/discovery.h")
#include "daemon/discovery/discovery.h"
#define API_HAVE_DISCOVERY 1
#else
#define API_HAVE_DISCOVERY 0
#endif

#define ERR_RATE        "io.osmose.Api.RateLimited"
#define ERR_QUOTA       "io.osmose.Api.QuotaExceeded"
#define ERR_NO_COLL     "io.osmose.Api.NoSuchCollection"
#define ERR_BAD_NAME    "io.osmose.Api.InvalidName"
#define ERR_BAD_RECORD  "io.osmose.Api.InvalidRecord"
#define ERR_STORE       "io.osmose.Api.StoreError"
#define ERR_NO_PUB      "io.osmose.Api.NoSuchPublication"
#define ERR_DISCOVERY   "io.osmose.Api.DiscoveryError"

#define REVOKE_CHECK_MS 250        /* how often open watches and publications are re-checked */
#define MAX_INSTANCE_ID 64
#define MAX_TYPE 64                /* bytes of a service type, "_name._tcp" */

typedef struct api_inst api_inst;

typedef struct api_watch {
        struct api_watch *next, *prev;
        api_inst *in;
        osm_call *call;
        osm_store_watch *sw;
        char pattern[OSM_GRANT_MAX_NAME + 1];
} api_watch;

typedef struct api_pub {
        struct api_pub *next;
        int64_t id;
        char type[MAX_TYPE];
        uint16_t port;
#if API_HAVE_DISCOVERY
        osm_discovery_pub *pub;
#endif
} api_pub;

struct api_inst {
        api_inst *next, *prev;
        osm_api *api;
        char id[MAX_INSTANCE_ID + 1];
        char workload[MAX_INSTANCE_ID + 1];
        char writer[OSM_STORE_MAX_WRITER];
        char *dir, *path;
        osm_server *server;
        unsigned refs;              /* the server, and each store request in flight */
        bool destroyed;
        double tokens;
        uint64_t refill_us;
        uint64_t calls, refused, bytes_stored;
        unsigned n_watches, n_pubs;
        api_watch *watches;
        api_pub *pubs;
        int64_t next_pub_id;
};

struct osm_api {
        osm_daemon *d;
        char *dir;                  /* state_dir/api */
        api_inst *insts;            /* live ones */
        unsigned n_live;
        unsigned refs;              /* instances not yet freed, plus the timer */
        bool stopped;
        uv_timer_t revoke_timer;
        osm_method *deny;           /* every method of other interfaces: PermissionDenied */
        size_t n_deny;
};

static void api_unref(osm_api *a);

/* ---------- instances' lifetime ---------- */

static void inst_unref(api_inst *in) {
        if (--in->refs > 0)
                return;
        osm_api *a = in->api;
        free(in->dir);
        free(in->path);
        free(in);
        api_unref(a);
}

static void pub_free(api_pub *p) {
#if API_HAVE_DISCOVERY
        osm_discovery_withdraw(p->pub);
#endif
        free(p);
}

static void on_server_freed(void *userdata) {
        api_inst *in = userdata;
        in->server = NULL;
        inst_unref(in);
}

/* The instance has ended for good: its socket goes, its clients are cut (their watches
 * end), its publications are withdrawn. Store requests in flight finish later and
 * release the last references. */
static void inst_destroy(api_inst *in) {
        osm_api *a = in->api;
        if (in->destroyed)
                return;
        in->destroyed = true;
        if (in->prev)
                in->prev->next = in->next;
        else
                a->insts = in->next;
        if (in->next)
                in->next->prev = in->prev;
        a->n_live--;
        while (in->pubs) {
                api_pub *p = in->pubs;
                in->pubs = p->next;
                pub_free(p);
        }
        in->n_pubs = 0;
        /* Unlink before the server closes the listening fd: a connect in between then
         * fails cleanly instead of reaching a socket nobody will accept on. */
        if (in->path)
                unlink(in->path);
        if (in->dir)
                rmdir(in->dir);
        if (in->server)
                osm_server_free(in->server, on_server_freed, in);   /* watch cancels run here */
        else
                inst_unref(in);
}

static api_inst *inst_find(osm_api *a, const char *id) {
        for (api_inst *in = a->insts; in; in = in->next)
                if (strcmp(in->id, id) == 0)
                        return in;
        return NULL;
}

/* ---------- checks every call goes through ---------- */

/* The grants the instance's workload holds now, or NULL if the instance has ended. */
static const char *const *inst_grants(api_inst *in) {
#if API_HAVE_WORKLOADS
        const char *workload = NULL;
        const char *const *grants = NULL;
        if (in->destroyed || !in->api->d->workloads ||
            osm_workloads_instance_info(in->api->d->workloads, in->id, &workload, &grants) < 0)
                return NULL;
        static const char *const none[] = { NULL };
        return grants ? grants : none;
#else
        (void) in;
        return NULL;
#endif
}

/* A refused call is answered only after the delay it is told to wait: a client that calls
 * in a loop is slowed to the rate instead of making the daemon spin on refusals (calls
 * on one connection run one at a time, and connections per instance are bounded). */
typedef struct refusal {
        uv_timer_t timer;
        osm_call *call;
        json_t *params;
} refusal;

static void on_refusal_closed(uv_handle_t *h) {
        refusal *rf = h->data;
        json_decref(rf->params);
        free(rf);
}

static void on_refusal_timer(uv_timer_t *t) {
        refusal *rf = t->data;
        osm_call *call = rf->call;
        osm_call_set_cancel(call, NULL, NULL);
        osm_call_error(call, ERR_RATE, steal_pointer(&rf->params));
        uv_close((uv_handle_t *) &rf->timer, on_refusal_closed);
}

static void refusal_cancel(osm_call *c, void *userdata) {
        refusal *rf = userdata;
        uv_close((uv_handle_t *) &rf->timer, on_refusal_closed);
}

static void refuse_later(api_inst *in, osm_call *call, int64_t delay_ms, json_t *params) {
        refusal *rf = calloc(1, sizeof *rf);
        if (!rf) {
                osm_call_error(call, ERR_RATE, params);
                return;
        }
        rf->call = call;
        rf->params = params;
        uv_timer_init(in->api->d->loop, &rf->timer);
        rf->timer.data = rf;
        osm_call_set_cancel(call, refusal_cancel, rf);
        uv_timer_start(&rf->timer, on_refusal_timer, (uint64_t) OSM_MIN(delay_ms, 1000), 0);
}

/* Admit a call: the instance still runs, and its token bucket has a token. On refusal
 * the call is finished with an error (a RateLimited one after its delay) and NULL
 * returned; else the current grants. */
static const char *const *api_enter(osm_call *call, api_inst *in) {
        const osm_config *cfg = &in->api->d->cfg;
        in->calls++;
        uint64_t now = osm_now_mono_us();
        double rate = (double) cfg->api_calls_per_second, burst = (double) cfg->api_burst;
        in->tokens = fmin(burst, in->tokens + (double) (now - in->refill_us) * rate / 1e6);
        in->refill_us = now;
        if (in->tokens < 1.0) {
                in->refused++;
                int64_t retry_ms = OSM_MAX((int64_t) ceil((1.0 - in->tokens) * 1000.0 / rate), 1);
                char msg[160];
                snprintf(msg, sizeof msg, "more than %" PRIu64 " calls per second (burst %" PRIu64 "); retry in %" PRId64 " ms",
                         cfg->api_calls_per_second, cfg->api_burst, retry_ms);
                refuse_later(in, call, retry_ms,
                             json_pack("{s:I, s:I, s:s}", "limit", (json_int_t) cfg->api_calls_per_second,
                                       "retry_after", (json_int_t) retry_ms, "message", msg));
                return NULL;
        }
        in->tokens -= 1.0;
        const char *const *grants = inst_grants(in);
        if (!grants) {
                osm_call_errorf(call, OSM_ERR_NOT_AVAILABLE, "instance %s has ended", in->id);
                return NULL;
        }
        return grants;
}

static void deny(osm_call *call, const char *grant, const char *fmt, ...) OSM_PRINTF(3, 4);
static void deny(osm_call *call, const char *grant, const char *fmt, ...) {
        char msg[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        json_t *p = json_pack("{s:s}", "message", msg);
        if (p && grant)
                json_object_set_new(p, "grant", json_string(grant));
        osm_call_error(call, OSM_ERR_PERMISSION_DENIED, p);
}

static bool collection_ok(osm_call *call, const char *coll) {
        if (osm_name_valid(coll, OSM_STORE_MAX_NAME, true))
                return true;
        osm_call_error(call, ERR_BAD_NAME,
                       json_pack("{s:s, s:s}", "name", coll ? coll : "", "message",
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
        deny(call, grant, "%s %s needs the grant %s", strcmp(kind, "read") == 0 ? "reading" : "writing", coll, grant);
        return false;
}

/* ---------- store calls ---------- */

/* A store request in flight on behalf of a call. call goes NULL if the client leaves. */
typedef struct api_op {
        osm_call *call;
        api_inst *in;
        size_t queued, done, stored;
        size_t bad_index;           /* SIZE_MAX: none */
        int bad_r;
        uint64_t unstored_bytes;    /* reserved against the quota but not written */
        size_t *sizes;              /* PutBatch: each record's size */
        char first[OSM_STORE_MAX_ID], last[OSM_STORE_MAX_ID];
        size_t first_index, last_index;
        char name[OSM_STORE_MAX_NAME + 1];
} api_op;

static void op_cancel(osm_call *c, void *userdata) {
        api_op *op = userdata;
        op->call = NULL;
}

static api_op *op_new(osm_call *call, api_inst *in) {
        api_op *op = calloc(1, sizeof *op);
        if (!op) {
                osm_call_errorf(call, OSM_ERR_INTERNAL, "out of memory");
                return NULL;
        }
        op->call = call;
        op->in = in;
        op->bad_index = SIZE_MAX;
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
        inst_unref(in);
}

/* Reply to a store failure r (index/stored for batches). */
static void store_error(osm_call *call, int r, const char *why, size_t index, size_t stored, const char *coll) {
        char msg[320];
        switch (r) {
        case -ENOENT:
                osm_call_error(call, ERR_NO_COLL, json_pack("{s:s}", "collection", coll ? coll : ""));
                return;
        case -EINVAL:
        case -ERANGE:
        case -EMSGSIZE:
                snprintf(msg, sizeof msg, "%s", r == -EMSGSIZE ? "record larger than the store's max-record-size"
                                                : why ? why : "invalid record");
                osm_call_error(call, ERR_BAD_RECORD, json_pack("{s:I, s:I, s:s}", "index", (json_int_t) index,
                                                               "stored", (json_int_t) stored, "message", msg));
                return;
        case -EBUSY:
                osm_call_errorf(call, OSM_ERR_BUSY, "%s", why ? why : "the store is busy; try again");
                return;
        case -EDQUOT:
                snprintf(msg, sizeof msg, "the room's database budget is reached");
                break;
        case -ENOSPC:
                snprintf(msg, sizeof msg, "no space left on the gateway's disk");
                break;
        default:
                snprintf(msg, sizeof msg, "%s%s%s", why ? why : "", why ? ": " : "", strerror(-r));
                break;
        }
        osm_call_error(call, ERR_STORE, json_pack("{s:I, s:s}", "stored", (json_int_t) stored, "message", msg));
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
        osm_call_error(call, ERR_QUOTA, json_pack("{s:s, s:I, s:s}", "quota", "bytes_stored", "limit", (json_int_t) max,
                                                  "message", msg));
        return false;
}

static void put_done(int r, const char *id, int64_t time_us, bool duplicate, void *userdata) {
        api_op *op = userdata;
        if (r < 0)
                op->in->bytes_stored -= OSM_MIN(op->in->bytes_stored, op->unstored_bytes);
        if (op->call) {
                if (r < 0)
                        store_error(op->call, r, NULL, 0, 0, op->name);
                else
                        osm_call_reply(op->call, json_pack("{s:s, s:I}", "id", id, "time", (json_int_t) time_us), false);
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
        const char *why = NULL;
        int r = osm_store_parse_put(params, &req, &why);
        if (r < 0 && !osm_name_valid(req.collection, OSM_STORE_MAX_NAME, true)) {
                collection_ok(call, req.collection);
                return;
        }
        if (r < 0) {
                store_error(call, r, why, 0, 0, req.collection);
                return;
        }
        if (!need_store(call, grants, "write", req.collection))
                return;
        req.writer = in->writer;
        size_t len = 0;
        r = osm_store_check_put(in->api->d->store, &req, &len, &why);
        if (r < 0) {
                store_error(call, r, why, 0, 0, req.collection);
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
        r = osm_store_put(in->api->d->store, &req, put_done, op, &why);
        if (r < 0) {
                in->bytes_stored -= len;
                osm_call_set_cancel(call, NULL, NULL);
                op->call = NULL;
                op_free(op);
                store_error(call, r, why, 0, 0, req.collection);
        }
}

static void batch_finish(api_op *op) {
        if (op->call) {
                if (op->bad_index != SIZE_MAX)
                        store_error(op->call, op->bad_r, NULL, op->bad_index, op->stored, op->name);
                else {
                        json_t *o = json_pack("{s:I}", "stored", (json_int_t) op->stored);
                        if (o && op->stored > 0) {
                                json_object_set_new(o, "first", json_string(op->first));
                                json_object_set_new(o, "last", json_string(op->last));
                        }
                        osm_call_reply(op->call, o, false);
                }
                op->call = NULL;
        }
        op_free(op);
}

static void batch_one_done(int r, const char *id, int64_t time_us, bool duplicate, void *userdata) {
        api_op *op = userdata;
        size_t index = op->done++;
        if (r < 0) {
                op->in->bytes_stored -= OSM_MIN(op->in->bytes_stored, op->sizes[index]);
                if (index < op->bad_index) {
                        op->bad_index = index;
                        op->bad_r = r;
                }
        } else {
                op->stored++;
                if (op->stored == 1 || index < op->first_index) {
                        snprintf(op->first, sizeof op->first, "%s", id);
                        op->first_index = index;
                }
                if (op->stored == 1 || index >= op->last_index) {
                        snprintf(op->last, sizeof op->last, "%s", id);
                        op->last_index = index;
                }
        }
        if (op->done == op->queued)
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
        const char *why = NULL;
        if (!collection_ok(call, coll) || !need_store(call, grants, "write", coll))
                return;
        int r = osm_store_check_batch(params, &why);
        if (r < 0) {
                store_error(call, r, why, 0, 0, coll);
                return;
        }
        size_t n = json_array_size(records);
        _cleanup_free_ size_t *sizes = calloc(n ? n : 1, sizeof *sizes);
        if (!sizes) {
                osm_call_errorf(call, OSM_ERR_INTERNAL, "out of memory");
                return;
        }
        /* Check every record first: a bad one refuses the batch before anything is
         * stored, and the quota is charged for the whole batch at once. */
        int64_t now = osm_now_real_us();
        uint64_t total = 0;
        for (size_t i = 0; i < n; i++) {
                osm_store_put_req req = { .collection = coll, .writer = in->writer,
                                          .body = json_array_get(records, i), .time_us = now };
                r = osm_store_check_put(store, &req, &sizes[i], &why);
                if (r < 0) {
                        store_error(call, r, why, i, 0, coll);
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
                r = osm_store_put(store, &req, batch_one_done, op, &why);
                if (r < 0) {
                        for (size_t k = i; k < n; k++)
                                in->bytes_stored -= OSM_MIN(in->bytes_stored, op->sizes[k]);
                        op->bad_index = i;
                        op->bad_r = r;
                        break;
                }
                op->queued++;
        }
        if (op->queued == 0 || op->done == op->queued)
                batch_finish(op);
}

static void query_done(int r, json_t *records, const char *cursor, void *userdata) {
        api_op *op = userdata;
        if (op->call) {
                if (r < 0)
                        store_error(op->call, r, r == -EINVAL ? "invalid cursor" : NULL, 0, 0, op->name);
                else {
                        json_t *o = json_pack("{s:O}", "records", records);
                        if (o && cursor)
                                json_object_set_new(o, "cursor", json_string(cursor));
                        osm_call_reply(op->call, o, false);
                }
                op->call = NULL;
        }
        json_decref(records);
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
        r = osm_store_query(in->api->d->store, &q, query_done, op);
        if (r < 0) {
                osm_call_set_cancel(call, NULL, NULL);
                op->call = NULL;
                op_free(op);
                store_error(call, r, r == -EINVAL ? "invalid cursor" : NULL, 0, 0, coll);
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
                store_error(call, r, "cannot list the collections", 0, 0, NULL);
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
        osm_call_reply(call, json_pack("{s:o}", "collections", mine), false);
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
        deny(call, grant, "the grant to read %s was revoked", grant + 11);
}

static void watch_record(const osm_record *rec, void *userdata) {
        api_watch *w = userdata;
        /* Check again for each record: a revoke takes effect before the next one. */
        const char *const *grants = inst_grants(w->in);
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
                osm_call_errorf(call, OSM_ERR_INVALID_PARAMETER, "Watch streams records: call it with \"more\": true");
                return;
        }
        if (!osm_grant_watch_pattern_valid(pattern)) {
                osm_call_error(call, OSM_ERR_INVALID_PARAMETER,
                               json_pack("{s:s, s:s}", "parameter", "pattern", "message",
                                         "a watch pattern is a collection name in which '*' stands for any part "
                                         "of one segment, e.g. sensors/*"));
                return;
        }
        if (!osm_grant_find_watch(grants, pattern)) {
                char grant[OSM_GRANT_MAX_NAME + 16];
                snprintf(grant, sizeof grant, "store:read:%s", pattern);
                deny(call, grant, "watching %s needs a read grant covering it, such as %s", pattern, grant);
                return;
        }
        uint64_t max = in->api->d->cfg.api_max_watches;
        if (in->n_watches >= max) {
                osm_call_error(call, ERR_QUOTA, json_pack("{s:s, s:I, s:s}", "quota", "watches", "limit", (json_int_t) max,
                                                          "message", "this instance has as many watches open as it may"));
                return;
        }
        api_watch *w = calloc(1, sizeof *w);
        if (!w) {
                osm_call_errorf(call, OSM_ERR_INTERNAL, "out of memory");
                return;
        }
        w->in = in;
        w->call = call;
        snprintf(w->pattern, sizeof w->pattern, "%s", pattern);
        w->sw = osm_store_watch_add(in->api->d->store, pattern, watch_record, w);
        if (!w->sw) {
                free(w);
                osm_call_errorf(call, OSM_ERR_INTERNAL, "cannot add a watch");
                return;
        }
        w->next = in->watches;
        if (in->watches)
                in->watches->prev = w;
        in->watches = w;
        in->n_watches++;
        osm_call_set_cancel(call, watch_cancel, w);
}

/* ---------- discovery ---------- */

static void m_services(osm_call *call, json_t *params, void *userdata) {
        api_inst *in = userdata;
        const char *const *grants = api_enter(call, in);
        if (!grants)
                return;
        if (!osm_grant_has(grants, "discovery:read")) {
                deny(call, "discovery:read", "reading the room's services needs the grant discovery:read");
                return;
        }
#if API_HAVE_DISCOVERY
        const char *type = json_string_value(json_object_get(params, "type"));
        if (!in->api->d->discovery) {
                osm_call_errorf(call, OSM_ERR_NOT_AVAILABLE, "discovery is off on this gateway");
                return;
        }
        json_t *list = osm_discovery_services(in->api->d->discovery, type);
        if (!list) {
                osm_call_errorf(call, OSM_ERR_INTERNAL, "cannot list the services");
                return;
        }
        osm_call_reply(call, json_pack("{s:o}", "services", list), false);
#else
        osm_call_errorf(call, OSM_ERR_NOT_AVAILABLE, "this osmosed is built without discovery");
#endif
}

static json_t *pub_json(const api_pub *p) {
        const char *name = "";
#if API_HAVE_DISCOVERY
        name = osm_discovery_pub_name(p->pub);
#endif
        return json_pack("{s:I, s:s, s:s, s:i}", "id", (json_int_t) p->id, "name", name ? name : "", "type", p->type,
                         "port", (int) p->port);
}

static void m_publish(osm_call *call, json_t *params, void *userdata) {
        api_inst *in = userdata;
        const char *const *grants = api_enter(call, in);
        if (!grants)
                return;
        const char *type = json_string_value(json_object_get(params, "type"));
        json_int_t port = json_integer_value(json_object_get(params, "port"));
        char grant[MAX_TYPE + 16];
        if (strlen(type) >= MAX_TYPE) {
                osm_call_invalid_param(call, "type");
                return;
        }
        snprintf(grant, sizeof grant, "publish:%s", type);
        if (!osm_grant_has(grants, grant)) {
                deny(call, grant, "publishing a service of type %s needs the grant %s", type, grant);
                return;
        }
        if (port < 1 || port > 65535) {
                osm_call_invalid_param(call, "port");
                return;
        }
        uint64_t max = in->api->d->cfg.api_max_publications;
        if (in->n_pubs >= max) {
                osm_call_error(call, ERR_QUOTA, json_pack("{s:s, s:I, s:s}", "quota", "publications", "limit",
                                                          (json_int_t) max, "message",
                                                          "this instance publishes as many services as it may"));
                return;
        }
#if API_HAVE_DISCOVERY
        const char *name = json_string_value(json_object_get(params, "name"));
        if (!in->api->d->discovery) {
                osm_call_errorf(call, OSM_ERR_NOT_AVAILABLE, "discovery is off on this gateway");
                return;
        }
        api_pub *p = calloc(1, sizeof *p);
        if (!p) {
                osm_call_errorf(call, OSM_ERR_INTERNAL, "out of memory");
                return;
        }
        const char *why = NULL;
        int r = osm_discovery_publish(in->api->d->discovery, name ? name : in->workload, type, (uint16_t) port,
                                      json_object_get(params, "txt"), &p->pub, &why);
        if (r < 0) {
                free(p);
                if (r == -EINVAL)
                        osm_call_error(call, ERR_DISCOVERY, json_pack("{s:s}", "message", why ? why : "invalid service"));
                else
                        osm_call_errorf(call, ERR_DISCOVERY, "cannot publish: %s", why ? why : strerror(-r));
                return;
        }
        p->id = ++in->next_pub_id;
        snprintf(p->type, sizeof p->type, "%s", type);
        p->port = (uint16_t) port;
        p->next = in->pubs;
        in->pubs = p;
        in->n_pubs++;
        log_info("api: instance %s publishes %s '%s' on port %d", in->id, type, osm_discovery_pub_name(p->pub), (int) port);
        osm_call_reply(call, json_pack("{s:o}", "publication", pub_json(p)), false);
#else
        osm_call_errorf(call, OSM_ERR_NOT_AVAILABLE, "this osmosed is built without discovery");
#endif
}

static void m_withdraw(osm_call *call, json_t *params, void *userdata) {
        api_inst *in = userdata;
        if (!api_enter(call, in))
                return;
        json_int_t id = json_integer_value(json_object_get(params, "id"));
        for (api_pub **pp = &in->pubs; *pp; pp = &(*pp)->next) {
                if ((*pp)->id == id) {
                        api_pub *p = *pp;
                        *pp = p->next;
                        in->n_pubs--;
                        pub_free(p);
                        osm_call_reply(call, NULL, false);
                        return;
                }
        }
        osm_call_error(call, ERR_NO_PUB, json_pack("{s:I}", "id", id));
}

static void m_publications(osm_call *call, json_t *params, void *userdata) {
        api_inst *in = userdata;
        if (!api_enter(call, in))
                return;
        json_t *arr = json_array();
        for (api_pub *p = in->pubs; p; p = p->next)
                json_array_append_new(arr, pub_json(p));
        osm_call_reply(call, json_pack("{s:o}", "publications", arr), false);
}

/* ---------- who am I ---------- */

static void m_info(osm_call *call, json_t *params, void *userdata) {
        api_inst *in = userdata;
        const char *const *grants = api_enter(call, in);
        if (!grants)
                return;
        const osm_config *cfg = &in->api->d->cfg;
        json_t *g = json_array();
        for (const char *const *p = grants; *p; p++)
                json_array_append_new(g, json_string(*p));
        json_t *o = json_pack("{s:s, s:s, s:o, s:{s:I, s:I, s:I, s:I, s:I}, s:{s:I, s:I, s:I, s:i, s:i}}",
                              "instance", in->id, "workload", in->workload, "grants", g,
                              "limits", "calls_per_second", (json_int_t) cfg->api_calls_per_second,
                              "burst", (json_int_t) cfg->api_burst, "bytes_stored", (json_int_t) cfg->api_max_bytes,
                              "watches", (json_int_t) cfg->api_max_watches,
                              "publications", (json_int_t) cfg->api_max_publications,
                              "usage", "calls", (json_int_t) in->calls, "refused", (json_int_t) in->refused,
                              "bytes_stored", (json_int_t) in->bytes_stored, "watches", (int) in->n_watches,
                              "publications", (int) in->n_pubs);
#if API_HAVE_WORKLOADS
        const osm_manifest *m = osm_workloads_instance_manifest(in->api->d->workloads, in->id);
        if (o && m)
                json_object_set_new(o, "manifest", osm_manifest_to_json(m));
#endif
        osm_call_reply(call, o, false);
}

/* ---------- introspection, restricted to what this socket serves ---------- */

static bool iface_served(const char *name) {
        return name && (strcmp(name, "org.varlink.service") == 0 || strcmp(name, "io.osmose") == 0 ||
                        strcmp(name, "io.osmose.Api") == 0);
}

static void m_get_info(osm_call *call, json_t *params, void *userdata) {
        osm_call_reply(call, json_pack("{s:s, s:s, s:s, s:s, s:[s, s, s]}", "vendor", "Osmose", "product",
                                       "osmosed workload API", "version", OSM_VERSION, "url", "https://osmose.invalid/",
                                       "interfaces", "org.varlink.service", "io.osmose", "io.osmose.Api"), false);
}

static void m_get_description(osm_call *call, json_t *params, void *userdata) {
        const char *name = json_string_value(json_object_get(params, "interface"));
        const osm_vl_interface *i = iface_served(name) ? osm_vl_find_interface(name) : NULL;
        if (!i) {
                osm_call_error(call, OSM_ERR_INTERFACE_NOT_FOUND, json_pack("{s:s}", "interface", name ? name : ""));
                return;
        }
        osm_call_reply(call, json_pack("{s:s}", "description", i->description), false);
}

/* Any method of the daemon's other interfaces (Store, Workload, Daemon…): a workload
 * never reaches them, whatever it holds. */
static void m_not_for_workloads(osm_call *call, json_t *params, void *userdata) {
        deny(call, NULL, "%s is not part of the workload API; workloads use io.osmose.Api", osm_call_method(call));
}

static const osm_method api_methods[] = {
        { "io.osmose.Api.Info",         m_info,         OSM_ACCESS_PUBLIC },
        { "io.osmose.Api.Put",          m_put,          OSM_ACCESS_PUBLIC },
        { "io.osmose.Api.PutBatch",     m_put_batch,    OSM_ACCESS_PUBLIC },
        { "io.osmose.Api.Query",        m_query,        OSM_ACCESS_PUBLIC },
        { "io.osmose.Api.Collections",  m_collections,  OSM_ACCESS_PUBLIC },
        { "io.osmose.Api.Watch",        m_watch,        OSM_ACCESS_PUBLIC },
        { "io.osmose.Api.Services",     m_services,     OSM_ACCESS_PUBLIC },
        { "io.osmose.Api.Publish",      m_publish,      OSM_ACCESS_PUBLIC },
        { "io.osmose.Api.Withdraw",     m_withdraw,     OSM_ACCESS_PUBLIC },
        { "io.osmose.Api.Publications", m_publications, OSM_ACCESS_PUBLIC },
        { "org.varlink.service.GetInfo", m_get_info,    OSM_ACCESS_PUBLIC },
        { "org.varlink.service.GetInterfaceDescription", m_get_description, OSM_ACCESS_PUBLIC },
};

static int build_deny_table(osm_api *a) {
        size_t n = 0;
        for (size_t i = 0; i < osm_vl_n_interfaces; i++)
                if (!iface_served(osm_vl_interfaces[i]->name))
                        n += osm_vl_interfaces[i]->n_methods;
        a->deny = calloc(n ? n : 1, sizeof *a->deny);
        if (!a->deny)
                return -ENOMEM;
        for (size_t i = 0; i < osm_vl_n_interfaces; i++) {
                const osm_vl_interface *vi = osm_vl_interfaces[i];
                if (iface_served(vi->name))
                        continue;
                for (size_t k = 0; k < vi->n_methods; k++)
                        a->deny[a->n_deny++] = (osm_method) { vi->methods[k].name, m_not_for_workloads, OSM_ACCESS_PUBLIC };
        }
        return 0;
}

/* ---------- creating an instance's socket ---------- */

/* Bind a listening socket at dir/api.sock. sun_path holds 108 bytes and the state
 * directory may be deep, so the bind goes through /proc/self/fd/N of the directory when
 * the full path would not fit. */
static int bind_socket(const char *dir, const char *path, uid_t owner) {
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        _cleanup_close_ int dfd = -1;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        if (strlen(path) < sizeof sa.sun_path)
                snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
        else {
                dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
                if (dfd < 0)
                        return -errno;
                snprintf(sa.sun_path, sizeof sa.sun_path, "/proc/self/fd/%d/api.sock", dfd);
        }
        mode_t old = umask(0177);   /* never briefly open to others */
        int r = bind(fd, (struct sockaddr *) &sa, sizeof sa);
        umask(old);
        if (r < 0)
                return -errno;
        /* The sandbox's uid 0 is owner on the host: it alone may connect (0600). If the
         * daemon cannot chown (not root), the mapped uid is its own and owns it already. */
        if (geteuid() == 0 && chown(path, owner, owner) < 0)
                return -errno;
        if (listen(fd, 64) < 0)
                return -errno;
        return steal_fd(&fd);
}

static osm_server_limits inst_limits(const osm_config *cfg) {
        return (osm_server_limits) {
                .max_connections = (unsigned) cfg->api_max_connections,
                .max_message = cfg->max_message_size,
                .max_buffered = cfg->max_buffered,
                .idle_timeout_ms = 0,   /* a workload may keep its connection for its whole life */
                .partial_timeout_ms = cfg->partial_timeout_us / 1000,
        };
}

int osm_api_instance_create(osm_api *a, const char *instance_id, const char *workload, char *path, size_t size) {
        if (!a || a->stopped)
                return -ENODEV;
        if (!osm_name_valid(instance_id, MAX_INSTANCE_ID, false) || !osm_name_valid(workload, MAX_INSTANCE_ID, false))
                return -EINVAL;
        api_inst *old = inst_find(a, instance_id);
        if (old)
                inst_destroy(old);
        api_inst *in = calloc(1, sizeof *in);
        if (!in)
                return -ENOMEM;
        in->api = a;
        in->refs = 1;
        a->refs++;
        snprintf(in->id, sizeof in->id, "%s", instance_id);
        snprintf(in->workload, sizeof in->workload, "%s", workload);
        snprintf(in->writer, sizeof in->writer, "workload:%s", workload);
        in->tokens = (double) a->d->cfg.api_burst;
        in->refill_us = osm_now_mono_us();
        in->destroyed = true;   /* not in the list until it is complete */
        int r;
        if (asprintf(&in->dir, "%s/%s", a->dir, instance_id) < 0 || asprintf(&in->path, "%s/api.sock", in->dir) < 0) {
                in->dir = in->path = NULL;
                r = -ENOMEM;
                goto fail;
        }
        if (strlen(in->path) >= size) {
                r = -ENAMETOOLONG;
                goto fail;
        }
        /* A stale directory of an earlier daemon: remove its socket, then make it ours. */
        unlink(in->path);
        if (mkdir(in->dir, 0700) < 0 && errno != EEXIST) {
                r = -errno;
                goto fail;
        }
        struct stat st;
        if (lstat(in->dir, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid()) {
                r = -EPERM;
                goto fail;
        }
        if ((st.st_mode & 07777) != 0700 && chmod(in->dir, 0700) < 0) {
                r = -errno;
                goto fail;
        }
        int fd = bind_socket(in->dir, in->path, (uid_t) a->d->cfg.uid_base);
        if (fd < 0) {
                r = fd;
                goto fail;
        }
        osm_server_limits lim = inst_limits(&a->d->cfg);
        r = osm_server_new(a->d->loop, fd, OSM_SERVER_ANY_PEER, &lim, &in->server);
        if (r < 0) {
                close(fd);
                goto fail;
        }
        in->refs++;   /* held by the server until on_server_freed */
        if ((r = osm_server_add_methods(in->server, api_methods, OSM_ARRAY_SIZE(api_methods), in)) < 0 ||
            (r = osm_server_add_methods(in->server, a->deny, a->n_deny, in)) < 0)
                goto fail;
        in->destroyed = false;
        in->next = a->insts;
        if (a->insts)
                a->insts->prev = in;
        a->insts = in;
        a->n_live++;
        snprintf(path, size, "%s", in->path);
        log_debug("api: instance %s: socket %s", instance_id, in->path);
        inst_unref(in);   /* the creation reference; the server's remains */
        return 0;
fail:
        if (in->path)
                unlink(in->path);
        if (in->dir)
                rmdir(in->dir);
        if (in->server)
                osm_server_free(in->server, on_server_freed, in);
        inst_unref(in);
        return r;
}

void osm_api_instance_destroy(osm_api *a, const char *instance_id) {
        if (!a)
                return;
        api_inst *in = inst_find(a, instance_id);
        if (in)
                inst_destroy(in);
}

#if API_HAVE_WORKLOADS
static int hook_create(void *userdata, const char *instance_id, const char *workload, char *path, size_t size) {
        return osm_api_instance_create(userdata, instance_id, workload, path, size);
}

static void hook_destroy(void *userdata, const char *instance_id) {
        osm_api_instance_destroy(userdata, instance_id);
}

static const osm_workload_api_hooks hooks = { .create = hook_create, .destroy = hook_destroy };
#endif

/* ---------- revokes while nothing is happening ---------- */

/* A watch on a quiet collection or a published service must also end when its grant is
 * revoked: look at them a few times a second (cheap: grant lists are short). */
static void on_revoke_timer(uv_timer_t *t) {
        osm_api *a = t->data;
        for (api_inst *in = a->insts; in; in = in->next) {
                const char *const *grants = inst_grants(in);
                if (!grants)
                        continue;   /* ended: the destroy hook follows */
                for (api_watch *w = in->watches, *next; w; w = next) {
                        next = w->next;
                        if (!osm_grant_find_watch(grants, w->pattern))
                                watch_revoke(w);
                }
                for (api_pub **pp = &in->pubs; *pp;) {
                        api_pub *p = *pp;
                        char grant[MAX_TYPE + 16];
                        snprintf(grant, sizeof grant, "publish:%s", p->type);
                        if (osm_grant_has(grants, grant)) {
                                pp = &p->next;
                                continue;
                        }
                        log_info("api: instance %s: %s revoked; withdrawing its service", in->id, grant);
                        *pp = p->next;
                        in->n_pubs--;
                        pub_free(p);
                }
        }
}

/* ---------- the subsystem ---------- */

static void api_free(osm_api *a) {
        free(a->deny);
        free(a->dir);
        free(a);
}

static void api_unref(osm_api *a) {
        if (--a->refs == 0 && a->stopped)
                api_free(a);
}

static void on_timer_closed(uv_handle_t *h) {
        api_unref(h->data);
}

/* Remove sockets left by an earlier run (instances do not survive the daemon). */
static void remove_stale(const char *dir) {
        DIR *dp = opendir(dir);
        if (!dp)
                return;
        struct dirent *e;
        while ((e = readdir(dp))) {
                if (e->d_name[0] == '.')
                        continue;
                char p[4200];
                snprintf(p, sizeof p, "%s/%s/api.sock", dir, e->d_name);
                unlink(p);
                snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
                rmdir(p);
        }
        closedir(dp);
}

static int api_start(osm_daemon *d) {
        osm_api *a = calloc(1, sizeof *a);
        if (!a)
                return -ENOMEM;
        a->d = d;
        a->refs = 1;   /* the timer */
        if (asprintf(&a->dir, "%s/api", d->cfg.state_dir) < 0) {
                a->dir = NULL;
                api_free(a);
                return -ENOMEM;
        }
        int r = osm_mkdir_p(a->dir, 0700);
        if (r < 0 || chmod(a->dir, 0700) < 0) {
                log_error("api: cannot create %s: %s", a->dir, strerror(r < 0 ? -r : errno));
                api_free(a);
                return r < 0 ? r : -errno;
        }
        remove_stale(a->dir);
        if ((r = build_deny_table(a)) < 0) {
                api_free(a);
                return r;
        }
        uv_timer_init(d->loop, &a->revoke_timer);
        a->revoke_timer.data = a;
        uv_timer_start(&a->revoke_timer, on_revoke_timer, REVOKE_CHECK_MS, REVOKE_CHECK_MS);
        uv_unref((uv_handle_t *) &a->revoke_timer);
        d->api = a;
#if API_HAVE_WORKLOADS
        if (d->workloads)
                osm_workloads_set_api_hooks(d->workloads, &hooks, a);
#endif
        return 0;
}

static void api_stop(osm_daemon *d) {
        osm_api *a = d->api;
        if (!a)
                return;
#if API_HAVE_WORKLOADS
        if (d->workloads)
                osm_workloads_set_api_hooks(d->workloads, NULL, NULL);
#endif
        while (a->insts)
                inst_destroy(a->insts);
        d->api = NULL;
        a->stopped = true;
        uv_close((uv_handle_t *) &a->revoke_timer, on_timer_closed);
}

static void api_status(osm_daemon *d, json_t *obj) {
        osm_api *a = d->api;
        if (!a) {
                osm_status_set(obj, OSM_HEALTH_FAILED, "not running");
                return;
        }
#if API_HAVE_WORKLOADS
        if (!d->workloads) {
                osm_status_set(obj, OSM_HEALTH_DISABLED, "the workload subsystem is not running");
                return;
        }
        char detail[96];
        snprintf(detail, sizeof detail, "%u instance socket(s)", a->n_live);
        osm_status_set(obj, OSM_HEALTH_OK, detail);
#else
        osm_status_set(obj, OSM_HEALTH_DISABLED, "built without the workload subsystem");
#endif
        json_object_set_new(obj, "info", json_pack("{s:i, s:b}", "instances", (int) a->n_live, "discovery",
                                                   API_HAVE_DISCOVERY && d->discovery != NULL));
}

const osm_subsystem osm_api_subsystem = {
        .name = "api",
        .start = api_start,
        .stop = api_stop,
        .status = api_status,
};
