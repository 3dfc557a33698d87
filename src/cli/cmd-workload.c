/* cmd-workload.c: trust, install, workloads, remove, grant, revoke, run, ps, logs, stop, stats. */
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/commands.h"

#define RUN_TOOL_ERROR 125   /* run --wait: osmosectl or the daemon failed, not the workload */

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
                             : "Stop trusting a publisher key (installed workloads stay installed)."))
                return 2;
        _cleanup_json_ json_t *p = json_pack("{s:s}", "public_key", argv[1]);
        _cleanup_json_ json_t *rep = NULL;
        if (osm_ctl_call(ctl, add ? "io.osmose.Workload.TrustAdd" : "io.osmose.Workload.TrustRemove", p, &rep))
                return 1;
        osm_print_done(ctl, rep, json_pack("{s:s, s:b}", "public_key", argv[1], "trusted", add),
                       "%s%s", add ? "trusted " : "no longer trusted: ", argv[1]);
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
        if (osm_ctl_call(ctl, "io.osmose.Workload.TrustList", NULL, &rep))
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
                { "help", no_argument, NULL, 'h' },
                {},
        };
        _cleanup_json_ json_t *p = json_object();
        json_t *grants = json_array();
        json_object_set_new(p, "grants", grants);
        int c;
        while ((c = getopt_long(argc, argv, "g:h", opts, NULL)) != -1) {
                switch (c) {
                case 'g': json_array_append_new(grants, json_string(optarg)); break;
                case 'U': json_object_set_new(p, "allow_unsigned", json_true()); break;
                case 'D': json_object_set_new(p, "allow_downgrade", json_true()); break;
                case 'h':
                        osm_ctl_usage("install", "BUNDLE|URL [--grant CAP]... [--allow-unsigned] [--allow-downgrade]",
                                      "Install a bundle file, or fetch one over http(s) (the daemon fetches it). Its "
                                      "signature is\nchecked against the trusted keys before anything is unpacked.",
                                      "Options:\n"
                                      "  --grant CAP        give a capability the manifest requests (repeatable):\n"
                                      "                     network, discovery:read, store:read:PATTERN,\n"
                                      "                     store:write:PATTERN, publish:_NAME._tcp, device:/dev/NAME\n"
                                      "  --allow-unsigned   accept an unsigned bundle or an untrusted signer\n"
                                      "                     (for development; recorded with the workload)\n"
                                      "  --allow-downgrade  accept an older version than the one installed\n"
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
                json_object_set_new(p, "url", json_string(src));
        else {
                fd = open(src, O_RDONLY | O_CLOEXEC | O_NOCTTY);
                struct stat st;
                if (fd < 0 || fstat(fd, &st) < 0)
                        return osm_ctl_fail("install: %s: %m", src);
                if (!S_ISREG(st.st_mode))
                        return osm_ctl_fail("install: %s: not a regular file", src);
        }
        _cleanup_json_ json_t *rep = NULL;
        if (osm_ctl_call_fds(ctl, "io.osmose.Workload.Install", p, fd >= 0 ? &fd : NULL, fd >= 0 ? 1 : 0,
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
        if (osm_ctl_call(ctl, "io.osmose.Workload.List", NULL, &rep))
                return 1;
        osm_ctl_annotate_channels(ctl, json_object_get(rep, "workloads"));
        if (ctl->json) {
                osm_print_json(rep);
                return 0;
        }
        osm_table *t = osm_table_new("NAME", "VERSION", "SIGNER", "RUNNING", "GRANTED", "BUNDLE", "CHANNEL", NULL);
        size_t i;
        json_t *w;
        json_array_foreach(json_object_get(rep, "workloads"), i, w) {
                char ver[32], run[16], signer[64], granted[1024] = "";
                snprintf(ver, sizeof ver, "%lld", (long long) json_integer_value(json_object_get(w, "version")));
                snprintf(run, sizeof run, "%lld", (long long) json_integer_value(json_object_get(w, "running")));
                const char *s = str(w, "signer");
                if (json_is_true(json_object_get(w, "verified")))
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
                osm_table_add(t, str(w, "name"), ver, signer, run, off ? granted : "-", id,
                              osm_ctl_channel_cell(w, ch, sizeof ch));
        }
        osm_table_print(t);
        return 0;
}

int cmd_remove(osm_ctl *ctl, int argc, char **argv) {
        if (!simple_args(argc, argv, 1, "remove", "NAME",
                         "Remove a workload: its running instances are stopped, its bundle and data deleted."))
                return 2;
        _cleanup_json_ json_t *p = json_pack("{s:s}", "name", argv[1]);
        _cleanup_json_ json_t *rep = NULL;
        if (osm_ctl_call(ctl, "io.osmose.Workload.Remove", p, &rep))
                return 1;
        osm_print_done(ctl, rep, json_pack("{s:s, s:b}", "name", argv[1], "removed", 1), "removed %s", argv[1]);
        return 0;
}

static int grant_revoke(osm_ctl *ctl, int argc, char **argv, bool grant) {
        const char *cmd = grant ? "grant" : "revoke";
        if (!simple_args(argc, argv, 2, cmd, "NAME CAP",
                         grant ? "Give a workload a capability its manifest requests." :
                                 "Take a capability back; the workload API refuses it from now on."))
                return 2;
        _cleanup_json_ json_t *p = json_pack("{s:s, s:s}", "name", argv[1], "capability", argv[2]);
        _cleanup_json_ json_t *rep = NULL;
        if (osm_ctl_call(ctl, grant ? "io.osmose.Workload.Grant" : "io.osmose.Workload.Revoke", p, &rep))
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

/* ---- run, ps, logs, stop, stats ------------------------------------------------------------ */

typedef struct run_state {
        osm_ctl *ctl;
        int status;               /* the workload's exit status, once known */
        bool ended;
} run_state;

static int run_cb(json_t *params, bool continues, void *userdata) {
        run_state *s = userdata;
        if (s->ctl->json)
                osm_print_json_line(params);
        if (continues)
                return 0;
        json_t *code = json_object_get(params, "exit_code"), *sig = json_object_get(params, "signal");
        s->ended = true;
        if (sig)
                s->status = 128 + (int) json_integer_value(sig);
        else if (code)
                s->status = (int) json_integer_value(code);
        else
                s->status = RUN_TOOL_ERROR;
        return 0;
}

int cmd_run(osm_ctl *ctl, int argc, char **argv) {
        bool wait = false;
        int i = 1;
        const char *name = NULL;
        for (; i < argc; i++) {
                if (strcmp(argv[i], "--") == 0) {
                        i++;
                        break;
                }
                if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
                        osm_ctl_usage("run", "NAME|BUNDLE-ID [--wait] [-- ARG...]",
                                      "Start an instance of an installed workload, with ARGs after its entrypoint. "
                                      "Given a bundle id,\nthe bundle is installed first from those the daemon keeps "
                                      "(osmosectl import, followed channels).",
                                      "Without --wait, prints the instance id and returns; the instance runs on "
                                      "under the daemon.\nWith --wait, waits until it has ended for good (restarts "
                                      "included) and exits with its\nexit status (128+N if killed by signal N), or "
                                      "125 if it could not be started.\n");
                        return 0;
                }
                if (strcmp(argv[i], "--wait") == 0 || strcmp(argv[i], "-w") == 0)
                        wait = true;
                else if (argv[i][0] == '-')
                        return osm_ctl_usage_error("run: unknown option %s", argv[i]);
                else if (!name)
                        name = argv[i];
                else
                        return osm_ctl_usage_error("run: arguments for the workload go after --");
        }
        if (!name)
                return osm_ctl_usage_error("run: usage: osmosectl run NAME|BUNDLE-ID [--wait] [-- ARG...]");
        /* A bundle id (no workload name is 64 characters): install it from the bundles the
         * daemon keeps (import, channels) if need be, then run the workload it holds. */
        _cleanup_json_ json_t *installed = NULL;
        if (osm_ctl_is_bundle_id(name)) {
                _cleanup_json_ json_t *q = json_pack("{s:s, s:b}", "bundle", name, "install_only", 1);
                if (osm_ctl_call(ctl, "io.osmose.Channel.Run", q, &installed))
                        return wait ? RUN_TOOL_ERROR : 1;
                name = str(installed, "name");
        }
        _cleanup_json_ json_t *p = json_pack("{s:s}", "name", name);
        if (i < argc) {
                json_t *args = json_array();
                for (; i < argc; i++)
                        json_array_append_new(args, json_string(argv[i]));
                json_object_set_new(p, "args", args);
        }
        if (!wait) {
                _cleanup_json_ json_t *rep = NULL;
                if (osm_ctl_call(ctl, "io.osmose.Workload.Run", p, &rep))
                        return 1;
                if (ctl->json)
                        osm_print_json(rep);
                else
                        printf("%s\n", str(rep, "instance"));
                return 0;
        }
        osm_client *c = osm_ctl_client(ctl);
        if (!c)
                return RUN_TOOL_ERROR;
        run_state s = { .ctl = ctl, .status = RUN_TOOL_ERROR };
        osm_client_error err = { 0 };
        int r = osm_client_call_more(c, "io.osmose.Workload.Run", p, run_cb, &s, &err);
        if (r < 0) {
                osm_ctl_call_failed("io.osmose.Workload.Run", &err);
                osm_client_error_clear(&err);
                return RUN_TOOL_ERROR;
        }
        if (!s.ended)
                return osm_ctl_fail("run: the daemon ended the call before the instance ended"), RUN_TOOL_ERROR;
        return s.status;
}

int cmd_ps(osm_ctl *ctl, int argc, char **argv) {
        if (!simple_args(argc, argv, 0, "ps", "", "List instances: running ones and those that ended recently."))
                return 2;
        _cleanup_json_ json_t *rep = NULL;
        if (osm_ctl_call(ctl, "io.osmose.Workload.Instances", NULL, &rep))
                return 1;
        if (ctl->json) {
                osm_print_json(rep);
                return 0;
        }
        osm_table *t = osm_table_new("INSTANCE", "WORKLOAD", "VERSION", "STATE", "PID", "RESTARTS", "STARTED", "EXIT", NULL);
        size_t k;
        json_t *in;
        json_array_foreach(json_object_get(rep, "instances"), k, in) {
                char ver[24], pid[24] = "-", rs[24], started[64], ex[64] = "-";
                snprintf(ver, sizeof ver, "%lld", (long long) json_integer_value(json_object_get(in, "version")));
                if (json_object_get(in, "pid"))
                        snprintf(pid, sizeof pid, "%lld", (long long) json_integer_value(json_object_get(in, "pid")));
                snprintf(rs, sizeof rs, "%lld", (long long) json_integer_value(json_object_get(in, "restarts")));
                osm_format_time(json_integer_value(json_object_get(in, "started")), started, sizeof started);
                if (json_object_get(in, "signal"))
                        snprintf(ex, sizeof ex, "signal %lld", (long long) json_integer_value(json_object_get(in, "signal")));
                else if (json_object_get(in, "exit_code"))
                        snprintf(ex, sizeof ex, "%lld", (long long) json_integer_value(json_object_get(in, "exit_code")));
                else if (str(in, "error"))
                        snprintf(ex, sizeof ex, "%.60s", str(in, "error"));
                osm_table_add(t, str(in, "id"), str(in, "workload"), ver, str(in, "state"), pid, rs, started, ex);
        }
        osm_table_print(t);
        return 0;
}

typedef struct logs_state {
        osm_ctl *ctl;
        unsigned long long dropped;
} logs_state;

static int logs_cb(json_t *params, bool continues, void *userdata) {
        logs_state *s = userdata;
        if (s->ctl->json) {
                osm_print_json_line(params);
        } else {
                json_t *data = json_object_get(params, "data");
                fwrite(json_string_value(data), 1, json_string_length(data), stdout);
        }
        s->dropped += (unsigned long long) json_integer_value(json_object_get(params, "dropped"));
        fflush(stdout);
        return ferror(stdout) ? -EPIPE : 0;
}

int cmd_logs(osm_ctl *ctl, int argc, char **argv) {
        static const struct option opts[] = {
                { "follow", no_argument, NULL, 'f' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        bool follow = false;
        int c;
        while ((c = getopt_long(argc, argv, "fh", opts, NULL)) != -1) {
                switch (c) {
                case 'f': follow = true; break;
                case 'h':
                        osm_ctl_usage("logs", "[-f] INSTANCE",
                                      "Print an instance's captured stdout and stderr (the newest part, bounded by "
                                      "the\ndaemon's log-size). With -f, keep printing new output until it ends.\n"
                                      "INSTANCE may also be a workload name: its running (or newest) instance.", NULL);
                        return 0;
                default: return 2;
                }
        }
        if (optind != argc - 1)
                return osm_ctl_usage_error("logs: usage: osmosectl logs [-f] INSTANCE");
        _cleanup_json_ json_t *p = json_pack("{s:s, s:b}", "instance", argv[optind], "follow", follow);
        osm_client *cl = osm_ctl_client(ctl);
        if (!cl)
                return 1;
        logs_state s = { .ctl = ctl };
        osm_client_error err = { 0 };
        int r = osm_client_call_more(cl, "io.osmose.Workload.Logs", p, logs_cb, &s, &err);
        if (r == -EPIPE)
                return 0;
        if (r < 0) {
                osm_ctl_call_failed("io.osmose.Workload.Logs", &err);
                osm_client_error_clear(&err);
                return 1;
        }
        if (s.dropped && !ctl->json)
                fprintf(stderr, "osmosectl: logs: %llu older bytes were dropped (log-size bound)\n", s.dropped);
        return 0;
}

int cmd_stop(osm_ctl *ctl, int argc, char **argv) {
        if (!simple_args(argc, argv, 1, "stop", "INSTANCE",
                         "Stop an instance: SIGTERM, then SIGKILL after the daemon's stop-timeout. Returns once it "
                         "has ended.\nINSTANCE may also be a workload name with one running instance."))
                return 2;
        _cleanup_json_ json_t *p = json_pack("{s:s}", "instance", argv[1]);
        _cleanup_json_ json_t *rep = NULL;
        if (osm_ctl_call(ctl, "io.osmose.Workload.Stop", p, &rep))
                return 1;
        if (ctl->json) {
                osm_print_json(rep);
                return 0;
        }
        json_t *sig = json_object_get(rep, "signal"), *code = json_object_get(rep, "exit_code");
        printf("%s stopped: ", str(rep, "instance"));
        if (sig)
                printf("killed by signal %lld%s\n", (long long) json_integer_value(sig),
                       json_is_true(json_object_get(rep, "killed")) ? " after the grace period" : "");
        else if (code)
                printf("exit code %lld\n", (long long) json_integer_value(code));
        else
                printf("was not running\n");
        return 0;
}

int cmd_stats(osm_ctl *ctl, int argc, char **argv) {
        if (!simple_args(argc, argv, 1, "stats", "INSTANCE",
                         "Show an instance's CPU time, memory (current and peak) and I/O."))
                return 2;
        _cleanup_json_ json_t *p = json_pack("{s:s}", "instance", argv[1]);
        _cleanup_json_ json_t *rep = NULL;
        if (osm_ctl_call(ctl, "io.osmose.Workload.Stats", p, &rep))
                return 1;
        if (ctl->json) {
                osm_print_json(rep);
                return 0;
        }
        static const struct { const char *key, *label; bool bytes; } rows[] = {
                { "cpu_usec", "CPU time", false }, { "memory_bytes", "Memory", true },
                { "memory_peak", "Peak memory", true }, { "io_read_bytes", "Read", true },
                { "io_write_bytes", "Written", true }, { "pids", "Tasks", false },
                { "oom_kills", "OOM kills", false },
        };
        printf("%-12s %s\n%-12s %s\n", "Instance", str(rep, "instance"), "State", str(rep, "state"));
        for (size_t i = 0; i < OSM_ARRAY_SIZE(rows); i++) {
                json_t *v = json_object_get(rep, rows[i].key);
                char buf[64];
                if (!v)
                        snprintf(buf, sizeof buf, "unknown");
                else if (rows[i].bytes)
                        osm_format_bytes((uint64_t) json_integer_value(v), buf, sizeof buf);
                else if (strcmp(rows[i].key, "cpu_usec") == 0)
                        snprintf(buf, sizeof buf, "%.3f s", (double) json_integer_value(v) / 1e6);
                else
                        snprintf(buf, sizeof buf, "%lld", (long long) json_integer_value(v));
                printf("%-12s %s\n", rows[i].label, buf);
        }
        printf("%-12s %s\n", "Measured by", str(rep, "source"));
        return 0;
}
