/* federation.c: the federation subsystem: enable/disable, remotes, the signed and
 * encrypted exchange with them (serving and pushing), sharing of collections through a
 * bounded outbox, object fetches, and the audit of everything that leaves. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "daemon/federation/fed-build.h"
#include "federation.h"
#include "osmose/log.h"
#include "osmose/varlink.h"
#if HAVE_FED_STORE
#include "daemon/store/store.h"
#endif

#define IFACE "io.osmose.Federation."
#define ERR_DISABLED      IFACE "FederationDisabled"
#define ERR_REMOTE_NF     IFACE "RemoteNotFound"
#define ERR_REMOTE_EXISTS IFACE "RemoteExists"
#define ERR_REMOTE_FAILED IFACE "RemoteFailed"
#define ERR_BAD_URL       IFACE "InvalidURL"
#define ERR_BAD_KEY       IFACE "InvalidKey"
#define ERR_VERIFY        IFACE "VerificationFailed"

struct fed_fetch {
        osm_federation *f;
        osm_call *call;
        char *remote;
        char hash[OSM_HASH_HEX];
        fed_call *http;
        uint8_t req_sig[OSM_SIG_BYTES];
        uint8_t box_key[FED_BOX_KEY_BYTES];
        int64_t audit_id;
        fed_fetch *prev, *next;
};

struct fed_watch {
        char *collection;
#if HAVE_FED_STORE
        osm_store_watch *w;
#endif
        fed_watch *next;
};

static void remote_pump(fed_remote *r);

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

/* --- remotes --- */
static fed_remote *remote_by_name(osm_federation *f, const char *name) {
        for (fed_remote *r = f->remotes; r; r = r->next)
                if (strcmp(r->name, name) == 0)
                        return r;
        return NULL;
}

static fed_remote *remote_by_pk(osm_federation *f, const uint8_t pk[OSM_PUBKEY_BYTES]) {
        for (fed_remote *r = f->remotes; r; r = r->next)
                if (sodium_memcmp(r->pk, pk, OSM_PUBKEY_BYTES) == 0)
                        return r;
        return NULL;
}

static void close_free(uv_handle_t *h) {
        free(h);
}

static bool remote_busy(const fed_remote *r) {
        for (size_t i = 0; i < FED_WINDOW; i++)
                if (r->slots[i].call)
                        return true;
        return false;
}

/* Free a slot and recompute how far the batches in flight reach. */
static void slot_release(fed_slot *sl) {
        fed_remote *r = sl->remote;
        sl->call = NULL;
        sl->audit_id = 0;
        r->sent_upto = 0;
        for (size_t i = 0; i < FED_WINDOW; i++)
                if (r->slots[i].call && strcmp(r->slots[i].kind, "records") == 0)
                        r->sent_upto = OSM_MAX(r->sent_upto, r->slots[i].last_seq);
}

/* Abort what is in flight (disable, removal); the audit says so. */
static void remote_cancel(fed_remote *r, const char *status) {
        for (size_t i = 0; i < FED_WINDOW; i++) {
                fed_slot *sl = &r->slots[i];
                if (!sl->call)
                        continue;
                fed_call_cancel(sl->call);
                if (sl->audit_id > 0 && status)
                        fed_db_audit_finish(r->f->db, sl->audit_id, 0, status);
                slot_release(sl);
        }
}

static void remote_free(fed_remote *r) {
        if (!r)
                return;
        remote_cancel(r, NULL);
        if (r->retry) {
                uv_timer_stop(r->retry);
                uv_close((uv_handle_t *) r->retry, close_free);
        }
        if (r->box_key)
                sodium_free(r->box_key);
        free(r->name);
        free(r->url);
        free(r->last_error);
        free(r);
}

static int remote_new(osm_federation *f, const char *name, const char *url, const char *key,
                      fed_remote **out) {
        fed_remote *r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        r->f = f;
        for (size_t i = 0; i < FED_WINDOW; i++)
                r->slots[i].remote = r;
        r->name = strdup(name);
        r->url = strdup(url);
        r->retry = calloc(1, sizeof(*r->retry));
        r->box_key = osm_secret_alloc(FED_BOX_KEY_BYTES);
        if (!r->name || !r->url || !r->retry || !r->box_key) {
                free(r->retry);
                r->retry = NULL;
                remote_free(r);
                return -ENOMEM;
        }
        uv_timer_init(f->d->loop, r->retry);
        r->retry->data = r;
        if (osm_pubkey_decode(key, r->pk) < 0 || fed_box_key(&f->d->identity, r->pk, r->box_key) < 0) {
                remote_free(r);
                return -EINVAL;
        }
        osm_pubkey_encode(r->pk, r->key);
        osm_space_id(r->pk, r->id);
        r->tokens = FED_RATE_BURST;
        r->need_hello = true;
        *out = r;
        return 0;
}

static void remote_set_error(fed_remote *r, const char *fmt, ...) OSM_PRINTF(2, 3);
static void remote_set_error(fed_remote *r, const char *fmt, ...) {
        char buf[256];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        if (!r->last_error || strcmp(r->last_error, buf) != 0)
                log_warning("federation: remote %s: %s", r->name, buf);
        free(r->last_error);
        r->last_error = strdup(buf);
        r->failing = true;
        r->ever_failed = true;
        fed_db_remote_contact(r->f->db, r->name, 0, buf);
}

static const char *remote_state(const fed_remote *r) {
        if (!r->f->enabled)
                return "off";
        if (r->failing)
                return "offline";
        if (remote_busy(r))
                return "syncing";
        if (r->last_contact_us == 0)
                return "never";
        return r->queued > 0 ? "syncing" : "idle";
}

static void on_retry(uv_timer_t *t) {
        fed_remote *r = t->data;
        r->need_hello = r->need_hello || r->queued == 0;
        remote_pump(r);
}

static void remote_backoff(fed_remote *r) {
        if (uv_is_active((uv_handle_t *) r->retry))
                return;   /* another request of the window failed first */
        r->backoff_ms = r->backoff_ms ? OSM_MIN(r->backoff_ms * 2, FED_RETRY_MAX_MS) : FED_RETRY_MIN_MS;
        uv_timer_start(r->retry, on_retry, r->backoff_ms, 0);
}

/* --- outgoing requests --- */
static struct curl_slist *signed_headers(const fed_headers_out *h) {
        struct curl_slist *l = NULL, *n;
        char line[256];
#define ADD(fmt, v)                                                  \
        do {                                                         \
                snprintf(line, sizeof(line), fmt, v);                \
                n = curl_slist_append(l, line);                      \
                if (!n) {                                            \
                        curl_slist_free_all(l);                      \
                        return NULL;                                 \
                }                                                    \
                l = n;                                               \
        } while (0)
        ADD(FED_HDR_FROM ": %s", h->from);
        ADD(FED_HDR_TO ": %s", h->to);
        ADD(FED_HDR_TIME ": %s", h->time);
        ADD(FED_HDR_NONCE ": %s", h->nonce);
        ADD(FED_HDR_SIG ": %s", h->sig);
        ADD("%s", "Content-Type: application/octet-stream");
        ADD("%s", "Expect:");   /* no 100-continue round trip */
#undef ADD
        return l;
}

