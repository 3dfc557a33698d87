/* workloads.h: what other subsystems may ask of the workload subsystem (d->workloads). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

/* A number that changes whenever any workload's grants may have changed (a grant, a
 * revoke, an install or upgrade, a removal): what depends only on grants need not be
 * checked again while it stays the same. */
uint64_t osm_workloads_grants_generation(const struct osm_workloads *w);

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

/* ---- for the channels subsystem (channel-hooks.c) ---------------------------------------- */
#include <jansson.h>
#include <stdint.h>

#include "osmose/identity.h"

/* Install the bundle in fd (a regular file at offset 0; taken) as an install would —
 * signature against the trusted keys, rollback protection unless allow_downgrade, the
 * grants of the installed version carried over — and also refuse it unless its manifest
 * names expect_name (if not NULL) and its id is expect_id (if not NULL). done is called
 * once, from the loop, with error_name NULL on success (also when the daemon stops,
 * with io.osmose.NotAvailable). Returns 0, -EBUSY (an install is running) or -ENOMEM;
 * on error done is not called. */
typedef void (*osm_workloads_install_done)(void *userdata, const char *error_name, const char *message);
int osm_workloads_install_file(struct osm_workloads *w, int fd, const char *expect_name, const char *expect_id,
                               bool allow_downgrade, const char *source, osm_workloads_install_done done,
                               void *userdata);

/* 1 if pk is a trusted publisher key, 0 if not, or -errno. */
int osm_workloads_trusted(struct osm_workloads *w, const uint8_t pk[OSM_PUBKEY_BYTES]);

/* The installed version and bundle id of a workload: 0, or -ENOENT. */
int osm_workloads_current(struct osm_workloads *w, const char *name, int64_t *version, char id[OSM_HASH_HEX]);
/* The name of the workload installed from this bundle, or NULL (borrowed). */
const char *osm_workloads_name_of_bundle(struct osm_workloads *w, const char *id);

/* What a workload is now (version, bundle, manifest, grants), to go back to after a
 * failed upgrade: its unpacked bundle is kept until the snapshot is freed. NULL when
 * it is not installed (or out of memory). restore records it as the installed version
 * again (history: "rollback"). */
struct osm_workloads_snapshot;
struct osm_workloads_snapshot *osm_workloads_snapshot(struct osm_workloads *w, const char *name);
int osm_workloads_restore(struct osm_workloads *w, const struct osm_workloads_snapshot *s);
void osm_workloads_snapshot_free(struct osm_workloads *w, struct osm_workloads_snapshot *s);
/* A snapshot that outlives the daemon: persist records it in the workloads database (and
 * its bundle is kept across a restart or a crash) until it is freed; release frees the
 * memory of a persisted one but keeps its record, for a daemon that stops in the middle of
 * an upgrade. After a restart, adopt hands over the persisted snapshot of name (NULL: none),
 * and forget_unadopted frees those nobody adopted. */
int osm_workloads_snapshot_persist(struct osm_workloads *w, struct osm_workloads_snapshot *s);
void osm_workloads_snapshot_release(struct osm_workloads *w, struct osm_workloads_snapshot *s);
struct osm_workloads_snapshot *osm_workloads_snapshot_adopt(struct osm_workloads *w, const char *name);
void osm_workloads_snapshot_forget_unadopted(struct osm_workloads *w);

/* The instances of a workload that are alive now: a JSON array of their extra
 * arguments (one array of strings each), to start them again after an upgrade. */
json_t *osm_workloads_live_args(struct osm_workloads *w, const char *name);
unsigned osm_workloads_n_alive(struct osm_workloads *w, const char *name);
/* Stop every live instance of a workload (SIGTERM, then SIGKILL after the grace period). */
void osm_workloads_stop_workload(struct osm_workloads *w, const char *name);

/* Start an instance of the installed workload with args (an array of strings, or
 * NULL); with health, run the manifest's health command instead of its entrypoint, once
 * (-ENOENT if it has none). *id: the instance's id (malloc'd). Errors: -ENOENT, -EBUSY,
 * -EAGAIN (the daemon is stopping or has no sandbox), other -errno; err says it. */
int osm_workloads_start(struct osm_workloads *w, const char *name, json_t *args, bool health, char **id,
                        osm_error *err);

typedef struct osm_workloads_instance_status {
        bool alive;               /* starting, running, backoff or stopping */
        bool failed_to_start;
        int exit_code, signal;    /* -1 when unknown */
        unsigned restarts;
} osm_workloads_run_status;
/* 0, or -ENOENT for an instance that is not known (any more). */
int osm_workloads_instance_status(struct osm_workloads *w, const char *id, osm_workloads_run_status *st);

/* ---- for the tenants subsystem ---- */
struct osm_cgroup;
struct json_t;

/* Every installed workload: fn(userdata, name, tenant). */
void osm_workloads_foreach(struct osm_workloads *w,
                           void (*fn)(void *userdata, const char *name, const char *tenant), void *userdata);
/* Every running instance with a cgroup (cg may be NULL without one). */
void osm_workloads_foreach_live(struct osm_workloads *w,
                                void (*fn)(void *userdata, const char *id, const char *workload,
                                           const char *tenant, const struct osm_cgroup *cg),
                                void *userdata);
/* How many workloads the tenant owns and how many of its instances are alive. */
void osm_workloads_tenant_counts(struct osm_workloads *w, const char *tenant, unsigned *workloads,
                                 unsigned *running);
/* Stop every instance of the tenant (its lease ended). */
void osm_workloads_stop_tenant(struct osm_workloads *w, const char *tenant);
/* Remove every workload of the tenant, keeping their data (and host id ranges) until
 * osm_workloads_purge_data; appends their names to removed (a JSON array). */
void osm_workloads_remove_tenant(struct osm_workloads *w, const char *tenant, struct json_t *removed);
/* Delete a removed workload's data directory and free its host id range: 0, -EBUSY if
 * the workload is installed again, or -errno. */
int osm_workloads_purge_data(struct osm_workloads *w, const char *name);
/* The first host uid of the instance's range (its files, its API socket): 0 if unknown. */
uint64_t osm_workloads_instance_uid_base(struct osm_workloads *w, const char *instance_id);