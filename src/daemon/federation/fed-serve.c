/* fed-serve.c: serving remotes' requests: authentication, refusals, and one handler per request type. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "federation.h"
#include "osmose/log.h"
#include "osmose/varlink.h"

#include "daemon/channels/channels.h"
#include "daemon/store/store.h"
#include "osmose/channel.h"

/* --- logging of refusals: at most 20 lines a second, then a count of what was skipped --- */
static void log_refusal(osm_federation *f, const char *peer, const char *who, fed_refusal why,
                        const char *detail) {
        uint64_t now = osm_now_mono_us();
        if (now - f->log_window_us > 1000000) {
                if (f->log_suppressed)
                        log_warning("federation: %u more refused requests not logged", f->log_suppressed);
                f->log_window_us = now;
                f->log_in_window = 0;
                f->log_suppressed = 0;
        }
        if (++f->log_in_window > 20) {
                f->log_suppressed++;
                return;
        }
        log_warning("federation: refused request from %s (%s): %s%s%s", peer, who ?: "unknown sender",
                    fed_refusal_name(why), detail ? ": " : "", detail ?: "");
}

/* --- serving --- */
typedef struct srv_ctx {
        osm_federation *f;
        fed_req *req;
        fed_auth auth;
        char remote[128];
        bool counted;             /* counted in the remote's uploads until the body is in */
        /* an inbound push waiting for the store */
        unsigned pending, accepted, duplicates, rejected, transient;
        bool answered;
        char hash[65];            /* an object request waiting for the store */
} srv_ctx;

/* One audit row per refusal up to FED_REFUSAL_ROWS a minute; past that a flood is summed
 * into one row when the minute ends, so that every byte is still accounted for but a
 * flood cannot grow the audit without bound. */
static void audit_refusal(osm_federation *f, const char *who, const char *peer, const char *why, size_t len) {
        uint64_t now = osm_now_mono_us();
        if (now - f->refusal_window_us > 60 * 1000000ULL) {
                if (f->refusal_skipped) {
                        char what[64];
                        snprintf(what, sizeof(what), "%" PRIu64 " more refusals", f->refusal_skipped);
                        fed_audit_entry sum = {
                                .time_us = osm_now_real_us(), .peer = "(various)", .direction = "response",
                                .kind = "refusal", .collection = what,
                                .bytes = (int64_t) f->refusal_skipped_bytes, .status = "served",
                        };
                        fed_db_audit_add(f->db, &sum);
                }
                f->refusal_window_us = now;
                f->refusal_rows = 0;
                f->refusal_skipped = f->refusal_skipped_bytes = 0;
        }
        if (f->refusal_rows >= FED_REFUSAL_ROWS) {
                f->refusal_skipped++;
                f->refusal_skipped_bytes += len;
                return;
        }
        f->refusal_rows++;
        fed_audit_entry e = {
                .time_us = osm_now_real_us(), .remote = who, .peer = peer, .direction = "response",
                .kind = "refusal", .collection = why, .bytes = (int64_t) len, .status = "served",
        };
        fed_db_audit_add(f->db, &e);
}

static void respond_refusal(osm_federation *f, fed_req *req, const char *who, fed_refusal why,
                            const char *detail) {
        f->requests_refused++;
        f->refused[why]++;
        log_refusal(f, fed_req_peer(req), who, why, detail);
        _cleanup_json_ json_t *j = json_pack("{s:s, s:s}", "error", fed_refusal_name(why),
                                             "message", detail ?: fed_refusal_name(why));
        char *body = json_dumps(j, JSON_COMPACT);
        size_t len = body ? strlen(body) : 0;
        /* Refusals carry no data of this space, but they leave it too: audited, without
         * forcing a sync (an unauthenticated flood must not buy fsyncs). */
        audit_refusal(f, who, fed_req_peer(req), fed_refusal_name(why), len);
        fed_req_respond(req, fed_refusal_http(why), "application/json", (uint8_t *) body, len);
}

