/* iface-service.c: org.varlink.service — introspection, served from the compiled .varlink
 * files — and io.osmose.Ping. */
#include "daemon/daemon.h"

static void get_info(osm_call *call, json_t *params, void *userdata) {
        json_t *ifaces = json_array();
        for (size_t i = 0; i < osm_vl_n_interfaces; i++)
                json_array_append_new(ifaces, json_string(osm_vl_interfaces[i]->name));
        osm_call_reply(call, json_pack("{s:s,s:s,s:s,s:s,s:o}", "vendor", "Osmose", "product", "osmosed",
                                       "version", OSM_VERSION, "url", "https://osmose.invalid/",
                                       "interfaces", ifaces), false);
}

static void get_interface_description(osm_call *call, json_t *params, void *userdata) {
        const char *name = json_string_value(json_object_get(params, "interface"));
        const osm_vl_interface *i = osm_vl_find_interface(name);
        if (!i) {
                osm_call_fail(call, osm_error_varlink_interface_not_found(name));
                return;
        }
        osm_call_reply(call, osm_reply_varlink_get_interface_description(i->description), false);
}

static void ping(osm_call *call, json_t *params, void *userdata) {
        osm_call_reply(call, json_object(), false);
}

const osm_method osm_service_methods[] = {
        { OSM_M_VARLINK_GET_INFO, get_info, OSM_ACCESS_PUBLIC },
        { OSM_M_VARLINK_GET_INTERFACE_DESCRIPTION, get_interface_description, OSM_ACCESS_PUBLIC },
        { OSM_M_PING, ping, OSM_ACCESS_PUBLIC },
};
const size_t osm_n_service_methods = OSM_ARRAY_SIZE(osm_service_methods);
