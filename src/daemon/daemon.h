/* daemon.h: the daemon's shared state and the contract every subsystem follows. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <uv.h>

#include "osmose/identity.h"
#include "config.h"
#include "daemon/config.h"
#include "daemon/control/server.h"

typedef enum osm_health {
        OSM_HEALTH_OK,
        OSM_HEALTH_DEGRADED,   /* running with a part missing (e.g. no avahi-daemon) */
        OSM_HEALTH_DISABLED,   /* switched off in the configuration */
        OSM_HEALTH_FAILED,     /* not working at all */
} osm_health;

const char *osm_health_name(osm_health h);

struct osm_store;
struct osm_discovery;
struct osm_sandbox;
struct osm_workloads;
struct osm_api;
struct osm_federation;

typedef struct osm_daemon {
        uv_loop_t *loop;
        osm_config cfg;              /* current configuration (replaced on SIGHUP) */
        char *config_path;           /* NULL if none */
        osm_keypair identity;
        char space_id[OSM_SPACE_ID_LEN + 1];
        int64_t started_real_us;
        uint64_t started_mono_us;
        bool stopping;

        osm_server *server;

        /* subsystems; NULL while not started */
        struct osm_store *store;
        struct osm_discovery *discovery;
        struct osm_sandbox *sandbox;
        struct osm_workloads *workloads;
        struct osm_api *api;
        struct osm_federation *federation;
} osm_daemon;

/* A subsystem: started in table order after the identity and before the socket
 * accepts calls, stopped in reverse order. start returns 0 or -errno (fatal: the daemon
 * does not start) — a subsystem that can run degraded returns 0 and says so in status.
 * status fills obj with at least {"health": "ok|degraded|disabled|failed"} and
 * optionally "detail" (one line). reload applies a new configuration (d->cfg already
 * replaced; old is the previous one). All hooks except start are optional. */
typedef struct osm_subsystem {
        const char *name;
        int (*start)(osm_daemon *d);
        void (*stop)(osm_daemon *d);
        void (*status)(osm_daemon *d, json_t *obj);
        void (*reload)(osm_daemon *d, const osm_config *old);
} osm_subsystem;

/* Helper for status hooks: set "health" and "detail" (detail may be NULL). */
void osm_status_set(json_t *obj, osm_health h, const char *detail);