/* Seal pt to the sender, bound to its request, audit it durably, and answer 200. */
static void respond_sealed(osm_federation *f, fed_req *req, srv_ctx *ctx, fed_remote *r, const char *kind,
                           const void *pt, size_t len, const char *collection, const char *object,
                           int64_t records) {
        uint8_t binding[16];
        fed_box_binding(ctx->auth.sig, binding);
        uint8_t *ct = NULL;
        size_t ct_len = 0;
        if (fed_box_seal(r->box_key, binding, pt, len, &ct, &ct_len) < 0) {
                respond_refusal(f, req, r->name, FED_INTERNAL, "cannot encrypt the response");
                return;
        }
        fed_audit_entry e = {
                .time_us = osm_now_real_us(), .remote = r->name, .peer = fed_req_peer(req),
                .direction = "response", .kind = kind, .collection = collection, .object = object,
                .records = records, .bytes = (int64_t) ct_len, .status = "served",
        };
        if (fed_db_audit_add(f->db, &e) < 0 || fed_db_commit(f->db) < 0) {
                free(ct);
                respond_refusal(f, req, r->name, FED_INTERNAL, "cannot write the audit log");
                return;
        }
        f->bytes_out += ct_len;
        fed_req_respond(req, 200, "application/octet-stream", ct, ct_len);
}

static int srv_begin(fed_req *req, void *userdata) {
        osm_federation *f = userdata;
        f->requests_in++;
        if (strcmp(fed_req_method(req), "POST") != 0) {
                respond_refusal(f, req, NULL, FED_MALFORMED, "only POST is served");
                return 1;
        }
        fed_headers h = {
                fed_req_header(req, FED_HDR_FROM), fed_req_header(req, FED_HDR_TO),
                fed_req_header(req, FED_HDR_TIME), fed_req_header(req, FED_HDR_NONCE),
                fed_req_header(req, FED_HDR_SIG),
        };
        srv_ctx *ctx = calloc(1, sizeof(*ctx));
        if (!ctx) {
                respond_refusal(f, req, NULL, FED_BUSY, NULL);
                return 1;
        }
        ctx->f = f;
        ctx->req = req;
        osm_error perr = {};
        fed_refusal rr = fed_auth_parse(fed_req_method(req), fed_req_path(req), &h, &ctx->auth, &perr);
        const char *why = osm_error_message(&perr, NULL);
        if (rr == FED_OK)
                rr = fed_auth_check_envelope(&ctx->auth, f->d->space_id, osm_now_real_us(), f->listen_started_us);
        fed_remote *r = NULL;
        if (rr == FED_OK || rr == FED_STALE || rr == FED_WRONG_RECIPIENT) {
                /* Named in the log line even when refused for its envelope. */
                r = fed_remote_by_pk(f, ctx->auth.from_pk);
        }
        if (rr == FED_OK) {
                if (!r) {
                        rr = FED_UNKNOWN_KEY;
                        why = ctx->auth.from_id;
                }
        }
        if (rr == FED_OK) {
                uint64_t now = osm_now_mono_us();
                r->tokens = OSM_MIN(FED_RATE_BURST, r->tokens + (double) (now - r->tokens_mono_us) * FED_RATE_PER_S / 1e6);
                r->tokens_mono_us = now;
                if (r->tokens < 1.0)
                        rr = FED_RATE_LIMITED;
                else
                        r->tokens -= 1.0;
        }
        if (rr == FED_OK && fed_req_too_large(req))
                rr = FED_TOO_LARGE;
        /* A captured request replayed is refused before its body is read (the nonce is
         * recorded only once a signature holds, in srv_complete). */
        if (rr == FED_OK && fed_nonce_cache_contains(f->nonces, ctx->auth.from_pk, ctx->auth.nonce, osm_now_mono_us()))
                rr = FED_REPLAYED;
        if (rr == FED_OK && r->uploads >= FED_MAX_UPLOADS)
                rr = FED_BUSY;
        if (rr != FED_OK) {
                respond_refusal(f, req, r ? r->name : NULL, rr, why);
                free(ctx);
                return 1;
        }
        snprintf(ctx->remote, sizeof(ctx->remote), "%s", r->name);
        r->uploads++;
        ctx->counted = true;
        fed_req_set_data(req, ctx);
        return 0;
}

