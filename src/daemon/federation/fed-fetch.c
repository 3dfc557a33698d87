/* fed-fetch.c: fetching from a remote: an object, verified against its hash, into the store;
 * or a channel's list or bundle for the channels subsystem, which verifies it (signature,
 * bundle id) as from any source. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "federation.h"
#include "osmose/log.h"
#include "osmose/varlink.h"
#include <sys/mman.h>

#include "daemon/store/store.h"

struct fed_fetch {
        osm_federation *f;
        osm_call *call;
        char *remote;
        char hash[OSM_HASH_HEX];
        fed_call *http;
        uint8_t req_sig[OSM_SIG_BYTES];
        uint8_t box_key[FED_BOX_KEY_BYTES];
        int64_t audit_id;
        osm_federation_got_fn got;   /* a channel's file: handed over, not stored */
        void *got_ud;
        fed_fetch *prev, *next;
};

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

void fed_fetch_fail(fed_fetch *ft, const char *error, const char *fmt, ...) {
        char buf[256];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        if (ft->call)
                osm_call_errorf_name(ft->call, error, "%s", buf);
        ft->call = NULL;
        if (ft->got)
                ft->got(ft->got_ud, error, buf, -1);
        ft->got = NULL;
        fetch_free(ft);
}

static void fetch_cancel(osm_call *c, void *userdata) {
        fed_fetch *ft = userdata;
        ft->call = NULL;
        fetch_free(ft);
}

static void on_fetch_stored(int res, const char *hash, uint64_t size, bool created, void *userdata) {
        fed_fetch *ft = userdata;
        if (!ft->call) {
                fetch_free(ft);
                return;
        }
        if (res < 0) {
                fed_fetch_fail(ft, OSM_E_INTERNAL_ERROR, "cannot store the fetched object: %s", strerror(-res));
                return;
        }
        osm_call_reply(ft->call, json_pack("{s:s, s:I}", "hash", hash, "size", (json_int_t) size), false);
        ft->call = NULL;
        fetch_free(ft);
}

static void on_fetch_response(int res, long status, const uint8_t *body, size_t len, uint64_t sent, void *userdata) {
        fed_fetch *ft = userdata;
        osm_federation *f = ft->f;
        ft->http = NULL;
        f->bytes_out += sent;
        fed_remote *r = fed_remote_by_name(f, ft->remote);
        if (res < 0) {
                fed_db_audit_finish(f->db, ft->audit_id, (int64_t) sent, "failed");
                fed_fetch_fail(ft, OSM_E_FEDERATION_REMOTE_FAILED, "%s: %s", ft->remote, strerror(-res));
                return;
        }
        if (status != 200) {
                char msg[256];
                fed_refusal_text(status, body, len, msg, sizeof(msg));
                fed_db_audit_finish(f->db, ft->audit_id, (int64_t) sent, "refused");
                fed_fetch_fail(ft, status == 404 ? OSM_E_NOT_FOUND : OSM_E_FEDERATION_REMOTE_FAILED, "%s: %s", ft->remote, msg);
                return;
        }
        fed_db_audit_finish(f->db, ft->audit_id, (int64_t) sent, "sent");
        uint8_t binding[16];
        fed_box_binding(ft->req_sig, binding);
        _cleanup_free_ uint8_t *pt = NULL;
        size_t pt_len = 0;
        if (fed_box_open(ft->box_key, binding, body, len, &pt, &pt_len) < 0) {
                fed_fetch_fail(ft, OSM_E_FEDERATION_VERIFICATION_FAILED, "the response of %s could not be authenticated", ft->remote);
                return;
        }
        if (r) {
                r->last_contact_us = osm_now_real_us();
                fed_db_remote_contact(f->db, r->name, r->last_contact_us, NULL);
        }
        if (ft->got) {
                _cleanup_close_ int gfd = memfd_create("osmose-channel", MFD_CLOEXEC);
                if (gfd < 0 || osm_write_all(gfd, pt, pt_len) < 0 || lseek(gfd, 0, SEEK_SET) != 0) {
                        fed_fetch_fail(ft, OSM_E_INTERNAL_ERROR, "cannot buffer what %s sent", ft->remote);
                        return;
                }
                ft->got(ft->got_ud, NULL, NULL, steal_fd(&gfd));
                ft->got = NULL;
                fetch_free(ft);
                return;
        }
        uint8_t h[OSM_HASH_BYTES];
        char hex[OSM_HASH_HEX];
        crypto_generichash(h, sizeof(h), pt, pt_len, NULL, 0);
        osm_hash_hex(h, hex);
        if (strcmp(hex, ft->hash) != 0) {
                log_warning("federation: object from %s does not match its hash %s (got %s)", ft->remote, ft->hash, hex);
                fed_fetch_fail(ft, OSM_E_FEDERATION_VERIFICATION_FAILED, "the object from %s does not match its hash (got %s)", ft->remote, hex);
                return;
        }
        /* Hand the verified bytes to the store through a memfd: the store hashes again
         * while writing, so what lands is what was verified. */
        _cleanup_close_ int mfd = memfd_create("osmose-fetch", MFD_CLOEXEC);
        if (mfd < 0 || osm_write_all(mfd, pt, pt_len) < 0 || lseek(mfd, 0, SEEK_SET) != 0) {
                fed_fetch_fail(ft, OSM_E_INTERNAL_ERROR, "cannot buffer the object");
                return;
        }
        int ret = f->d->store ? osm_store_object_put_fd(f->d->store, steal_fd(&mfd), true, on_fetch_stored, ft) : -ENOTCONN;
        if (ret < 0)
                fed_fetch_fail(ft, OSM_E_NOT_AVAILABLE, "the store cannot take the object: %s", strerror(-ret));
}


