/* cmd-discovery.c: peers, peer trust/untrust and services: what discovery sees in the building. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli/commands.h"

/* "now", "12s ago", "5m ago", "3h ago", "2d ago" */
static const char *age(json_int_t us, char *buf, size_t size) {
        int64_t d = (osm_now_real_us() - (int64_t) us) / 1000000;

        if (us <= 0)
                snprintf(buf, size, "-");
        else if (d < 1)
                snprintf(buf, size, "now");
        else if (d < 120)
                snprintf(buf, size, "%llds ago", (long long) d);
        else if (d < 7200)
                snprintf(buf, size, "%lldm ago", (long long) d / 60);
        else if (d < 172800)
                snprintf(buf, size, "%lldh ago", (long long) d / 3600);
        else
                snprintf(buf, size, "%lldd ago", (long long) d / 86400);
        return buf;
}

/* Join an array of strings with sep into buf. */
static const char *join(json_t *a, const char *sep, char *buf, size_t size) {
        size_t i, o = 0;
        json_t *v;

        buf[0] = '\0';
        json_array_foreach(a, i, v) {
                int n = snprintf(buf + o, size - o, "%s%s", i ? sep : "", json_string_value(v) ? json_string_value(v) : "?");
                if (n < 0 || (size_t) n >= size - o)
                        break;
                o += (size_t) n;
        }
        return buf;
}

/* TXT as "k=v k2 k3=<hex>", cut to fit buf. */
static const char *txt_line(json_t *txt, char *buf, size_t size) {
        const char *k;
        json_t *v;
        size_t o = 0;

        buf[0] = '\0';
        json_object_foreach(txt, k, v) {
                int n;
                if (json_is_string(v))
                        n = snprintf(buf + o, size - o, "%s%s=%s", o ? " " : "", k, json_string_value(v));
                else if (json_is_true(v))
                        n = snprintf(buf + o, size - o, "%s%s", o ? " " : "", k);
                else
                        n = snprintf(buf + o, size - o, "%s%s=<binary>", o ? " " : "", k);
                if (n < 0 || (size_t) n >= size - o) {
                        if (size > 4)
                                strcpy(buf + size - 4, "...");
                        break;
                }
                o += (size_t) n;
        }
        return buf;
}

/* Terminal safety for event lines (tables clean their own cells). */
static void clean(char *s) {
        for (; *s; s++)
                if ((unsigned char) *s < 0x20 || *s == 0x7f)
                        *s = '?';
}

static const char *str(json_t *o, const char *key) {
        const char *s = json_string_value(json_object_get(o, key));
        return s ? s : "";
}

/* --- peers --- */

static void print_peers(json_t *peers) {
        osm_table *t = osm_table_new("ID", "NAME", "STATE", "TRUSTED", "ADDRESSES", "PORT", "LAST SEEN", "NOTE", NULL);
        size_t i;
        json_t *p;

        json_array_foreach(peers, i, p) {
                char addrs[256], seen[32], port[16], note[160];
                const char *reason = json_string_value(json_object_get(p, "conflict_reason"));

                snprintf(port, sizeof(port), "%lld", (long long) json_integer_value(json_object_get(p, "port")));
                if (json_is_true(json_object_get(p, "conflict")))
                        snprintf(note, sizeof(note), "CONFLICT: %s", reason ? reason : "id claimed twice");
                else if (strcmp(str(p, "instance"), str(p, "name")) != 0)
                        snprintf(note, sizeof(note), "published as '%s'", str(p, "instance"));
                else
                        note[0] = '\0';
                osm_table_add(t, str(p, "id"), str(p, "name"), str(p, "state"),
                              json_is_true(json_object_get(p, "trusted")) ? "yes" : "no",
                              join(json_object_get(p, "addresses"), ",", addrs, sizeof(addrs)), port,
                              age(json_integer_value(json_object_get(p, "last_seen")), seen, sizeof(seen)),
                              note[0] ? note : "");
        }
        osm_table_print(t);
}

