/* cmd-federation.c: federation enable/disable/status, remote add/ls/rm/fetch, share,
 * unshare and audit. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"


static const char *fmt_time(json_t *v, char *buf, size_t size) {
        json_int_t t = json_integer_value(v);
        if (t <= 0)
                return "never";
        return osm_format_time(t, buf, size);
}

/* --- federation --- */
static int fed_enable(osm_ctl *ctl, int argc, char **argv) {
        static const struct option opts[] = {
                { "listen", required_argument, NULL, 'l' }, { "help", no_argument, NULL, 'h' }, {},
        };
        const char *listen = NULL;
        int c;
        while ((c = getopt_long(argc, argv, "+l:h", opts, NULL)) != -1) {
                switch (c) {
                case 'l': listen = optarg; break;
                case 'h':
                        osm_ctl_usage("federation enable", "[--listen ADDR:PORT]",
                                      "Serve paired remotes on ADDR:PORT (default: the last one used, else federation.listen) and start syncing.",
                                      "The choice is kept across restarts. Port 0 picks a free port; 'federation status' shows it.\n");
                        return 0;
                default: return 2;
                }
        }
        if (optind < argc)
                return osm_ctl_usage_error("federation enable: unexpected argument '%s'", argv[optind]);
        _cleanup_json_ json_t *rep = NULL;
        if (osm_ctl_request(ctl, osm_req_federation_enable(&(osm_req_federation_enable_opt){ .listen = listen }), &rep))
                return 1;
        if (ctl->json)
                osm_print_json(rep);
        else
                printf("federation enabled, listening on %s\n", json_string_value(json_object_get(rep, "listen")));
        return 0;
}

static int fed_disable(osm_ctl *ctl, int argc, char **argv) {
        if (osm_ctl_wants_help(argc, argv)) {
                osm_ctl_usage("federation disable", "", "Close the listener and stop all outbound work at once; kept across restarts.", NULL);
                return 0;
        }
        if (argc > 1)
                return osm_ctl_usage_error("federation disable: unexpected argument '%s'", argv[1]);
        _cleanup_json_ json_t *rep = NULL;
        if (osm_ctl_request(ctl, osm_req_federation_disable(), &rep))
                return 1;
        osm_print_done(ctl, rep, json_pack("{s:b}", "enabled", 0), "federation disabled");
        return 0;
}

static int fed_status(osm_ctl *ctl, int argc, char **argv) {
        if (osm_ctl_wants_help(argc, argv)) {
                osm_ctl_usage("federation status", "", "Whether federation is on, where it listens, this space's key for pairing, and counters.", NULL);
                return 0;
        }
        if (argc > 1)
                return osm_ctl_usage_error("federation status: unexpected argument '%s'", argv[1]);
        _cleanup_json_ json_t *rep = NULL;
        if (osm_ctl_request(ctl, osm_req_federation_get_status(), &rep))
                return 1;
        if (ctl->json) {
                osm_print_json(rep);
                return 0;
        }
        bool on = json_is_true(json_object_get(rep, "enabled"));
        printf("Federation:   %s\n", on ? "enabled" : "disabled");
        if (on)
                printf("Listening on: %s\n", json_string_value(json_object_get(rep, "listen")));
        printf("Space id:     %s\n", json_string_value(json_object_get(rep, "space_id")));
        printf("Key:          %s\n", json_string_value(json_object_get(rep, "key")));
        printf("Remotes:      %lld\n", (long long) json_integer_value(json_object_get(rep, "remotes")));
        printf("Requests in:  %lld (%lld refused)\n", (long long) json_integer_value(json_object_get(rep, "requests_in")),
               (long long) json_integer_value(json_object_get(rep, "requests_refused")));
        printf("Requests out: %lld (%lld bytes, %lld connections)\n",
               (long long) json_integer_value(json_object_get(rep, "requests_out")),
               (long long) json_integer_value(json_object_get(rep, "bytes_out")),
               (long long) json_integer_value(json_object_get(rep, "connections_out")));
        const char *k;
        json_t *v;
        json_object_foreach(json_object_get(rep, "refusals"), k, v)
                printf("  refused %-16s %lld\n", k, (long long) json_integer_value(v));
        return 0;
}

int cmd_federation(osm_ctl *ctl, int argc, char **argv) {
        static const osm_ctl_command table[] = {
                { "enable", fed_enable, "[--listen ADDR:PORT]", "serve paired remotes and sync with them" },
                { "disable", fed_disable, "", "no listening socket, no outbound connection" },
                { "status", fed_status, "", "state, listen address, this space's key, counters" },
        };
        return osm_ctl_dispatch(ctl, "federation", table, OSM_ARRAY_SIZE(table), argc, argv);
}