/* Encrypt plaintext to r, sign, write the audit entry (durably, before anything leaves)
 * and post it. On success the audit row id and the request's signature are returned. */
static int send_signed(osm_federation *f, fed_remote *r, const char *path, const char *kind,
                       const void *pt, size_t pt_len, const uint8_t *box_key,
                       const char *collection, const char *object, int64_t records,
                       fed_call_cb cb, void *userdata, fed_call **out_call, int64_t *out_audit,
                       uint8_t out_sig[OSM_SIG_BYTES]) {
        static const uint8_t zero_binding[16];
        uint8_t *ct = NULL;
        size_t ct_len = 0;
        int ret = fed_box_seal(box_key, zero_binding, pt, pt_len, &ct, &ct_len);
        if (ret < 0)
                return ret;
        fed_auth a;
        fed_headers_out h;
        ret = fed_auth_sign(&a, &f->d->identity, "POST", path, r->id, osm_now_real_us(), ct, ct_len, &h);
        if (ret < 0) {
                free(ct);
                return ret;
        }
        struct curl_slist *hdrs = signed_headers(&h);
        char url[640];
        size_t ul = strlen(r->url);
        snprintf(url, sizeof(url), "%.*s%s", (int) (ul && r->url[ul - 1] == '/' ? ul - 1 : ul), r->url, path);
        if (!hdrs) {
                free(ct);
                return -ENOMEM;
        }
        fed_audit_entry e = {
                .time_us = osm_now_real_us(), .remote = r->name, .peer = r->url,
                .direction = "request", .kind = kind, .collection = collection, .object = object,
                .records = records, .bytes = (int64_t) ct_len, .status = "sending",
        };
        int64_t aid = fed_db_audit_add(f->db, &e);
        if (aid < 0 || fed_db_commit(f->db) < 0) {
                curl_slist_free_all(hdrs);
                free(ct);
                return -EIO;   /* no audit, no send */
        }
        ret = fed_client_post(f->client, url, hdrs, ct, ct_len, FED_MAX_BODY + FED_BOX_OVERHEAD,
                              cb, userdata, out_call);
        if (ret < 0) {
                fed_db_audit_finish(f->db, aid, 0, "failed");
                return ret;
        }
        f->requests_out++;
        *out_audit = aid;
        memcpy(out_sig, a.sig, OSM_SIG_BYTES);
        return 0;
}

/* Decode a refusal body {"error":…,"message":…} into a line. */
static void refusal_text(long status, const uint8_t *body, size_t len, char *buf, size_t size) {
        json_error_t jerr;
        _cleanup_json_ json_t *j = body && len < 4096 ? json_loadb((const char *) body, len, 0, &jerr) : NULL;
        const char *e = json_string_value(json_object_get(j, "error"));
        const char *m = json_string_value(json_object_get(j, "message"));
        snprintf(buf, size, "refused by the remote (HTTP %ld%s%s%s%s)", status, e ? ": " : "", e ?: "",
                 m ? ", " : "", m ?: "");
}

static void on_remote_response(int res, long status, const uint8_t *body, size_t len, uint64_t sent,
                               void *userdata) {
        fed_slot *sl = userdata;
        fed_remote *r = sl->remote;
        osm_federation *f = r->f;
        f->bytes_out += sent;
        const char *kind = sl->kind;
        int64_t aid = sl->audit_id, first = sl->first_seq, last = sl->last_seq;
        uint8_t binding[16];
        fed_box_binding(sl->sig, binding);
        slot_release(sl);

        if (res < 0) {
                fed_db_audit_finish(f->db, aid, (int64_t) sent, "failed");
                remote_set_error(r, "%s: %s", kind, strerror(-res));
                remote_backoff(r);
                return;
        }
        if (status != 200) {
                char msg[256];
                refusal_text(status, body, len, msg, sizeof(msg));
                fed_db_audit_finish(f->db, aid, (int64_t) sent, "refused");
                remote_set_error(r, "%s: %s", kind, msg);
                remote_backoff(r);
                return;
        }
        _cleanup_free_ uint8_t *pt = NULL;
        size_t pt_len;
        if (fed_box_open(r->box_key, binding, body, len, &pt, &pt_len) < 0) {
                fed_db_audit_finish(f->db, aid, (int64_t) sent, "unverified");
                remote_set_error(r, "%s: the response could not be verified (wrong key or tampered)", kind);
                remote_backoff(r);
                return;
        }
        fed_db_audit_finish(f->db, aid, (int64_t) sent, "sent");
        json_error_t jerr;
        _cleanup_json_ json_t *j = json_loadb((const char *) pt, pt_len, 0, &jerr);

        if (strcmp(kind, "records") == 0) {
                if (!json_is_integer(json_object_get(j, "accepted"))) {
                        remote_set_error(r, "records: malformed acknowledgement");
                        remote_backoff(r);
                        return;
                }
                /* Only what the remote acknowledged leaves the outbox: a crash or an outage
                 * before this line means the batch is sent again, and the remote's
                 * idempotent insert (ids unique per origin) drops the duplicates. */
                int n = fed_db_outbox_ack(f->db, r->name, first, last);
                if (n > 0) {
                        r->queued = r->queued > (uint64_t) n ? r->queued - (uint64_t) n : 0;
                        r->sent += (uint64_t) n;
                        fed_db_remote_count(f->db, r->name, (uint64_t) n, 0, 0);
                }
        } else if (strcmp(kind, "hello") == 0) {
                const char *id = json_string_value(json_object_get(j, "space_id"));
                if (!id || strcmp(id, r->id) != 0) {
                        remote_set_error(r, "hello: the remote answered with another space id");
                        remote_backoff(r);
                        return;
                }
                r->need_hello = false;
        }
        if (r->failing)
                log_info("federation: remote %s reachable again", r->name);
        r->failing = false;
        free(r->last_error);
        r->last_error = NULL;
        r->backoff_ms = 0;
        r->last_contact_us = osm_now_real_us();
        fed_db_remote_contact(f->db, r->name, r->last_contact_us, NULL);
        remote_pump(r);
}

/* Fill r's window with requests while there is work, federation is on and no retry is
 * pending. Batches go in outbox order; after a failure nothing new starts until the
 * window has drained, and the next round starts again from the oldest unacknowledged. */