static void upload_done(osm_federation *f, srv_ctx *ctx) {
        if (!ctx->counted)
                return;
        ctx->counted = false;
        fed_remote *r = fed_remote_by_name(f, ctx->remote);
        if (r && r->uploads > 0)
                r->uploads--;
}

static void srv_gone(fed_req *req, void *userdata) {
        srv_ctx *ctx = fed_req_data(req);
        if (!ctx)
                return;
        upload_done(userdata, ctx);
        fed_req_set_data(req, NULL);
        ctx->req = NULL;
        if (ctx->pending == 0)
                free(ctx);   /* else the last store callback frees it */
}

static void serve_hello(osm_federation *f, fed_req *req, srv_ctx *ctx, fed_remote *r, json_t *j_in) {
        _cleanup_json_ json_t *j = json_pack("{s:s, s:s, s:I}", "space_id", f->d->space_id,
                                             "name", f->d->cfg.name ?: "", "time", (json_int_t) osm_now_real_us());
        _cleanup_free_ char *s = json_dumps(j, JSON_COMPACT);
        if (!s) {
                respond_refusal(f, req, r->name, FED_INTERNAL, NULL);
                return;
        }
        respond_sealed(f, req, ctx, r, "hello", s, strlen(s), NULL, NULL, 0);
}

/* Refuse a request whose context is still attached, and free the context. */
static void refuse_ctx(osm_federation *f, fed_req *req, srv_ctx *ctx, const char *who, fed_refusal why,
                       const char *detail) {
        fed_req_set_data(req, NULL);
        respond_refusal(f, req, who, why, detail);
        free(ctx);
}

static void push_finish(srv_ctx *ctx) {
        osm_federation *f = ctx->f;
        fed_req *req = ctx->req;
        if (!req) {
                free(ctx);
                return;
        }
        fed_req_set_data(req, NULL);
        fed_remote *r = fed_remote_by_name(f, ctx->remote);
        if (!r) {
                respond_refusal(f, req, NULL, FED_UNKNOWN_KEY, "remote removed meanwhile");
        } else if (ctx->transient) {
                /* Nothing is acknowledged: the sender keeps the batch and tries again; the
                 * records that did land are duplicates then, and dropped. */
                respond_refusal(f, req, r->name, FED_BUSY, "the store could not take every record now");
        } else {
                r->received += ctx->accepted;
                fed_db_remote_count(f->db, r->name, 0, ctx->accepted, 0);
                _cleanup_json_ json_t *j = json_pack("{s:i, s:i, s:i}", "accepted", ctx->accepted,
                                                     "duplicates", ctx->duplicates, "rejected", ctx->rejected);
                _cleanup_free_ char *s = json_dumps(j, JSON_COMPACT);
                respond_sealed(f, req, ctx, r, "ack", s, s ? strlen(s) : 0, NULL, NULL, 0);
        }
        free(ctx);
}

static void on_push_put(int res, const char *id, int64_t time_us, bool duplicate, void *userdata) {
        srv_ctx *ctx = userdata;
        if (res == 0 && duplicate)
                ctx->duplicates++;
        else if (res == 0)
                ctx->accepted++;
        else if (res == -EINVAL || res == -EMSGSIZE)
                ctx->rejected++;
        else
                ctx->transient++;
        if (--ctx->pending == 0)
                push_finish(ctx);
}

