/* cmd-workload.c: trust, install, workloads, remove, grant, revoke (instances: cmd-instance.c). */
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/commands.h"

static const char *str(json_t *o, const char *key) {
        return json_string_value(json_object_get(o, key));
}

static void print_list(const char *label, json_t *arr) {
        printf("%s", label);
        size_t i;
        json_t *v;
        json_array_foreach(arr, i, v)
                printf("%s%s", i ? ", " : "", json_string_value(v));
        printf("%s\n", json_array_size(arr) ? "" : "nothing");
}

/* A command taking exactly n positional arguments and no options. */
static bool simple_args(int argc, char **argv, int n, const char *cmd, const char *args, const char *help) {
        if (osm_ctl_wants_help(argc, argv)) {
                osm_ctl_usage(cmd, args, help, NULL);
                exit(0);
        }
        if (argc != n + 1) {
                osm_ctl_fail("%s: usage: osmosectl %s %s", cmd, cmd, args);
                return false;
        }
        return true;
}

/* ---- trust ---------------------------------------------------------------------------- */

/* trust add and trust rm: the same call shape, the other method. */
static int trust_change(osm_ctl *ctl, int argc, char **argv, bool add) {
        if (!simple_args(argc, argv, 1, add ? "trust add" : "trust rm", "PUBKEY",
                         add ? "Trust a publisher key: bundles it signed may be installed."
                             : "Stop trusting a publisher key. Workloads it signed stay installed, flagged UNTRUSTED\n"
                               "in 'osmosectl workloads', and do not run (nor start with the daemon) until it is\n"
                               "trusted again ('osmosectl run --help' says how to run one anyway)."))
                return 2;
        _cleanup_json_ json_t *rep = NULL;
        if (osm_ctl_request(ctl, add ? osm_req_workload_trust_add(argv[1]) : osm_req_workload_trust_remove(argv[1]), &rep))
                return 1;
        osm_print_done(ctl, rep, json_pack("{s:s, s:b}", "public_key", argv[1], "trusted", add),
                       "%s%s", add ? "trusted " : "no longer trusted: ", argv[1]);
        if (!ctl->json && json_array_size(json_object_get(rep, "flagged")))
                print_list("flagged (signed by it; they run only with run's allow-untrusted option): ",
                           json_object_get(rep, "flagged"));
        return 0;
}

static int trust_add(osm_ctl *ctl, int argc, char **argv) {
        return trust_change(ctl, argc, argv, true);
}

static int trust_rm(osm_ctl *ctl, int argc, char **argv) {
        return trust_change(ctl, argc, argv, false);
}

static int trust_ls(osm_ctl *ctl, int argc, char **argv) {
        if (!simple_args(argc, argv, 0, "trust ls", "", "List the trusted publisher keys."))
                return 2;
        _cleanup_json_ json_t *rep = NULL;
        if (osm_ctl_request(ctl, osm_req_workload_trust_list(), &rep))
                return 1;
        if (ctl->json) {
                osm_print_json(rep);
                return 0;
        }
        osm_table *t = osm_table_new("PUBLIC KEY", "ADDED", NULL);
        size_t i;
        json_t *k;
        json_array_foreach(json_object_get(rep, "keys"), i, k) {
                char tb[64];
                osm_table_add(t, str(k, "public_key"),
                              osm_format_time(json_integer_value(json_object_get(k, "added")), tb, sizeof tb));
        }
        osm_table_print(t);
        return 0;
}

int cmd_trust(osm_ctl *ctl, int argc, char **argv) {
        static const osm_ctl_command sub[] = {
                { "add", trust_add, "PUBKEY", "trust a publisher key" },
                { "ls", trust_ls, NULL, "list trusted publisher keys" },
                { "rm", trust_rm, "PUBKEY", "stop trusting a publisher key" },
        };
        return osm_ctl_dispatch(ctl, "trust", sub, OSM_ARRAY_SIZE(sub), argc, argv);
}

/* ---- install, workloads, remove, grant, revoke -------------------------------------------- */

