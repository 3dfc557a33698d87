/* iface-federation.c: the io.osmose.Federation Varlink methods. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "federation.h"
#include "daemon/store/store.h"
#include "osmose/channel.h"
#include "osmose/log.h"
#include "osmose/varlink.h"

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
                osm_call_invalid_param(call, "listen");   /* must be ADDR:PORT or [ADDR6]:PORT with a numeric address */
                return;
        }
        osm_error err = {};
        if (fed_http_load(&err) < 0) {
                osm_call_errorf(call, OSM_E_NOT_AVAILABLE, "federation needs libcurl and libmicrohttpd: %s", err.message);
                return;
        }
        char previous[sizeof(f->listen)] = "";
        if (f->enabled) {
                snprintf(previous, sizeof(previous), "%s", f->listen);
                fed_network_stop(f);
        }
        int r = fed_network_start(f, listen, &err);
        if (r < 0) {
                osm_call_errorf(call, OSM_E_NOT_AVAILABLE, "cannot listen on %s: %s", listen,
                                osm_error_message(&err, strerror(-r)));
                /* Keep serving where it did (the same port, now free again). */
                osm_error err2 = {};
                if (previous[0] && (r = fed_network_start(f, previous, &err2)) < 0)
                        log_error("federation: cannot listen on %s again: %s; federation is off", previous,
                                  osm_error_message(&err2, strerror(-r)));
                return;
        }
        if (fed_db_set_setting(f->db, "enabled", "1") < 0 || fed_db_set_setting(f->db, "listen", listen) < 0)
                log_error("federation: cannot persist the enabled state");
        osm_call_reply(call, osm_reply_federation_enable(f->listen), false);
}

static void m_disable(osm_call *call, json_t *params, void *userdata) {
        osm_federation *f = userdata;
        if (f->enabled) {
                fed_network_stop(f);
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
                osm_call_invalid_param(call, "name");   /* 1 to 64 characters of [A-Za-z0-9._-] */
                return;
        }
        if (!url_valid(url)) {
                osm_call_errorf(call, OSM_E_FEDERATION_INVALID_URL, "url must be http://HOST[:PORT][/PATH] or https://… without credentials, query or fragment");
                return;
        }
        uint8_t pk[OSM_PUBKEY_BYTES];
        if (osm_pubkey_decode(key, pk) < 0) {
                osm_call_errorf(call, OSM_E_FEDERATION_INVALID_KEY, "key must be a public key as printed by 'federation status' (43 characters of URL-safe base64)");
                return;
        }
        if (sodium_memcmp(pk, f->d->identity.pk, OSM_PUBKEY_BYTES) == 0) {
                osm_call_errorf(call, OSM_E_FEDERATION_INVALID_KEY, "that is this space's own key");
                return;
        }
        if (fed_remote_by_name(f, name) || fed_remote_by_pk(f, pk)) {
                osm_call_errorf(call, OSM_E_FEDERATION_REMOTE_EXISTS, "a remote with that name or key is already paired");
                return;
        }
        fed_remote *r = NULL;
        int ret = fed_remote_new(f, name, url, key, &r);
        if (ret < 0) {
                osm_call_errorf(call, ret == -EINVAL ? OSM_E_FEDERATION_INVALID_KEY : OSM_E_INTERNAL_ERROR, "cannot use that key");
                return;
        }
        ret = fed_db_remote_add(f->db, name, url, r->key, r->id, osm_now_real_us());
        if (ret < 0) {
                fed_remote_free(r);
                osm_call_errorf(call, ret == -EEXIST ? OSM_E_FEDERATION_REMOTE_EXISTS : OSM_E_INTERNAL_ERROR,
                                ret == -EEXIST ? "already paired" : "cannot save the remote");
                return;
        }
        r->next = f->remotes;
        f->remotes = r;
        log_info("federation: paired with remote %s (%s) at %s", r->name, r->id, r->url);
        osm_call_reply(call, osm_reply_federation_add_remote(r->id), false);
        fed_remote_pump(r);
}