/* --- remote --- */
static int remote_add(osm_ctl *ctl, int argc, char **argv) {
        static const struct option opts[] = {
                { "key", required_argument, NULL, 'k' }, { "help", no_argument, NULL, 'h' }, {},
        };
        const char *key = NULL;
        int c;
        while ((c = getopt_long(argc, argv, "k:h", opts, NULL)) != -1) {
                switch (c) {
                case 'k': key = optarg; break;
                case 'h':
                        osm_ctl_usage("remote add", "NAME URL --key PUBKEY",
                                      "Pair with a remote space: URL is where it serves (http://HOST:PORT), PUBKEY the key its 'federation status' prints.",
                                      "Both operators pair: each adds the other. Requests are signed and their bodies encrypted to PUBKEY.\n");
                        return 0;
                default: return 2;
                }
        }
        if (argc - optind != 2 || !key)
                return osm_ctl_usage_error("remote add: usage: remote add NAME URL --key PUBKEY");
        _cleanup_json_ json_t *rep = NULL;
        if (osm_ctl_request(ctl, osm_req_federation_add_remote(argv[optind], argv[optind + 1], key), &rep))
                return 1;
        osm_print_done(ctl, rep, json_pack("{s:s, s:s}", "name", argv[optind], "url", argv[optind + 1]),
                       "paired with %s (space %s)", argv[optind], json_string_value(json_object_get(rep, "space_id")));
        return 0;
}

static int remote_ls(osm_ctl *ctl, int argc, char **argv) {
        if (osm_ctl_wants_help(argc, argv)) {
                osm_ctl_usage("remote ls", "", "Paired remotes: state (off, never, idle, syncing, offline), last contact, queue, shares.", NULL);
                return 0;
        }
        if (argc > 1)
                return osm_ctl_usage_error("remote ls: unexpected argument '%s'", argv[1]);
        _cleanup_json_ json_t *rep = NULL;
        if (osm_ctl_request(ctl, osm_req_federation_list_remotes(), &rep))
                return 1;
        if (ctl->json) {
                osm_print_json(rep);
                return 0;
        }
        osm_table *t = osm_table_new("NAME", "STATE", "LAST CONTACT", "QUEUED", "DROPPED", "SENT", "RECEIVED", "SHARES", "URL", "LAST ERROR", NULL);
        size_t i;
        json_t *r;
        json_array_foreach(json_object_get(rep, "remotes"), i, r) {
                char tb[64], q[24], d[24], s[24], rv[24], shares[256] = "";
                snprintf(q, sizeof(q), "%lld", (long long) json_integer_value(json_object_get(r, "queued")));
                snprintf(d, sizeof(d), "%lld", (long long) json_integer_value(json_object_get(r, "dropped")));
                snprintf(s, sizeof(s), "%lld", (long long) json_integer_value(json_object_get(r, "sent")));
                snprintf(rv, sizeof(rv), "%lld", (long long) json_integer_value(json_object_get(r, "received")));
                size_t k;
                json_t *c;
                json_array_foreach(json_object_get(r, "shares"), k, c) {
                        size_t l = strlen(shares);
                        snprintf(shares + l, sizeof(shares) - l, "%s%s", l ? "," : "", json_string_value(c));
                }
                osm_table_add(t, json_string_value(json_object_get(r, "name")), json_string_value(json_object_get(r, "state")),
                              fmt_time(json_object_get(r, "last_contact"), tb, sizeof(tb)), q, d, s, rv,
                              shares[0] ? shares : NULL, json_string_value(json_object_get(r, "url")),
                              json_string_value(json_object_get(r, "last_error")));
        }
        osm_table_print(t);
        return 0;
}

static int remote_rm(osm_ctl *ctl, int argc, char **argv) {
        if (osm_ctl_wants_help(argc, argv)) {
                osm_ctl_usage("remote rm", "NAME", "Unpair a remote: its shares and queue go too; its requests are refused from now on.", NULL);
                return 0;
        }
        if (argc != 2)
                return osm_ctl_usage_error("remote rm: usage: remote rm NAME");
        _cleanup_json_ json_t *rep = NULL;
        if (osm_ctl_request(ctl, osm_req_federation_remove_remote(argv[1]), &rep))
                return 1;
        osm_print_done(ctl, rep, json_pack("{s:s, s:b}", "name", argv[1], "removed", 1), "removed %s", argv[1]);
        return 0;
}

static int remote_set_url(osm_ctl *ctl, int argc, char **argv) {
        if (osm_ctl_wants_help(argc, argv)) {
                osm_ctl_usage("remote set-url", "NAME URL",
                              "Reach a paired remote at another address (it moved); its key, shares and queue stay.", NULL);
                return 0;
        }
        if (argc != 3)
                return osm_ctl_usage_error("remote set-url: usage: remote set-url NAME URL");
        _cleanup_json_ json_t *rep = NULL;
        if (osm_ctl_request(ctl, osm_req_federation_set_remote_url(argv[1], argv[2]), &rep))
                return 1;
        osm_print_done(ctl, rep, json_pack("{s:s, s:s}", "name", argv[1], "url", argv[2]), "%s is now reached at %s",
                       argv[1], argv[2]);
        return 0;
}

