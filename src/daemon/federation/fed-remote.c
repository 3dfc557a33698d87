/* fed-remote.c: paired remotes in memory: lookup, life cycle, state, errors and backoff. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "federation.h"
#include "osmose/log.h"
#include "osmose/varlink.h"

/* --- remotes --- */
fed_remote *fed_remote_by_name(osm_federation *f, const char *name) {
        for (fed_remote *r = f->remotes; r; r = r->next)
                if (strcmp(r->name, name) == 0)
                        return r;
        return NULL;
}

fed_remote *fed_remote_by_pk(osm_federation *f, const uint8_t pk[OSM_PUBKEY_BYTES]) {
        for (fed_remote *r = f->remotes; r; r = r->next)
                if (sodium_memcmp(r->pk, pk, OSM_PUBKEY_BYTES) == 0)
                        return r;
        return NULL;
}

void fed_close_free(uv_handle_t *h) {
        free(h);
}

bool fed_remote_busy(const fed_remote *r) {
        for (size_t i = 0; i < FED_WINDOW; i++)
                if (r->slots[i].call)
                        return true;
        return false;
}

/* Free a slot and recompute how far the batches in flight reach. */
void fed_slot_release(fed_slot *sl) {
        fed_remote *r = sl->remote;
        sl->call = NULL;
        sl->audit_id = 0;
        r->sent_upto = 0;
        for (size_t i = 0; i < FED_WINDOW; i++)
                if (r->slots[i].call && strcmp(r->slots[i].kind, "records") == 0)
                        r->sent_upto = OSM_MAX(r->sent_upto, r->slots[i].last_seq);
}

/* Abort what is in flight (disable, removal); the audit says so. */
void fed_remote_cancel(fed_remote *r, const char *status) {
        for (size_t i = 0; i < FED_WINDOW; i++) {
                fed_slot *sl = &r->slots[i];
                if (!sl->call)
                        continue;
                fed_call_cancel(sl->call);
                if (sl->audit_id > 0 && status)
                        fed_db_audit_finish(r->f->db, sl->audit_id, 0, status);
                fed_slot_release(sl);
        }
}

void fed_remote_free(fed_remote *r) {
        if (!r)
                return;
        fed_remote_cancel(r, NULL);
        if (r->retry) {
                uv_timer_stop(r->retry);
                uv_close((uv_handle_t *) r->retry, fed_close_free);
        }
        if (r->box_key)
                sodium_free(r->box_key);
        free(r->name);
        free(r->url);
        free(r->last_error);
        free(r);
}

int fed_remote_new(osm_federation *f, const char *name, const char *url, const char *key,
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
                fed_remote_free(r);
                return -ENOMEM;
        }
        uv_timer_init(f->d->loop, r->retry);
        r->retry->data = r;
        if (osm_pubkey_decode(key, r->pk) < 0 || fed_box_key(&f->d->identity, r->pk, r->box_key) < 0) {
                fed_remote_free(r);
                return -EINVAL;
        }
        osm_pubkey_encode(r->pk, r->key);
        osm_space_id(r->pk, r->id);
        r->tokens = FED_RATE_BURST;
        r->need_hello = true;
        *out = r;
        return 0;
}

void fed_remote_set_error(fed_remote *r, const char *fmt, ...) {
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

const char *fed_remote_state(const fed_remote *r) {
        if (!r->f->enabled)
                return "off";
        if (r->failing)
                return "offline";
        if (fed_remote_busy(r))
                return "syncing";
        if (r->last_contact_us == 0)
                return "never";
        return r->queued > 0 ? "syncing" : "idle";
}

static void on_retry(uv_timer_t *t) {
        fed_remote *r = t->data;
        r->need_hello = r->need_hello || r->queued == 0;
        fed_remote_pump(r);
}

void fed_remote_backoff(fed_remote *r) {
        if (uv_is_active((uv_handle_t *) r->retry))
                return;   /* another request of the window failed first */
        r->backoff_ms = r->backoff_ms ? OSM_MIN(r->backoff_ms * 2, FED_RETRY_MAX_MS) : FED_RETRY_MIN_MS;
        uv_timer_start(r->retry, on_retry, r->backoff_ms, 0);
}