static void m_set_remote_url(osm_call *call, json_t *params, void *userdata) {
        osm_federation *f = userdata;
        const char *name = json_string_value(json_object_get(params, "name"));
        const char *url = json_string_value(json_object_get(params, "url"));
        fed_remote *r = fed_remote_by_name(f, name);
        if (!r) {
                osm_call_fail(call, osm_error_federation_remote_not_found(name));
                return;
        }
        if (!url_valid(url)) {
                osm_call_errorf(call, OSM_E_FEDERATION_INVALID_URL, "url must be http://HOST[:PORT][/PATH] or https://… without credentials, query or fragment");
                return;
        }
        char *copy = strdup(url);
        if (!copy || fed_db_remote_set_url(f->db, name, url) < 0) {
                free(copy);
                osm_call_errorf(call, OSM_E_INTERNAL_ERROR, "cannot save the remote");
                return;
        }
        /* Requests in flight built their URL when they were sent (fed-push.c). */
        log_info("federation: remote %s is now reached at %s (was %s)", name, copy, r->url);
        free(r->url);
        r->url = copy;
        r->need_hello = true;
        if (r->failing && !fed_remote_busy(r)) {
                uv_timer_stop(r->retry);
                r->backoff_ms = 0;
        }
        osm_call_reply(call, osm_reply_federation_set_remote_url(name, url), false);
        fed_remote_pump(r);
}

