/* osmosectl.c: the command table and global options; each command lives in cmd-*.c. */
#include <getopt.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "build-config.h"

static const osm_ctl_command commands[] = {
        { "status", cmd_status, "", "space id and name, version, uptime, each subsystem and its health" },
        { "reload", cmd_reload, "", "reload the daemon's configuration file" },
        { "put", cmd_put, "COLLECTION [JSON] | --batch [--time T]", "store a record, or JSON Lines from stdin with --batch" },
        { "query", cmd_query, "COLLECTION [--since T] [--limit N] [-f]", "print records of a collection; -f: then new ones" },
        { "collections", cmd_collections, "", "collections with records, bytes and retention" },
        { "retention", cmd_retention, "COLLECTION [--max-age D] [--max-records N] [--max-bytes B]", "show or set retention" },
        { "delete", cmd_delete, "COLLECTION [--until T] [--where-writer W]", "erase records for good (a privacy request), audited" },
        { "object", cmd_object, "put|get|ls|rm|gc …", "content-addressed objects" },
        { "federation", cmd_federation, "enable|disable|status", "federation with remote spaces (off by default)" },
        { "remote", cmd_remote, "add|ls|rm|set-url|fetch", "paired remote spaces" },
        { "share", cmd_share, "COLLECTION --with REMOTE", "send a collection's new records to a remote" },
        { "unshare", cmd_unshare, "COLLECTION --with REMOTE", "stop sharing a collection with a remote" },
        { "audit", cmd_audit, "[--since T] [-n N]", "what left the space: when, to whom, what, how many bytes" },
        { "keygen", cmd_keygen, "-o FILE", "make a publisher keypair for signing bundles" },
        { "bundle", cmd_bundle, "build|inspect ...", "pack (and sign) a bundle; check one" },
        { "trust", cmd_trust, "add|ls|rm [PUBKEY]", "publisher keys whose bundles may be installed" },
        { "install", cmd_install, "BUNDLE|URL [--grant CAP]...", "verify and install a bundle" },
        { "workloads", cmd_workloads, "", "installed workloads, versions, signers, grants" },
        { "remove", cmd_remove, "NAME [--keep-data]", "remove a workload, its instances and (unless kept) its data" },
        { "enable", cmd_enable, "NAME [--now]", "start a workload whenever the daemon starts" },
        { "disable", cmd_disable, "NAME [--now]", "do not start a workload with the daemon any more" },
        { "grant", cmd_grant, "NAME CAP", "give a workload a capability it requests" },
        { "revoke", cmd_revoke, "NAME CAP", "take a capability back" },
        { "run", cmd_run, "NAME [--wait] [--restart P] [-- ARG...]", "start an instance; --wait shows its output, exits with its status" },
        { "ps", cmd_ps, "[--all] [-w NAME] [-s STATE]", "live instances; with --all also those that ended" },
        { "logs", cmd_logs, "[-f] [-n N] [--since T] INSTANCE", "an instance's stdout and stderr, kept on disk" },
        { "stop", cmd_stop, "INSTANCE | NAME [--all]", "SIGTERM, then SIGKILL after the grace period" },
        { "stats", cmd_stats, "INSTANCE", "CPU time, peak memory and I/O of an instance" },
        { "peers", cmd_peers, "[--watch]", "other gateways on the LAN; trusted or not" },
        { "peer", cmd_peer, "trust|untrust ID", "trust a gateway, or stop trusting it" },
        { "channel", cmd_channel, "publish|inspect ...", "sign a list of versions of a workload; check one" },
        { "follow", cmd_follow, "NAME SOURCE", "let a workload follow a channel (a directory or URL)" },
        { "unfollow", cmd_unfollow, "NAME", "stop following; the installed version stays" },
        { "pin", cmd_pin, "NAME VERSION", "hold a followed workload at a version" },
        { "unpin", cmd_unpin, "NAME", "let it follow its channel again" },
        { "upgrade", cmd_upgrade, "[NAME] [--check]", "upgrade followed workloads, health-checked, rolled back on failure" },
        { "rollout", cmd_rollout, "status|hold|release", "building-wide rollouts: which room runs which version; holds" },
        { "import", cmd_import, "DIR", "take channels and bundles from a directory (a USB stick)" },
        { "building", cmd_building, "create|invite|join|status|leave|remove|recover|trust|share|unshare|query …", "rooms joined into one building: replicated state, trust, queries across rooms" },
        { "tenant", cmd_tenant, "add|ls|set|rm ...", "tenants: owners of workloads and data, with quotas and leases" },
        { "usage", cmd_usage, "[--tenant T] [--since T] [--csv]", "what each tenant's workloads used, per hour" },
        { "services", cmd_services, "[--type TYPE] [--watch]", "the DNS-SD services of the room" },
        { "ingest", cmd_ingest, "add|ls|rm …", "MQTT bridges: devices' messages into collections" },
        { "call", cmd_call, "METHOD [JSON]", "make a raw Varlink call and print the reply (for debugging)" },
};

