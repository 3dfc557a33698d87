/* api-discovery.c: discovery's part of the workload API: Services, Publish, Withdraw, Publications. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "daemon/api/api-internal.h"
#include "osmose/log.h"

static void pub_free(api_pub *p) {
#if HAVE_AVAHI
        osm_discovery_withdraw(p->pub);
#endif
        free(p);
}

/* ---------- discovery ---------- */

static void m_services(osm_call *call, json_t *params, void *userdata) {
        api_inst *in = userdata;
        const char *const *grants = api_enter(call, in);
        if (!grants)
                return;
        if (!osm_grant_has(grants, "discovery:read")) {
                api_deny(call, "discovery:read", "reading the room's services needs the grant discovery:read");
                return;
        }
#if HAVE_AVAHI
        const char *type = json_string_value(json_object_get(params, "type"));
        if (!in->api->d->discovery) {
                osm_call_errorf(call, OSM_E_NOT_AVAILABLE, "discovery is off on this gateway");
                return;
        }
        json_t *list = osm_discovery_services(in->api->d->discovery, type);
        if (!list) {
                osm_call_errorf(call, OSM_E_INTERNAL_ERROR, "cannot list the services");
                return;
        }
        osm_call_reply(call, osm_reply_api_services(list), false);
#else
        osm_call_errorf(call, OSM_E_NOT_AVAILABLE, "this osmosed is built without discovery");
#endif
}

static json_t *pub_json(const api_pub *p) {
        const char *name = "";
#if HAVE_AVAHI
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
                api_deny(call, grant, "publishing a service of type %s needs the grant %s", type, grant);
                return;
        }
        if (port < 1 || port > 65535) {
                osm_call_invalid_param(call, "port");
                return;
        }
        uint64_t max = in->api->d->cfg.api_max_publications;
        if (in->n_pubs >= max) {
                osm_call_fail(call, osm_error_api_quota_exceeded("publications", (int64_t) max,
                                                                 "this instance publishes as many services as it may"));
                return;
        }
#if HAVE_AVAHI
        const char *name = json_string_value(json_object_get(params, "name"));
        if (!in->api->d->discovery) {
                osm_call_errorf(call, OSM_E_NOT_AVAILABLE, "discovery is off on this gateway");
                return;
        }
        api_pub *p = calloc(1, sizeof *p);
        if (!p) {
                osm_call_errorf(call, OSM_E_INTERNAL_ERROR, "out of memory");
                return;
        }
        osm_error why = {};
        int r = osm_discovery_publish(in->api->d->discovery, name ? name : in->workload, type, (uint16_t) port,
                                      json_object_get(params, "txt"), &p->pub, &why);
        if (r < 0) {
                free(p);
                if (r == -EINVAL)
                        osm_call_errorf(call, OSM_E_API_DISCOVERY_ERROR, "%s", osm_error_message(&why, "invalid service"));
                else
                        osm_call_errorf(call, OSM_E_API_DISCOVERY_ERROR, "cannot publish: %s", osm_error_message(&why, strerror(-r)));
                return;
        }
        p->id = ++in->next_pub_id;
        snprintf(p->type, sizeof p->type, "%s", type);
        p->port = (uint16_t) port;
        p->next = in->pubs;
        in->pubs = p;
        in->n_pubs++;
        log_info("api: instance %s publishes %s '%s' on port %d", in->id, type, osm_discovery_pub_name(p->pub), (int) port);
        osm_call_reply(call, osm_reply_api_publish(pub_json(p)), false);
#else
        osm_call_errorf(call, OSM_E_NOT_AVAILABLE, "this osmosed is built without discovery");
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
        osm_call_fail(call, osm_error_api_no_such_publication(id));
}

static void m_publications(osm_call *call, json_t *params, void *userdata) {
        api_inst *in = userdata;
        if (!api_enter(call, in))
                return;
        json_t *arr = json_array();
        for (api_pub *p = in->pubs; p; p = p->next)
                json_array_append_new(arr, pub_json(p));
        osm_call_reply(call, osm_reply_api_publications(arr), false);
}

void api_pubs_free(api_inst *in) {
        while (in->pubs) {
                api_pub *p = in->pubs;
                in->pubs = p->next;
                pub_free(p);
        }
        in->n_pubs = 0;
}

/* Withdraw the publications of in whose grant went away. */
void api_pubs_revoke(api_inst *in, const char *const *grants) {
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

const osm_method api_discovery_methods[] = {
        { OSM_M_API_SERVICES,     m_services,     OSM_ACCESS_PUBLIC },
        { OSM_M_API_PUBLISH,      m_publish,      OSM_ACCESS_PUBLIC },
        { OSM_M_API_WITHDRAW,     m_withdraw,     OSM_ACCESS_PUBLIC },
        { OSM_M_API_PUBLICATIONS, m_publications, OSM_ACCESS_PUBLIC },
};
const size_t api_discovery_n_methods = OSM_ARRAY_SIZE(api_discovery_methods);
