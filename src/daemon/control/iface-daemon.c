/* iface-daemon.c: io.osmose.Daemon — status and reload. */
#include <stdlib.h>

#include "daemon/daemon.h"

static void get_status(osm_call *call, json_t *params, void *userdata) {
        if (json_is_true(json_object_get(params, "details"))) {
                osm_call_reply(call, osm_daemon_status(userdata, true), false);
                return;
        }
        size_t len;
        char *text = osm_daemon_status_text(userdata, &len);
        if (text)
                osm_call_reply_text(call, text, len, false);
        else
                osm_call_errorf(call, OSM_E_INTERNAL_ERROR, "out of memory");
        free(text);
}

static void reload(osm_call *call, json_t *params, void *userdata) {
        json_t *changed = NULL, *errors = NULL;
        int r = osm_daemon_reload(userdata, &changed, &errors);
        if (r != 0) {
                osm_call_fail(call, osm_error_daemon_config_invalid(r, "the configuration has problems; the old one stays "
                                                                    "in force", errors ? errors : json_array()));
                return;
        }
        json_decref(errors);
        osm_call_reply(call, osm_reply_daemon_reload(changed), false);
}

const osm_method osm_daemon_methods[] = {
        { OSM_M_DAEMON_GET_STATUS, get_status, OSM_ACCESS_PUBLIC },
        { OSM_M_DAEMON_RELOAD, reload, OSM_ACCESS_WRITE },
};
const size_t osm_n_daemon_methods = OSM_ARRAY_SIZE(osm_daemon_methods);
