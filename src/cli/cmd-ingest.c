/* cmd-ingest.c: osmosectl ingest add|ls|rm — MQTT bridges into the store. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"

static int ingest_add(osm_ctl *ctl, int argc, char **argv) {
        static const struct option opts[] = {
                { "topic", required_argument, NULL, 't' }, { "into", required_argument, NULL, 'i' },
                { "qos", required_argument, NULL, 'q' }, { "username", required_argument, NULL, 'u' },
                { "password-file", required_argument, NULL, 'P' }, { "ca-file", required_argument, NULL, 'C' },
                { "max-payload", required_argument, NULL, 'm' }, { "help", no_argument, NULL, 'h' }, {},
        };
        _cleanup_json_ json_t *topics = json_array();
        osm_req_ingest_add_opt o = { 0 };
        const char *into = NULL;
        int c;
        while ((c = getopt_long(argc, argv, "t:i:q:u:P:C:m:h", opts, NULL)) != -1) {
                switch (c) {
                case 't': json_array_append_new(topics, json_string(optarg)); break;
                case 'i': into = optarg; break;
                case 'q':
                        if (strcmp(optarg, "0") != 0 && strcmp(optarg, "1") != 0) {
                                fprintf(stderr, "osmosectl: ingest add: --qos: 0 or 1\n");
                                return 2;
                        }
                        o.qos = (osm_opt_int) OSM_SOME(optarg[0] - '0');
                        break;
                case 'u': o.username = optarg; break;
                case 'P': o.password_file = optarg; break;
                case 'C': o.ca_file = optarg; break;
                case 'm': {
                        uint64_t v;
                        if (osm_parse_size(optarg, &v) < 0) {
                                fprintf(stderr, "osmosectl: ingest add: --max-payload: a size such as 256K or 1M\n");
                                return 2;
                        }
                        o.max_payload = (osm_opt_int) OSM_SOME((int64_t) v);
                        break;
                }
                case 'h':
                        osm_ctl_usage("ingest add",
                                      "NAME mqtt://HOST[:PORT] --topic FILTER... --into PREFIX [--qos 0|1] [--username U --password-file F] [--ca-file F] [--max-payload B]",
                                      "Subscribe to FILTER on the broker and store each message as a record of PREFIX + its topic (zigbee2mqtt/kitchen into sensors/ is sensors/zigbee2mqtt/kitchen).",
                                      "With --qos 1 (the default) a message is acknowledged to the broker only once its record is durable.\n"
                                      "JSON objects are stored as they are, other JSON and text as {\"value\": ...}, binary as {\"hex\"} or an object.\n"
                                      "mqtts:// or --ca-file: TLS. The password file must be mode 0600. The bridge is kept across restarts.\n");
                        return 0;
                default: return 2;
                }
        }
        if (argc - optind != 2 || json_array_size(topics) == 0 || !into) {
                fprintf(stderr, "osmosectl: ingest add: usage: ingest add NAME mqtt://HOST[:PORT] --topic FILTER --into PREFIX [--qos 0|1]\n");
                return 2;
        }
        _cleanup_json_ json_t *rep = NULL;
        if (osm_ctl_request(ctl, osm_req_ingest_add(argv[optind], argv[optind + 1], topics, into, &o), &rep))
                return 1;
        if (ctl->json)
                osm_print_json(json_object_get(rep, "bridge"));   /* {name, url, topics, into, qos, source, state, …} */
        else
                printf("added %s: %s into %s\n", argv[optind], argv[optind + 1], into);
        return 0;
}

static const char *fmt_num(json_t *v, char *buf, size_t size) {
        snprintf(buf, size, "%lld", (long long) json_integer_value(v));
        return buf;
}

static int ingest_discovered(osm_ctl *ctl) {
        _cleanup_json_ json_t *rep = NULL;
        if (osm_ctl_request(ctl, osm_req_ingest_discovered(), &rep))
                return 1;
        if (ctl->json) {
                osm_print_json(rep);
                return 0;
        }
        osm_table *t = osm_table_new("NAME", "HOST", "PORT", "URL", NULL);
        size_t i;
        json_t *b;
        json_array_foreach(json_object_get(rep, "brokers"), i, b) {
                char port[16];
                osm_table_add(t, json_string_value(json_object_get(b, "name")), json_string_value(json_object_get(b, "host")),
                              fmt_num(json_object_get(b, "port"), port, sizeof port),
                              json_string_value(json_object_get(b, "url")));
        }
        osm_table_print(t);
        if (json_array_size(json_object_get(rep, "brokers")) > 0)
                printf("(not used until added: osmosectl ingest add NAME URL --topic FILTER --into PREFIX)\n");
        return 0;
}