static int remote_fetch(osm_ctl *ctl, int argc, char **argv) {
        if (osm_ctl_wants_help(argc, argv)) {
                osm_ctl_usage("remote fetch", "NAME HASH", "Fetch an object (or bundle) by hash from a remote; it is verified against HASH and stored here, pinned.", NULL);
                return 0;
        }
        if (argc != 3)
                return osm_ctl_usage_error("remote fetch: usage: remote fetch NAME HASH");
        _cleanup_json_ json_t *rep = NULL;
        if (osm_ctl_request(ctl, osm_req_federation_fetch_object(argv[1], argv[2]), &rep))
                return 1;
        if (ctl->json)
                osm_print_json(rep);
        else
                printf("%s %lld bytes, verified\n", json_string_value(json_object_get(rep, "hash")),
                       (long long) json_integer_value(json_object_get(rep, "size")));
        return 0;
}

int cmd_remote(osm_ctl *ctl, int argc, char **argv) {
        static const osm_ctl_command table[] = {
                { "add", remote_add, "NAME URL --key PUBKEY", "pair with a remote space" },
                { "ls", remote_ls, "", "paired remotes, their state and last contact" },
                { "rm", remote_rm, "NAME", "unpair a remote" },
                { "set-url", remote_set_url, "NAME URL", "reach a paired remote at another address" },
                { "fetch", remote_fetch, "NAME HASH", "fetch and verify an object from a remote" },
        };
        return osm_ctl_dispatch(ctl, "remote", table, OSM_ARRAY_SIZE(table), argc, argv);
}

/* --- share / unshare --- */
static int share_common(osm_ctl *ctl, int argc, char **argv, bool share) {
        const char *cmd = share ? "share" : "unshare";
        static const struct option opts[] = {
                { "with", required_argument, NULL, 'w' }, { "object", required_argument, NULL, 'o' },
                { "since", required_argument, NULL, 's' }, { "channel", required_argument, NULL, 'c' },
                { "help", no_argument, NULL, 'h' }, {},
        };
        const char *with = NULL, *object = NULL, *since = NULL, *channel = NULL;
        int c;
        while ((c = getopt_long(argc, argv, "w:h", opts, NULL)) != -1) {
                switch (c) {
                case 'w': with = optarg; break;
                case 'o': object = optarg; break;
                case 's': since = optarg; break;
                case 'c': channel = optarg; break;
                case 'h':
                        osm_ctl_usage(cmd, "COLLECTION --with REMOTE | --object HASH --with REMOTE | --channel NAME --with REMOTE",
                                      share ? "Send this space's new records of COLLECTION to REMOTE (queued, bounded, while it is unreachable);\n"
                                              "the objects its records reference may then be fetched by REMOTE. With --object, let\n"
                                              "REMOTE fetch that one object (or bundle) by its hash. With --channel, serve REMOTE the\n"
                                              "channel's newest list this space accepted or imported, and the kept bundles it lists\n"
                                              "(REMOTE follows it with the source remote:NAME). Nothing else can be fetched."
                                            : "Stop sending COLLECTION to REMOTE; what is still queued for it is dropped. With\n"
                                              "--object, REMOTE may no longer fetch that object (unless a shared record references it);\n"
                                              "with --channel, that channel is no longer served to REMOTE.",
                                      "Options:\n  --with REMOTE   the paired remote\n  --object HASH   an object or bundle, by its hash\n"
                                      "  --channel NAME  a channel (its list and the bundles it lists)\n"
                                      "  --since T       share: also the records stored since T (-7d, 2026-12-01), within\n"
                                      "                  the remote's queue bound (max-queue)\n");
                        return 0;
                default: return 2;
                }
        }
        if (channel || object) {
                /* one object by its hash, or one channel: the same call but for its names */
                const char *field = channel ? "channel" : "hash", *what = channel ? channel : object;
                if (argc != optind || !with || (channel && (object || since)))
                        return osm_ctl_usage_error("%s: usage: %s --%s %s --with REMOTE", cmd, cmd,
                                                   channel ? "channel" : "object", channel ? "NAME" : "HASH");
                _cleanup_json_ json_t *rep = NULL;
                if (osm_ctl_request(ctl, channel ? (share ? osm_req_federation_share_channel(channel, with)
                                                          : osm_req_federation_unshare_channel(channel, with))
                                                 : (share ? osm_req_federation_share_object(object, with)
                                                          : osm_req_federation_unshare_object(object, with)), &rep))
                        return 1;
                osm_print_done(ctl, rep, json_pack("{s:s, s:s, s:b}", field, what, "remote", with, "shared", share),
                               "%s may %s%s %s%s", with, share ? "" : "no longer ",
                               channel ? "follow channel" : "fetch object", what, channel ? " from here" : "");
                return 0;
        }
        if (argc - optind != 1 || !with)
                return osm_ctl_usage_error("%s: usage: %s COLLECTION --with REMOTE", cmd, cmd);
        osm_req_federation_share_opt so = { 0 };
        if (since) {
                int64_t t;
                if (!share)
                        return osm_ctl_usage_error("unshare: --since is for share");
                if (osm_parse_time(since, osm_now_real_us(), &t) < 0)
                        return osm_ctl_usage_error("share: --since '%s': expected a time such as -7d or 2026-12-01", since);
                so.since = (osm_opt_int) OSM_SOME(t);
        }
        _cleanup_json_ json_t *rep = NULL;
        if (osm_ctl_request(ctl, share ? osm_req_federation_share(argv[optind], with, &so)
                                       : osm_req_federation_unshare(argv[optind], with), &rep))
                return 1;
        osm_print_done(ctl, rep, json_pack("{s:s, s:s, s:b}", "collection", argv[optind], "remote", with, "shared", share),
                       "%s %s with %s", share ? "sharing" : "no longer sharing", argv[optind], with);
        return 0;
}