int cmd_install(osm_ctl *ctl, int argc, char **argv) {
        static const struct option opts[] = {
                { "grant", required_argument, NULL, 'g' },
                { "allow-unsigned", no_argument, NULL, 'U' },
                { "allow-downgrade", no_argument, NULL, 'D' },
                { "tenant", required_argument, NULL, 'T' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        _cleanup_json_ json_t *grants = json_array();
        osm_req_workload_install_opt in = { .grants = grants };
        int c;
        while ((c = getopt_long(argc, argv, "g:h", opts, NULL)) != -1) {
                switch (c) {
                case 'g': json_array_append_new(grants, json_string(optarg)); break;
                case 'U': in.allow_unsigned = (osm_opt_bool) OSM_SOME(true); break;
                case 'D': in.allow_downgrade = (osm_opt_bool) OSM_SOME(true); break;
                case 'T': in.tenant = optarg; break;
                case 'h':
                        osm_ctl_usage("install", "BUNDLE|URL [--grant CAP]... [--allow-unsigned] [--allow-downgrade] [--tenant T]",
                                      "Install a bundle file, or fetch one over http(s) (the daemon fetches it). Its "
                                      "signature is\nchecked against the trusted keys before anything is unpacked.",
                                      "Options:\n"
                                      "  --grant CAP        give a capability the manifest requests (repeatable):\n"
                                      "                     network, discovery:read, store:read:PATTERN,\n"
                                      "                     store:write:PATTERN, publish:_NAME._tcp, device:/dev/NAME\n"
                                      "  --allow-unsigned   accept an unsigned bundle or an untrusted signer\n"
                                      "                     (for development; recorded with the workload)\n"
                                      "  --allow-downgrade  accept an older version than the one installed\n"
                                      "  --tenant T         install it for tenant T (operators; a tenant's members\n"
                                      "                     always install for their own tenant)\n"
                                      "Nothing is granted unless given here or with 'osmosectl grant'.\n");
                        return 0;
                default: return 2;
                }
        }
        if (optind != argc - 1)
                return osm_ctl_usage_error("install: usage: osmosectl install BUNDLE|URL [--grant CAP]...");
        const char *src = argv[optind];
        _cleanup_close_ int fd = -1;
        if (strncmp(src, "http://", 7) == 0 || strncmp(src, "https://", 8) == 0)
                in.url = src;
        else {
                fd = open(src, O_RDONLY | O_CLOEXEC | O_NOCTTY);
                struct stat st;
                if (fd < 0 || fstat(fd, &st) < 0)
                        return osm_ctl_fail("install: %s: %m", src);
                if (!S_ISREG(st.st_mode))
                        return osm_ctl_fail("install: %s: not a regular file", src);
        }
        _cleanup_json_ json_t *rep = NULL;
        if (osm_ctl_request_fds(ctl, osm_req_workload_install(&in), fd >= 0 ? &fd : NULL, fd >= 0 ? 1 : 0,
                                &rep, NULL, NULL))
                return 1;
        if (ctl->json) {
                osm_print_json(rep);
                return 0;
        }
        json_t *prev = json_object_get(rep, "previous_version");
        printf("installed %s version %lld", str(rep, "name"), (long long) json_integer_value(json_object_get(rep, "version")));
        if (prev)
                printf(" (was version %lld)", (long long) json_integer_value(prev));
        printf("\nbundle:    %s\n", str(rep, "id"));
        if (json_is_true(json_object_get(rep, "verified")))
                printf("signed by: %s (trusted)\n", str(rep, "signer"));
        else
                printf("signed by: %s — NOT VERIFIED, installed with --allow-unsigned\n",
                       str(rep, "signer") ? str(rep, "signer") : "nobody");
        print_list("requests:  ", json_object_get(rep, "requested"));
        print_list("granted:   ", json_object_get(rep, "granted"));
        if (json_array_size(json_object_get(rep, "dropped")))
                print_list("dropped (no longer requested): ", json_object_get(rep, "dropped"));
        size_t i;
        json_t *cap;
        json_array_foreach(json_object_get(rep, "requested"), i, cap) {
                bool given = false;
                size_t k;
                json_t *g;
                json_array_foreach(json_object_get(rep, "granted"), k, g)
                        given = given || json_equal(g, cap);
                if (!given)
                        printf("not granted: %s (osmosectl grant %s %s)\n", json_string_value(cap),
                               str(rep, "name"), json_string_value(cap));
        }
        return 0;
}

int cmd_workloads(osm_ctl *ctl, int argc, char **argv) {
        if (!simple_args(argc, argv, 0, "workloads", "", "List installed workloads, their versions, signers and grants."))
                return 2;
        _cleanup_json_ json_t *rep = NULL;
        if (osm_ctl_request(ctl, osm_req_workload_list(), &rep))
                return 1;
        osm_ctl_annotate_channels(ctl, json_object_get(rep, "workloads"));
        if (ctl->json) {
                osm_print_json(rep);
                return 0;
        }
        osm_table *t = osm_table_new("NAME", "VERSION", "SIGNER", "RUNNING", "ENABLED", "GRANTED", "BUNDLE", "CHANNEL", NULL);
        size_t i;
        json_t *w;
        json_array_foreach(json_object_get(rep, "workloads"), i, w) {
                char ver[32], run[16], signer[64], granted[1024] = "";
                snprintf(ver, sizeof ver, "%lld", (long long) json_integer_value(json_object_get(w, "version")));
                snprintf(run, sizeof run, "%lld", (long long) json_integer_value(json_object_get(w, "running")));
                const char *s = str(w, "signer");
                if (json_is_true(json_object_get(w, "verified")) && json_is_false(json_object_get(w, "trusted")))
                        snprintf(signer, sizeof signer, "UNTRUSTED %.12s…", s);
                else if (json_is_true(json_object_get(w, "verified")))
                        snprintf(signer, sizeof signer, "%.12s…", s);
                else
                        snprintf(signer, sizeof signer, "UNVERIFIED%s%.12s", s ? " " : "", s ? s : "");
                size_t k, off = 0;
                json_t *g;
                json_array_foreach(json_object_get(w, "granted"), k, g)
                        if (off < sizeof granted)
                                off += (size_t) snprintf(granted + off, sizeof granted - off, "%s%s", k ? "," : "",
                                                         json_string_value(g));
                char id[16];
                snprintf(id, sizeof id, "%.12s", str(w, "id"));
                char ch[256];
                osm_table_add(t, str(w, "name"), ver, signer, run,
                              json_is_true(json_object_get(w, "enabled")) ? "yes" : "no", off ? granted : "-", id,
                              osm_ctl_channel_cell(w, ch, sizeof ch));
        }
        osm_table_print(t);
        return 0;
}

int cmd_remove(osm_ctl *ctl, int argc, char **argv) {
        static const struct option opts[] = {
                { "keep-data", no_argument, NULL, 'k' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        bool keep = false;
        int c;
        while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                switch (c) {
                case 'k': keep = true; break;
                case 'h':
                        osm_ctl_usage("remove", "NAME [--keep-data]",
                                      "Remove a workload: its live instances are stopped (the command returns once they "
                                      "have\nended), its bundle deleted, and its data directory deleted unless "
                                      "--keep-data\n(kept data is the workload's again if it is installed later).",
                                      "Options:\n  --keep-data   keep the workload's data directory\n");
                        return 0;
                default: return 2;
                }
        }
        if (optind != argc - 1)
                return osm_ctl_usage_error("remove: usage: osmosectl remove NAME [--keep-data]");
        _cleanup_json_ json_t *rep = NULL;
        osm_req_workload_remove_opt ro = { .keep_data = OSM_SOME(keep) };
        if (osm_ctl_request(ctl, osm_req_workload_remove(argv[optind], &ro), &rep))
                return 1;
        if (ctl->json) {
                osm_print_json(rep);
                return 0;
        }
        printf("removed %s\n", str(rep, "name"));
        if (json_array_size(json_object_get(rep, "stopped")))
                print_list("stopped:  ", json_object_get(rep, "stopped"));
        char size[32];
        osm_format_bytes((uint64_t) json_integer_value(json_object_get(rep, "data_bytes")), size, sizeof size);
        if (json_is_true(json_object_get(rep, "data_deleted")))
                printf("deleted:  its data, %s (%s)\n", str(rep, "data_path"), size);
        else if (json_is_true(json_object_get(rep, "data_kept")))
                printf("kept:     its data, %s (%s)\n", str(rep, "data_path"), size);
        else
                printf("data:     it had none\n");
        return 0;
}

static int grant_revoke(osm_ctl *ctl, int argc, char **argv, bool grant) {
        const char *cmd = grant ? "grant" : "revoke";
        if (!simple_args(argc, argv, 2, cmd, "NAME CAP",
                         grant ? "Give a workload a capability its manifest requests." :
                                 "Take a capability back; the workload API refuses it from now on."))
                return 2;
        _cleanup_json_ json_t *rep = NULL;
        if (osm_ctl_request(ctl, grant ? osm_req_workload_grant(argv[1], argv[2]) : osm_req_workload_revoke(argv[1], argv[2]),
                            &rep))
                return 1;
        if (ctl->json)
                osm_print_json(rep);
        else
                print_list("granted: ", json_object_get(rep, "granted"));
        return 0;
}

int cmd_grant(osm_ctl *ctl, int argc, char **argv) {
        return grant_revoke(ctl, argc, argv, true);
}

int cmd_revoke(osm_ctl *ctl, int argc, char **argv) {
        return grant_revoke(ctl, argc, argv, false);
}

