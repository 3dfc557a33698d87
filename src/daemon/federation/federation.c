/* federation.c: the federation subsystem: start, stop, status, the network on and off, the audit's retention. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "federation.h"
#include "osmose/log.h"
#include "osmose/varlink.h"

void fed_network_stop(osm_federation *f) {
        f->enabled = false;
        fed_server_stop(f->server);
        f->server = NULL;
        while (f->fetches)
                fed_fetch_fail(f->fetches, OSM_E_FEDERATION_FEDERATION_DISABLED, "federation was disabled");
        for (fed_remote *r = f->remotes; r; r = r->next) {
                fed_remote_cancel(r, "cancelled");
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

int fed_network_start(osm_federation *f, const char *listen, osm_error *err) {
        if (fed_http_load(err) < 0)
                return -EOPNOTSUPP;
        f->nonces = fed_nonce_cache_new(FED_NONCE_CAPACITY, 2 * FED_MAX_SKEW_US + 1000000);
        if (!f->nonces)
                return osm_error_set(err, -ENOMEM, 0, "out of memory");
        int r = fed_client_new(f->d->loop, &f->client);
        if (r < 0) {
                osm_error_set(err, r, 0, "cannot set up libcurl");
                fed_network_stop(f);
                return r;
        }
        f->listen_started_us = osm_now_real_us();
        r = fed_server_start(f->d->loop, listen, FED_MAX_BODY + FED_BOX_OVERHEAD, &fed_serve_ops, f,
                             &f->server, f->listen, sizeof(f->listen), err);
        if (r < 0) {
                fed_network_stop(f);
                return r;
        }
        f->enabled = true;
        log_info("federation: enabled, listening on %s", f->listen);
        for (fed_remote *rm = f->remotes; rm; rm = rm->next) {
                rm->need_hello = true;
                fed_remote_pump(rm);
        }
        return 0;
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
        osm_federation *f = t->data;
        audit_prune(f);
        f->release_pending = true;
}

static void on_commit(uv_check_t *c) {
        osm_federation *f = c->data;
        if (fed_db_commit(f->db) < 0)
                log_error("federation: cannot commit to federation.db");
        else if (f->release_pending && !f->enabled) {
                /* Off, the database waits an hour for the next prune: its pages need
                 * not stay cached meanwhile (an idle room's memory). */
                fed_db_release_memory(f->db);
                f->release_pending = false;
        }
}

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
                if (fed_remote_new(f, name, json_string_value(json_object_get(row, "url")),
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
        osm_error err = {};
        int r = fed_db_open(path, &f->db, &err);
        if (r < 0) {
                log_error("federation: %s", err.message);
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
        r = fed_iface_register(f);
        if (r < 0) {
                log_error("federation: cannot register methods: %s", strerror(-r));
                fed_stop(d);
                return r;
        }
        fed_watches_sync(f);
        fed_catchup_start(f);

        /* The operator's last enable/disable wins over the configuration file. */
        _cleanup_free_ char *enabled = NULL, *listen = NULL;
        fed_db_get_setting(f->db, "enabled", &enabled);
        fed_db_get_setting(f->db, "listen", &listen);
        bool on = enabled ? strcmp(enabled, "1") == 0 : d->cfg.federation_enabled;
        if (on) {
                const char *addr = listen ?: d->cfg.federation_listen;
                osm_error nerr = {};
                r = fed_network_start(f, addr, &nerr);
                if (r < 0)
                        log_error("federation: cannot listen on %s: %s (federation stays off)", addr,
                                  osm_error_message(&nerr, strerror(-r)));
        }
        return 0;
}

static void fed_stop(osm_daemon *d) {
        osm_federation *f = d->federation;
        if (!f)
                return;
        fed_network_stop(f);
        while (f->remotes) {
                fed_remote *r = f->remotes;
                f->remotes = r->next;
                fed_remote_free(r);
        }
        fed_share_stop(f);
        if (f->commit) {
                uv_check_stop(f->commit);
                uv_close((uv_handle_t *) f->commit, fed_close_free);
        }
        if (f->prune) {
                uv_timer_stop(f->prune);
                uv_close((uv_handle_t *) f->prune, fed_close_free);
        }
        f->db = fed_db_close(f->db);
        free(f);
        d->federation = NULL;
}

static osm_health fed_health(osm_daemon *d, char *detail, size_t size) {
        osm_federation *f = d->federation;
        if (!f->enabled) {
                snprintf(detail, size, "off: no listening socket, no outbound connection");
                return OSM_HEALTH_DISABLED;
        }
        unsigned n = 0, offline = 0;
        for (fed_remote *r = f->remotes; r; r = r->next) {
                n++;
                offline += r->failing;
        }
        snprintf(detail, size, "listening on %s; %u remotes, %u offline", f->listen, n, offline);
        return offline ? OSM_HEALTH_DEGRADED : OSM_HEALTH_OK;
}

const osm_subsystem osm_federation_subsystem = {
        .name = "federation",
        .start = fed_start,
        .stop = fed_stop,
        .health = fed_health,
};