static void usage(FILE *f) {
        fprintf(f,
                "Usage: osmosectl [--socket PATH] [--json] COMMAND [ARG]...\n"
                "Talk to osmosed, the Osmose daemon of this room.\n\n"
                "Options:\n"
                "  -s, --socket PATH   daemon socket (default $OSMOSE_SOCKET or %s/osmosed.sock)\n"
                "  -j, --json          machine-readable output: one JSON document, or JSON Lines for streams\n"
                "  -V, --version       print the version\n"
                "  -h, --help          this help; COMMAND --help for a command's\n\n"
                "Commands:\n",
                OSM_RUNDIR);
        for (size_t i = 0; i < OSM_ARRAY_SIZE(commands); i++) {
                char syn[96];
                snprintf(syn, sizeof syn, "%s %s", commands[i].name, commands[i].args);
                fprintf(f, "  %-34s %s\n", syn, commands[i].help);
        }
}

int main(int argc, char **argv) {
        static const struct option opts[] = {
                { "socket", required_argument, NULL, 's' },
                { "json", no_argument, NULL, 'j' },
                { "version", no_argument, NULL, 'V' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        const char *socket = NULL;
        osm_ctl ctl = { 0 };
        int c;
        /* "+": stop at the first non-option, the command; its options are its own. */
        while ((c = getopt_long(argc, argv, "+s:jVh", opts, NULL)) != -1) {
                switch (c) {
                case 's': socket = optarg; break;
                case 'j': ctl.json = true; break;
                case 'V': printf("osmosectl %s\n", OSM_VERSION); return 0;
                case 'h': usage(stdout); return 0;
                default: usage(stderr); return 2;
                }
        }
        if (optind >= argc) {
                usage(stderr);
                return 2;
        }
        const char *name = argv[optind];
        const osm_ctl_command *cmd = NULL;
        for (size_t i = 0; i < OSM_ARRAY_SIZE(commands) && !cmd; i++)
                if (strcmp(commands[i].name, name) == 0)
                        cmd = &commands[i];
        if (!cmd) {
                fprintf(stderr, "osmosectl: unknown command '%s' (osmosectl --help lists them)\n", name);
                return 2;
        }
        /* The global options may also follow the command (as docker's and ha's do): take
         * --json, -j, --socket PATH and --socket=PATH out of the command's words, up to a
         * "--" (what follows it belongs to a workload). -s stays the command's own (query
         * --since). */
        char **sub_argv = calloc((size_t) (argc - optind) + 1, sizeof(char *));
        if (!sub_argv)
                return osm_ctl_fail("out of memory");
        int sub_argc = 0;
        bool rest = false;
        for (int i = optind; i < argc; i++) {
                const char *a = argv[i];
                if (!rest && i > optind) {
                        if (strcmp(a, "--") == 0)
                                rest = true;
                        else if (strcmp(a, "--json") == 0 || strcmp(a, "-j") == 0) {
                                ctl.json = true;
                                continue;
                        } else if (strcmp(a, "--socket") == 0) {
                                if (i + 1 >= argc) {
                                        free(sub_argv);
                                        return osm_ctl_usage_error("--socket needs a PATH");
                                }
                                socket = argv[++i];
                                continue;
                        } else if (strncmp(a, "--socket=", 9) == 0) {
                                socket = a + 9;
                                continue;
                        }
                }
                sub_argv[sub_argc++] = argv[i];
        }
        ctl.socket = osm_client_default_socket(socket);
        osm_ctl_set_command(cmd->name, NULL);
        optind = 0;   /* reset getopt for the command's own options */
        int r = cmd->fn(&ctl, sub_argc, sub_argv);
        osm_client_free(ctl.client);
        free(sub_argv);
        fflush(stdout);
        if (ferror(stdout))
                return osm_ctl_fail("error writing output");
        return r;
}
