/* daemon.h: the daemon's shared state and the contract every subsystem follows. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <uv.h>

#include "osmose/identity.h"
#include "build-config.h"
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
struct osm_building;
struct osm_ingest;
struct osm_tenants;

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
        struct osm_tenants *tenants;
        gid_t reader_gid;            /* [control] readers, or -1 */
        struct osm_channels *channels;
        struct osm_building *building;
        struct osm_ingest *ingest;
} osm_daemon;

/* A subsystem: started in table order after the identity and before the socket
 * accepts calls, stopped in reverse order. start returns 0 or -errno (fatal: the daemon
 * does not start) — a subsystem that can run degraded returns 0 and says so in status.
 * health returns "ok|degraded|disabled|failed" and writes a one-line detail ("" for
 * none) without building anything: GetStatus without details calls only it. status fills
 * obj with what GetStatus --details shows beyond that (and, for a subsystem without a
 * health hook, {"health": …} and optionally "detail" too). reload applies a new
 * configuration (d->cfg already replaced; old is the previous one). All hooks except
 * start are optional. */
typedef struct osm_subsystem {
        const char *name;
        int (*start)(osm_daemon *d);
        void (*stop)(osm_daemon *d);
        osm_health (*health)(osm_daemon *d, char *detail, size_t size);
        void (*status)(osm_daemon *d, json_t *obj);
        void (*reload)(osm_daemon *d, const osm_config *old);
} osm_subsystem;

/* Room for a health hook's detail. */
#define OSM_STATUS_DETAIL_MAX 512

/* Helper for status hooks: set "health" and "detail" (detail may be NULL). */
void osm_status_set(json_t *obj, osm_health h, const char *detail);

/* What the command line chose; re-applied on top of the file at every reload. */
typedef struct osm_daemon_opts {
        const char *config_path;   /* NULL: the default for the layout, if it exists */
        const char *state_dir;     /* NULL: installed layout */
        const char *socket_path;
        const char *name;
} osm_daemon_opts;

/* Build the configuration from defaults, the file and the options. Problems are added to
 * errs (may be NULL); returns their number, or -errno if an explicitly named file is
 * unreadable (then errs holds that one line). */
int osm_daemon_load_config(const osm_daemon_opts *o, osm_config *cfg, char **used_path, osm_error_list *errs);

/* Run the daemon until SIGTERM/SIGINT. Returns the process exit status. */
int osm_daemon_run(const osm_daemon_opts *o);

/* The subsystem table (daemon.c) and the status document served by GetStatus. */
extern const osm_subsystem *const osm_subsystems[];
extern const size_t osm_n_subsystems;
json_t *osm_daemon_status(osm_daemon *d, bool details);
/* GetStatus without details, serialized directly (no tree): the parameters object as
 * malloc'd, NUL-terminated text (*len without the NUL), or NULL on ENOMEM. */
char *osm_daemon_status_text(osm_daemon *d, size_t *len);
/* Reload the configuration (SIGHUP, Daemon.Reload). *changed lists changed keys
 * ("section.key"); returns 0, or the number of problems (old config kept), which
 * *problems (if non-NULL) lists as "FILE:LINE: what is wrong". */
int osm_daemon_reload(osm_daemon *d, json_t **changed, json_t **problems);

/* Methods of the built-in interfaces (control/iface-*.c). */
extern const osm_method osm_service_methods[];
extern const size_t osm_n_service_methods;
extern const osm_method osm_daemon_methods[];
extern const size_t osm_n_daemon_methods;
