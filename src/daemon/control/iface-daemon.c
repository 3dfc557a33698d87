/* iface-daemon.c: io.osmose.Daemon — status and reload. */
#include <stdlib.h>

#include "daemon/daemon.h"

static void get_status(osm_call *call, json_t *params, void *userdata) {
        if (json_is_true(json_object_get(params, "details"))) {
                osm_call_reply(call, osm_daemon_status(userdata, true), false);
                return;
        }
        /* Many monitors asking in the same turn of the loop get the text built for the
         * first (see osm_server_epoch(): nothing they could have caused has changed). */
        osm_daemon *d = userdata;
        static const osm_daemon *of;
        static char *text;
        static size_t len;
        static uint64_t epoch, started;
        uint64_t now = osm_server_epoch(d->server);
        if (!text || of != d || started != d->started_mono_us || epoch != now) {
                free(text);
                text = osm_daemon_status_text(d, &len);
                of = d;
                started = d->started_mono_us;
                epoch = now;
        }
        if (text)
                osm_call_reply_text(call, text, len, false);
        else
                osm_call_errorf(call, OSM_E_INTERNAL_ERROR, "out of memory");
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
        { OSM_M_DAEMON_GET_STATUS, get_status, OSM_ACCESS_PUBLIC, .read_only = true },
        { OSM_M_DAEMON_RELOAD, reload, OSM_ACCESS_WRITE },
};
const size_t osm_n_daemon_methods = OSM_ARRAY_SIZE(osm_daemon_methods);
