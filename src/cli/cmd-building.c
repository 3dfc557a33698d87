/* cmd-building.c: building create, invite, join, status, leave, remove, recover, trust,
 * share, unshare and query. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"

/* Make the call req (consumed); print done (a full line) unless --json. */
static int simple_call(osm_ctl *ctl, osm_vl_request req, const char *done) {
        _cleanup_json_ json_t *rep = NULL;
        if (osm_ctl_request(ctl, req, &rep))
                return 1;
        if (ctl->json) {
                if (!rep)
                        rep = json_object();
                osm_print_json(rep);
        } else if (done) {
                printf("%s\n", done);
        }
        return 0;
}

/* Options of the commands that take only HOST addresses and names. */
static int bld_create(osm_ctl *ctl, int argc, char **argv) {
        static const struct option opts[] = {
                { "name", required_argument, NULL, 'n' }, { "address", required_argument, NULL, 'a' },
                { "help", no_argument, NULL, 'h' }, {},
        };
        const char *name = NULL, *address = NULL;
        int c;
        while ((c = getopt_long(argc, argv, "+n:a:h", opts, NULL)) != -1) {
                switch (c) {
                case 'n': name = optarg; break;
                case 'a': address = optarg; break;
                case 'h':
                        osm_ctl_usage("building create", "[--name NAME] [--address HOST[:PORT]]",
                                      "Start a building with this room as its first member and voter.",
                                      "  -n, --name NAME        the building's name (default: this room's name)\n"
                                      "  -a, --address HOST     where the other rooms reach this one (default: [building] address,\n"
                                      "                         else the first non-loopback address); the port is [building] port\n"
                                      "Only now does the daemon listen on the building port, for members only.\n");
                        return 0;
                default: return 2;
                }
        }
        if (optind < argc)
                return osm_ctl_usage_error("building create: unexpected argument '%s'", argv[optind]);
        _cleanup_json_ json_t *rep = NULL;
        osm_req_building_create_opt co = { .name = name, .address = address };
        if (osm_ctl_request(ctl, osm_req_building_create(&co), &rep))
                return 1;
        if (ctl->json)
                osm_print_json(rep);
        else
                printf("building \"%s\" created (%s); members reach this room at %s\n",
                       json_string_value(json_object_get(rep, "name")), json_string_value(json_object_get(rep, "building")),
                       json_string_value(json_object_get(rep, "address")));
        return 0;
}

static int bld_invite(osm_ctl *ctl, int argc, char **argv) {
        static const struct option opts[] = {
                { "expires", required_argument, NULL, 'e' }, { "help", no_argument, NULL, 'h' }, {},
        };
        uint64_t us = 3600ull * 1000000;
        int c;
        while ((c = getopt_long(argc, argv, "+e:h", opts, NULL)) != -1) {
                switch (c) {
                case 'e':
                        if (osm_parse_duration(optarg, &us) < 0)
                                return osm_ctl_usage_error("building invite: --expires '%s': expected a duration (30m, 1h, 2d)", optarg);
                        break;
                case 'h':
                        osm_ctl_usage("building invite", "[--expires D]",
                                      "Print a one-time join token for another room (building join TOKEN there).",
                                      "  -e, --expires D   how long it stays valid (default 1h, at most 7d)\n"
                                      "The token names this room's address and key and carries a secret: pass it on privately.\n");
                        return 0;
                default: return 2;
                }
        }
        if (optind < argc)
                return osm_ctl_usage_error("building invite: unexpected argument '%s'", argv[optind]);
        _cleanup_json_ json_t *rep = NULL;
        osm_req_building_invite_opt io = { .expires = OSM_SOME((int64_t) us) };
        if (osm_ctl_request(ctl, osm_req_building_invite(&io), &rep))
                return 1;
        if (ctl->json) {
                osm_print_json(rep);
        } else {
                char t[64];
                printf("%s\n", json_string_value(json_object_get(rep, "token")));
                fprintf(stderr, "single use, valid until %s\n",
                        osm_format_time(json_integer_value(json_object_get(rep, "expires")), t, sizeof t));
        }
        return 0;
}