static fed_fetch *fetch_new(osm_federation *f, fed_remote *r) {
        fed_fetch *ft = calloc(1, sizeof(*ft));
        if (!ft || !(ft->remote = strdup(r->name))) {
                free(ft);
                return NULL;
        }
        ft->f = f;
        memcpy(ft->box_key, r->box_key, sizeof(ft->box_key));
        ft->next = f->fetches;
        if (f->fetches)
                f->fetches->prev = ft;
        f->fetches = ft;
        return ft;
}

void fed_fetch_start(osm_federation *f, osm_call *call, fed_remote *r, const uint8_t h[OSM_HASH_BYTES]) {
        fed_fetch *ft = fetch_new(f, r);
        if (!ft) {
                osm_call_errorf(call, OSM_E_INTERNAL_ERROR, "out of memory");
                return;
        }
        ft->call = call;
        osm_hash_hex(h, ft->hash);
        _cleanup_json_ json_t *j = json_pack("{s:s}", "hash", ft->hash);
        _cleanup_free_ char *pt = json_dumps(j, JSON_COMPACT);
        int ret = pt ? fed_send_signed(f, r, FED_PATH_OBJECT, "object", pt, strlen(pt), ft->box_key, NULL, ft->hash, 0,
                                   on_fetch_response, ft, &ft->http, &ft->audit_id, ft->req_sig)
                     : -ENOMEM;
        if (ret < 0) {
                fed_fetch_fail(ft, OSM_E_INTERNAL_ERROR, "cannot send the request: %s", strerror(-ret));
                return;
        }
        osm_call_set_cancel(call, fetch_cancel, ft);
}

int osm_federation_channel_fetch(osm_daemon *d, const char *remote, const char *channel, const char *bundle,
                                 osm_federation_got_fn got, void *userdata) {
        osm_federation *f = d->federation;
        if (!f || !f->enabled || !f->client)
                return -ENOTCONN;
        fed_remote *r = fed_remote_by_name(f, remote);
        if (!r)
                return -ENOENT;
        fed_fetch *ft = fetch_new(f, r);
        if (!ft)
                return -ENOMEM;
        _cleanup_json_ json_t *j = bundle ? json_pack("{s:s, s:s}", "channel", channel, "bundle", bundle)
                                          : json_pack("{s:s}", "channel", channel);
        _cleanup_free_ char *pt = j ? json_dumps(j, JSON_COMPACT) : NULL;
        int ret = pt ? fed_send_signed(f, r, bundle ? FED_PATH_CHANNEL_BUNDLE : FED_PATH_CHANNEL,
                                       bundle ? "channel-bundle" : "channel", pt, strlen(pt), ft->box_key, channel,
                                       bundle, 0, on_fetch_response, ft, &ft->http, &ft->audit_id, ft->req_sig)
                     : -ENOMEM;
        if (ret < 0) {
                fetch_free(ft);
                return ret;
        }
        ft->got = got;
        ft->got_ud = userdata;
        return 0;
}