static void remote_pump(fed_remote *r) {
        osm_federation *f = r->f;
        if (!f->enabled || !f->client || uv_is_active((uv_handle_t *) r->retry))
                return;
        for (size_t i = 0; i < FED_WINDOW; i++) {
                fed_slot *sl = &r->slots[i];
                if (sl->call)
                        continue;
                const char *kind, *path;
                _cleanup_free_ char *pt = NULL, *collection = NULL;
                unsigned n = 0;
                if (r->queued > 0) {
                        int64_t first = 0, last = 0;
                        if (fed_db_outbox_peek(f->db, r->name, r->sent_upto, FED_BATCH_RECORDS, FED_BATCH_BYTES,
                                               &pt, &collection, &first, &last, &n) < 0) {
                                remote_set_error(r, "cannot read the outbox");
                                remote_backoff(r);
                                return;
                        }
                        if (!pt) {
                                if (!remote_busy(r))
                                        r->queued = 0;   /* the count drifted: trust the table */
                                return;
                        }
                        kind = "records";
                        path = "/v1/records";
                        sl->first_seq = first;
                        sl->last_seq = last;
                } else if (r->need_hello && !remote_busy(r)) {
                        kind = "hello";
                        path = "/v1/hello";
                        _cleanup_json_ json_t *hello = json_pack("{s:s, s:s}", "space_id", f->d->space_id,
                                                                 "name", f->d->cfg.name ?: "");
                        pt = json_dumps(hello, JSON_COMPACT);
                } else
                        return;
                if (!pt) {
                        remote_backoff(r);
                        return;
                }
                sl->kind = kind;
                sl->n = n;
                int ret = send_signed(f, r, path, kind, pt, strlen(pt), r->box_key, collection, NULL,
                                      (int64_t) n, on_remote_response, sl, &sl->call, &sl->audit_id, sl->sig);
                if (ret < 0) {
                        sl->call = NULL;
                        remote_set_error(r, "%s: cannot send: %s", kind, strerror(-ret));
                        remote_backoff(r);
                        return;
                }
                if (strcmp(kind, "records") == 0)
                        r->sent_upto = OSM_MAX(r->sent_upto, sl->last_seq);
        }
}

/* --- the audit's retention --- */
static void audit_prune(osm_federation *f) {
        uint64_t removed = 0;
        int64_t before = osm_now_real_us() - (int64_t) f->d->cfg.audit_max_age_us;
        if (fed_db_audit_prune(f->db, before, FED_AUDIT_MAX_ROWS, &removed) < 0)
                log_warning("federation: cannot prune the audit log");
        else if (removed)
                log_info("federation: pruned %" PRIu64 " audit entries past their retention", removed);
}

static void on_prune(uv_timer_t *t) {
        audit_prune(t->data);
}