static int bld_join(osm_ctl *ctl, int argc, char **argv) {
        static const struct option opts[] = {
                { "address", required_argument, NULL, 'a' }, { "help", no_argument, NULL, 'h' }, {},
        };
        const char *address = NULL;
        int c;
        while ((c = getopt_long(argc, argv, "a:h", opts, NULL)) != -1) {
                switch (c) {
                case 'a': address = optarg; break;
                case 'h':
                        osm_ctl_usage("building join", "TOKEN [--address HOST[:PORT]]",
                                      "Join the building a token from 'building invite' names.",
                                      "  -a, --address HOST   where the other rooms reach this one (default: [building] address,\n"
                                      "                       else the address this room reaches the inviter from)\n"
                                      "The inviter is authenticated by the key in the token; this room presents the token's secret.\n");
                        return 0;
                default: return 2;
                }
        }
        if (argc - optind != 1)
                return osm_ctl_usage_error("building join: usage: building join TOKEN");
        _cleanup_json_ json_t *rep = NULL;
        osm_req_building_join_opt jo = { .address = address };
        if (osm_ctl_request(ctl, osm_req_building_join(argv[optind], &jo), &rep))
                return 1;
        if (ctl->json)
                osm_print_json(rep);
        else
                printf("joined building \"%s\" (%s): %lld members\n", json_string_value(json_object_get(rep, "name")),
                       json_string_value(json_object_get(rep, "building")),
                       (long long) json_integer_value(json_object_get(rep, "members")));
        return 0;
}

static const char *ago(json_int_t at, char *buf, size_t size) {
        if (at <= 0)
                return "never";
        int64_t s = (osm_now_real_us() - at) / 1000000;
        if (s < 0)
                s = 0;
        if (s < 120)
                snprintf(buf, size, "%llds ago", (long long) s);
        else if (s < 7200)
                snprintf(buf, size, "%lldm ago", (long long) (s / 60));
        else
                snprintf(buf, size, "%lldh ago", (long long) (s / 3600));
        return buf;
}

static int bld_status(osm_ctl *ctl, int argc, char **argv) {
        if (osm_ctl_wants_help(argc, argv)) {
                osm_ctl_usage("building status", "",
                              "Every room of the building: name, id, role, reachable (last contact), health, workloads, services.",
                              "Served from the replicated state; marked stale (with why) when it cannot be read, e.g. without quorum.\n");
                return 0;
        }
        if (argc > 1)
                return osm_ctl_usage_error("building status: unexpected argument '%s'", argv[1]);
        _cleanup_json_ json_t *rep = NULL;
        if (osm_ctl_request(ctl, osm_req_building_status(), &rep))
                return 1;
        if (ctl->json) {
                osm_print_json(rep);
                return 0;
        }
        if (!json_is_true(json_object_get(rep, "in_building"))) {
                printf("not in a building (building create, or building join TOKEN)\n");
                return 0;
        }
        json_t *members = json_object_get(rep, "members");
        printf("Building: %s (%s)\n", json_string_value(json_object_get(rep, "name")),
               json_string_value(json_object_get(rep, "building")));
        printf("Leader:   %s\n", json_string_value(json_object_get(rep, "leader")) ?: "none known");
        printf("Members:  %lld reachable of %zu, %lld voters\n", (long long) json_integer_value(json_object_get(rep, "reachable")),
               json_array_size(members), (long long) json_integer_value(json_object_get(rep, "voters")));
        if (json_is_true(json_object_get(rep, "stale"))) {
                char t[64];
                printf("STALE:    %s (copy of %s)\n", json_string_value(json_object_get(rep, "error")) ?: "",
                       osm_format_time(json_integer_value(json_object_get(rep, "fetched")), t, sizeof t));
        }
        printf("\n");
        osm_table *t = osm_table_new("NAME", "ROOM", "ROLE", "REACHABLE", "LAST SEEN", "HEALTH", "WORKLOADS", "SERVICES",
                                     "ADDRESS", NULL);
        size_t i;
        json_t *m;
        json_array_foreach(members, i, m) {
                char role[32], seen[32], wl[24], sv[24];
                snprintf(role, sizeof role, "%s%s", json_string_value(json_object_get(m, "role")),
                         json_is_true(json_object_get(m, "leader")) ? "*" : "");
                snprintf(wl, sizeof wl, "%lld", (long long) json_integer_value(json_object_get(m, "workloads")));
                snprintf(sv, sizeof sv, "%lld", (long long) json_integer_value(json_object_get(m, "services")));
                char room[13];
                snprintf(room, sizeof room, "%.12s", json_string_value(json_object_get(m, "room")));
                osm_table_add(t, json_string_value(json_object_get(m, "name")), room, role,
                              json_is_true(json_object_get(m, "reachable")) ? "yes" : "no",
                              ago(json_integer_value(json_object_get(m, "last_seen")), seen, sizeof seen),
                              json_string_value(json_object_get(m, "health")),
                              json_object_get(m, "workloads") ? wl : NULL, json_object_get(m, "services") ? sv : NULL,
                              json_string_value(json_object_get(m, "address")));
        }
        osm_table_print(t);
        return 0;
}

