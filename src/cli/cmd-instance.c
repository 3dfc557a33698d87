/* cmd-instance.c: run, ps, logs, stop, stats, enable, disable. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"

#define RUN_TOOL_ERROR 125   /* run --wait: osmosectl or the daemon failed, not the workload */

static const char *str(json_t *o, const char *key) {
        return json_string_value(json_object_get(o, key));
}

/* Print log entries: stdout's to stdout, stderr's to stderr (as podman logs), each line
 * after its time with timestamps. Returns -EPIPE once stdout has gone. */
static int print_entries(json_t *entries, bool timestamps, bool *at_line_start) {
        size_t k;
        json_t *e;
        json_array_foreach(entries, k, e) {
                FILE *f = strcmp(str(e, "stream") ? str(e, "stream") : "", "stderr") == 0 ? stderr : stdout;
                json_t *data = json_object_get(e, "data");
                if (timestamps && at_line_start[f == stderr]) {
                        char tb[64];
                        fprintf(f, "%s ", osm_format_time(json_integer_value(json_object_get(e, "time")), tb, sizeof tb));
                }
                size_t n = json_string_length(data);
                fwrite(json_string_value(data), 1, n, f);
                at_line_start[f == stderr] = n > 0 && json_string_value(data)[n - 1] == '\n';
        }
        fflush(stdout);
        fflush(stderr);
        return ferror(stdout) ? -EPIPE : 0;
}

/* ---- run ------------------------------------------------------------------------------------ */

typedef struct run_state {
        osm_ctl *ctl;
        bool attach;
        bool first;
        bool line_start[2];
        int status;               /* the workload's exit status, once known */
        bool ended;
        char last_state[32];
} run_state;