static void m_list_remotes(osm_call *call, json_t *params, void *userdata) {
        osm_federation *f = userdata;
        _cleanup_json_ json_t *rows = NULL, *shares = NULL;
        if (fed_db_remotes(f->db, &rows) < 0 || fed_db_shares(f->db, &shares) < 0) {
                osm_call_errorf(call, OSM_E_INTERNAL_ERROR, "cannot read federation.db");
                return;
        }
        json_t *out = json_array();
        size_t i;
        json_t *row;
        json_array_foreach(rows, i, row) {
                const char *name = json_string_value(json_object_get(row, "name"));
                fed_remote *r = fed_remote_by_name(f, name);
                json_t *sh = json_array();
                size_t k;
                json_t *s;
                json_array_foreach(shares, k, s)
                        if (strcmp(json_string_value(json_object_get(s, "remote")), name) == 0)
                                json_array_append(sh, json_object_get(s, "collection"));
                json_t *o = json_pack("{s:O, s:O, s:O, s:O, s:s, s:I, s:I, s:O, s:O, s:O, s:o}",
                                      "name", json_object_get(row, "name"), "url", json_object_get(row, "url"),
                                      "key", json_object_get(row, "key"), "space_id", json_object_get(row, "space_id"),
                                      "state", r ? fed_remote_state(r) : "off",
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
        osm_call_reply(call, osm_reply_federation_list_remotes(out), false);
}

static void m_remove_remote(osm_call *call, json_t *params, void *userdata) {
        osm_federation *f = userdata;
        const char *name = json_string_value(json_object_get(params, "name"));
        fed_remote **pr = &f->remotes;
        while (*pr && strcmp((*pr)->name, name) != 0)
                pr = &(*pr)->next;
        if (!*pr) {
                osm_call_fail(call, osm_error_federation_remote_not_found(name));
                return;
        }
        fed_remote *r = *pr;
        fed_remote_cancel(r, "cancelled");
        if (fed_db_remote_rm(f->db, name) < 0) {
                osm_call_errorf(call, OSM_E_INTERNAL_ERROR, "cannot remove the remote from federation.db");
                return;
        }
        *pr = r->next;
        fed_remote_free(r);
        fed_watches_sync(f);
        log_info("federation: removed remote %s", name);
        osm_call_reply(call, NULL, false);
}

static void m_share(osm_call *call, json_t *params, void *userdata) {
        osm_federation *f = userdata;
        const char *coll = json_string_value(json_object_get(params, "collection"));
        const char *remote = json_string_value(json_object_get(params, "remote"));
        if (!osm_name_valid(coll, 128, true)) {
                osm_call_invalid_param(call, "collection");   /* not a valid collection name */
                return;
        }
        if (!fed_remote_by_name(f, remote)) {
                osm_call_fail(call, osm_error_federation_remote_not_found(remote));
                return;
        }
        int64_t now = osm_now_real_us();
        json_t *jsince = json_object_get(params, "since");
        int64_t since = jsince ? json_integer_value(jsince) : now;
        if (since > now) {
                osm_call_invalid_param(call, "since");   /* a time in the future */
                return;
        }
        int ret = fed_db_share_add(f->db, coll, remote, since);
        if (ret == -EEXIST) {
                osm_call_invalid_param(call, "collection");   /* already shared with remote */
                return;
        }
        if (ret < 0) {
                osm_call_errorf(call, OSM_E_INTERNAL_ERROR, "cannot save the share");
                return;
        }
        fed_watches_sync(f);
        log_info("federation: sharing %s with %s", coll, remote);
        /* share --since: the records already stored from then on go too (the outbox
         * bound applies: past max-queue the oldest are dropped, and remote ls says so). */
        if (since < now && f->d->store)
                fed_catchup_one(f, coll, remote, since);
        osm_call_reply(call, NULL, false);
}

static void m_unshare(osm_call *call, json_t *params, void *userdata) {
        osm_federation *f = userdata;
        const char *coll = json_string_value(json_object_get(params, "collection"));
        const char *remote = json_string_value(json_object_get(params, "remote"));
        int ret = fed_db_share_rm(f->db, coll, remote);
        if (ret == -ENOENT) {
                osm_call_errorf(call, OSM_E_NOT_FOUND, "%s is not shared with %s", coll, remote);
                return;
        }
        if (ret < 0) {
                osm_call_errorf(call, OSM_E_INTERNAL_ERROR, "cannot remove the share");
                return;
        }
        fed_remote *r = fed_remote_by_name(f, remote);
        if (r)
                r->queued = fed_db_outbox_count(f->db, r->name);
        fed_watches_sync(f);
        log_info("federation: stopped sharing %s with %s", coll, remote);
        osm_call_reply(call, NULL, false);
}

static void m_share_object(osm_call *call, json_t *params, void *userdata) {
        osm_federation *f = userdata;
        bool share = strcmp(osm_call_method(call), OSM_M_FEDERATION_SHARE_OBJECT) == 0;
        const char *hash = json_string_value(json_object_get(params, "hash"));
        const char *remote = json_string_value(json_object_get(params, "remote"));
        if (!osm_store_hash_valid(hash)) {
                osm_call_invalid_param(call, "hash");   /* not an object hash (64 lowercase hex digits) */
                return;
        }
        if (!fed_remote_by_name(f, remote)) {
                osm_call_fail(call, osm_error_federation_remote_not_found(remote));
                return;
        }
        int ret = share ? fed_db_object_share_add(f->db, hash, remote, osm_now_real_us())
                        : fed_db_object_share_rm(f->db, hash, remote);
        if (ret == -EEXIST) {
                osm_call_invalid_param(call, "hash");   /* already shared with remote */
                return;
        }
        if (ret == -ENOENT) {
                osm_call_errorf(call, OSM_E_NOT_FOUND, "object %s is not shared with %s", hash, remote);
                return;
        }
        if (ret < 0) {
                osm_call_errorf(call, OSM_E_INTERNAL_ERROR, "cannot save the share");
                return;
        }
        log_info("federation: object %s %s %s", hash, share ? "shared with" : "no longer shared with", remote);
        osm_call_reply(call, NULL, false);
}

static void m_share_channel(osm_call *call, json_t *params, void *userdata) {
        osm_federation *f = userdata;
        bool share = strcmp(osm_call_method(call), OSM_M_FEDERATION_SHARE_CHANNEL) == 0;
        const char *channel = json_string_value(json_object_get(params, "channel"));
        const char *remote = json_string_value(json_object_get(params, "remote"));
        if (!osm_name_valid(channel, OSM_CHANNEL_MAX_NAME, false)) {
                osm_call_invalid_param(call, "channel");   /* a channel name: 1-48 of A-Z a-z 0-9 . _ - */
                return;
        }
        if (!fed_remote_by_name(f, remote)) {
                osm_call_fail(call, osm_error_federation_remote_not_found(remote));
                return;
        }
        int ret = share ? fed_db_channel_share_add(f->db, channel, remote, osm_now_real_us())
                        : fed_db_channel_share_rm(f->db, channel, remote);
        if (ret == -EEXIST) {
                osm_call_invalid_param(call, "channel");   /* already shared with remote */
                return;
        }
        if (ret == -ENOENT) {
                osm_call_errorf(call, OSM_E_NOT_FOUND, "channel %s is not shared with %s", channel, remote);
                return;
        }
        if (ret < 0) {
                osm_call_errorf(call, OSM_E_INTERNAL_ERROR, "cannot save the share");
                return;
        }
        log_info("federation: channel %s %s %s", channel, share ? "shared with" : "no longer shared with", remote);
        osm_call_reply(call, NULL, false);
}

static void m_fetch(osm_call *call, json_t *params, void *userdata) {
        osm_federation *f = userdata;
        const char *remote = json_string_value(json_object_get(params, "remote"));
        const char *hash = json_string_value(json_object_get(params, "hash"));
        uint8_t h[OSM_HASH_BYTES];
        if (osm_hash_parse(hash, h) < 0) {
                osm_call_invalid_param(call, "hash");   /* 64 lowercase hex digits */
                return;
        }
        fed_remote *r = fed_remote_by_name(f, remote);
        if (!r) {
                osm_call_fail(call, osm_error_federation_remote_not_found(remote));
                return;
        }
        if (!f->enabled) {
                osm_call_errorf(call, OSM_E_FEDERATION_FEDERATION_DISABLED, "federation is disabled: osmosectl federation enable");
                return;
        }
        fed_fetch_start(f, call, r, h);
}

static void m_audit(osm_call *call, json_t *params, void *userdata) {
        osm_federation *f = userdata;
        json_t *s = json_object_get(params, "since"), *l = json_object_get(params, "limit");
        int64_t since = s ? json_integer_value(s) : 0;
        json_int_t limit = l ? json_integer_value(l) : 10000;
        if (limit <= 0 || limit > 100000) {
                osm_call_invalid_param(call, "limit");   /* 1 to 100000 */
                return;
        }
        fed_db_commit(f->db);
        json_t *entries = NULL;
        if (fed_db_audit_list(f->db, since, (unsigned) limit, &entries) < 0) {
                osm_call_errorf(call, OSM_E_INTERNAL_ERROR, "cannot read the audit log");
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
        osm_call_reply(call, osm_reply_federation_audit(entries), false);
}

static const osm_method methods[] = {
        { OSM_M_FEDERATION_ENABLE, m_enable, OSM_ACCESS_WRITE },
        { OSM_M_FEDERATION_DISABLE, m_disable, OSM_ACCESS_WRITE },
        { OSM_M_FEDERATION_GET_STATUS, m_status, OSM_ACCESS_READ },
        { OSM_M_FEDERATION_ADD_REMOTE, m_add_remote, OSM_ACCESS_WRITE },
        { OSM_M_FEDERATION_LIST_REMOTES, m_list_remotes, OSM_ACCESS_READ },
        { OSM_M_FEDERATION_REMOVE_REMOTE, m_remove_remote, OSM_ACCESS_WRITE },
        { OSM_M_FEDERATION_SET_REMOTE_URL, m_set_remote_url, OSM_ACCESS_WRITE },
        { OSM_M_FEDERATION_SHARE, m_share, OSM_ACCESS_WRITE },
        { OSM_M_FEDERATION_SHARE_OBJECT, m_share_object, OSM_ACCESS_WRITE },
        { OSM_M_FEDERATION_UNSHARE_OBJECT, m_share_object, OSM_ACCESS_WRITE },
        { OSM_M_FEDERATION_SHARE_CHANNEL, m_share_channel, OSM_ACCESS_WRITE },
        { OSM_M_FEDERATION_UNSHARE_CHANNEL, m_share_channel, OSM_ACCESS_WRITE },
        { OSM_M_FEDERATION_UNSHARE, m_unshare, OSM_ACCESS_WRITE },
        { OSM_M_FEDERATION_FETCH_OBJECT, m_fetch, OSM_ACCESS_WRITE },
        { OSM_M_FEDERATION_AUDIT, m_audit, OSM_ACCESS_READ },
};

int fed_iface_register(osm_federation *f) {
        return osm_server_add_methods(f->d->server, methods, OSM_ARRAY_SIZE(methods), f);
}