static int peers_stream(json_t *params, bool continues, void *userdata) {
        osm_ctl *ctl = userdata;
        json_t *p = json_object_get(params, "peer");
        char line[768], addrs[256];

        if (ctl->json) {
                osm_print_json_line(params);
                return 0;
        }
        if (json_object_get(params, "peers")) {
                print_peers(json_object_get(params, "peers"));
                fflush(stdout);
                return 0;
        }
        snprintf(line, sizeof(line), "%-7s %s '%s' %s trusted=%s addresses=%s%s", str(params, "event"),
                 str(p, "id"), str(p, "name"), str(p, "state"),
                 json_is_true(json_object_get(p, "trusted")) ? "yes" : "no",
                 join(json_object_get(p, "addresses"), ",", addrs, sizeof(addrs)),
                 json_is_true(json_object_get(p, "conflict")) ? " CONFLICT" : "");
        clean(line);
        printf("%s\n", line);
        fflush(stdout);
        return 0;
}

/* Make the call req (consumed) with "more", printing each reply with cb. */
static int watch(osm_ctl *ctl, osm_vl_request req, osm_client_stream_cb cb) {
        _cleanup_request_ osm_vl_request q = req;
        osm_client *c = osm_ctl_client(ctl);
        osm_client_error err = { 0 };
        int r;

        if (!c)
                return 1;
        if (q.failed)
                return osm_ctl_fail("out of memory");
        r = osm_client_call_more(c, q.method, q.params, cb, ctl, &err);
        if (r < 0) {
                osm_ctl_call_failed(q.method, &err);
                osm_client_error_clear(&err);
                return 1;
        }
        return 0;
}