static void serve_records(osm_federation *f, fed_req *req, srv_ctx *ctx, fed_remote *r, json_t *j) {
        if (!f->d->store) {
                refuse_ctx(f, req, ctx, r->name, FED_BUSY, "the store is not running");
                return;
        }
        const char *coll = NULL;
        osm_error perr = {};
        if (fed_push_check(j, r->id, FED_MAX_RECORDS_IN, &coll, &perr) != FED_OK) {
                refuse_ctx(f, req, ctx, r->name, FED_BAD_PAYLOAD, perr.message);
                return;
        }
        json_t *recs = json_object_get(j, "records");
        char writer[OSM_STORE_MAX_WRITER];
        snprintf(writer, sizeof(writer), "remote:%s", r->id);
        size_t i;
        json_t *rec;
        ctx->pending = 1;   /* held until every put is queued */
        json_array_foreach(recs, i, rec) {
                osm_store_put_req pr = {
                        .collection = coll, .writer = writer, .body = json_object_get(rec, "body"),
                        .time_us = json_integer_value(json_object_get(rec, "time")),
                        .id = json_string_value(json_object_get(rec, "id")),
                };
                ctx->pending++;
                int ret = osm_store_put(f->d->store, &pr, on_push_put, ctx, NULL);
                if (ret < 0) {
                        ctx->pending--;
                        if (ret == -EINVAL || ret == -EMSGSIZE)
                                ctx->rejected++;
                        else
                                ctx->transient++;
                }
        }
        if (--ctx->pending == 0)
                push_finish(ctx);
        /* else: answered from on_push_put once the records are durable */
}

/* Answer with the size bytes of fd (an object, a kept bundle), or a refusal. Read on the
 * loop: bounded by FED_MAX_BODY, and a local file (or a pipe fed by the store's decrypting
 * thread). */
static void send_fd(osm_federation *f, fed_req *req, srv_ctx *ctx, fed_remote *r, int fd, uint64_t size,
                    const char *kind, const char *collection, const char *object) {
        char why[64];
        if (size > FED_MAX_BODY - 64) {
                snprintf(why, sizeof why, "%s: larger than a federation body", kind);
                respond_refusal(f, req, r->name, FED_TOO_LARGE, why);
                return;
        }
        _cleanup_free_ uint8_t *buf = malloc(size ? size : 1);
        if (!buf || osm_read_all(fd, buf, size) < 0) {
                snprintf(why, sizeof why, "%s: cannot read", kind);
                respond_refusal(f, req, r->name, FED_INTERNAL, why);
                return;
        }
        respond_sealed(f, req, ctx, r, kind, buf, size, collection, object, 0);
}

/* Read the object and answer with it (or a refusal). */
static void send_object(osm_federation *f, fed_req *req, srv_ctx *ctx, fed_remote *r, const char *hash) {
        _cleanup_close_ int fd = -1;
        uint64_t size = 0;
        int ret = osm_store_object_open(f->d->store, hash, &fd, &size);
        if (ret < 0) {
                respond_refusal(f, req, r->name, ret == -ENOENT ? FED_NOT_FOUND : FED_INTERNAL, "object: not here");
                return;
        }
        send_fd(f, req, ctx, r, fd, size, "object", NULL, hash);
}

/* The store has looked for a record of a shared collection that references the object. */
static void on_object_checked(int res, void *userdata) {
        srv_ctx *ctx = userdata;
        ctx->pending--;
        fed_req *req = ctx->req;
        if (!req) {   /* the remote has gone */
                free(ctx);
                return;
        }
        osm_federation *f = ctx->f;
        fed_req_set_data(req, NULL);
        fed_remote *r = fed_remote_by_name(f, ctx->remote);
        if (!r)
                respond_refusal(f, req, NULL, FED_UNKNOWN_KEY, "remote removed meanwhile");
        else if (res == 1)
                send_object(f, req, ctx, r, ctx->hash);
        else {
                if (res < 0)
                        log_warning("federation: checking whether %s is shared with %s: %s", ctx->hash, r->name,
                                    strerror(-res));
                respond_refusal(f, req, r->name, FED_NOT_FOUND, "object: not here");
        }
        free(ctx);
}

