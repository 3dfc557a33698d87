/* config.c: osmosed's configuration: the key table, defaults, INI parsing through inih,
 * and the --check-config / --dump-config views of it. */
#include <errno.h>
#include <stdarg.h>
#include <ini.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "build-config.h"
#include "daemon/config.h"
#include "daemon/ingest/ingest-map.h"
#include "osmose/channel.h"
#include "osmose/log.h"
#include "osmose/util.h"

#define K(sec, key, type, field, def, help) \
        { sec, key, OSM_CFG_##type, offsetof(osm_config, field), def, help }

/* Every key of the configuration. Adding a key is one row here and a field in osm_config. */
const osm_config_key osm_config_keys[] = {
        K("daemon", "name", STRING, name, NULL, "human name of this space (default: the host name)"),
        K("daemon", "state-dir", STRING, state_dir, NULL, "where the identity, database and objects live"),
        K("daemon", "socket", STRING, socket_path, NULL, "path of the control socket"),
        K("daemon", "runtime-dir", STRING, runtime_dir, NULL,
          "where the instances' API sockets live (default: /run/osmose, or the state directory when one is given)"),
        K("daemon", "log-level", LOG_LEVEL, log_level, "info", "debug, info, notice, warning or err"),

        K("control", "socket-mode", MODE, socket_mode, "0660", "file mode of the control socket"),
        K("control", "socket-group", STRING, socket_group, "osmose",
          "group whose members may do everything (root and the daemon's own user always may)"),
        K("control", "readers", STRING, readers, "",
          "group whose members may see status, peers, services, collection names and usage, but no data"),
        K("control", "max-connections", UINT, max_connections, "512", "clients at once; more get io.osmose.Busy"),
        K("control", "max-message-size", SIZE, max_message_size, "1M", "largest message a client may send"),
        K("control", "max-buffered", SIZE, max_buffered, "16M", "unread reply bytes per client before it is dropped"),
        K("control", "idle-timeout", DURATION, idle_timeout_us, "5min", "drop a client silent this long between calls"),
        K("control", "partial-timeout", DURATION, partial_timeout_us, "10s", "drop a client that stalls mid-message this long"),

        K("store", "db-budget", SIZE, db_budget, "1G", "size budget of the database; writes past it fail"),
        K("store", "max-record-size", SIZE, max_record_size, "256K", "largest JSON body of one record"),
        K("store", "commit-delay", DURATION, commit_delay_us, "0", "extra wait to gather a group commit (0: commit as soon as the previous one is done)"),
        K("store", "encrypt-objects", BOOL, encrypt_objects, "no", "encrypt objects at rest (libsodium secretstream)"),
        K("store", "max-object-size", SIZE, max_object_size, "4G", "largest object; a bigger one is refused"),
        K("store", "min-free", SIZE, min_free, "64M", "free space an object put must leave on the state filesystem"),

        K("discovery", "enabled", BOOL, discovery_enabled, "yes", "publish this space and browse the LAN with Avahi"),
        K("discovery", "service-types", STRING, service_types, "", "extra DNS-SD types to browse, space-separated"),
        K("discovery", "max-services", UINT, discovery_max_services, "4096", "services kept in the catalog (gateways' records apart, max-peers of them); more announced on the LAN are ignored"),
        K("discovery", "max-peers", UINT, discovery_max_peers, "256", "peer records kept (present and gone); the oldest gone untrusted ones make room"),

        K("sandbox", "uid-base", UINT, uid_base, "524288", "first host uid/gid mapped into sandboxes"),
        K("sandbox", "uid-count", UINT, uid_count, "1073741824", "number of host uids/gids available to sandboxes (all workloads' ranges)"),
        K("sandbox", "uid-range-size", UINT, uid_range_size, "65536", "host uids/gids of each workload's own range (uid-count / this = how many workloads)"),
        K("sandbox", "default-memory", SIZE, default_memory, "256M", "memory limit of a workload that sets none"),
        K("sandbox", "default-pids", UINT, default_pids, "64", "process limit of a workload that sets none"),
        K("sandbox", "default-cpu", UINT, default_cpu_percent, "100", "CPU limit in percent of one core"),
        K("sandbox", "log-size", SIZE, log_size, "256K", "stdout/stderr bytes kept per instance"),
        K("sandbox", "stop-timeout", DURATION, stop_timeout_us, "5s", "grace between SIGTERM and SIGKILL"),
        K("sandbox", "network", STRING, network, "none", "what a network grant gives: none, or a bridge name"),

        K("tenants", "keep-data", DURATION, tenant_keep_data_us, "30d", "how long the data of a removed tenant is kept before it is deleted"),
        K("tenants", "usage-sample", DURATION, usage_sample_us, "10s", "how often the instances' counters are read for accounting"),
        K("tenants", "usage-flush", DURATION, usage_flush_us, "1min", "how often usage is written to disk (and within half a second of an instance's end)"),

        K("workloads", "max-bundle-size", SIZE, max_bundle_size, "512M", "largest bundle file install accepts (file or URL)"),
        K("workloads", "fetch-timeout", DURATION, fetch_timeout_us, "5min", "install URL: time allowed for the whole transfer"),
        K("workloads", "restart-delay", DURATION, restart_delay_us, "500ms", "wait before the first restart of an instance; doubles on each quick failure"),
        K("workloads", "restart-max-delay", DURATION, restart_max_delay_us, "1min", "longest wait between restarts"),

        K("api", "calls-per-second", UINT, api_calls_per_second, "2000", "workload API calls one instance may make per second (sustained)"),
        K("api", "burst", UINT, api_burst, "4000", "workload API calls one instance may make at once before the rate applies"),
        K("api", "max-bytes-stored", SIZE, api_max_bytes, "256M", "record bytes one instance may write through the API"),
        K("api", "max-watches", UINT, api_max_watches, "16", "open watches per instance"),
        K("api", "max-publications", UINT, api_max_publications, "8", "services one instance may publish at once"),
        K("api", "max-connections", UINT, api_max_connections, "16", "clients at once on one instance's API socket"),

        K("federation", "enabled", BOOL, federation_enabled, "no", "serve and sync with paired remote spaces"),
        K("federation", "listen", STRING, federation_listen, "127.0.0.1:7443", "address and port to serve on"),
        K("federation", "max-queue", UINT, federation_max_queue, "100000", "records queued per remote while offline"),
        K("federation", "audit-max-age", DURATION, audit_max_age_us, "90d", "how long audit entries are kept"),

        K("channels", "check-interval", DURATION, channels_check_interval_us, "1h", "how often followed channels are checked and upgraded (0: only by osmosectl upgrade)"),
        K("channels", "health-grace", DURATION, channels_health_grace_us, "10s", "an upgraded instance must still run after this long (or have exited 0)"),
        K("channels", "health-timeout", DURATION, channels_health_timeout_us, "1min", "time allowed to a manifest's health command"),
        K("channels", "window", STRING, channels_window, "", "maintenance window of the periodic check, local time, e.g. 02:00-04:00 (empty: any time; osmosectl upgrade ignores it)"),
        K("channels", "trust-clock", STRING, channels_trust_clock, "auto", "judge the expiry of lists: auto (when the kernel says the clock is synchronised), yes, or no"),
        K("channels", "peers", BOOL, channels_peers, "yes", "in a building, fetch bundles from the members that keep them before the origin"),
        K("channels", "distrust", STRING, channels_distrust, "", "publisher keys (space-separated) whose channels this room refuses, even where the building trusts them"),
        K("building", "port", UINT, building_port, "7444", "TCP port members reach this room on, once it is in a building"),
        K("building", "address", STRING, building_address, "", "host the other members reach this room at (empty: the address used to reach the inviter, or the first non-loopback one)"),
        K("building", "network-latency", DURATION, building_latency_us, "20ms", "expected LAN latency: heartbeat 1.5x, election timeout 15x this"),
        K("building", "query-timeout", DURATION, building_query_timeout_us, "3s", "how long a building query waits for each room"),
        K("building", "status-interval", DURATION, building_status_interval_us, "5s", "how often this room checks its status summary (pushed when it changed) and pings the other members"),
        K("building", "heartbeat-interval", DURATION, building_heartbeat_interval_us, "60s", "longest time between two pushes of an unchanged status summary (its last_seen)"),
};
const size_t osm_config_n_keys = OSM_ARRAY_SIZE(osm_config_keys);

#undef K

static void *field(osm_config *cfg, const osm_config_key *k) { return (char *) cfg + k->offset; }
static const void *cfield(const osm_config *cfg, const osm_config_key *k) { return (const char *) cfg + k->offset; }

static const osm_config_key *find_key(const char *section, const char *key) {
        for (size_t i = 0; i < osm_config_n_keys; i++)
                if (strcmp(osm_config_keys[i].section, section) == 0 && strcmp(osm_config_keys[i].key, key) == 0)
                        return &osm_config_keys[i];
        return NULL;
}

static int parse_bool(const char *v, bool *out) {
        static const char *const yes[] = { "yes", "true", "on", "1" }, *const no[] = { "no", "false", "off", "0" };
        for (size_t i = 0; i < OSM_ARRAY_SIZE(yes); i++) {
                if (strcasecmp(v, yes[i]) == 0) {
                        *out = true;
                        return 0;
                }
                if (strcasecmp(v, no[i]) == 0) {
                        *out = false;
                        return 0;
                }
        }
        return -EINVAL;
}

static int set_value(osm_config *cfg, const osm_config_key *k, const char *v, osm_error *err) {
        void *f = field(cfg, k);
        int r;
        switch (k->type) {
        case OSM_CFG_STRING: {
                if (strlen(v) > 4096) {
                        return osm_error_set(err, -EINVAL, 0, "value too long");
                }
                char *s = strdup(v);
                if (!s)
                        return -ENOMEM;
                free(*(char **) f);
                *(char **) f = s;
                return 0;
        }
        case OSM_CFG_BOOL:
                if (parse_bool(v, f) < 0) {
                        return osm_error_set(err, -EINVAL, 0, "expected yes or no");
                }
                return 0;
        case OSM_CFG_UINT:
                if ((r = osm_parse_u64(v, f)) < 0) {
                        return osm_error_set(err, r, 0, "expected a non-negative integer");
                }
                return 0;
        case OSM_CFG_SIZE:
                if ((r = osm_parse_size(v, f)) < 0) {
                        return osm_error_set(err, r, 0, "expected a size such as 512K, 64M or 1G");
                }
                return 0;
        case OSM_CFG_DURATION:
                if ((r = osm_parse_duration(v, f)) < 0) {
                        return osm_error_set(err, r, 0, "expected a duration such as 500ms, 30s, 5min, 2h or 7d");
                }
                return 0;
        case OSM_CFG_MODE: {
                char *end;
                errno = 0;
                unsigned long m = strtoul(v, &end, 8);
                if (errno || *end || end == v || m > 07777) {
                        return osm_error_set(err, -EINVAL, 0, "expected an octal file mode such as 0660");
                }
                *(mode_t *) f = (mode_t) m;
                return 0;
        }
        case OSM_CFG_LOG_LEVEL:
                if ((r = osm_log_parse_level(v)) < 0) {
                        return osm_error_set(err, r, 0, "expected debug, info, notice, warning or err");
                }
                *(int *) f = r;
                return 0;
        }
        return -EINVAL;
}

int osm_config_set(osm_config *cfg, const char *section, const char *key, const char *value, osm_error *err) {
        const osm_config_key *k = find_key(section, key);
        if (!k) {
                return osm_error_set(err, -ENOENT, 0, "unknown key");
        }
        return set_value(cfg, k, value, err);
}

int osm_config_defaults(osm_config *cfg, const char *state_dir) {
        memset(cfg, 0, sizeof *cfg);
        for (size_t i = 0; i < osm_config_n_keys; i++) {
                if (osm_config_keys[i].def && set_value(cfg, &osm_config_keys[i], osm_config_keys[i].def, NULL) < 0)
                        return -ENOMEM;   /* defaults are valid by construction; only ENOMEM remains */
        }
        char host[256] = "osmose";
        if (gethostname(host, sizeof host - 1) < 0 || !*host)
                strcpy(host, "osmose");
        char sock[4096];
        if (state_dir)
                snprintf(sock, sizeof sock, "%s/osmosed.sock", state_dir);
        else
                snprintf(sock, sizeof sock, "%s/osmosed.sock", OSM_RUNDIR);
        cfg->name = strdup(host);
        cfg->state_dir = strdup(state_dir ? state_dir : OSM_LOCALSTATEDIR);
        cfg->socket_path = strdup(sock);
        /* Files made and removed at every launch (a socket and its directory): on the
         * installed layout in /run, a tmpfs, not on the gateway's flash. */
        cfg->runtime_dir = strdup(state_dir ? state_dir : OSM_RUNDIR);
        if (!cfg->name || !cfg->state_dir || !cfg->socket_path || !cfg->runtime_dir)
                return -ENOMEM;
        return 0;
}

typedef struct parse_ctx {
        osm_config *cfg;
        const char *path;
        osm_error_list *errs;
        FILE *in;
        int line;
        int problems;
        int first_reported;
} parse_ctx;

static void problem(parse_ctx *p, const char *fmt, ...) OSM_PRINTF(2, 3);
static void problem(parse_ctx *p, const char *fmt, ...) {
        if (p->errs) {
                char msg[8192];
                va_list ap;
                va_start(ap, fmt);
                vsnprintf(msg, sizeof msg, fmt, ap);
                va_end(ap);
                osm_error_list_add(p->errs, "%s:%d: %s", p->path, p->line, msg);
        }
        if (!p->first_reported)
                p->first_reported = p->line;
        p->problems++;
}

/* inih calls the handler without line numbers (unless built with INI_HANDLER_LINENO,
 * which Debian's build is not) and reports only the first malformed line, so the reader
 * counts lines and flags every line that is neither blank, a comment, a [section] nor
 * key = value — the same rule inih applies. */
static char *reader(char *str, int num, void *stream) {
        parse_ctx *p = stream;
        char *r = fgets(str, num, p->in);
        if (!r)
                return NULL;
        p->line++;
        const char *s = str;
        while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
                s++;
        if (!*s || *s == ';' || *s == '#' || s != str)   /* indented: a continuation line */
                return r;
        if (*s == '[' ? !strchr(s, ']') : !strpbrk(s, "=:")) {
                problem(p, "syntax error: expected [section] or key = value");
        } else if (*s == '[') {
                /* A section with no keys never reaches the handler: check its name here. */
                const char *end = strchr(s, ']');
                bool known = (size_t) (end - s - 1) > 7 && strncmp(s + 1, "ingest.", 7) == 0;
                for (size_t i = 0; i < osm_config_n_keys && !known; i++)
                        known = strlen(osm_config_keys[i].section) == (size_t) (end - s - 1) &&
                                strncmp(osm_config_keys[i].section, s + 1, (size_t) (end - s - 1)) == 0;
                if (!known)
                        problem(p, "unknown section %.*s", (int) (end - s + 1), s);
        }
        return r;
}

static int handler(void *user, const char *section, const char *name, const char *value) {
        parse_ctx *p = user;
        osm_error why = {};
        const osm_config_key *k = find_key(section, name);
        int r;
        if (strncmp(section, "ingest.", 7) == 0) {
                r = osm_ingest_conf_set(&p->cfg->ingest, &p->cfg->n_ingest, section + 7, name, value, &why);
                if (r < 0)
                        problem(p, "[%s] %s = %s: %s", section, name, value, osm_error_message(&why, strerror(-r)));
                return 1;
        }
        if (!k) {
                bool known_section = false;
                for (size_t i = 0; i < osm_config_n_keys; i++)
                        known_section |= strcmp(osm_config_keys[i].section, section) == 0;
                /* an unknown section was reported at its header line */
                if (known_section)
                        problem(p, "unknown key '%s' in section [%s]", name, section);
                return 0;
        }
        r = set_value(p->cfg, k, value, &why);
        if (r < 0) {
                problem(p, "[%s] %s = %s: %s", section, name, value, osm_error_message(&why, strerror(-r)));
                return 0;
        }
        return 1;
}

int osm_config_load(osm_config *cfg, const char *path, osm_error_list *errs) {
        FILE *in = fopen(path, "re");
        if (!in)
                return -errno;
        int r = osm_config_load_stream(cfg, in, path, errs);
        fclose(in);
        return r;
}

int osm_config_load_stream(osm_config *cfg, FILE *in, const char *path, osm_error_list *errs) {
        parse_ctx p = { .cfg = cfg, .path = path, .errs = errs, .in = in };
        int r = ini_parse_stream(reader, &p, handler, &p);
        if (r > 0 && p.problems == 0) {
                /* inih found something the reader's rule did not: still an error. */
                p.line = r;
                problem(&p, "syntax error");
        }
        return p.problems;
}

static void format_value(const osm_config *cfg, const osm_config_key *k, char *buf, size_t size) {
        const void *f = cfield(cfg, k);
        switch (k->type) {
        case OSM_CFG_STRING: snprintf(buf, size, "%s", *(char *const *) f ? *(char *const *) f : ""); break;
        case OSM_CFG_BOOL: snprintf(buf, size, "%s", *(const bool *) f ? "yes" : "no"); break;
        case OSM_CFG_UINT:
        case OSM_CFG_SIZE: snprintf(buf, size, "%llu", (unsigned long long) *(const uint64_t *) f); break;
        case OSM_CFG_DURATION: {
                uint64_t us = *(const uint64_t *) f;
                if (us % 1000000 == 0)
                        snprintf(buf, size, "%llus", (unsigned long long) (us / 1000000));
                else
                        snprintf(buf, size, "%lluus", (unsigned long long) us);
                break;
        }
        case OSM_CFG_MODE: snprintf(buf, size, "%04o", (unsigned) *(const mode_t *) f); break;
        case OSM_CFG_LOG_LEVEL: {
                static const char *const names[] = { "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug" };
                int l = *(const int *) f;
                snprintf(buf, size, "%s", l >= 0 && l < 8 ? names[l] : "info");
                break;
        }
        }
}

void osm_config_dump(const osm_config *cfg, FILE *out) {
        const char *section = NULL;
        for (size_t i = 0; i < osm_config_n_keys; i++) {
                const osm_config_key *k = &osm_config_keys[i];
                if (!section || strcmp(section, k->section) != 0) {
                        fprintf(out, "%s[%s]\n", section ? "\n" : "", k->section);
                        section = k->section;
                }
                char v[4200];
                format_value(cfg, k, v, sizeof v);
                fprintf(out, "# %s\n%s = %s\n", k->help, k->key, v);
        }
        osm_ingest_defs_dump(cfg->ingest, cfg->n_ingest, out);
}

int osm_config_copy(osm_config *dst, const osm_config *src) {
        *dst = *src;
        if (osm_ingest_defs_copy(&dst->ingest, src->ingest, src->n_ingest) < 0) {
                memset(dst, 0, sizeof *dst);
                return -ENOMEM;
        }
        for (size_t i = 0; i < osm_config_n_keys; i++) {
                const osm_config_key *k = &osm_config_keys[i];
                if (k->type != OSM_CFG_STRING)
                        continue;
                char **d = field(dst, k);
                if (*d && !(*d = strdup(*d))) {
                        for (size_t j = 0; j < i; j++)
                                if (osm_config_keys[j].type == OSM_CFG_STRING)
                                        free(*(char **) field(dst, &osm_config_keys[j]));
                        osm_ingest_defs_free(dst->ingest, dst->n_ingest);
                        memset(dst, 0, sizeof *dst);
                        return -ENOMEM;
                }
        }
        return 0;
}

void osm_config_free(osm_config *cfg) {
        for (size_t i = 0; i < osm_config_n_keys; i++)
                if (osm_config_keys[i].type == OSM_CFG_STRING)
                        free(*(char **) field(cfg, &osm_config_keys[i]));
        osm_ingest_defs_free(cfg->ingest, cfg->n_ingest);
        memset(cfg, 0, sizeof *cfg);
}

int osm_config_validate(const osm_config *cfg, osm_error_list *errs) {
        int problems = 0;
#define BAD(...) do { osm_error_list_add(errs, __VA_ARGS__); problems++; } while (0)
        size_t nl = cfg->name ? strlen(cfg->name) : 0;
        bool printable = nl > 0;
        for (size_t i = 0; i < nl; i++)
                printable &= (unsigned char) cfg->name[i] >= 0x20 && cfg->name[i] != 0x7f;
        if (nl == 0 || nl > 63 || !printable)
                BAD("[daemon] name: must be 1-63 printable bytes (it is an mDNS label)\n");
        if (!cfg->state_dir || cfg->state_dir[0] != '/')
                BAD("[daemon] state-dir: must be an absolute path\n");
        if (!cfg->runtime_dir || cfg->runtime_dir[0] != '/')
                BAD("[daemon] runtime-dir: must be an absolute path\n");
        if (!cfg->socket_path || cfg->socket_path[0] != '/' || strlen(cfg->socket_path) >= 108)
                BAD("[daemon] socket: must be an absolute path shorter than 108 bytes\n");
        if (cfg->max_message_size < 4096 || cfg->max_message_size > 64u * 1024 * 1024)
                BAD("[control] max-message-size: must be between 4K and 64M\n");
        if (cfg->max_connections < 1 || cfg->max_connections > 65536)
                BAD("[control] max-connections: must be between 1 and 65536\n");
        if (cfg->max_buffered < cfg->max_message_size)
                BAD("[control] max-buffered: must be at least max-message-size\n");
        if (cfg->max_record_size < 64 || cfg->max_record_size > cfg->max_message_size)
                BAD("[store] max-record-size: must be between 64 bytes and max-message-size\n");
        if (cfg->api_calls_per_second < 1 || cfg->api_burst < 1)
                BAD("[api] calls-per-second and burst must be at least 1\n");
        if (cfg->api_max_connections < 1 || cfg->api_max_connections > 4096)
                BAD("[api] max-connections must be between 1 and 4096\n");
        if (cfg->discovery_max_services < 1 || cfg->discovery_max_services > 16384)
                BAD("[discovery] max-services: must be between 1 and 16384\n");
        if (cfg->discovery_max_peers < 1 || cfg->discovery_max_peers > 4096)
                BAD("[discovery] max-peers: must be between 1 and 4096\n");
        if (cfg->uid_base == 0 || cfg->uid_count < 1 || cfg->uid_base + cfg->uid_count > 0xfffffffeull)
                BAD("[sandbox] uid-base/uid-count: the range must be non-empty, above 0 and below 2^32-1\n");
        if (cfg->uid_range_size < 1 || cfg->uid_range_size > cfg->uid_count)
                BAD("[sandbox] uid-range-size: must be between 1 and uid-count\n");
        if (cfg->usage_sample_us < 100000 || cfg->usage_flush_us < cfg->usage_sample_us)
                BAD("[tenants] usage-sample must be at least 100ms and usage-flush at least usage-sample\n");
        if (cfg->default_cpu_percent < 1 || cfg->default_cpu_percent > 100000)
                BAD("[sandbox] default-cpu: must be between 1 and 100000 percent\n");
        const char *tc = cfg->channels_trust_clock ? cfg->channels_trust_clock : "auto";
        if (strcmp(tc, "auto") != 0 && strcmp(tc, "yes") != 0 && strcmp(tc, "no") != 0)
                BAD("[channels] trust-clock: must be auto, yes or no\n");
        if (cfg->channels_check_interval_us && cfg->channels_check_interval_us < 1000000ull)
                BAD("[channels] check-interval: must be 0 (off) or at least 1s\n");
        if (!osm_channel_keys_ok(cfg->channels_distrust))
                BAD("[channels] distrust: expected publisher keys (osmosectl keygen prints one), separated by spaces\n");
        if (osm_window_parse(cfg->channels_window, NULL, NULL) < 0)
                BAD("[channels] window: expected HH:MM-HH:MM (local time), or empty for any time\n");
        if (cfg->channels_health_grace_us > 3600 * 1000000ull || cfg->channels_health_timeout_us > 3600 * 1000000ull)
                BAD("[channels] health-grace and health-timeout: at most 1h\n");
        if (cfg->building_port < 1 || cfg->building_port > 65535)
                BAD("[building] port: must be between 1 and 65535\n");
        if (cfg->building_latency_us < 1000 || cfg->building_latency_us > 10000000)
                BAD("[building] network-latency: must be between 1ms and 10s\n");
        if (cfg->building_address && strlen(cfg->building_address) > 200)
                BAD("[building] address: at most 200 bytes\n");
        if (cfg->building_status_interval_us < 1000000)
                BAD("[building] status-interval: at least 1s\n");
        if (cfg->building_heartbeat_interval_us < cfg->building_status_interval_us)
                BAD("[building] heartbeat-interval: at least status-interval\n");
        for (size_t i = 0; i < cfg->n_ingest; i++) {
                osm_error why = {};
                if (osm_ingest_def_check(&cfg->ingest[i], &why) < 0)
                        BAD("[ingest.%s] %s\n", cfg->ingest[i].name, why.message);
        }
#undef BAD
        return problems;
}