/* Options: --watch, and --type T when type is non-NULL. Returns -1 to go on, else the exit status. */
static int parse_opts(const char *cmd, int argc, char **argv, bool *watching, const char **type,
                      const char *args, const char *help) {
        static const struct option opts[] = {
                { "watch", no_argument, NULL, 'w' },
                { "type", required_argument, NULL, 't' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        int c;

        while ((c = getopt_long(argc, argv, type ? "wt:h" : "wh", opts, NULL)) != -1) {
                switch (c) {
                case 'w':
                        *watching = true;
                        break;
                case 't':
                        if (!type)
                                return osm_ctl_usage_error("%s: unknown option --type", cmd);
                        *type = optarg;
                        break;
                case 'h':
                        osm_ctl_usage(cmd, args, help, NULL);
                        return 0;
                default:
                        fprintf(stderr, "osmosectl: %s --help tells the options\n", cmd);
                        return 2;
                }
        }
        if (optind < argc)
                return osm_ctl_usage_error("%s: unexpected argument '%s'", cmd, argv[optind]);
        return -1;
}

int cmd_peers(osm_ctl *ctl, int argc, char **argv) {
        bool watching = false;
        _cleanup_json_ json_t *rep = NULL;
        int r;

        r = parse_opts("peers", argc, argv, &watching, NULL, "[--watch]",
                       "List the other gateways seen on the LAN (present and gone), and whether they are trusted.\n"
                       "With --watch, then print each change as it happens (JSON Lines with --json).");
        if (r >= 0)
                return r;
        if (watching)
                return watch(ctl, osm_req_discovery_peers(), peers_stream);
        if (osm_ctl_request(ctl, osm_req_discovery_peers(), &rep))
                return 1;
        if (ctl->json)
                osm_print_json(rep);
        else
                print_peers(json_object_get(rep, "peers"));
        return 0;
}

static bool id_valid(const char *id) {
        return strlen(id) == 32 && strspn(id, "0123456789abcdef") == 32;
}

static int set_trust(osm_ctl *ctl, int argc, char **argv, bool trusted) {
        const char *cmd = trusted ? "peer trust" : "peer untrust";
        _cleanup_json_ json_t *rep = NULL;

        if (osm_ctl_wants_help(argc, argv)) {
                osm_ctl_usage(cmd, "ID", trusted ?
                              "Trust the gateway with this space id (as listed by 'osmosectl peers'). Kept across restarts." :
                              "Stop trusting the gateway with this space id.", NULL);
                return 0;
        }
        if (argc != 2)
                return osm_ctl_usage_error("%s: expected one space id (osmosectl peers lists them)", cmd);
        if (!id_valid(argv[1]))
                return osm_ctl_usage_error("%s: '%s' is not a space id (32 lowercase hex digits)", cmd, argv[1]);
        if (osm_ctl_request(ctl, trusted ? osm_req_discovery_trust(argv[1]) : osm_req_discovery_untrust(argv[1]), &rep))
                return 1;
        osm_print_done(ctl, rep, json_pack("{s:s, s:b}", "id", argv[1], "trusted", trusted), "peer %s is %s", argv[1],
                       trusted ? "trusted" : "no longer trusted");
        return 0;
}

static int cmd_peer_trust(osm_ctl *ctl, int argc, char **argv) {
        return set_trust(ctl, argc, argv, true);
}

static int cmd_peer_untrust(osm_ctl *ctl, int argc, char **argv) {
        return set_trust(ctl, argc, argv, false);
}

int cmd_peer(osm_ctl *ctl, int argc, char **argv) {
        static const osm_ctl_command sub[] = {
                { "trust", cmd_peer_trust, "ID", "trust the gateway with this space id" },
                { "untrust", cmd_peer_untrust, "ID", "stop trusting it" },
        };
        return osm_ctl_dispatch(ctl, "peer", sub, OSM_ARRAY_SIZE(sub), argc, argv);
}

/* --- services --- */

static void print_services(json_t *services) {
        osm_table *t = osm_table_new("NAME", "TYPE", "HOST", "ADDRESSES", "PORT", "TXT", NULL);
        size_t i;
        json_t *s;

        json_array_foreach(services, i, s) {
                char addrs[256], port[16], txt[96];

                snprintf(port, sizeof(port), "%lld", (long long) json_integer_value(json_object_get(s, "port")));
                osm_table_add(t, str(s, "name"), str(s, "type"), str(s, "host"),
                              join(json_object_get(s, "addresses"), ",", addrs, sizeof(addrs)), port,
                              txt_line(json_object_get(s, "txt"), txt, sizeof(txt)));
        }
        osm_table_print(t);
}

static int services_stream(json_t *params, bool continues, void *userdata) {
        osm_ctl *ctl = userdata;
        json_t *s = json_object_get(params, "service");
        char line[1024], addrs[256], txt[256];

        if (ctl->json) {
                osm_print_json_line(params);
                return 0;
        }
        if (json_object_get(params, "services")) {
                print_services(json_object_get(params, "services"));
                fflush(stdout);
                return 0;
        }
        snprintf(line, sizeof(line), "%-7s '%s' %s %s:%lld addresses=%s txt=[%s]", str(params, "event"),
                 str(s, "name"), str(s, "type"), str(s, "host"),
                 (long long) json_integer_value(json_object_get(s, "port")),
                 join(json_object_get(s, "addresses"), ",", addrs, sizeof(addrs)),
                 txt_line(json_object_get(s, "txt"), txt, sizeof(txt)));
        clean(line);
        printf("%s\n", line);
        fflush(stdout);
        return 0;
}

int cmd_services(osm_ctl *ctl, int argc, char **argv) {
        bool watching = false;
        const char *type = NULL;
        _cleanup_json_ json_t *rep = NULL;
        int r;

        r = parse_opts("services", argc, argv, &watching, &type, "[--type TYPE] [--watch]",
                       "List the DNS-SD services seen in the room (all, or of one TYPE such as _ipp._tcp).\n"
                       "With --watch, then print each change as it happens (JSON Lines with --json).");
        if (r >= 0)
                return r;
        osm_req_discovery_services_opt so = { .type = type };
        if (watching)
                return watch(ctl, osm_req_discovery_services(&so), services_stream);
        if (osm_ctl_request(ctl, osm_req_discovery_services(&so), &rep))
                return 1;
        if (ctl->json)
                osm_print_json(rep);
        else
                print_services(json_object_get(rep, "services"));
        return 0;
}