/* Only what was shared with this remote leaves: an object shared with it by hash (share
 * --object; bundles too), or one a record of a collection shared with it references.
 * Anything else is NotFound, the same answer as for an object that does not exist, so
 * that a remote cannot learn what is here by guessing hashes. */
static void serve_object(osm_federation *f, fed_req *req, srv_ctx *ctx, fed_remote *r, json_t *j) {
        const char *hash = json_string_value(json_object_get(j, "hash"));
        if (!hash || !osm_store_hash_valid(hash)) {
                refuse_ctx(f, req, ctx, r->name, FED_BAD_PAYLOAD, "object: bad hash");
                return;
        }
        if (!f->d->store) {
                refuse_ctx(f, req, ctx, r->name, FED_BUSY, "the store is not running");
                return;
        }
        if (fed_db_object_shared(f->db, hash, r->name)) {
                fed_req_set_data(req, NULL);
                send_object(f, req, ctx, r, hash);
                free(ctx);
                return;
        }
        char **colls = NULL;
        if (fed_db_shared_collections(f->db, r->name, &colls) < 0 || !colls || !colls[0]) {
                osm_strv_free(colls);
                refuse_ctx(f, req, ctx, r->name, FED_NOT_FOUND, "object: not here");
                return;
        }
        snprintf(ctx->hash, sizeof(ctx->hash), "%s", hash);
        ctx->pending = 1;
        int ret = osm_store_object_referenced(f->d->store, hash, (const char *const *) colls, on_object_checked, ctx);
        osm_strv_free(colls);
        if (ret < 0) {
                ctx->pending = 0;
                refuse_ctx(f, req, ctx, r->name, ret == -ECANCELED ? FED_BUSY : FED_INTERNAL, NULL);
        }
        /* else: answered from on_object_checked */
}

/* A channel shared with this remote (share --channel): its list as this space keeps it. A
 * channel not shared, or not kept here, is NotFound alike. */
static void serve_channel(osm_federation *f, fed_req *req, srv_ctx *ctx, fed_remote *r, json_t *j) {
        const char *channel = json_string_value(json_object_get(j, "channel"));
        if (!osm_name_valid(channel, OSM_CHANNEL_MAX_NAME, false)) {
                respond_refusal(f, req, r->name, FED_BAD_PAYLOAD, "channel: bad name");
                return;
        }
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        if (!fed_db_channel_shared(f->db, channel, r->name) || osm_channels_served_list(f->d, channel, &text, &len) < 0) {
                respond_refusal(f, req, r->name, FED_NOT_FOUND, "channel: not here");
                return;
        }
        respond_sealed(f, req, ctx, r, "channel", text, len, channel, NULL, 0);
}

/* A bundle that the list of a channel shared with this remote names, if it is kept here. */
static void serve_channel_bundle(osm_federation *f, fed_req *req, srv_ctx *ctx, fed_remote *r, json_t *j) {
        const char *channel = json_string_value(json_object_get(j, "channel"));
        const char *bundle = json_string_value(json_object_get(j, "bundle"));
        if (!osm_name_valid(channel, OSM_CHANNEL_MAX_NAME, false) || !bundle || !osm_store_hash_valid(bundle)) {
                respond_refusal(f, req, r->name, FED_BAD_PAYLOAD, "channel bundle: bad channel or bundle");
                return;
        }
        _cleanup_close_ int fd = -1;
        uint64_t size = 0;
        if (!fed_db_channel_shared(f->db, channel, r->name) ||
            osm_channels_served_bundle(f->d, channel, bundle, &fd, &size) < 0) {
                respond_refusal(f, req, r->name, FED_NOT_FOUND, "channel bundle: not here");
                return;
        }
        send_fd(f, req, ctx, r, fd, size, "channel-bundle", channel, bundle);
}

/* The request types served, one row each: adding one is a row here (its path in
 * fed-proto.h) and its handler. A handler answers with respond_sealed() or a refusal; one
 * that answers later (answers_later) owns ctx and frees it once answered. */