static int run_cb(json_t *params, bool continues, void *userdata) {
        run_state *s = userdata;
        if (s->ctl->json) {
                osm_print_json_line(params);
        } else {
                json_t *entries = json_object_get(params, "entries");
                if (entries && s->attach && print_entries(entries, false, s->line_start) < 0)
                        return -EPIPE;
                const char *state = str(params, "state"), *reason = str(params, "reason");
                if (s->first)
                        fprintf(stderr, "osmosectl: started %s\n", str(params, "instance"));
                else if (state && !entries && (reason || strcmp(state, s->last_state) != 0) && continues)
                        fprintf(stderr, "osmosectl: %s: %s%s%s\n", str(params, "instance"), state,
                                reason ? " — " : "", reason ? reason : "");
                if (state)
                        snprintf(s->last_state, sizeof s->last_state, "%s", state);
        }
        s->first = false;
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
        bool wait = false, attach = true, allow_untrusted = false;
        const char *restart = NULL;
        int i = 1;
        const char *name = NULL;
        for (; i < argc; i++) {
                if (strcmp(argv[i], "--") == 0) {
                        i++;
                        break;
                }
                if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
                        osm_ctl_usage("run", "NAME|BUNDLE-ID [--wait [--no-attach]] [--restart POLICY] [-- ARG...]",
                                      "Start an instance of an installed workload, with ARGs after its entrypoint. "
                                      "Given a bundle id,\nthe bundle is installed first from those the daemon keeps "
                                      "(osmosectl import, followed channels).",
                                      "Without --wait, prints the instance id and returns; the instance runs on "
                                      "under the daemon.\nWith --wait, prints its id on stderr, attaches its output "
                                      "(stdout to stdout, stderr to\nstderr) and its changes of state (a restart, a "
                                      "backoff and why) on stderr, waits until\nit has ended for good (restarts "
                                      "included) and exits with its exit status (128+N if\nkilled by signal N), or "
                                      "125 if it could not be started.\n"
                                      "Options:\n"
                                      "  -w, --wait          wait for the end, showing its output\n"
                                      "  --no-attach         with --wait: do not show its output\n"
                                      "  --restart POLICY    never, on-failure or always: instead of the manifest's,\n"
                                      "                      for this run\n"
                                      "  --allow-untrusted   run it although its publisher key is no longer trusted\n");
                        return 0;
                }
                if (strcmp(argv[i], "--wait") == 0 || strcmp(argv[i], "-w") == 0)
                        wait = true;
                else if (strcmp(argv[i], "--no-attach") == 0)
                        attach = false;
                else if (strcmp(argv[i], "--allow-untrusted") == 0)
                        allow_untrusted = true;
                else if (strcmp(argv[i], "--restart") == 0 || strncmp(argv[i], "--restart=", 10) == 0) {
                        restart = argv[i][9] == '=' ? argv[i] + 10 : i + 1 < argc ? argv[++i] : NULL;
                        if (!restart || (strcmp(restart, "never") && strcmp(restart, "on-failure") && strcmp(restart, "always")))
                                return osm_ctl_usage_error("run: --restart takes never, on-failure or always");
                } else if (argv[i][0] == '-')
                        return osm_ctl_usage_error("run: unknown option %s (osmosectl run --help)", argv[i]);
                else if (!name)
                        name = argv[i];
                else
                        return osm_ctl_usage_error("run: arguments for the workload go after --");
        }
        if (!name)
                return osm_ctl_usage_error("run: usage: osmosectl run NAME|BUNDLE-ID [--wait] [--restart POLICY] [-- ARG...]");
        /* A bundle id (no workload name is 64 characters): install it from the bundles the
         * daemon keeps (import, channels) if need be, then run the workload it holds. */
        _cleanup_json_ json_t *installed = NULL;
        if (osm_ctl_is_bundle_id(name)) {
                osm_vl_request q = osm_req_channel_run(name, &(osm_req_channel_run_opt){ .install_only = OSM_SOME(true) });
                if (osm_ctl_request(ctl, q, &installed))
                        return wait ? RUN_TOOL_ERROR : 1;
                name = str(installed, "name");
                if (!name)
                        return osm_ctl_fail("run: the daemon's answer names no workload"), wait ? RUN_TOOL_ERROR : 1;
        }
        _cleanup_json_ json_t *args = i < argc ? json_array() : NULL;
        for (; i < argc; i++)
                json_array_append_new(args, json_string(argv[i]));
        osm_req_workload_run_opt ro = {
                .args = args, .restart = restart, .allow_untrusted = OSM_IF(allow_untrusted, true),
        };
        if (!wait) {
                _cleanup_json_ json_t *rep = NULL;
                if (osm_ctl_request(ctl, osm_req_workload_run(name, &ro), &rep))
                        return 1;
                if (ctl->json)
                        osm_print_json(rep);
                else
                        printf("%s\n", str(rep, "instance"));
                return 0;
        }
        ro.attach = (osm_opt_bool) OSM_SOME(attach);
        _cleanup_request_ osm_vl_request req = osm_req_workload_run(name, &ro);
        if (req.failed)
                return osm_ctl_fail("run: out of memory"), RUN_TOOL_ERROR;
        osm_client *c = osm_ctl_client(ctl);
        if (!c)
                return RUN_TOOL_ERROR;
        run_state s = { .ctl = ctl, .attach = attach, .first = true, .status = RUN_TOOL_ERROR,
                        .line_start = { true, true } };
        osm_client_error err = { 0 };
        int r = osm_client_call_more(c, req.method, req.params, run_cb, &s, &err);
        if (r == -EPIPE)
                return RUN_TOOL_ERROR;
        if (r < 0) {
                osm_ctl_call_failed(OSM_M_WORKLOAD_RUN, &err);
                osm_client_error_clear(&err);
                return RUN_TOOL_ERROR;
        }
        if (!s.ended)
                return osm_ctl_fail("run: the daemon ended the call before the instance ended"), RUN_TOOL_ERROR;
        return s.status;
}

/* ---- ps ------------------------------------------------------------------------------------- */

static const char *const instance_states[] = { "starting", "running", "backoff", "stopping", "exited", "failed" };

/* The filters of ps: one workload's instances, those in one state (NULL: any). */
static bool ps_wanted(json_t *in, const char *workload, const char *state) {
        if (workload && (!str(in, "workload") || strcmp(str(in, "workload"), workload) != 0))
                return false;
        return !state || (str(in, "state") && strcmp(str(in, "state"), state) == 0);
}