static void on_commit(uv_check_t *c) {
        osm_federation *f = c->data;
        if (fed_db_commit(f->db) < 0)
                log_error("federation: cannot commit to federation.db");
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
        const char *why = NULL;
        fed_refusal rr = fed_auth_parse(fed_req_method(req), fed_req_path(req), &h, &ctx->auth, &why);
        if (rr == FED_OK)
                rr = fed_auth_check_envelope(&ctx->auth, f->d->space_id, osm_now_real_us(), f->listen_started_us);
        fed_remote *r = NULL;
        if (rr == FED_OK || rr == FED_STALE || rr == FED_WRONG_RECIPIENT) {
                /* Named in the log line even when refused for its envelope. */
                r = remote_by_pk(f, ctx->auth.from_pk);
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
        fed_remote *r = remote_by_name(f, ctx->remote);
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

static void serve_hello(osm_federation *f, fed_req *req, srv_ctx *ctx, fed_remote *r) {
        _cleanup_json_ json_t *j = json_pack("{s:s, s:s, s:I}", "space_id", f->d->space_id,
                                             "name", f->d->cfg.name ?: "", "time", (json_int_t) osm_now_real_us());
        _cleanup_free_ char *s = json_dumps(j, JSON_COMPACT);
        if (!s) {
                respond_refusal(f, req, r->name, FED_INTERNAL, NULL);
                return;
        }
        respond_sealed(f, req, ctx, r, "hello", s, strlen(s), NULL, NULL, 0);
}

#if HAVE_FED_STORE
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
        fed_remote *r = remote_by_name(f, ctx->remote);
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
        const char *coll = NULL, *why = NULL;
        if (fed_push_check(j, r->id, FED_MAX_RECORDS_IN, &coll, &why) != FED_OK) {
                refuse_ctx(f, req, ctx, r->name, FED_BAD_PAYLOAD, why);
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
                const char *put_why = NULL;
                ctx->pending++;
                int ret = osm_store_put(f->d->store, &pr, on_push_put, ctx, &put_why);
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

static void serve_object(osm_federation *f, fed_req *req, srv_ctx *ctx, fed_remote *r, json_t *j) {
        const char *hash = json_string_value(json_object_get(j, "hash"));
        if (!hash || !osm_store_hash_valid(hash)) {
                respond_refusal(f, req, r->name, FED_BAD_PAYLOAD, "object: bad hash");
                return;
        }
        if (!f->d->store) {
                respond_refusal(f, req, r->name, FED_BUSY, "the store is not running");
                return;
        }
        _cleanup_close_ int fd = -1;
        uint64_t size = 0;
        int ret = osm_store_object_open(f->d->store, hash, &fd, &size);
        if (ret < 0) {
                respond_refusal(f, req, r->name, ret == -ENOENT ? FED_NOT_FOUND : FED_INTERNAL, "object: not here");
                return;
        }
        if (size > FED_MAX_BODY - 64) {
                respond_refusal(f, req, r->name, FED_TOO_LARGE, "object: larger than a federation body");
                return;
        }
        /* Read on the loop: bounded by FED_MAX_BODY, and a local file (or a pipe fed by the
         * store's decrypting thread). */
        _cleanup_free_ uint8_t *buf = malloc(size ? size : 1);
        if (!buf || osm_read_all(fd, buf, size) < 0) {
                respond_refusal(f, req, r->name, FED_INTERNAL, "object: cannot read");
                return;
        }
        respond_sealed(f, req, ctx, r, "object", buf, size, NULL, hash, 0);
}
#endif

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
        fed_remote *r = rr == FED_OK ? remote_by_pk(f, ctx->auth.from_pk) : NULL;
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
        if (r->failing && !remote_busy(r)) {
                uv_timer_stop(r->retry);
                r->backoff_ms = 0;
                r->need_hello = true;
                remote_pump(r);
        }
        const char *path = fed_req_path(req);
        if (strcmp(path, "/v1/hello") == 0) {
                fed_req_set_data(req, NULL);
                serve_hello(f, req, ctx, r);
                free(ctx);
                return;
        }
#if HAVE_FED_STORE
        if (strcmp(path, "/v1/records") == 0) {
                /* Answers now (a refusal) or once the store made the records durable;
                 * either way ctx is then freed by serve_records' path. */
                serve_records(f, req, ctx, r, j);
                return;
        }
        if (strcmp(path, "/v1/object") == 0) {
                fed_req_set_data(req, NULL);
                serve_object(f, req, ctx, r, j);
                free(ctx);
                return;
        }
#endif
        fed_req_set_data(req, NULL);
        respond_refusal(f, req, r->name, FED_NOT_FOUND, path);
        free(ctx);
}

static const fed_server_ops server_ops = {
        .begin = srv_begin,
        .complete = srv_complete,
        .gone = srv_gone,
};

/* --- enable / disable --- */
static void fetch_fail(fed_fetch *ft, const char *error, const char *fmt, ...) OSM_PRINTF(3, 4);

static void fed_stop_network(osm_federation *f) {
        f->enabled = false;
        fed_server_stop(f->server);
        f->server = NULL;
        while (f->fetches)
                fetch_fail(f->fetches, ERR_DISABLED, "federation was disabled");
        for (fed_remote *r = f->remotes; r; r = r->next) {
                remote_cancel(r, "cancelled");
                uv_timer_stop(r->retry);
                r->backoff_ms = 0;
        }
        if (f->client)
                f->connections_out += fed_client_connections(f->client);
        fed_client_free(f->client);
        f->client = NULL;
        f->nonces = fed_nonce_cache_free(f->nonces);
        f->listen[0] = '\0';
}

static int fed_start_network(osm_federation *f, const char *listen, const char **why) {
        f->nonces = fed_nonce_cache_new(FED_NONCE_CAPACITY, 2 * FED_MAX_SKEW_US + 1000000);
        if (!f->nonces) {
                *why = "out of memory";
                return -ENOMEM;
        }
        int r = fed_client_new(f->d->loop, &f->client);
        if (r < 0) {
                *why = "cannot set up libcurl";
                fed_stop_network(f);
                return r;
        }
        f->listen_started_us = osm_now_real_us();
        r = fed_server_start(f->d->loop, listen, FED_MAX_BODY + FED_BOX_OVERHEAD, &server_ops, f,
                             &f->server, f->listen, sizeof(f->listen), why);
        if (r < 0) {
                fed_stop_network(f);
                return r;
        }
        f->enabled = true;
        log_info("federation: enabled, listening on %s", f->listen);
        for (fed_remote *rm = f->remotes; rm; rm = rm->next) {
                rm->need_hello = true;
                remote_pump(rm);
        }
        return 0;
}

/* --- sharing --- */
#if HAVE_FED_STORE
static void on_shared_record(const osm_record *rec, void *userdata);
#endif

/* Make the set of store watches match the shares table. */
static void watches_sync(osm_federation *f) {
#if HAVE_FED_STORE
        _cleanup_json_ json_t *shares = NULL;
        if (!f->d->store || fed_db_shares(f->db, &shares) < 0)
                return;
        /* Drop watches of collections no longer shared. */
        for (fed_watch **pw = &f->watches; *pw;) {
                fed_watch *w = *pw;
                bool used = false;
                size_t i;
                json_t *s;
                json_array_foreach(shares, i, s)
                        used = used || strcmp(json_string_value(json_object_get(s, "collection")), w->collection) == 0;
                if (used) {
                        pw = &w->next;
                        continue;
                }
                *pw = w->next;
                osm_store_watch_remove(w->w);
                free(w->collection);
                free(w);
        }
        size_t i;
        json_t *s;
        json_array_foreach(shares, i, s) {
                const char *c = json_string_value(json_object_get(s, "collection"));
                bool have = false;
                for (fed_watch *w = f->watches; w; w = w->next)
                        have = have || strcmp(w->collection, c) == 0;
                if (have)
                        continue;
                fed_watch *w = calloc(1, sizeof(*w));
                if (!w || !(w->collection = strdup(c)) ||
                    !(w->w = osm_store_watch_add(f->d->store, c, on_shared_record, f))) {
                        if (w)
                                free(w->collection);
                        free(w);
                        log_error("federation: cannot watch collection %s", c);
                        continue;
                }
                w->next = f->watches;
                f->watches = w;
        }
#endif
}

#if HAVE_FED_STORE
static void enqueue_record(osm_federation *f, fed_remote *r, const char *collection, const char *id,
                           int64_t time_us, const char *body) {
        bool added = false;
        if (fed_db_outbox_add(f->db, r->name, collection, id, time_us, body, &added) < 0) {
                log_error("federation: cannot queue record %s for %s", id, r->name);
                return;
        }
        fed_db_share_high_water(f->db, collection, r->name, time_us);
        if (!added)
                return;
        r->queued++;
        uint64_t max = f->d->cfg.federation_max_queue;
        if (max > 0 && r->queued > max) {
                uint64_t dropped = 0;
                /* The batch in flight may be among the oldest: keep it consistent by
                 * letting its acknowledgement delete whatever is left of it. */
                if (fed_db_outbox_drop_oldest(f->db, r->name, r->queued - max, &dropped) == 0 && dropped) {
                        if (r->dropped == 0)
                                log_warning("federation: queue for %s is full (%" PRIu64 " records): dropping the oldest",
                                            r->name, max);
                        r->queued -= dropped;
                        r->dropped += dropped;
                        fed_db_remote_count(f->db, r->name, 0, 0, dropped);
                }
        }
        remote_pump(r);
}

static void on_shared_record(const osm_record *rec, void *userdata) {
        osm_federation *f = userdata;
        /* Only this space's own records are shared: received ones stay where they landed
         * (no loops, no re-export of another space's data). */
        if (strncmp(rec->writer, "remote:", 7) == 0)
                return;
        _cleanup_json_ json_t *shares = NULL;
        if (fed_db_shares(f->db, &shares) < 0)
                return;
        size_t i;
        json_t *s;
        json_array_foreach(shares, i, s) {
                if (strcmp(json_string_value(json_object_get(s, "collection")), rec->collection) != 0)
                        continue;
                if (rec->time_us < json_integer_value(json_object_get(s, "since")))
                        continue;
                fed_remote *r = remote_by_name(f, json_string_value(json_object_get(s, "remote")));
                if (r)
                        enqueue_record(f, r, rec->collection, rec->id, rec->time_us, rec->body);
        }
}
#endif

#if HAVE_FED_STORE
/* After a crash, records committed by the store just before it may have missed the
 * outbox (it commits once per loop iteration). At start each share asks the store for its
 * records since the newest one it queued; re-queueing one that was already sent is
 * harmless: the remote drops the duplicate. */
struct fed_catchup {
        osm_federation *f;        /* NULL once federation stopped: the store's callback frees */
        char *collection, *remote, *cursor;
        int64_t since;
        fed_catchup *next;
};

static void catchup_free(fed_catchup *c) {
        if (c->f) {
                fed_catchup **pc = &c->f->catchups;
                while (*pc && *pc != c)
                        pc = &(*pc)->next;
                if (*pc)
                        *pc = c->next;
        }
        free(c->collection);
        free(c->remote);
        free(c->cursor);
        free(c);
}

static void catchup_next(fed_catchup *c);

static void on_catchup_page(int res, json_t *records, const char *cursor, void *userdata) {
        fed_catchup *c = userdata;
        osm_federation *f = c->f;
        if (!f || res < 0) {
                if (f && res != -ENOENT)
                        log_warning("federation: catching up %s for %s: %s", c->collection, c->remote, strerror(-res));
                json_decref(records);
                catchup_free(c);
                return;
        }
        fed_remote *r = remote_by_name(f, c->remote);
        size_t i;
        json_t *rec;
        unsigned n = 0;
        json_array_foreach(records, i, rec) {
                const char *writer = json_string_value(json_object_get(rec, "writer"));
                if (!r || !writer || strncmp(writer, "remote:", 7) == 0)
                        continue;
                _cleanup_free_ char *body = json_dumps(json_object_get(rec, "body"), JSON_COMPACT | JSON_ENCODE_ANY);
                if (!body)
                        continue;
                uint64_t before = r->queued;
                enqueue_record(f, r, c->collection, json_string_value(json_object_get(rec, "id")),
                               json_integer_value(json_object_get(rec, "time")), body);
                n += r->queued > before;
        }
        json_decref(records);
        if (n)
                log_info("federation: queued %u records of %s for %s that had missed the queue", n, c->collection, c->remote);
        free(c->cursor);
        c->cursor = cursor && r ? strdup(cursor) : NULL;
        if (!c->cursor) {
                catchup_free(c);
                return;
        }
        catchup_next(c);
}

static void catchup_next(fed_catchup *c) {
        osm_store_query_req q = {
                .collection = c->collection, .since_us = c->since, .until_us = INT64_MAX,
                .limit = OSM_STORE_PAGE_RECORDS, .cursor = c->cursor,
        };
        if (osm_store_query(c->f->d->store, &q, on_catchup_page, c) < 0)
                catchup_free(c);
}

static void catchup_start(osm_federation *f) {
        _cleanup_json_ json_t *shares = NULL;
        if (!f->d->store || fed_db_shares(f->db, &shares) < 0)
                return;
        size_t i;
        json_t *s;
        json_array_foreach(shares, i, s) {
                fed_catchup *c = calloc(1, sizeof(*c));
                if (!c)
                        return;
                c->f = f;
                c->collection = strdup(json_string_value(json_object_get(s, "collection")));
                c->remote = strdup(json_string_value(json_object_get(s, "remote")));
                c->since = json_integer_value(json_object_get(s, "high_water"));
                if (!c->collection || !c->remote) {
                        catchup_free(c);
                        return;
                }
                c->next = f->catchups;
                f->catchups = c;
                catchup_next(c);
        }
}
#endif

/* --- object fetch --- */
static void fetch_free(fed_fetch *ft) {
        osm_federation *f = ft->f;
        if (ft->prev)
                ft->prev->next = ft->next;
        else
                f->fetches = ft->next;
        if (ft->next)
                ft->next->prev = ft->prev;
        fed_call_cancel(ft->http);
        sodium_memzero(ft->box_key, sizeof(ft->box_key));
        free(ft->remote);
        free(ft);
}

static void fetch_fail(fed_fetch *ft, const char *error, const char *fmt, ...) {
        char buf[256];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        if (ft->call)
                osm_call_errorf(ft->call, error, "%s", buf);
        ft->call = NULL;
        fetch_free(ft);
}

static void fetch_cancel(osm_call *c, void *userdata) {
        fed_fetch *ft = userdata;
        ft->call = NULL;
        fetch_free(ft);
}

#if HAVE_FED_STORE
static void on_fetch_stored(int res, const char *hash, uint64_t size, bool created, void *userdata) {
        fed_fetch *ft = userdata;
        if (!ft->call) {
                fetch_free(ft);
                return;
        }
        if (res < 0) {
                fetch_fail(ft, OSM_ERR_INTERNAL, "cannot store the fetched object: %s", strerror(-res));
                return;
        }
        osm_call_reply(ft->call, json_pack("{s:s, s:I}", "hash", hash, "size", (json_int_t) size), false);
        ft->call = NULL;
        fetch_free(ft);
}
#endif

static void on_fetch_response(int res, long status, const uint8_t *body, size_t len, uint64_t sent, void *userdata) {
        fed_fetch *ft = userdata;
        osm_federation *f = ft->f;
        ft->http = NULL;
        f->bytes_out += sent;
        fed_remote *r = remote_by_name(f, ft->remote);
        if (res < 0) {
                fed_db_audit_finish(f->db, ft->audit_id, (int64_t) sent, "failed");
                fetch_fail(ft, ERR_REMOTE_FAILED, "%s: %s", ft->remote, strerror(-res));
                return;
        }
        if (status != 200) {
                char msg[256];
                refusal_text(status, body, len, msg, sizeof(msg));
                fed_db_audit_finish(f->db, ft->audit_id, (int64_t) sent, "refused");
                fetch_fail(ft, status == 404 ? OSM_ERR_NOT_FOUND : ERR_REMOTE_FAILED, "%s: %s", ft->remote, msg);
                return;
        }
        fed_db_audit_finish(f->db, ft->audit_id, (int64_t) sent, "sent");
        uint8_t binding[16];
        fed_box_binding(ft->req_sig, binding);
        _cleanup_free_ uint8_t *pt = NULL;
        size_t pt_len = 0;
        if (fed_box_open(ft->box_key, binding, body, len, &pt, &pt_len) < 0) {
                fetch_fail(ft, ERR_VERIFY, "the response of %s could not be authenticated", ft->remote);
                return;
        }
        uint8_t h[OSM_HASH_BYTES];
        char hex[OSM_HASH_HEX];
        crypto_generichash(h, sizeof(h), pt, pt_len, NULL, 0);
        osm_hash_hex(h, hex);
        if (strcmp(hex, ft->hash) != 0) {
                log_warning("federation: object from %s does not match its hash %s (got %s)", ft->remote, ft->hash, hex);
                fetch_fail(ft, ERR_VERIFY, "the object from %s does not match its hash (got %s)", ft->remote, hex);
                return;
        }
        if (r) {
                r->last_contact_us = osm_now_real_us();
                fed_db_remote_contact(f->db, r->name, r->last_contact_us, NULL);
        }
#if HAVE_FED_STORE
        /* Hand the verified bytes to the store through a memfd: the store hashes again
         * while writing, so what lands is what was verified. */
        _cleanup_close_ int mfd = memfd_create("osmose-fetch", MFD_CLOEXEC);
        if (mfd < 0 || osm_write_all(mfd, pt, pt_len) < 0 || lseek(mfd, 0, SEEK_SET) != 0) {
                fetch_fail(ft, OSM_ERR_INTERNAL, "cannot buffer the object");
                return;
        }
        int ret = f->d->store ? osm_store_object_put_fd(f->d->store, steal_fd(&mfd), true, on_fetch_stored, ft) : -ENOTCONN;
        if (ret < 0)
                fetch_fail(ft, OSM_ERR_NOT_AVAILABLE, "the store cannot take the object: %s", strerror(-ret));
#else
        fetch_fail(ft, OSM_ERR_NOT_AVAILABLE, "verified, but this build has no store to keep it");
#endif
}

/* --- Varlink methods --- */
/* Enable on the given address, else the last one used, else the configured one. An
 * invalid address is refused before anything changes, so a typo does not switch an
 * enabled federation off; a valid one replaces the listener. */
static void m_enable(osm_call *call, json_t *params, void *userdata) {
        osm_federation *f = userdata;
        _cleanup_free_ char *saved = NULL;
        const char *listen = json_string_value(json_object_get(params, "listen"));
        if (!listen) {
                fed_db_get_setting(f->db, "listen", &saved);
                listen = saved ?: f->d->cfg.federation_listen;
        }
        if (!listen || fed_server_check_listen(listen) < 0) {
                osm_call_errorf(call, OSM_ERR_INVALID_PARAMETER,
                                "listen: must be ADDR:PORT or [ADDR6]:PORT with a numeric address");
                return;
        }
        char previous[sizeof(f->listen)] = "";
        if (f->enabled) {
                snprintf(previous, sizeof(previous), "%s", f->listen);
                fed_stop_network(f);
        }
        const char *why = NULL;
        int r = fed_start_network(f, listen, &why);
        if (r < 0) {
                osm_call_errorf(call, OSM_ERR_NOT_AVAILABLE, "cannot listen on %s: %s", listen, why);
                /* Keep serving where it did (the same port, now free again). */
                const char *why2 = NULL;
                if (previous[0] && fed_start_network(f, previous, &why2) < 0)
                        log_error("federation: cannot listen on %s again: %s; federation is off", previous, why2);
                return;
        }
        if (fed_db_set_setting(f->db, "enabled", "1") < 0 || fed_db_set_setting(f->db, "listen", listen) < 0)
                log_error("federation: cannot persist the enabled state");
        osm_call_reply(call, json_pack("{s:s}", "listen", f->listen), false);
}

static void m_disable(osm_call *call, json_t *params, void *userdata) {
        osm_federation *f = userdata;
        if (f->enabled) {
                fed_stop_network(f);
                log_info("federation: disabled");
        }
        if (fed_db_set_setting(f->db, "enabled", "0") < 0)
                log_error("federation: cannot persist the disabled state");
        osm_call_reply(call, NULL, false);
}

static json_t *refusals_json(osm_federation *f) {
        json_t *o = json_object();
        for (int i = 1; i < _FED_REFUSAL_MAX; i++)
                if (f->refused[i])
                        json_object_set_new(o, fed_refusal_name((fed_refusal) i), json_integer((json_int_t) f->refused[i]));
        return o;
}

static void m_status(osm_call *call, json_t *params, void *userdata) {
        osm_federation *f = userdata;
        char key[OSM_PUBKEY_B64];
        osm_pubkey_encode(f->d->identity.pk, key);
        size_t n = 0;
        for (fed_remote *r = f->remotes; r; r = r->next)
                n++;
        json_t *o = json_pack("{s:b, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:o}",
                              "enabled", f->enabled, "space_id", f->d->space_id, "key", key,
                              "remotes", (json_int_t) n, "requests_in", (json_int_t) f->requests_in,
                              "requests_refused", (json_int_t) f->requests_refused,
                              "requests_out", (json_int_t) f->requests_out, "bytes_out", (json_int_t) f->bytes_out,
                              "connections_out", (json_int_t) (f->connections_out + fed_client_connections(f->client)),
                              "refusals", refusals_json(f));
        if (f->enabled)
                json_object_set_new(o, "listen", json_string(f->listen));
        osm_call_reply(call, o, false);
}

static bool url_valid(const char *url) {
        size_t n = strlen(url);
        if (n > 512)
                return false;
        const char *rest;
        if (strncmp(url, "http://", 7) == 0)
                rest = url + 7;
        else if (strncmp(url, "https://", 8) == 0)
                rest = url + 8;
        else
                return false;
        if (!*rest || *rest == '/' || strchr(rest, '@') || strchr(url, '?') || strchr(url, '#'))
                return false;
        for (const char *p = url; *p; p++)
                if (*p <= ' ' || *p >= 0x7f)
                        return false;
        return true;
}

static void m_add_remote(osm_call *call, json_t *params, void *userdata) {
        osm_federation *f = userdata;
        const char *name = json_string_value(json_object_get(params, "name"));
        const char *url = json_string_value(json_object_get(params, "url"));
        const char *key = json_string_value(json_object_get(params, "key"));
        if (!osm_name_valid(name, 64, false)) {
                osm_call_errorf(call, OSM_ERR_INVALID_PARAMETER, "name: 1 to 64 characters of [A-Za-z0-9._-]");
                return;
        }
        if (!url_valid(url)) {
                osm_call_errorf(call, ERR_BAD_URL, "url must be http://HOST[:PORT][/PATH] or https://… without credentials, query or fragment");
                return;
        }
        uint8_t pk[OSM_PUBKEY_BYTES];
        if (osm_pubkey_decode(key, pk) < 0) {
                osm_call_errorf(call, ERR_BAD_KEY, "key must be a public key as printed by 'federation status' (43 characters of URL-safe base64)");
                return;
        }
        if (sodium_memcmp(pk, f->d->identity.pk, OSM_PUBKEY_BYTES) == 0) {
                osm_call_errorf(call, ERR_BAD_KEY, "that is this space's own key");
                return;
        }
        if (remote_by_name(f, name) || remote_by_pk(f, pk)) {
                osm_call_errorf(call, ERR_REMOTE_EXISTS, "a remote with that name or key is already paired");
                return;
        }
        fed_remote *r = NULL;
        int ret = remote_new(f, name, url, key, &r);
        if (ret < 0) {
                osm_call_errorf(call, ret == -EINVAL ? ERR_BAD_KEY : OSM_ERR_INTERNAL, "cannot use that key");
                return;
        }
        ret = fed_db_remote_add(f->db, name, url, r->key, r->id, osm_now_real_us());
        if (ret < 0) {
                remote_free(r);
                osm_call_errorf(call, ret == -EEXIST ? ERR_REMOTE_EXISTS : OSM_ERR_INTERNAL,
                                ret == -EEXIST ? "already paired" : "cannot save the remote");
                return;
        }
        r->next = f->remotes;
        f->remotes = r;
        log_info("federation: paired with remote %s (%s) at %s", r->name, r->id, r->url);
        osm_call_reply(call, json_pack("{s:s}", "space_id", r->id), false);
        remote_pump(r);
}

static void m_list_remotes(osm_call *call, json_t *params, void *userdata) {
        osm_federation *f = userdata;
        _cleanup_json_ json_t *rows = NULL, *shares = NULL;
        if (fed_db_remotes(f->db, &rows) < 0 || fed_db_shares(f->db, &shares) < 0) {
                osm_call_errorf(call, OSM_ERR_INTERNAL, "cannot read federation.db");
                return;
        }
        json_t *out = json_array();
        size_t i;
        json_t *row;
        json_array_foreach(rows, i, row) {
                const char *name = json_string_value(json_object_get(row, "name"));
                fed_remote *r = remote_by_name(f, name);
                json_t *sh = json_array();
                size_t k;
                json_t *s;
                json_array_foreach(shares, k, s)
                        if (strcmp(json_string_value(json_object_get(s, "remote")), name) == 0)
                                json_array_append(sh, json_object_get(s, "collection"));
                json_t *o = json_pack("{s:O, s:O, s:O, s:O, s:s, s:I, s:I, s:O, s:O, s:O, s:o}",
                                      "name", json_object_get(row, "name"), "url", json_object_get(row, "url"),
                                      "key", json_object_get(row, "key"), "space_id", json_object_get(row, "space_id"),
                                      "state", r ? remote_state(r) : "off",
                                      "last_contact", (json_int_t) (r && r->last_contact_us ? r->last_contact_us
                                                                    : json_integer_value(json_object_get(row, "last_contact"))),
                                      "queued", (json_int_t) (r ? r->queued : 0),
                                      "dropped", json_object_get(row, "dropped"), "sent", json_object_get(row, "sent"),
                                      "received", json_object_get(row, "received"), "shares", sh);
                const char *err = r ? r->last_error : json_string_value(json_object_get(row, "last_error"));
                if (err)
                        json_object_set_new(o, "last_error", json_string(err));
                json_array_append_new(out, o);
        }
        osm_call_reply(call, json_pack("{s:o}", "remotes", out), false);
}

static void m_remove_remote(osm_call *call, json_t *params, void *userdata) {
        osm_federation *f = userdata;
        const char *name = json_string_value(json_object_get(params, "name"));
        fed_remote **pr = &f->remotes;
        while (*pr && strcmp((*pr)->name, name) != 0)
                pr = &(*pr)->next;
        if (!*pr) {
                osm_call_error(call, ERR_REMOTE_NF, json_pack("{s:s}", "name", name));
                return;
        }
        fed_remote *r = *pr;
        remote_cancel(r, "cancelled");
        if (fed_db_remote_rm(f->db, name) < 0) {
                osm_call_errorf(call, OSM_ERR_INTERNAL, "cannot remove the remote from federation.db");
                return;
        }
        *pr = r->next;
        remote_free(r);
        watches_sync(f);
        log_info("federation: removed remote %s", name);
        osm_call_reply(call, NULL, false);
}

static void m_share(osm_call *call, json_t *params, void *userdata) {
        osm_federation *f = userdata;
        const char *coll = json_string_value(json_object_get(params, "collection"));
        const char *remote = json_string_value(json_object_get(params, "remote"));
        if (!osm_name_valid(coll, 128, true)) {
                osm_call_errorf(call, OSM_ERR_INVALID_PARAMETER, "collection: not a valid collection name");
                return;
        }
        if (!remote_by_name(f, remote)) {
                osm_call_error(call, ERR_REMOTE_NF, json_pack("{s:s}", "name", remote));
                return;
        }
#if !HAVE_FED_STORE
        osm_call_errorf(call, OSM_ERR_NOT_AVAILABLE, "this build has no store to share from");
        return;
#endif
        int ret = fed_db_share_add(f->db, coll, remote, osm_now_real_us());
        if (ret == -EEXIST) {
                osm_call_errorf(call, OSM_ERR_INVALID_PARAMETER, "%s is already shared with %s", coll, remote);
                return;
        }
        if (ret < 0) {
                osm_call_errorf(call, OSM_ERR_INTERNAL, "cannot save the share");
                return;
        }
        watches_sync(f);
        log_info("federation: sharing %s with %s", coll, remote);
        osm_call_reply(call, NULL, false);
}

static void m_unshare(osm_call *call, json_t *params, void *userdata) {
        osm_federation *f = userdata;
        const char *coll = json_string_value(json_object_get(params, "collection"));
        const char *remote = json_string_value(json_object_get(params, "remote"));
        int ret = fed_db_share_rm(f->db, coll, remote);
        if (ret == -ENOENT) {
                osm_call_errorf(call, OSM_ERR_NOT_FOUND, "%s is not shared with %s", coll, remote);
                return;
        }
        if (ret < 0) {
                osm_call_errorf(call, OSM_ERR_INTERNAL, "cannot remove the share");
                return;
        }
        fed_remote *r = remote_by_name(f, remote);
        if (r)
                r->queued = fed_db_outbox_count(f->db, r->name);
        watches_sync(f);
        log_info("federation: stopped sharing %s with %s", coll, remote);
        osm_call_reply(call, NULL, false);
}

static void m_fetch(osm_call *call, json_t *params, void *userdata) {
        osm_federation *f = userdata;
        const char *remote = json_string_value(json_object_get(params, "remote"));
        const char *hash = json_string_value(json_object_get(params, "hash"));
        uint8_t h[OSM_HASH_BYTES];
        if (osm_hash_parse(hash, h) < 0) {
                osm_call_errorf(call, OSM_ERR_INVALID_PARAMETER, "hash: 64 lowercase hex digits");
                return;
        }
        fed_remote *r = remote_by_name(f, remote);
        if (!r) {
                osm_call_error(call, ERR_REMOTE_NF, json_pack("{s:s}", "name", remote));
                return;
        }
        if (!f->enabled) {
                osm_call_errorf(call, ERR_DISABLED, "federation is disabled: osmosectl federation enable");
                return;
        }
        fed_fetch *ft = calloc(1, sizeof(*ft));
        if (!ft || !(ft->remote = strdup(remote))) {
                free(ft);
                osm_call_errorf(call, OSM_ERR_INTERNAL, "out of memory");
                return;
        }
        ft->f = f;
        ft->call = call;
        osm_hash_hex(h, ft->hash);
        memcpy(ft->box_key, r->box_key, sizeof(ft->box_key));
        ft->next = f->fetches;
        if (f->fetches)
                f->fetches->prev = ft;
        f->fetches = ft;
        _cleanup_json_ json_t *j = json_pack("{s:s}", "hash", ft->hash);
        _cleanup_free_ char *pt = json_dumps(j, JSON_COMPACT);
        int ret = pt ? send_signed(f, r, "/v1/object", "object", pt, strlen(pt), ft->box_key, NULL, ft->hash, 0,
                                   on_fetch_response, ft, &ft->http, &ft->audit_id, ft->req_sig)
                     : -ENOMEM;
        if (ret < 0) {
                fetch_fail(ft, OSM_ERR_INTERNAL, "cannot send the request: %s", strerror(-ret));
                return;
        }
        osm_call_set_cancel(call, fetch_cancel, ft);
}

static void m_audit(osm_call *call, json_t *params, void *userdata) {
        osm_federation *f = userdata;
        json_t *s = json_object_get(params, "since"), *l = json_object_get(params, "limit");
        int64_t since = s ? json_integer_value(s) : 0;
        json_int_t limit = l ? json_integer_value(l) : 10000;
        if (limit <= 0 || limit > 100000) {
                osm_call_errorf(call, OSM_ERR_INVALID_PARAMETER, "limit: 1 to 100000");
                return;
        }
        fed_db_commit(f->db);
        json_t *entries = NULL;
        if (fed_db_audit_list(f->db, since, (unsigned) limit, &entries) < 0) {
                osm_call_errorf(call, OSM_ERR_INTERNAL, "cannot read the audit log");
                return;
        }
        /* Varlink's optional fields are absent rather than null. */
        size_t i;
        json_t *e;
        json_array_foreach(entries, i, e) {
                const char *k;
                json_t *v;
                void *tmp;
                json_object_foreach_safe(e, tmp, k, v)
                        if (json_is_null(v))
                                json_object_del(e, k);
        }
        osm_call_reply(call, json_pack("{s:o}", "entries", entries), false);
}

static const osm_method methods[] = {
        { IFACE "Enable", m_enable, OSM_ACCESS_WRITE },
        { IFACE "Disable", m_disable, OSM_ACCESS_WRITE },
        { IFACE "GetStatus", m_status, OSM_ACCESS_READ },
        { IFACE "AddRemote", m_add_remote, OSM_ACCESS_WRITE },
        { IFACE "ListRemotes", m_list_remotes, OSM_ACCESS_READ },
        { IFACE "RemoveRemote", m_remove_remote, OSM_ACCESS_WRITE },
        { IFACE "Share", m_share, OSM_ACCESS_WRITE },
        { IFACE "Unshare", m_unshare, OSM_ACCESS_WRITE },
        { IFACE "FetchObject", m_fetch, OSM_ACCESS_WRITE },
        { IFACE "Audit", m_audit, OSM_ACCESS_READ },
};

/* --- the subsystem --- */
static int load_remotes(osm_federation *f) {
        _cleanup_json_ json_t *rows = NULL;
        int ret = fed_db_remotes(f->db, &rows);
        if (ret < 0)
                return ret;
        size_t i;
        json_t *row;
        json_array_foreach(rows, i, row) {
                fed_remote *r = NULL;
                const char *name = json_string_value(json_object_get(row, "name"));
                if (remote_new(f, name, json_string_value(json_object_get(row, "url")),
                               json_string_value(json_object_get(row, "key")), &r) < 0) {
                        log_error("federation: remote %s has an unusable key; skipped", name);
                        continue;
                }
                r->last_contact_us = json_integer_value(json_object_get(row, "last_contact"));
                r->queued = fed_db_outbox_count(f->db, name);
                r->next = f->remotes;
                f->remotes = r;
        }
        return 0;
}

static void fed_stop(osm_daemon *d);

static int fed_start(osm_daemon *d) {
        osm_federation *f = calloc(1, sizeof(*f));
        if (!f)
                return -ENOMEM;
        f->d = d;
        d->federation = f;
        char path[4096];
        snprintf(path, sizeof(path), "%s/federation.db", d->cfg.state_dir);
        const char *why = NULL;
        int r = fed_db_open(path, &f->db, &why);
        if (r < 0) {
                log_error("federation: %s: %s", path, why);
                fed_stop(d);
                return r;
        }
        f->commit = calloc(1, sizeof(*f->commit));
        f->prune = calloc(1, sizeof(*f->prune));
        if (!f->commit || !f->prune) {
                fed_stop(d);
                return -ENOMEM;
        }
        uv_check_init(d->loop, f->commit);
        f->commit->data = f;
        uv_check_start(f->commit, on_commit);
        uv_unref((uv_handle_t *) f->commit);
        uv_timer_init(d->loop, f->prune);
        f->prune->data = f;
        uv_timer_start(f->prune, on_prune, 0, 3600 * 1000);
        uv_unref((uv_handle_t *) f->prune);

        r = load_remotes(f);
        if (r < 0) {
                log_error("federation: cannot load remotes from %s", path);
                fed_stop(d);
                return r;
        }
        r = osm_server_add_methods(d->server, methods, OSM_ARRAY_SIZE(methods), f);
        if (r < 0) {
                log_error("federation: cannot register methods: %s", strerror(-r));
                fed_stop(d);
                return r;
        }
        watches_sync(f);
#if HAVE_FED_STORE
        catchup_start(f);
#endif

        /* The operator's last enable/disable wins over the configuration file. */
        _cleanup_free_ char *enabled = NULL, *listen = NULL;
        fed_db_get_setting(f->db, "enabled", &enabled);
        fed_db_get_setting(f->db, "listen", &listen);
        bool on = enabled ? strcmp(enabled, "1") == 0 : d->cfg.federation_enabled;
        if (on) {
                const char *addr = listen ?: d->cfg.federation_listen;
                r = fed_start_network(f, addr, &why);
                if (r < 0)
                        log_error("federation: cannot listen on %s: %s (federation stays off)", addr, why);
        }
        return 0;
}

static void fed_stop(osm_daemon *d) {
        osm_federation *f = d->federation;
        if (!f)
                return;
        fed_stop_network(f);
#if HAVE_FED_STORE
        while (f->catchups) {
                /* The store answers later (or with -ECANCELED when it closes): orphan them. */
                fed_catchup *c = f->catchups;
                f->catchups = c->next;
                c->f = NULL;
        }
#endif
        while (f->remotes) {
                fed_remote *r = f->remotes;
                f->remotes = r->next;
                remote_free(r);
        }
        while (f->watches) {
                fed_watch *w = f->watches;
                f->watches = w->next;
#if HAVE_FED_STORE
                osm_store_watch_remove(w->w);
#endif
                free(w->collection);
                free(w);
        }
        if (f->commit) {
                uv_check_stop(f->commit);
                uv_close((uv_handle_t *) f->commit, close_free);
        }
        if (f->prune) {
                uv_timer_stop(f->prune);
                uv_close((uv_handle_t *) f->prune, close_free);
        }
        f->db = fed_db_close(f->db);
        free(f);
        d->federation = NULL;
}

static void fed_status(osm_daemon *d, json_t *obj) {
        osm_federation *f = d->federation;
        if (!f->enabled) {
                osm_status_set(obj, OSM_HEALTH_DISABLED, "off: no listening socket, no outbound connection");
                return;
        }
        unsigned n = 0, offline = 0;
        for (fed_remote *r = f->remotes; r; r = r->next) {
                n++;
                offline += r->failing;
        }
        char detail[200];
        snprintf(detail, sizeof(detail), "listening on %s; %u remotes, %u offline", f->listen, n, offline);
        osm_status_set(obj, offline ? OSM_HEALTH_DEGRADED : OSM_HEALTH_OK, detail);
}

const osm_subsystem osm_federation_subsystem = {
        .name = "federation",
        .start = fed_start,
        .stop = fed_stop,
        .status = fed_status,
};
