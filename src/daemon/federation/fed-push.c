/* fed-push.c: outgoing requests: signing and sending, the push pump over the outbox, and what answers them. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "federation.h"
#include "osmose/log.h"
#include "osmose/varlink.h"

/* --- outgoing requests --- */
static struct curl_slist *signed_headers(const fed_headers_out *h) {
        struct curl_slist *l = NULL, *n;
        char line[256];
#define ADD(fmt, v)                                                  \
        do {                                                         \
                snprintf(line, sizeof(line), fmt, v);                \
                n = sym_curl_slist_append(l, line);                      \
                if (!n) {                                            \
                        sym_curl_slist_free_all(l);                      \
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
int fed_send_signed(osm_federation *f, fed_remote *r, const char *path, const char *kind,
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
                sym_curl_slist_free_all(hdrs);
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
void fed_refusal_text(long status, const uint8_t *body, size_t len, char *buf, size_t size) {
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
        fed_slot_release(sl);

        if (res < 0) {
                fed_db_audit_finish(f->db, aid, (int64_t) sent, "failed");
                fed_remote_set_error(r, "%s: %s", kind, strerror(-res));
                fed_remote_backoff(r);
                return;
        }
        if (status != 200) {
                char msg[256];
                fed_refusal_text(status, body, len, msg, sizeof(msg));
                fed_db_audit_finish(f->db, aid, (int64_t) sent, "refused");
                fed_remote_set_error(r, "%s: %s", kind, msg);
                fed_remote_backoff(r);
                return;
        }
        _cleanup_free_ uint8_t *pt = NULL;
        size_t pt_len;
        if (fed_box_open(r->box_key, binding, body, len, &pt, &pt_len) < 0) {
                fed_db_audit_finish(f->db, aid, (int64_t) sent, "unverified");
                fed_remote_set_error(r, "%s: the response could not be verified (wrong key or tampered)", kind);
                fed_remote_backoff(r);
                return;
        }
        fed_db_audit_finish(f->db, aid, (int64_t) sent, "sent");
        json_error_t jerr;
        _cleanup_json_ json_t *j = json_loadb((const char *) pt, pt_len, 0, &jerr);

        if (strcmp(kind, "records") == 0) {
                if (!json_is_integer(json_object_get(j, "accepted"))) {
                        fed_remote_set_error(r, "records: malformed acknowledgement");
                        fed_remote_backoff(r);
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
                        fed_remote_set_error(r, "hello: the remote answered with another space id");
                        fed_remote_backoff(r);
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
        fed_remote_pump(r);
}

/* Fill r's window with requests while there is work, federation is on and no retry is
 * pending. Batches go in outbox order; after a failure nothing new starts until the
 * window has drained, and the next round starts again from the oldest unacknowledged. */
void fed_remote_pump(fed_remote *r) {
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
                                fed_remote_set_error(r, "cannot read the outbox");
                                fed_remote_backoff(r);
                                return;
                        }
                        if (!pt) {
                                if (!fed_remote_busy(r))
                                        r->queued = 0;   /* the count drifted: trust the table */
                                return;
                        }
                        kind = "records";
                        path = FED_PATH_RECORDS;
                        sl->first_seq = first;
                        sl->last_seq = last;
                } else if (r->need_hello && !fed_remote_busy(r)) {
                        kind = "hello";
                        path = FED_PATH_HELLO;
                        _cleanup_json_ json_t *hello = json_pack("{s:s, s:s}", "space_id", f->d->space_id,
                                                                 "name", f->d->cfg.name ?: "");
                        pt = json_dumps(hello, JSON_COMPACT);
                } else
                        return;
                if (!pt) {
                        fed_remote_backoff(r);
                        return;
                }
                sl->kind = kind;
                sl->n = n;
                int ret = fed_send_signed(f, r, path, kind, pt, strlen(pt), r->box_key, collection, NULL,
                                      (int64_t) n, on_remote_response, sl, &sl->call, &sl->audit_id, sl->sig);
                if (ret < 0) {
                        sl->call = NULL;
                        fed_remote_set_error(r, "%s: cannot send: %s", kind, strerror(-ret));
                        fed_remote_backoff(r);
                        return;
                }
                if (strcmp(kind, "records") == 0)
                        r->sent_upto = OSM_MAX(r->sent_upto, sl->last_seq);
        }
}

/* --- the outbox --- */
void fed_outbox_enqueue(osm_federation *f, fed_remote *r, const char *collection, const char *id,
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
        fed_remote_pump(r);
}
