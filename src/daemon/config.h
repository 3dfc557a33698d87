/* config.h: osmosed's configuration: one table of keys (section, name, type, default, help)
 * drives parsing, defaults, --check-config and --dump-config. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "osmose/error.h"

typedef struct osm_config {
        /* [daemon] */
        char *name;                  /* human name of the space; default: the host name */
        char *state_dir;
        char *socket_path;
        char *runtime_dir;
        int log_level;

        /* [control] */
        mode_t socket_mode;
        char *socket_group;          /* members get full access; "" for none */
        char *readers;               /* members may read status, lists and usage; "" for none */
        uint64_t max_connections;
        uint64_t max_message_size;
        uint64_t max_buffered;       /* unsent reply bytes per client */
        uint64_t idle_timeout_us;
        uint64_t partial_timeout_us;

        /* [store] */
        uint64_t db_budget;          /* bytes; writes past it fail */
        uint64_t max_record_size;
        uint64_t commit_delay_us;    /* group commit: wait at most this long to batch */
        bool encrypt_objects;
        uint64_t max_object_size;
        uint64_t min_free;          /* bytes object puts leave free on the state filesystem */

        /* [discovery] */
        bool discovery_enabled;
        char *service_types;         /* space-separated extra DNS-SD types to browse */
        uint64_t discovery_max_services;  /* catalog entries kept */
        uint64_t discovery_max_peers;     /* peer records kept */

        /* [sandbox] */
        uint64_t uid_base;           /* first host uid/gid of the range mapped into sandboxes */
        uint64_t uid_count;
        uint64_t uid_range_size;     /* host ids of each workload's own range */
        uint64_t default_memory;
        uint64_t default_pids;
        uint64_t default_cpu_percent;
        uint64_t log_size;           /* bytes of stdout/stderr kept per instance */
        uint64_t stop_timeout_us;    /* SIGTERM, then SIGKILL after this */
        char *network;               /* what a network grant gives: "none" or a bridge name */

        /* [tenants] */
        uint64_t tenant_keep_data_us;    /* a removed tenant's data is kept this long */
        uint64_t usage_sample_us;        /* accounting: how often the cgroups are read */
        uint64_t usage_flush_us;         /* accounting: how often usage is written */

        /* [workloads] */
        uint64_t max_bundle_size;    /* bytes of one bundle file, installed or fetched */
        uint64_t fetch_timeout_us;   /* install URL: the whole transfer */
        uint64_t restart_delay_us;   /* first backoff before a restart; doubles each time */
        uint64_t restart_max_delay_us;

        /* [api] (the workload API: limits per instance) */
        uint64_t api_calls_per_second;   /* token bucket refill rate */
        uint64_t api_burst;              /* token bucket size */
        uint64_t api_max_bytes;          /* record bytes one instance may write */
        uint64_t api_max_watches;        /* open watches per instance */
        uint64_t api_max_publications;   /* services published per instance */
        uint64_t api_max_connections;    /* clients on one instance's socket */

        /* [federation] */
        bool federation_enabled;
        char *federation_listen;     /* ADDR:PORT */
        uint64_t federation_max_queue;
        uint64_t audit_max_age_us;

        /* [channels] */
        uint64_t channels_check_interval_us;   /* 0: no periodic check */
        uint64_t channels_health_grace_us;     /* an upgraded instance must live this long */
        uint64_t channels_health_timeout_us;   /* time allowed to the manifest's health command */
        char *channels_trust_clock;            /* auto, yes, no: judge list expiry? */
        char *channels_window;                 /* "HH:MM-HH:MM" local time for the periodic check; "" any time */
        bool channels_peers;                   /* bundles from building members before the origin */
        char *channels_distrust;               /* publisher keys refused for channels, space-separated */

        /* [building] */
        uint64_t building_port;
        char *building_address;      /* advertised host; "" = automatic */
        uint64_t building_latency_us;
        uint64_t building_query_timeout_us;
        uint64_t building_status_interval_us;
        uint64_t building_heartbeat_interval_us;

        /* [ingest.NAME] sections: MQTT bridges (daemon/ingest/ingest-map.h) */
        struct osm_ingest_def *ingest;
        size_t n_ingest;
} osm_config;

typedef enum osm_config_type {
        OSM_CFG_STRING,
        OSM_CFG_BOOL,
        OSM_CFG_UINT,
        OSM_CFG_SIZE,        /* "64M" */
        OSM_CFG_DURATION,    /* "30s", stored in µs */
        OSM_CFG_MODE,        /* octal file mode */
        OSM_CFG_LOG_LEVEL,
} osm_config_type;

typedef struct osm_config_key {
        const char *section;
        const char *key;
        osm_config_type type;
        size_t offset;
        const char *def;      /* default, parsed like a value from the file; NULL: computed */
        const char *help;
} osm_config_key;

extern const osm_config_key osm_config_keys[];
extern const size_t osm_config_n_keys;

/* Fill cfg with the defaults. state_dir chooses the layout: NULL means the installed
 * defaults (/var/lib/osmose, /run/osmose/osmosed.sock); a directory means everything
 * under it (the embedded default for trying Osmose out). Returns 0 or -ENOMEM. */
int osm_config_defaults(osm_config *cfg, const char *state_dir);

/* Parse path into cfg (on top of what is there). Each problem is added to errs as
 * "path:line: message" (errs may be NULL: count only). Returns the number of problems
 * (0 = ok), or -errno if the file cannot be read (-ENOENT if missing). */
int osm_config_load(osm_config *cfg, const char *path, osm_error_list *errs);
/* The same from an open stream; path only names it in messages. */
int osm_config_load_stream(osm_config *cfg, FILE *in, const char *path, osm_error_list *errs);

/* Set one key from a string ("section", "key", "value"); returns 0 or -EINVAL/-ENOENT
 * with err set. */
int osm_config_set(osm_config *cfg, const char *section, const char *key, const char *value,
                   osm_error *err);

/* Check values that depend on each other or on limits; adds each problem to errs (may be
 * NULL), returns their count. */
int osm_config_validate(const osm_config *cfg, osm_error_list *errs);

/* Print the configuration as an INI file with each key's help as a comment. */
void osm_config_dump(const osm_config *cfg, FILE *out);

/* Deep copy and free. */
int osm_config_copy(osm_config *dst, const osm_config *src);
void osm_config_free(osm_config *cfg);