int cmd_share(osm_ctl *ctl, int argc, char **argv) {
        return share_common(ctl, argc, argv, true);
}

int cmd_unshare(osm_ctl *ctl, int argc, char **argv) {
        return share_common(ctl, argc, argv, false);
}

/* --- audit --- */
int cmd_audit(osm_ctl *ctl, int argc, char **argv) {
        static const struct option opts[] = {
                { "since", required_argument, NULL, 's' }, { "limit", required_argument, NULL, 'n' },
                { "help", no_argument, NULL, 'h' }, {},
        };
        const char *since = NULL, *limit = NULL;
        int c;
        while ((c = getopt_long(argc, argv, "s:n:h", opts, NULL)) != -1) {
                switch (c) {
                case 's': since = optarg; break;
                case 'n': limit = optarg; break;
                case 'h':
                        osm_ctl_usage("audit", "[--since T] [-n|--limit N]",
                                      "What left this space: when, to which remote, what (collection, object), records and bytes.",
                                      "  -s, --since T   entries from T on (-1h, 1h, yesterday, 2026-12-02, RFC 3339)\n"
                                      "  -n, --limit N   the newest N entries (as journalctl -n), oldest first\n"
                                      "Entries are kept for federation.audit-max-age. With --json, one entry a line.\n");
                        return 0;
                default: return 2;
                }
        }
        if (optind < argc)
                return osm_ctl_usage_error("audit: unexpected argument '%s'", argv[optind]);
        osm_req_federation_audit_opt ao = { 0 };
        if (since) {
                int64_t t;
                if (osm_ctl_parse_time("audit", "--since", since, &t))
                        return 2;
                ao.since = (osm_opt_int) OSM_SOME(t);
        }
        if (limit) {
                uint64_t n;
                if (osm_parse_u64(limit, &n) < 0 || n == 0 || n > 100000)
                        return osm_ctl_usage_error("audit: --limit: 1 to 100000");
                ao.limit = (osm_opt_int) OSM_SOME((int64_t) n);
        }
        _cleanup_json_ json_t *rep = NULL;
        if (osm_ctl_request(ctl, osm_req_federation_audit(&ao), &rep))
                return 1;
        size_t i;
        json_t *e;
        if (ctl->json) {
                json_array_foreach(json_object_get(rep, "entries"), i, e)
                        osm_print_json_line(e);
                return 0;
        }
        osm_table *t = osm_table_new("TIME", "REMOTE", "DIRECTION", "KIND", "WHAT", "RECORDS", "BYTES", "STATUS", "PEER", NULL);
        json_array_foreach(json_object_get(rep, "entries"), i, e) {
                char tb[64], rec[24], by[24];
                snprintf(rec, sizeof(rec), "%lld", (long long) json_integer_value(json_object_get(e, "records")));
                snprintf(by, sizeof(by), "%lld", (long long) json_integer_value(json_object_get(e, "bytes")));
                const char *what = json_string_value(json_object_get(e, "collection"));
                if (!what)
                        what = json_string_value(json_object_get(e, "object"));
                osm_table_add(t, fmt_time(json_object_get(e, "time"), tb, sizeof(tb)),
                              json_string_value(json_object_get(e, "remote")),
                              json_string_value(json_object_get(e, "direction")),
                              json_string_value(json_object_get(e, "kind")), what, rec, by,
                              json_string_value(json_object_get(e, "status")),
                              json_string_value(json_object_get(e, "peer")));
        }
        osm_table_print(t);
        return 0;
}
