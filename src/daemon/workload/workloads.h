/* workloads.h: what other subsystems may ask of the workload subsystem (d->workloads). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

struct osm_workloads;
struct osm_subsystem;
extern const struct osm_subsystem osm_workloads_subsystem;

/* Look up an instance that is alive (starting, running, backoff or stopping): the name
 * of its workload and the workload's grants as they are *now* (a grant or revoke takes
 * effect at once). Both are borrowed and valid until control returns to the loop.
 * grants is NULL-terminated, sorted, e.g. {"store:read:sensors/x", NULL}.
 * Returns 0, or -ENOENT for an unknown or ended instance. */
int osm_workloads_instance_info(struct osm_workloads *w, const char *instance_id,
                                const char **workload, const char *const **grants);

/* The manifest the instance was started from (its own copy: an upgrade of the workload
 * does not change it). Borrowed, valid while the instance lives; NULL if unknown/ended. */
struct osm_manifest;
#define OSM_WORKLOADS_HAVE_INSTANCE_MANIFEST 1
const struct osm_manifest *osm_workloads_instance_manifest(struct osm_workloads *w, const char *instance_id);

/* Does the instance's workload hold exactly this grant now? */
bool osm_workloads_instance_granted(struct osm_workloads *w, const char *instance_id,
                                    const char *capability);

/* Hooks for the per-instance API socket (the api subsystem sets them in its start hook,
 * which runs after the workload subsystem's). create runs once per instance before its
 * first spawn: it makes a listening socket for that instance and writes its host path
 * into path (size bytes); the sandbox binds it at /run/osmose/api.sock. A negative
 * return fails the run. destroy runs when the instance has ended for good (it will not
 * be restarted). Either may be NULL. */
typedef struct osm_workload_api_hooks {
        int (*create)(void *userdata, const char *instance_id, const char *workload,
                      char *path, size_t size);
        void (*destroy)(void *userdata, const char *instance_id);
} osm_workload_api_hooks;

void osm_workloads_set_api_hooks(struct osm_workloads *w, const osm_workload_api_hooks *hooks,
                                 void *userdata);