static int bld_leave(osm_ctl *ctl, int argc, char **argv) {
        if (osm_ctl_wants_help(argc, argv)) {
                osm_ctl_usage("building leave", "", "Leave the building: this room is removed from its members and forgets it.",
                              "Needs quorum; a room that is gone for good is removed from another room with 'building remove'.\n");
                return 0;
        }
        if (argc > 1)
                return osm_ctl_usage_error("building leave: unexpected argument '%s'", argv[1]);
        return simple_call(ctl, osm_req_building_leave(), "left the building");
}

static int bld_remove(osm_ctl *ctl, int argc, char **argv) {
        if (osm_ctl_wants_help(argc, argv)) {
                osm_ctl_usage("building remove", "ROOM", "Remove another room (by id or name) from the building, also one that is gone for good.", NULL);
                return 0;
        }
        if (argc != 2)
                return osm_ctl_usage_error("building remove: usage: building remove ROOM");
        return simple_call(ctl, osm_req_building_remove(argv[1]), "removed from the building");
}

static int bld_recover(osm_ctl *ctl, int argc, char **argv) {
        if (osm_ctl_wants_help(argc, argv)) {
                osm_ctl_usage("building recover", "[ROOM...]",
                              "When most voters are lost for good: rewrite this room's raft configuration to this room\n"
                              "(and the ROOMs named, which must hold a copy of this room's data directory) so that it leads again.",
                              "dqlite's rule: run it on ONE room only, the one with the most recent data; every other room\n"
                              "then leaves (or is removed) and joins again with a new token.\n");
                return 0;
        }
        _cleanup_json_ json_t *rooms = json_array();
        for (int i = 1; i < argc; i++)
                json_array_append_new(rooms, json_string(argv[i]));
        _cleanup_json_ json_t *rep = NULL;
        if (osm_ctl_request(ctl, osm_req_building_recover(&(osm_req_building_recover_opt){ .rooms = rooms }), &rep))
                return 1;
        if (ctl->json)
                osm_print_json(rep);
        else
                printf("%s\n", json_string_value(json_object_get(rep, "message")));
        return 0;
}

/* --- trust --- */
static int trust_add(osm_ctl *ctl, int argc, char **argv) {
        static const struct option opts[] = {
                { "comment", required_argument, NULL, 'c' }, { "help", no_argument, NULL, 'h' }, {},
        };
        const char *comment = NULL;
        const char *key = osm_ctl_take_key_operand(&argc, argv, opts);
        int c;
        while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
                switch (c) {
                case 'c': comment = optarg; break;
                case 'h':
                        osm_ctl_usage("building trust add", "PUBKEY [--comment TEXT]",
                                      "Trust a publisher key in every room of the building: bundles it signed install anywhere.", NULL);
                        return 0;
                default: return 2;
                }
        }
        if (argc - optind != !key)
                return osm_ctl_usage_error("building trust add: usage: building trust add PUBKEY");
        osm_req_building_trust_add_opt to = { .comment = comment };
        return simple_call(ctl, osm_req_building_trust_add(key ? key : argv[optind], &to), "the building trusts this key");
}

