/* cmd-tenant.c: tenant add|ls|set|rm and usage — parties that own workloads and data on
 * this gateway, their quotas and leases, and what they used. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"

static const char tenant_opts_help[] =
        "  --group GROUP        the Unix group whose members act for the tenant\n"
        "  --cpu P              CPU over all its instances, percent of one core (\"50%\", \"200\")\n"
        "  --memory M           memory over all its instances (\"256M\")\n"
        "  --pids N             processes over all its instances\n"
        "  --disk D             bytes of its workloads' data directories (\"1G\")\n"
        "  --store S            bytes of records in its collections, tenants/NAME/... (\"512M\")\n"
        "  --instances N        instances alive at once\n"
        "  --until T            the lease ends then (\"2027-03-01\", \"+30d\"); its instances stop\n"
        "  --network allowed|denied   may its workloads be granted network (default allowed)\n"
        "A quota of 0 (with 'tenant set') removes it.\n";

/* Parse the options shared by add and set into o (Set's fields: Add's, with group optional);
 * returns 0, -1 for --help, or 2 after a usage error. */
static int tenant_options(const char *cmd, int argc, char **argv, osm_req_tenant_set_opt *o) {
        static const struct option opts[] = {
                { "group", required_argument, NULL, 'g' },
                { "cpu", required_argument, NULL, 'c' },
                { "memory", required_argument, NULL, 'm' },
                { "pids", required_argument, NULL, 'p' },
                { "disk", required_argument, NULL, 'd' },
                { "store", required_argument, NULL, 's' },
                { "instances", required_argument, NULL, 'i' },
                { "until", required_argument, NULL, 'u' },
                { "network", required_argument, NULL, 'n' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        int c;
        optind = 0;
        while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                uint64_t v = 0;
                int64_t t;
                const char *key = NULL;
                osm_opt_int *field = NULL;
                switch (c) {
                case 'g': o->group = optarg; continue;
                case 'c': {
                        char buf[32];
                        snprintf(buf, sizeof buf, "%s", optarg);
                        size_t l = strlen(buf);
                        if (l && buf[l - 1] == '%')
                                buf[l - 1] = 0;
                        if (osm_parse_u64(buf, &v) < 0 || v > 100000)
                                return osm_ctl_usage_error("%s: --cpu: expected a percentage of one core, like 50%%", cmd);
                        key = "cpu";
                        field = &o->cpu;
                        break;
                }
                case 'm': key = "memory", field = &o->memory; /* fall through */
                case 'd': key = key ? key : "disk", field = field ? field : &o->disk; /* fall through */
                case 's':
                        key = key ? key : "store", field = field ? field : &o->store;
                        if (osm_parse_size(optarg, &v) < 0)
                                return osm_ctl_usage_error("%s: --%s: expected a size like 256M", cmd, key);
                        break;
                case 'p': key = "pids", field = &o->pids; /* fall through */
                case 'i':
                        key = key ? key : "instances", field = field ? field : &o->instances;
                        if (osm_parse_u64(optarg, &v) < 0)
                                return osm_ctl_usage_error("%s: --%s: expected a whole number", cmd, key);
                        break;
                case 'u':
                        if (optarg[0] == '+' && osm_parse_duration(optarg + 1, &v) == 0)
                                t = osm_now_real_us() + (int64_t) v;
                        else if (osm_parse_time(optarg, osm_now_real_us(), &t) < 0 || t < 0)
                                return osm_ctl_usage_error("%s: --until: expected a time like 2027-03-01 or +30d", cmd);
                        o->until = (osm_opt_int) OSM_SOME(t);
                        continue;
                case 'n':
                        if (strcmp(optarg, "allowed") != 0 && strcmp(optarg, "denied") != 0)
                                return osm_ctl_usage_error("%s: --network: allowed or denied", cmd);
                        o->network = optarg;
                        continue;
                case 'h':
                        return -1;
                default: return 2;
                }
                *field = (osm_opt_int) OSM_SOME((int64_t) v);
        }
        return 0;
}

static const char *quota_cell(json_t *t, const char *key, bool size, char *buf, size_t len) {
        json_t *v = json_object_get(t, key);
        if (!v)
                return "-";
        if (size)
                return osm_format_bytes((uint64_t) json_integer_value(v), buf, len);
        snprintf(buf, len, "%lld%s", (long long) json_integer_value(v), strcmp(key, "cpu") == 0 ? "%" : "");
        return buf;
}

static void print_tenants(json_t *list) {
        osm_table *t = osm_table_new("NAME", "GROUP", "CPU", "MEMORY", "PIDS", "DISK", "STORE", "INSTANCES",
                                     "UNTIL", "NETWORK", "WORKLOADS", "RUNNING", NULL);
        size_t i;
        json_t *tn;
        json_array_foreach(list, i, tn) {
                char b[8][64], until[64] = "-", inst[64], wl[16], run[16], disk[32], store[32];
                json_t *u = json_object_get(tn, "until");
                if (u)
                        osm_format_time(json_integer_value(u), until, sizeof until);
                if (json_is_true(json_object_get(tn, "expired")))
                        snprintf(until + strlen(until), sizeof until - strlen(until), " (ended)");
                snprintf(inst, sizeof inst, "%s", quota_cell(tn, "instances", false, b[4], sizeof b[4]));
                snprintf(wl, sizeof wl, "%lld", (long long) json_integer_value(json_object_get(tn, "workloads")));
                snprintf(run, sizeof run, "%lld", (long long) json_integer_value(json_object_get(tn, "running")));
                char used[32];
                snprintf(disk, sizeof disk, "%s/%s",
                         osm_format_bytes((uint64_t) json_integer_value(json_object_get(tn, "disk_bytes")), used, sizeof used),
                         quota_cell(tn, "disk", true, b[5], sizeof b[5]));
                snprintf(store, sizeof store, "%s/%s",
                         osm_format_bytes((uint64_t) json_integer_value(json_object_get(tn, "store_bytes")), used, sizeof used),
                         quota_cell(tn, "store", true, b[6], sizeof b[6]));
                osm_table_add(t, json_string_value(json_object_get(tn, "name")),
                              json_string_value(json_object_get(tn, "group")), quota_cell(tn, "cpu", false, b[0], 64),
                              quota_cell(tn, "memory", true, b[1], 64), quota_cell(tn, "pids", false, b[2], 64), disk,
                              store, inst, until, json_string_value(json_object_get(tn, "network")), wl, run);
        }
        osm_table_print(t);
}

static int tenant_add_set(osm_ctl *ctl, int argc, char **argv, bool add) {
        const char *cmd = add ? "tenant add" : "tenant set";
        osm_req_tenant_set_opt o = { 0 };
        int r = tenant_options(cmd, argc, argv, &o);
        if (r < 0) {
                char details[2048];
                snprintf(details, sizeof details, "%s", tenant_opts_help);
                osm_ctl_usage(cmd, add ? "NAME --group GROUP [QUOTAS] [--until T] [--network allowed|denied]"
                                       : "NAME [--group GROUP] [QUOTAS] [--until T] [--network allowed|denied]",
                              add ? "Add a tenant: a party whose workloads and data live on this gateway within "
                                    "its quotas,\nfor a lease. Members of GROUP manage only what is theirs."
                                  : "Change a tenant's group, quotas, lease or network permission.",
                              details);
                return 0;
        }
        if (r)
                return r;
        if (optind != argc - 1)
                return osm_ctl_usage_error("%s: usage: osmosectl %s NAME%s", cmd, cmd, add ? " --group GROUP ..." : " ...");
        if (add && !o.group)
                return osm_ctl_usage_error("tenant add: --group GROUP is required");
        osm_req_tenant_add_opt ao = {
                .cpu = o.cpu, .memory = o.memory, .pids = o.pids, .disk = o.disk, .store = o.store,
                .instances = o.instances, .until = o.until, .network = o.network,
        };
        _cleanup_json_ json_t *rep = NULL;
        if (osm_ctl_request(ctl, add ? osm_req_tenant_add(argv[optind], o.group, &ao) : osm_req_tenant_set(argv[optind], &o),
                            &rep))
                return 1;
        json_t *tn = json_object_get(rep, "tenant");
        if (ctl->json)
                osm_print_json(tn);
        else
                printf("tenant %s %s\n", argv[optind], add ? "added" : "changed");
        return 0;
}

static int tenant_add(osm_ctl *ctl, int argc, char **argv) { return tenant_add_set(ctl, argc, argv, true); }
static int tenant_set(osm_ctl *ctl, int argc, char **argv) { return tenant_add_set(ctl, argc, argv, false); }

static int tenant_ls(osm_ctl *ctl, int argc, char **argv) {
        if (osm_ctl_wants_help(argc, argv)) {
                osm_ctl_usage("tenant ls", "", "Tenants with their quotas, lease and what they use now "
                              "(DISK and STORE: used/quota).", NULL);
                return 0;
        }
        if (argc != 1)
                return osm_ctl_usage_error("tenant ls: takes no arguments");
        _cleanup_json_ json_t *rep = NULL;
        if (osm_ctl_request(ctl, osm_req_tenant_list(), &rep))
                return 1;
        if (ctl->json)
                osm_print_json(rep);
        else
                print_tenants(json_object_get(rep, "tenants"));
        return 0;
}

static int tenant_rm(osm_ctl *ctl, int argc, char **argv) {
        if (osm_ctl_wants_help(argc, argv)) {
                osm_ctl_usage("tenant rm", "NAME",
                              "Remove a tenant: its instances are stopped and its workloads removed. Their data "
                              "is kept\nfor [tenants] keep-data (30 days by default), then deleted.", NULL);
                return 0;
        }
        if (argc != 2)
                return osm_ctl_usage_error("tenant rm: usage: osmosectl tenant rm NAME");
        _cleanup_json_ json_t *rep = NULL;
        if (osm_ctl_request(ctl, osm_req_tenant_remove(argv[1]), &rep))
                return 1;
        if (ctl->json) {
                osm_print_json(rep);
                return 0;
        }
        char until[64];
        printf("tenant %s removed with %zu workload(s); their data is kept until %s\n", argv[1],
               json_array_size(json_object_get(rep, "removed_workloads")),
               osm_format_time(json_integer_value(json_object_get(rep, "data_kept_until")), until, sizeof until));
        return 0;
}

int cmd_tenant(osm_ctl *ctl, int argc, char **argv) {
        static const osm_ctl_command sub[] = {
                { "add", tenant_add, "NAME --group GROUP [--cpu P] [--memory M] [--pids N] [--disk D] [--store S] "
                                     "[--instances N] [--until T] [--network allowed|denied]", "add a tenant" },
                { "ls", tenant_ls, "", "tenants, quotas, leases and use" },
                { "set", tenant_set, "NAME [OPTIONS]", "change a tenant's quotas or lease" },
                { "rm", tenant_rm, "NAME", "remove a tenant (its data is kept for a while)" },
        };
        return osm_ctl_dispatch(ctl, "tenant", sub, OSM_ARRAY_SIZE(sub), argc, argv);
}

int cmd_usage(osm_ctl *ctl, int argc, char **argv) {
        static const struct option opts[] = {
                { "tenant", required_argument, NULL, 't' },
                { "since", required_argument, NULL, 's' },
                { "csv", no_argument, NULL, 'c' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        const char *tenant = NULL;
        int64_t since = 0;
        bool csv = false;
        int c;
        optind = 0;
        while ((c = getopt_long(argc, argv, "t:s:ch", opts, NULL)) != -1) {
                switch (c) {
                case 't': tenant = optarg; break;
                case 's':
                        if (osm_parse_time(optarg, osm_now_real_us(), &since) < 0)
                                return osm_ctl_usage_error("usage: --since: expected a time like -1d or 2026-12-01");
                        break;
                case 'c': csv = true; break;
                case 'h':
                        osm_ctl_usage("usage", "[--tenant T] [--since T] [--csv]",
                                      "What each tenant's workloads used, per hour: CPU time, peak memory, memory "
                                      "over time\n(GiB-hours), instance hours, disk and store bytes. Counted from "
                                      "the instances' cgroups\nand written to disk every [tenants] usage-flush. A "
                                      "tenant's members see only their own.", NULL);
                        return 0;
                default: return 2;
                }
        }
        if (optind != argc)
                return osm_ctl_usage_error("usage: takes no arguments (see osmosectl usage --help)");
        osm_req_tenant_usage_opt uo = { .tenant = tenant, .since = OSM_IF(since, since) };
        _cleanup_json_ json_t *rep = NULL;
        if (osm_ctl_request(ctl, osm_req_tenant_usage(&uo), &rep))
                return 1;
        json_t *u = json_object_get(rep, "usage");
        if (ctl->json && !csv) {
                osm_print_json(rep);
                return 0;
        }
        size_t i;
        json_t *e;
        if (csv) {
                printf("hour,tenant,workload,cpu_seconds,memory_peak_bytes,memory_gib_hours,instance_hours,"
                       "disk_bytes,store_bytes\n");
                json_array_foreach(u, i, e) {
                        char when[64];
                        printf("%s,%s,%s,%.6f,%lld,%.6f,%.6f,%lld,%lld\n",
                               osm_format_time(json_integer_value(json_object_get(e, "hour")), when, sizeof when),
                               json_string_value(json_object_get(e, "tenant")),
                               json_string_value(json_object_get(e, "workload")),
                               (double) json_integer_value(json_object_get(e, "cpu_usec")) / 1e6,
                               (long long) json_integer_value(json_object_get(e, "memory_peak")),
                               (double) json_integer_value(json_object_get(e, "memory_byte_seconds")) / 3600.0 /
                                       (1024.0 * 1024 * 1024),
                               (double) json_integer_value(json_object_get(e, "instance_usec")) / 3.6e9,
                               (long long) json_integer_value(json_object_get(e, "disk_bytes")),
                               (long long) json_integer_value(json_object_get(e, "store_bytes")));
                }
                return 0;
        }
        osm_table *t = osm_table_new("HOUR", "TENANT", "WORKLOAD", "CPU", "MEM PEAK", "GIB-H", "INST-H", "DISK",
                                     "STORE", NULL);
        json_array_foreach(u, i, e) {
                char when[64], cpu[32], peak[32], gh[32], ih[32], disk[32], store[32];
                snprintf(cpu, sizeof cpu, "%.2fs", (double) json_integer_value(json_object_get(e, "cpu_usec")) / 1e6);
                snprintf(gh, sizeof gh, "%.4f", (double) json_integer_value(json_object_get(e, "memory_byte_seconds")) /
                                                        3600.0 / (1024.0 * 1024 * 1024));
                snprintf(ih, sizeof ih, "%.3f", (double) json_integer_value(json_object_get(e, "instance_usec")) / 3.6e9);
                osm_table_add(t, osm_format_time(json_integer_value(json_object_get(e, "hour")), when, sizeof when),
                              json_string_value(json_object_get(e, "tenant")),
                              json_string_value(json_object_get(e, "workload")), cpu,
                              osm_format_bytes((uint64_t) json_integer_value(json_object_get(e, "memory_peak")), peak,
                                               sizeof peak),
                              gh, ih,
                              osm_format_bytes((uint64_t) json_integer_value(json_object_get(e, "disk_bytes")), disk,
                                               sizeof disk),
                              osm_format_bytes((uint64_t) json_integer_value(json_object_get(e, "store_bytes")), store,
                                               sizeof store));
        }
        osm_table_print(t);
        return 0;
}
