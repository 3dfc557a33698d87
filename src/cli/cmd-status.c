/* cmd-status.c: status, reload and a raw call for debugging. */
#include <grp.h>
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"

/* The subsystems that are degraded or failed, as "discovery, sandbox" (empty: all well;
 * "disabled" is a choice of the operator, not a fault). */
static void unwell(json_t *rep, char *buf, size_t size) {
        size_t i, o = 0;
        json_t *s;
        buf[0] = 0;
        json_array_foreach(json_object_get(rep, "subsystems"), i, s) {
                const char *h = json_string_value(json_object_get(s, "health"));
                if (h && (strcmp(h, "degraded") == 0 || strcmp(h, "failed") == 0) && o < size) {
                        int n = snprintf(buf + o, size - o, "%s%s", o ? ", " : "",
                                         json_string_value(json_object_get(s, "name")));
                        o += n > 0 ? (size_t) n : 0;
                }
        }
}

int cmd_status(osm_ctl *ctl, int argc, char **argv) {
        if (osm_ctl_wants_help(argc, argv)) {
                osm_ctl_usage("status", "", "Show the space's id and name, version, uptime and the health of each subsystem.",
                              "Exit status (for monitoring, as systemctl is-system-running): 0 when every subsystem\n"
                              "is ok or disabled, 1 when one is degraded or failed (or the daemon does not answer).\n");
                return 0;
        }
        if (argc > 1)
                return osm_ctl_usage_error("status: unexpected argument '%s'", argv[1]);
        _cleanup_json_ json_t *rep = NULL;
        if (osm_ctl_request(ctl, osm_req_daemon_get_status(&(osm_req_daemon_get_status_opt){ .details = OSM_SOME(ctl->json) }),
                            &rep))
                return 1;
        char bad[512];
        unwell(rep, bad, sizeof bad);
        /* The socket is for root and the group osmose: without the group, only root gets in. */
        const char *no_group = getgrnam("osmose") ? NULL :
                "there is no group 'osmose' on this machine, so only root may use osmosectl "
                "(create it: groupadd --system osmose; then add operators: usermod -aG osmose NAME)";
        if (ctl->json) {
                json_object_set_new(rep, "state", json_string(bad[0] ? "degraded" : "ok"));
                if (no_group)
                        json_object_set_new(rep, "warnings", json_pack("[s]", no_group));
                osm_print_json(rep);
                return bad[0] ? 1 : 0;
        }
        double up = json_real_value(json_object_get(rep, "uptime"));
        printf("Space:      %s\n", json_string_value(json_object_get(rep, "name")));
        printf("Id:         %s\n", json_string_value(json_object_get(rep, "id")));
        printf("Public key: %s\n", json_string_value(json_object_get(rep, "public_key")));
        printf("Version:    %s\n", json_string_value(json_object_get(rep, "version")));
        printf("Uptime:     %dd %02dh %02dm %02ds\n", (int) (up / 86400), (int) (up / 3600) % 24,
               (int) (up / 60) % 60, (int) up % 60);
        printf("State:      %s\n", json_string_value(json_object_get(rep, "state_dir")));
        printf("Socket:     %s\n\n", json_string_value(json_object_get(rep, "socket")));
        osm_table *t = osm_table_new("SUBSYSTEM", "HEALTH", "DETAIL", NULL);
        size_t i;
        json_t *s;
        json_array_foreach(json_object_get(rep, "subsystems"), i, s) {
                osm_table_add(t, json_string_value(json_object_get(s, "name")),
                              json_string_value(json_object_get(s, "health")),
                              json_string_value(json_object_get(s, "detail")));
        }
        osm_table_print(t);
        if (bad[0])
                printf("\nDegraded: %s\n", bad);
        if (no_group)
                printf("\nWarning: %s\n", no_group);
        return bad[0] ? 1 : 0;
}

int cmd_reload(osm_ctl *ctl, int argc, char **argv) {
        if (osm_ctl_wants_help(argc, argv)) {
                osm_ctl_usage("reload", "", "Reload the daemon's configuration file (as SIGHUP does).", NULL);
                return 0;
        }
        _cleanup_json_ json_t *rep = NULL;
        if (osm_ctl_request(ctl, osm_req_daemon_reload(), &rep))
                return 1;
        if (ctl->json) {
                osm_print_json(rep);
                return 0;
        }
        json_t *ch = json_object_get(rep, "changed");
        if (json_array_size(ch) == 0)
                printf("configuration reloaded; nothing changed\n");
        size_t i;
        json_t *k;
        json_array_foreach(ch, i, k)
                printf("changed: %s\n", json_string_value(k));
        return 0;
}

static int print_stream(json_t *params, bool continues, void *userdata) {
        osm_print_json_line(params);
        return 0;
}

int cmd_call(osm_ctl *ctl, int argc, char **argv) {
        if (osm_ctl_wants_help(argc, argv) || argc < 2 || argc > 4) {
                osm_ctl_usage("call", "METHOD [JSON] [--more]",
                              "Call a Varlink method of the daemon with the given parameters and print the reply.", NULL);
                return argc < 2 ? 2 : 0;
        }
        bool more = false;
        const char *json = NULL;
        for (int i = 2; i < argc; i++) {
                if (strcmp(argv[i], "--more") == 0)
                        more = true;
                else
                        json = argv[i];
        }
        json_error_t e;
        _cleanup_json_ json_t *params = json ? json_loads(json, 0, &e) : json_object();
        if (!json_is_object(params))
                return osm_ctl_usage_error("call: parameters must be a JSON object");
        if (more) {
                osm_client *c = osm_ctl_client(ctl);
                if (!c)
                        return 1;
                osm_client_error err = { 0 };
                int r = osm_client_call_more(c, argv[1], params, print_stream, NULL, &err);
                if (r < 0) {
                        osm_ctl_call_failed(argv[1], &err);
                        osm_client_error_clear(&err);
                        return 1;
                }
                return 0;
        }
        _cleanup_json_ json_t *rep = NULL;
        if (osm_ctl_call(ctl, argv[1], params, &rep))
                return 1;
        osm_print_json(rep);
        return 0;
}