static int trust_ls(osm_ctl *ctl, int argc, char **argv) {
        if (osm_ctl_wants_help(argc, argv)) {
                osm_ctl_usage("building trust ls", "", "Publisher keys trusted building-wide.", NULL);
                return 0;
        }
        if (argc > 1)
                return osm_ctl_usage_error("building trust ls: unexpected argument '%s'", argv[1]);
        _cleanup_json_ json_t *rep = NULL;
        if (osm_ctl_request(ctl, osm_req_building_trust_list(), &rep))
                return 1;
        if (ctl->json) {
                osm_print_json(rep);
                return 0;
        }
        osm_table *t = osm_table_new("KEY", "ADDED BY", "ADDED", "COMMENT", NULL);
        size_t i;
        json_t *k;
        json_array_foreach(json_object_get(rep, "keys"), i, k) {
                char when[64], by[13];
                snprintf(by, sizeof by, "%.12s", json_string_value(json_object_get(k, "added_by")));
                osm_table_add(t, json_string_value(json_object_get(k, "key")), by,
                              osm_format_time(json_integer_value(json_object_get(k, "added")), when, sizeof when),
                              json_string_value(json_object_get(k, "comment")));
        }
        osm_table_print(t);
        if (json_is_true(json_object_get(rep, "stale")))
                fprintf(stderr, "(stale: the building's state could not be read; this is the last copy)\n");
        return 0;
}

static int trust_rm(osm_ctl *ctl, int argc, char **argv) {
        if (argc == 3 && strcmp(argv[1], "--") == 0) {   /* a key may start with '-' */
                argv[1] = argv[2];
                argc = 2;
        }
        if (osm_ctl_wants_help(argc, argv)) {
                osm_ctl_usage("building trust rm", "PUBKEY", "Stop trusting a publisher key building-wide.", NULL);
                return 0;
        }
        if (argc != 2)
                return osm_ctl_usage_error("building trust rm: usage: building trust rm PUBKEY");
        return simple_call(ctl, osm_req_building_trust_remove(argv[1]), "the building no longer trusts this key");
}

static int bld_trust(osm_ctl *ctl, int argc, char **argv) {
        static const osm_ctl_command table[] = {
                { "add", trust_add, "PUBKEY [--comment TEXT]", "trust a publisher key in every room" },
                { "ls", trust_ls, "", "publisher keys trusted building-wide" },
                { "rm", trust_rm, "PUBKEY", "stop trusting a key building-wide" },
        };
        return osm_ctl_dispatch(ctl, "building trust", table, OSM_ARRAY_SIZE(table), argc, argv);
}

static int bld_share(osm_ctl *ctl, int argc, char **argv) {
        bool share = strcmp(argv[0], "share") == 0;
        if (osm_ctl_wants_help(argc, argv)) {
                osm_ctl_usage(share ? "building share" : "building unshare", "COLLECTION",
                              share ? "This room answers building queries for COLLECTION (every answer is in its audit)."
                                    : "This room stops answering building queries for COLLECTION.", NULL);
                return 0;
        }
        if (argc != 2)
                return osm_ctl_usage_error("building %s: usage: building %s COLLECTION", argv[0], argv[0]);
        return simple_call(ctl, share ? osm_req_building_share(argv[1]) : osm_req_building_unshare(argv[1]),
                           share ? "this room answers building queries for it" : "this room no longer answers for it");
}

