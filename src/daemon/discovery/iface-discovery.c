/* iface-discovery.c: the Varlink interface io.osmose.Discovery: peers, trust, services,
 * and their streams of changes. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <avahi-common/domain.h>

#include "daemon/discovery/discovery-internal.h"
#include "osmose/log.h"
#include "osmose/varlink.h"


/* One open stream ("more": true). */
typedef struct osm_vl_watch {
        struct osm_vl_watch *prev, *next;
        osm_discovery *disc;
        osm_call *call;
        osm_discovery_sub *sub;
} osm_vl_watch;

static void watch_unlink(osm_vl_watch *w) {
        if (w->prev)
                w->prev->next = w->next;
        else
                w->disc->watches = w->next;
        if (w->next)
                w->next->prev = w->prev;
        osm_discovery_unsubscribe(w->sub);
        free(w);
}

static void watch_event(osm_dcat_kind kind, osm_dcat_event ev, json_t *obj, void *userdata) {
        osm_vl_watch *w = userdata;
        json_t *params;

        params = json_pack("{s:s, s:O}", "event", osm_dcat_event_name(kind, ev),
                           kind == OSM_DCAT_PEER ? "peer" : "service", obj);
        if (!params)
                return;
        /* A client that went away is noticed by the server, which runs watch_cancel. */
        osm_call_reply(w->call, params, true);
}

static void watch_cancel(osm_call *call, void *userdata) {
        watch_unlink(userdata);
}

/* Answer call with first (stolen); with "more", keep it open for changes of kind. */
static void reply_maybe_watch(osm_discovery *disc, osm_call *call, json_t *first,
                              osm_dcat_kind kind, const char *type) {
        osm_vl_watch *w;

        if (!first) {
                osm_call_errorf(call, OSM_E_INTERNAL_ERROR, "out of memory");
                return;
        }
        if (!osm_call_more(call)) {
                osm_call_reply(call, first, false);
                return;
        }
        w = calloc(1, sizeof(*w));
        if (!w || osm_discovery_subscribe(disc, kind, type, watch_event, w, &w->sub) < 0) {
                free(w);
                json_decref(first);
                osm_call_errorf(call, OSM_E_INTERNAL_ERROR, "out of memory");
                return;
        }
        w->disc = disc;
        w->call = call;
        w->next = disc->watches;
        if (disc->watches)
                disc->watches->prev = w;
        disc->watches = w;
        osm_call_set_cancel(call, watch_cancel, w);
        osm_call_reply(call, first, true);
}

static void method_peers(osm_call *call, json_t *params, void *userdata) {
        osm_discovery *disc = userdata;
        json_t *peers = osm_dcat_peers(disc->cat);

        reply_maybe_watch(disc, call, peers ? json_pack("{s:o}", "peers", peers) : NULL,
                          OSM_DCAT_PEER, NULL);
}

static void method_services(osm_call *call, json_t *params, void *userdata) {
        osm_discovery *disc = userdata;
        const char *type = json_string_value(json_object_get(params, "type"));
        json_t *services;

        if (type && (!avahi_is_valid_service_type_generic(type) || strlen(type) > 63)) {
                osm_call_invalid_param(call, "type");
                return;
        }
        if (!disc->enabled) {
                osm_call_errorf(call, OSM_E_DISCOVERY_DISABLED,
                                "discovery is off in the configuration ([discovery] enabled = no)");
                return;
        }
        services = osm_dcat_services(disc->cat, type);
        if (services)
                osm_disc_add_publications(disc, services, type);
        reply_maybe_watch(disc, call, services ? json_pack("{s:o}", "services", services) : NULL,
                          OSM_DCAT_SERVICE, type);
}

static void set_trust(osm_call *call, json_t *params, osm_discovery *disc, bool trusted) {
        const char *id = json_string_value(json_object_get(params, "id"));
        json_t *instances = NULL;
        int r;

        if (!osm_space_id_valid(id)) {
                osm_call_invalid_param(call, "id");
                return;
        }
        r = osm_dcat_trust(disc->cat, id, trusted, &instances);
        if (r == -ENOENT) {
                osm_call_fail(call, osm_error_discovery_peer_not_found(id, "no peer with this id has been seen"));
                return;
        }
        if (r == -EADDRINUSE) {
                osm_call_fail(call, osm_error_discovery_peer_conflict(id, instances ? instances : json_array(),
                                         strcmp(id, disc->d->space_id) == 0 ?
                                         "this is the id of this gateway itself; another gateway claims it" :
                                         "several gateways announce this id; refusing to trust any of them"));
                return;
        }
        /* Acknowledged only once it is on disk. */
        r = osm_discovery_save_now(disc);
        if (r < 0) {
                osm_dcat_trust(disc->cat, id, !trusted, NULL);
                log_error("discovery: cannot write %s: %s", disc->state_path, strerror(-r));
                osm_call_errorf(call, OSM_E_INTERNAL_ERROR, "cannot store the peer list: %s", strerror(-r));
                return;
        }
        log_notice("discovery: peer %s %s", id, trusted ? "trusted" : "no longer trusted");
        osm_call_reply(call, NULL, false);
}

static void method_trust(osm_call *call, json_t *params, void *userdata) {
        set_trust(call, params, userdata, true);
}

static void method_untrust(osm_call *call, json_t *params, void *userdata) {
        set_trust(call, params, userdata, false);
}

static const osm_method methods[] = {
        { OSM_M_DISCOVERY_PEERS,    method_peers,    OSM_ACCESS_MONITOR },
        { OSM_M_DISCOVERY_SERVICES, method_services, OSM_ACCESS_MONITOR },
        { OSM_M_DISCOVERY_TRUST,    method_trust,    OSM_ACCESS_WRITE },
        { OSM_M_DISCOVERY_UNTRUST,  method_untrust,  OSM_ACCESS_WRITE },
};

int osm_discovery_iface_register(osm_discovery *disc) {
        return osm_server_add_methods(disc->d->server, methods, OSM_ARRAY_SIZE(methods), disc);
}

/* End every stream: the subsystem is going away. */
void osm_discovery_iface_stop(osm_discovery *disc) {
        while (disc->watches) {
                osm_vl_watch *w = disc->watches;
                osm_call *call = w->call;

                osm_call_set_cancel(call, NULL, NULL);
                watch_unlink(w);
                osm_call_errorf(call, OSM_E_NOT_AVAILABLE, "discovery stopped");
        }
}
