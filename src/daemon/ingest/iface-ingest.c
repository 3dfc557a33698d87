/* iface-ingest.c: the Varlink interface io.osmose.Ingest: add, list and remove bridges, and
 * the MQTT brokers discovery has seen. */
#include <errno.h>
#include <string.h>

#include "daemon/control/server.h"
#include "daemon/daemon.h"
#include "daemon/ingest/ingest.h"
#include "osmose/varlink.h"

static void method_add(osm_call *call, json_t *params, void *userdata) {
        osm_ingest *ing = userdata;
        osm_ingest_def def = { 0 };
        osm_error why = {};
        int r = osm_ingest_def_from_json(params, &def, &why);
        if (r < 0) {
                osm_call_errorf(call, OSM_E_INGEST_INVALID, "%s", osm_error_message(&why, "invalid bridge"));
                osm_ingest_def_clear(&def);
                return;
        }
        why = (osm_error) {};
        r = osm_ingest_add(ing, &def, &why);
        if (r == -EEXIST)
                osm_call_errorf(call, OSM_E_INGEST_EXISTS, "a bridge named '%s' exists", def.name);
        else if (r == -EINVAL || r == -EPERM || r == -ENOSPC)
                osm_call_errorf(call, OSM_E_INGEST_INVALID, "%s", osm_error_message(&why, strerror(-r)));
        else if (r < 0)
                osm_call_errorf(call, OSM_E_INTERNAL_ERROR, "%s: %s", osm_error_message(&why, "cannot add the bridge"), strerror(-r));
        else {
                json_t *list = osm_ingest_list(ing), *b, *found = NULL;
                size_t i;
                json_array_foreach(list, i, b)
                        if (strcmp(json_string_value(json_object_get(b, "name")), def.name) == 0)
                                found = b;
                osm_call_reply(call, osm_reply_ingest_add(found ? json_incref(found) : json_object()), false);
                json_decref(list);
        }
        osm_ingest_def_clear(&def);
}

static void method_list(osm_call *call, json_t *params, void *userdata) {
        osm_call_reply(call, osm_reply_ingest_list(osm_ingest_list(userdata)), false);
}

static void method_remove(osm_call *call, json_t *params, void *userdata) {
        const char *name = json_string_value(json_object_get(params, "name"));
        int r = osm_ingest_remove(userdata, name);
        if (r == -ENOENT)
                osm_call_errorf(call, OSM_E_INGEST_NOT_FOUND, "no bridge named '%s' was added with ingest add", name);
        else if (r == -EPERM)
                osm_call_errorf(call, OSM_E_INGEST_IN_CONFIG, "'%s' is defined in osmosed.conf: remove its [ingest.%s] section and reload",
                                name, name);
        else if (r < 0)
                osm_call_errorf(call, OSM_E_INTERNAL_ERROR, "cannot write STATE/ingest.json: %s", strerror(-r));
        else
                osm_call_reply(call, NULL, false);
}

static void method_discovered(osm_call *call, json_t *params, void *userdata) {
        json_t *list = osm_ingest_discovered(userdata);
        if (!list) {
                osm_call_errorf(call, OSM_E_INGEST_DISABLED, "discovery is not running (built without Avahi, or [discovery] enabled = no)");
                return;
        }
        osm_call_reply(call, osm_reply_ingest_discovered(list), false);
}

static const osm_method methods[] = {
        { OSM_M_INGEST_ADD,        method_add,        OSM_ACCESS_WRITE },
        { OSM_M_INGEST_LIST,       method_list,       OSM_ACCESS_READ },
        { OSM_M_INGEST_REMOVE,     method_remove,     OSM_ACCESS_WRITE },
        { OSM_M_INGEST_DISCOVERED, method_discovered, OSM_ACCESS_READ },
};

int osm_ingest_iface_register(osm_ingest *ing, osm_server *server) {
        return osm_server_add_methods(server, methods, OSM_ARRAY_SIZE(methods), ing);
}