typedef void serve_fn(osm_federation *f, fed_req *req, srv_ctx *ctx, fed_remote *r, json_t *j);
static const struct {
        const char *path;
        serve_fn *serve;
        bool answers_later;
} routes[] = {
        { FED_PATH_HELLO, serve_hello, false },
        { FED_PATH_RECORDS, serve_records, true },   /* once the store made the records durable */
        { FED_PATH_OBJECT, serve_object, true },    /* once the store has looked for a reference */
        { FED_PATH_CHANNEL, serve_channel, false },
        { FED_PATH_CHANNEL_BUNDLE, serve_channel_bundle, false },
};

static void srv_complete(fed_req *req, void *userdata) {
        osm_federation *f = userdata;
        srv_ctx *ctx = fed_req_data(req);
        upload_done(f, ctx);
        if (fed_req_too_large(req)) {
                fed_req_set_data(req, NULL);
                respond_refusal(f, req, ctx->remote, FED_TOO_LARGE, NULL);
                free(ctx);
                return;
        }
        size_t len;
        const uint8_t *body = fed_req_body(req, &len);
        fed_auth_set_body(&ctx->auth, body ?: (const uint8_t *) "", len);
        fed_refusal rr = fed_auth_check_signature(&ctx->auth);
        if (rr == FED_OK) {
                /* Record the nonce only once the signature holds, so forged requests cannot
                 * fill the cache or burn a real sender's nonces. */
                int ret = fed_nonce_cache_insert(f->nonces, ctx->auth.from_pk, ctx->auth.nonce, osm_now_mono_us());
                if (ret == -EEXIST)
                        rr = FED_REPLAYED;
                else if (ret < 0)
                        rr = FED_BUSY;
        }
        fed_remote *r = rr == FED_OK ? fed_remote_by_pk(f, ctx->auth.from_pk) : NULL;
        if (rr == FED_OK && !r)
                rr = FED_UNKNOWN_KEY;
        _cleanup_free_ uint8_t *pt = NULL;
        size_t pt_len = 0;
        static const uint8_t zero_binding[16];
        if (rr == FED_OK && fed_box_open(r->box_key, zero_binding, body, len, &pt, &pt_len) < 0)
                rr = FED_BAD_PAYLOAD;
        json_error_t jerr;
        _cleanup_json_ json_t *j = NULL;
        if (rr == FED_OK && !(j = json_loadb((const char *) pt, pt_len, JSON_REJECT_DUPLICATES, &jerr)))
                rr = FED_BAD_PAYLOAD;
        if (rr == FED_OK && !json_is_object(j))
                rr = FED_BAD_PAYLOAD;
        if (rr != FED_OK) {
                fed_req_set_data(req, NULL);
                respond_refusal(f, req, ctx->remote, rr, NULL);
                free(ctx);
                return;
        }

        r->last_contact_us = osm_now_real_us();
        /* The remote just proved it is up: whatever waits for it can go now rather than
         * at the end of its backoff. */
        if (r->failing && !fed_remote_busy(r)) {
                uv_timer_stop(r->retry);
                r->backoff_ms = 0;
                r->need_hello = true;
                fed_remote_pump(r);
        }
        const char *path = fed_req_path(req);
        for (size_t i = 0; i < OSM_ARRAY_SIZE(routes); i++) {
                if (strcmp(path, routes[i].path) != 0)
                        continue;
                if (routes[i].answers_later) {
                        /* Answers now (a refusal) or later; either way ctx is then freed
                         * by the handler's path. */
                        routes[i].serve(f, req, ctx, r, j);
                        return;
                }
                fed_req_set_data(req, NULL);
                routes[i].serve(f, req, ctx, r, j);
                free(ctx);
                return;
        }
        fed_req_set_data(req, NULL);
        respond_refusal(f, req, r->name, FED_NOT_FOUND, path);
        free(ctx);
}

const fed_server_ops fed_serve_ops = {
        .begin = srv_begin,
        .complete = srv_complete,
        .gone = srv_gone,
};