static int ingest_ls(osm_ctl *ctl, int argc, char **argv) {
        static const struct option opts[] = {
                { "discovered", no_argument, NULL, 'd' }, { "help", no_argument, NULL, 'h' }, {},
        };
        bool discovered = false;
        int c;
        while ((c = getopt_long(argc, argv, "dh", opts, NULL)) != -1) {
                switch (c) {
                case 'd': discovered = true; break;
                case 'h':
                        osm_ctl_usage("ingest ls", "[--discovered]",
                                      "Bridges: state, messages, bytes, stored, duplicates, refused, last error. --discovered: MQTT brokers (_mqtt._tcp) seen on the LAN.",
                                      "A discovered broker is never used until the operator adds it.\n");
                        return 0;
                default: return 2;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "osmosectl: ingest ls: unexpected argument '%s'\n", argv[optind]);
                return 2;
        }
        if (discovered)
                return ingest_discovered(ctl);
        _cleanup_json_ json_t *rep = NULL;
        if (osm_ctl_request(ctl, osm_req_ingest_list(), &rep))
                return 1;
        if (ctl->json) {
                osm_print_json(rep);
                return 0;
        }
        osm_table *t = osm_table_new("NAME", "STATE", "URL", "INTO", "QOS", "MESSAGES", "BYTES", "STORED", "DUPLICATES",
                                     "REFUSED", "LAST ERROR", NULL);
        size_t i;
        json_t *b;
        json_array_foreach(json_object_get(rep, "bridges"), i, b) {
                char q[8], m[24], by[24], s[24], d[24], r[24];
                json_t *rf = json_object_get(b, "refused");
                long long refused = 0;
                const char *k;
                json_t *v;
                json_object_foreach(rf, k, v)
                        refused += (long long) json_integer_value(v);
                snprintf(r, sizeof r, "%lld", refused);
                osm_table_add(t, json_string_value(json_object_get(b, "name")), json_string_value(json_object_get(b, "state")),
                              json_string_value(json_object_get(b, "url")), json_string_value(json_object_get(b, "into")),
                              fmt_num(json_object_get(b, "qos"), q, sizeof q), fmt_num(json_object_get(b, "messages"), m, sizeof m),
                              fmt_num(json_object_get(b, "bytes"), by, sizeof by), fmt_num(json_object_get(b, "stored"), s, sizeof s),
                              fmt_num(json_object_get(b, "duplicates"), d, sizeof d), r,
                              json_string_value(json_object_get(b, "last_error")));
        }
        osm_table_print(t);
        return 0;
}

static int ingest_rm(osm_ctl *ctl, int argc, char **argv) {
        if (osm_ctl_wants_help(argc, argv)) {
                osm_ctl_usage("ingest rm", "NAME", "Stop a bridge added with 'ingest add' and forget it (stored records stay).", NULL);
                return 0;
        }
        if (argc != 2) {
                fprintf(stderr, "osmosectl: ingest rm: usage: ingest rm NAME\n");
                return 2;
        }
        if (osm_ctl_request(ctl, osm_req_ingest_remove(argv[1]), NULL))
                return 1;
        if (ctl->json) {
                _cleanup_json_ json_t *o = json_pack("{s:s, s:b}", "name", argv[1], "removed", true);
                osm_print_json(o);
        } else
                printf("removed %s\n", argv[1]);
        return 0;
}

int cmd_ingest(osm_ctl *ctl, int argc, char **argv) {
        static const osm_ctl_command table[] = {
                { "add", ingest_add, "NAME mqtt://HOST[:PORT] --topic FILTER --into PREFIX [--qos 0|1]", "store what an MQTT broker delivers" },
                { "ls", ingest_ls, "[--discovered]", "bridges, their state and counters; or brokers seen on the LAN" },
                { "rm", ingest_rm, "NAME", "stop and forget a bridge" },
        };
        return osm_ctl_dispatch(ctl, "ingest", table, OSM_ARRAY_SIZE(table), argc, argv);
}