int cmd_ps(osm_ctl *ctl, int argc, char **argv) {
        static const struct option opts[] = {
                { "all", no_argument, NULL, 'a' },
                { "limit", required_argument, NULL, 'n' },
                { "workload", required_argument, NULL, 'w' },
                { "state", required_argument, NULL, 's' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        bool all = false, known = false;
        long limit = -1;
        const char *workload = NULL, *state = NULL;
        int c;
        while ((c = getopt_long(argc, argv, "an:w:s:h", opts, NULL)) != -1) {
                switch (c) {
                case 'a': all = true; break;
                case 'w': workload = optarg; break;
                case 's':
                        state = optarg;
                        for (size_t i = 0; i < OSM_ARRAY_SIZE(instance_states); i++)
                                known = known || strcmp(instance_states[i], state) == 0;
                        if (!known)
                                return osm_ctl_usage_error("ps: --state '%s': one of starting, running, backoff, stopping, "
                                                           "exited, failed", state);
                        /* an ended state is only among all */
                        all = all || strcmp(state, "exited") == 0 || strcmp(state, "failed") == 0;
                        break;
                case 'n': {
                        char *end;
                        limit = strtol(optarg, &end, 10);
                        if (*end || limit < 0 || limit > 1000)
                                return osm_ctl_usage_error("ps: --limit takes a number from 0 to 1000");
                        break;
                }
                case 'h':
                        osm_ctl_usage("ps", "[-a|--all] [-n|--limit N] [-w|--workload NAME] [-s|--state STATE]",
                                      "List the live instances (starting, running, in backoff, stopping). With --all, "
                                      "also those\nthat ended (the newest N, default 100), across restarts of the "
                                      "daemon, with how they ended.",
                                      "  -w, --workload NAME   only the instances of workload NAME\n"
                                      "  -s, --state STATE     only those in STATE: starting, running, backoff, stopping,\n"
                                      "                        exited or failed (an ended state implies --all)\n");
                        return 0;
                default: return 2;
                }
        }
        if (optind != argc)
                return osm_ctl_usage_error("ps: usage: osmosectl ps [--all] [--limit N] [--workload NAME] [--state STATE]");
        osm_req_workload_instances_opt io = { .all = OSM_SOME(all), .limit = OSM_IF(limit >= 0, limit) };
        _cleanup_json_ json_t *rep = NULL;
        if (osm_ctl_request(ctl, osm_req_workload_instances(&io), &rep))
                return 1;
        json_t *list = json_object_get(rep, "instances");
        for (size_t k = json_array_size(list); k-- > 0;)
                if (!ps_wanted(json_array_get(list, k), workload, state))
                        json_array_remove(list, k);
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

/* ---- logs ----------------------------------------------------------------------------------- */

typedef struct logs_state {
        osm_ctl *ctl;
        bool timestamps;
        bool line_start[2];
        unsigned long long dropped;
} logs_state;

static int logs_cb(json_t *params, bool continues, void *userdata) {
        logs_state *s = userdata;
        json_t *entries = json_object_get(params, "entries");
        s->dropped += (unsigned long long) json_integer_value(json_object_get(params, "dropped"));
        if (!s->ctl->json)
                return print_entries(entries, s->timestamps, s->line_start);
        size_t k;
        json_t *e;
        json_array_foreach(entries, k, e)
                osm_print_json_line(e);
        return ferror(stdout) ? -EPIPE : 0;
}

int cmd_logs(osm_ctl *ctl, int argc, char **argv) {
        static const struct option opts[] = {
                { "follow", no_argument, NULL, 'f' },
                { "lines", required_argument, NULL, 'n' },
                { "since", required_argument, NULL, 'S' },
                { "timestamps", no_argument, NULL, 't' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        bool follow = false, timestamps = false;
        long tail = 0;
        int64_t since = 0;
        int c;
        while ((c = getopt_long(argc, argv, "fn:th", opts, NULL)) != -1) {
                switch (c) {
                case 'f': follow = true; break;
                case 't': timestamps = true; break;
                case 'n': {
                        char *end;
                        tail = strtol(optarg, &end, 10);
                        if (*end || tail <= 0)
                                return osm_ctl_usage_error("logs: -n takes a number of lines > 0");
                        break;
                }
                case 'S':
                        if (osm_parse_time(optarg, osm_now_real_us(), &since) < 0)
                                return osm_ctl_usage_error("logs: --since %s: expected a time such as -1h, -30m or "
                                             "2026-12-02T10:00:00Z", optarg);
                        break;
                case 'h':
                        osm_ctl_usage("logs", "[-f] [-n N] [--since T] [-t] INSTANCE",
                                      "Print an instance's stdout (to stdout) and stderr (to stderr), as kept by the "
                                      "daemon on disk\n(within its log-size, across restarts of the daemon). With -f, "
                                      "keep printing new output\nuntil it ends. INSTANCE may also be a workload name: "
                                      "its running (or newest) instance.",
                                      "Options:\n"
                                      "  -f, --follow       keep printing new output until the instance ends\n"
                                      "  -n, --lines N      only the last N lines\n"
                                      "  --since T          only what came since T (-1h, -30m, RFC 3339 time)\n"
                                      "  -t, --timestamps   each line after the time it was read\n"
                                      "With --json: one JSON object per line {time, stream, data}.\n");
                        return 0;
                default: return 2;
                }
        }
        if (optind != argc - 1)
                return osm_ctl_usage_error("logs: usage: osmosectl logs [-f] [-n N] [--since T] INSTANCE");
        osm_req_workload_logs_opt lo = {
                .follow = OSM_SOME(follow), .tail = OSM_IF(tail, tail), .since = OSM_IF(since, since),
        };
        _cleanup_request_ osm_vl_request req = osm_req_workload_logs(argv[optind], &lo);
        if (req.failed)
                return osm_ctl_fail("logs: out of memory");
        osm_client *cl = osm_ctl_client(ctl);
        if (!cl)
                return 1;
        logs_state s = { .ctl = ctl, .timestamps = timestamps, .line_start = { true, true } };
        osm_client_error err = { 0 };
        int r = osm_client_call_more(cl, req.method, req.params, logs_cb, &s, &err);
        if (r == -EPIPE)
                return 0;
        if (r < 0) {
                osm_ctl_call_failed(OSM_M_WORKLOAD_LOGS, &err);
                osm_client_error_clear(&err);
                return 1;
        }
        if (s.dropped && !ctl->json && !tail)
                fprintf(stderr, "osmosectl: logs: %llu older lines were dropped (log-size bound)\n", s.dropped);
        return 0;
}

/* ---- stop ----------------------------------------------------------------------------------- */

static void print_stopped(json_t *rep) {
        json_t *sig = json_object_get(rep, "signal"), *code = json_object_get(rep, "exit_code");
        json_t *ids = json_object_get(rep, "instances");
        if (json_array_size(ids) > 1) {
                size_t k;
                json_t *id;
                json_array_foreach(ids, k, id)
                        printf("%s stopped\n", json_string_value(id));
                return;
        }
        printf("%s stopped: ", str(rep, "instance"));
        if (sig)
                printf("killed by signal %lld%s\n", (long long) json_integer_value(sig),
                       json_is_true(json_object_get(rep, "killed")) ? " after the grace period" : "");
        else if (code)
                printf("exit code %lld\n", (long long) json_integer_value(code));
        else
                printf("it had not started again (it was in backoff)\n");
}

int cmd_stop(osm_ctl *ctl, int argc, char **argv) {
        static const struct option opts[] = {
                { "all", no_argument, NULL, 'a' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        bool all = false;
        int c;
        while ((c = getopt_long(argc, argv, "ah", opts, NULL)) != -1) {
                switch (c) {
                case 'a': all = true; break;
                case 'h':
                        osm_ctl_usage("stop", "INSTANCE | NAME [--all]",
                                      "Stop an instance: SIGTERM, then SIGKILL after the daemon's stop-timeout. Returns "
                                      "once it\nhas ended. A workload NAME stands for its one live instance; if it has "
                                      "several, they\nare listed and nothing is stopped, unless --all. Stopping an "
                                      "instance that has already\nended fails (exit status 1) and says how it ended.",
                                      "Options:\n  -a, --all   with a workload name: stop every live instance of it\n");
                        return 0;
                default: return 2;
                }
        }
        if (optind != argc - 1)
                return osm_ctl_usage_error("stop: usage: osmosectl stop INSTANCE | NAME [--all]");
        _cleanup_json_ json_t *rep = NULL;
        if (osm_ctl_request(ctl, osm_req_workload_stop(argv[optind], &(osm_req_workload_stop_opt){ .all = OSM_SOME(all) }),
                            &rep))
                return 1;
        if (ctl->json)
                osm_print_json(rep);
        else
                print_stopped(rep);
        return 0;
}

/* ---- stats ---------------------------------------------------------------------------------- */

int cmd_stats(osm_ctl *ctl, int argc, char **argv) {
        if (osm_ctl_wants_help(argc, argv)) {
                osm_ctl_usage("stats", "INSTANCE", "Show an instance's CPU time, memory (current and peak) and I/O.", NULL);
                return 0;
        }
        if (argc != 2)
                return osm_ctl_usage_error("stats: usage: osmosectl stats INSTANCE");
        _cleanup_json_ json_t *rep = NULL;
        if (osm_ctl_request(ctl, osm_req_workload_stats(argv[1]), &rep))
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

/* ---- enable, disable ------------------------------------------------------------------------ */

/* Live instances of workload name, from Instances; -1 on failure (printed). */
static int count_live(osm_ctl *ctl, const char *name) {
        _cleanup_json_ json_t *rep = NULL;
        if (osm_ctl_request(ctl, osm_req_workload_instances(NULL), &rep))
                return -1;
        int n = 0;
        size_t k;
        json_t *in;
        json_array_foreach(json_object_get(rep, "instances"), k, in)
                n += strcmp(str(in, "workload"), name) == 0;
        return n;
}

static int enable_disable(osm_ctl *ctl, int argc, char **argv, bool enable) {
        const char *cmd = enable ? "enable" : "disable";
        static const struct option opts[] = {
                { "now", no_argument, NULL, 'N' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        bool now = false;
        int c;
        while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                switch (c) {
                case 'N': now = true; break;
                case 'h':
                        osm_ctl_usage(cmd, "NAME [--now]",
                                      enable ? "Start the workload whenever the daemon starts (as systemctl enable); "
                                               "kept across restarts\nand reboots. With --now, also start it now "
                                               "unless it already runs." :
                                               "Do not start the workload when the daemon starts any more. With --now, "
                                               "also stop its\nlive instances.",
                                      NULL);
                        return 0;
                default: return 2;
                }
        }
        if (optind != argc - 1)
                return osm_ctl_usage_error("%s: usage: osmosectl %s NAME [--now]", cmd, cmd);
        const char *name = argv[optind];
        _cleanup_json_ json_t *rep = NULL, *now_rep = NULL;
        if (osm_ctl_request(ctl, enable ? osm_req_workload_enable(name) : osm_req_workload_disable(name), &rep))
                return 1;
        if (now) {
                int live = count_live(ctl, name);
                if (live < 0)
                        return 1;
                if (enable && live == 0) {
                        if (osm_ctl_request(ctl, osm_req_workload_run(name, NULL), &now_rep))
                                return 1;
                } else if (!enable && live > 0) {
                        osm_req_workload_stop_opt so = { .all = OSM_SOME(true) };
                        if (osm_ctl_request(ctl, osm_req_workload_stop(name, &so), &now_rep))
                                return 1;
                }
        }
        if (ctl->json) {
                if (now_rep)
                        json_object_set(rep, enable ? "started" : "stopped",
                                        enable ? json_object_get(now_rep, "instance") :
                                                 json_object_get(now_rep, "instances") ? json_object_get(now_rep, "instances") :
                                                 json_object_get(now_rep, "instance"));
                osm_print_json(rep);
                return 0;
        }
        bool changed = json_is_true(json_object_get(rep, "changed"));
        printf("%s %s%s\n", name, changed ? "" : "was already ", enable ? "enabled: it starts with the daemon" : "disabled");
        if (now_rep && enable)
                printf("started %s\n", str(now_rep, "instance"));
        else if (now_rep)
                print_stopped(now_rep);
        return 0;
}

int cmd_enable(osm_ctl *ctl, int argc, char **argv) {
        return enable_disable(ctl, argc, argv, true);
}

int cmd_disable(osm_ctl *ctl, int argc, char **argv) {
        return enable_disable(ctl, argc, argv, false);
}