static int bld_query(osm_ctl *ctl, int argc, char **argv) {
        static const struct option opts[] = {
                { "since", required_argument, NULL, 's' }, { "until", required_argument, NULL, 'u' },
                { "limit", required_argument, NULL, 'l' }, { "room", required_argument, NULL, 'r' },
                { "help", no_argument, NULL, 'h' }, {},
        };
        int64_t now = osm_now_real_us(), since = 0, until = 0;
        bool has_since = false, has_until = false;
        uint64_t limit = 100;
        const char *room = NULL;
        int c;
        while ((c = getopt_long(argc, argv, "s:u:l:r:h", opts, NULL)) != -1) {
                switch (c) {
                case 's':
                        if (osm_parse_time(optarg, now, &since) < 0)
                                return osm_ctl_usage_error("building query: --since '%s': expected RFC 3339, -1h, now or microseconds", optarg);
                        has_since = true;
                        break;
                case 'u':
                        if (osm_parse_time(optarg, now, &until) < 0)
                                return osm_ctl_usage_error("building query: --until '%s': expected RFC 3339, -1h, now or microseconds", optarg);
                        has_until = true;
                        break;
                case 'l':
                        if (osm_parse_u64(optarg, &limit) < 0 || limit < 1 || limit > 1000)
                                return osm_ctl_usage_error("building query: --limit: 1 to 1000");
                        break;
                case 'r': room = optarg; break;
                case 'h':
                        osm_ctl_usage("building query", "COLLECTION [--since T] [--until T] [--limit N] [--room ROOM]",
                                      "Ask every room that shares COLLECTION, in parallel, and merge the answers by time.",
                                      "  -s, --since T    from this time on (inclusive)\n"
                                      "  -u, --until T    before this time\n"
                                      "  -l, --limit N    at most N records (default 100, at most 1000)\n"
                                      "  -r, --room ROOM  ask only this room (id or name)\n"
                                      "Rooms that do not answer within [building] query-timeout are named. With --json, one document.\n");
                        return 0;
                default: return 2;
                }
        }
        if (argc - optind != 1)
                return osm_ctl_usage_error("building query: usage: building query COLLECTION [--since T] [--until T] [--limit N]");
        osm_req_building_query_opt qo = {
                .since = OSM_IF(has_since, since), .until = OSM_IF(has_until, until),
                .limit = OSM_SOME((int64_t) limit), .room = room,
        };
        _cleanup_json_ json_t *rep = NULL;
        if (osm_ctl_request(ctl, osm_req_building_query(argv[optind], &qo), &rep))
                return 1;
        if (ctl->json) {
                osm_print_json(rep);
                return 0;
        }
        osm_table *t = osm_table_new("TIME", "ROOM", "WRITER", "BODY", NULL);
        size_t i;
        json_t *rec;
        json_array_foreach(json_object_get(rep, "records"), i, rec) {
                char when[64];
                size_t blen;
                char *body = osm_vl_dump(json_object_get(rec, "body"), &blen);
                osm_table_add(t, osm_format_time(json_integer_value(json_object_get(rec, "time")), when, sizeof when),
                              json_string_value(json_object_get(rec, "room_name")),
                              json_string_value(json_object_get(rec, "writer")), body);
                free(body);
        }
        osm_table_print(t);
        json_t *rooms = json_object_get(rep, "rooms"), *a;
        json_int_t missing = json_integer_value(json_object_get(rep, "missing"));
        if (missing)
                fprintf(stderr, "%lld of %zu rooms did not answer:", (long long) missing, json_array_size(rooms));
        json_array_foreach(rooms, i, a) {
                const char *st = json_string_value(json_object_get(a, "status"));
                if (strcmp(st, "answered") != 0)
                        fprintf(stderr, "%s %s (%s%s%s)", missing ? "" : "\nnote:", json_string_value(json_object_get(a, "name")), st,
                                json_object_get(a, "message") ? ": " : "", json_string_value(json_object_get(a, "message")) ?: "");
        }
        if (missing)
                fprintf(stderr, "\n");
        return 0;
}

int cmd_building(osm_ctl *ctl, int argc, char **argv) {
        static const osm_ctl_command table[] = {
                { "create", bld_create, "[--name NAME] [--address HOST]", "start a building with this room" },
                { "invite", bld_invite, "[--expires D]", "a single-use join token for another room" },
                { "join", bld_join, "TOKEN [--address HOST]", "join the building a token names" },
                { "status", bld_status, "", "every room: role, reachable, health, workloads, services" },
                { "leave", bld_leave, "", "leave the building" },
                { "remove", bld_remove, "ROOM", "remove another room (also one gone for good)" },
                { "recover", bld_recover, "[ROOM...]", "dqlite's recovery when most voters are lost for good" },
                { "trust", bld_trust, "add|ls|rm PUBKEY", "publisher keys trusted building-wide" },
                { "share", bld_share, "COLLECTION", "answer building queries for a collection" },
                { "unshare", bld_share, "COLLECTION", "stop answering building queries for it" },
                { "query", bld_query, "COLLECTION [--since T] [--until T] [--limit N] [--room ROOM]", "ask every room that shares it" },
        };
        return osm_ctl_dispatch(ctl, "building", table, OSM_ARRAY_SIZE(table), argc, argv);
}
