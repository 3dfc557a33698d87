/* manifest.h: a workload's manifest.json — strict parsing, limits, capability (grant) syntax. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "osmose/error.h"
#include "osmose/util.h"

/* Limits on what a manifest may hold (every field is outside input). */
#define OSM_MANIFEST_MAX_SIZE      (64u * 1024u)   /* bytes of manifest.json */
#define OSM_MANIFEST_MAX_NAME      48              /* workload name: [A-Za-z0-9._-]; instance ids add "-N" */
#define OSM_MANIFEST_MAX_DESC      1024
#define OSM_MANIFEST_MAX_ARGS      64              /* entrypoint argv entries */
#define OSM_MANIFEST_MAX_ARG       4096            /* bytes per argv entry or env value */
#define OSM_MANIFEST_MAX_ENV       64
#define OSM_MANIFEST_MAX_ENV_KEY   128
#define OSM_MANIFEST_MAX_CAPS      64
#define OSM_CAP_MAX                256             /* bytes of one capability string */
#define OSM_MANIFEST_MAX_VERSION   (1LL << 53)     /* exact in JSON doubles too */

typedef enum osm_restart_policy {
        OSM_RESTART_NEVER,
        OSM_RESTART_ON_FAILURE,   /* restart when it exits non-zero or is killed */
        OSM_RESTART_ALWAYS,       /* restart whenever it ends, until stopped */
} osm_restart_policy;

const char *osm_restart_policy_name(osm_restart_policy p);
/* Returns the policy or -EINVAL. */
int osm_restart_policy_from_name(const char *s);

typedef struct osm_manifest {
        char *name;                 /* the workload's name */
        int64_t version;            /* 1 .. 2^53, rollback protection compares it */
        char *description;          /* may be NULL */
        char **argv;                /* NULL-terminated, argc >= 1, argv[0] absolute */
        size_t argc;
        char **health;              /* the health command, like argv; NULL when none */
        size_t n_health;
        char **env;                 /* NULL-terminated "KEY=VALUE", sorted by key */
        size_t n_env;
        /* resources; 0 means "the daemon's default" */
        uint64_t memory;            /* bytes */
        uint64_t cpu_percent;       /* of one CPU: 50 = half a core, 200 = two cores */
        uint64_t pids;
        uint64_t disk;              /* bytes of its data directory */
        char **caps;                /* requested capabilities in grant syntax, sorted, unique,
                                     * NULL-terminated */
        size_t n_caps;
        osm_restart_policy restart;
} osm_manifest;

/* Parse manifest.json text (len bytes, need not be NUL-terminated). Strict: unknown
 * fields, wrong types, out-of-range values, duplicated capabilities and anything over a
 * limit are refused. On error returns -EINVAL (or -ENOMEM) and writes one line naming the
 * field into err, e.g. `resources.memory: expected a size like "64M"`.
 *
 * The schema (only "name", "version" and "entrypoint" are required):
 *   { "name": "counter", "version": 3, "description": "…",
 *     "entrypoint": ["/bin/counter", "--interval", "5"],
 *     "health": ["/bin/counter", "--check"],   run in the sandbox after an upgrade; exit 0 = healthy
 *     "environment": {"KEY": "value"},
 *     "resources": {"memory": "64M", "cpu": 50, "pids": 32, "disk": "100M"},
 *     "capabilities": ["network", "store:read:sensors/temp", "publish:_count._tcp"],
 *     "restart": "never" | "on-failure" | "always" }
 * Sizes are a string with a binary unit ("64M") or an integer number of bytes. */
int osm_manifest_parse(const char *text, size_t len, osm_manifest **out, osm_error *err);
osm_manifest *osm_manifest_free(osm_manifest *m);
OSM_DEFINE_CLEANUP(osm_manifest *, osm_manifest_free)
#define _cleanup_manifest_ _cleanup_(osm_manifest_freep)

/* Does the manifest request this capability (exact match of the grant string)? */
bool osm_manifest_requests(const osm_manifest *m, const char *cap);

/* The manifest as JSON, in the same schema (sizes as integers). NULL on ENOMEM. */
json_t *osm_manifest_to_json(const osm_manifest *m);

/* Capabilities (what a manifest requests and what an operator grants) are strings:
 *   network                 the workload's network namespace gets connectivity
 *   discovery:read          it may read the room's service list
 *   store:read:PATTERN      read collections matching PATTERN
 *   store:write:PATTERN     write collections matching PATTERN
 *   publish:_NAME._tcp      publish a DNS-SD service of that type (or ._udp)
 *   device:/dev/PATH        the device node is bound into its sandbox
 * A PATTERN is a collection name ([A-Za-z0-9._-] segments joined by '/') optionally
 * ending in '*', a prefix match: "sensors/" + "*" matches every collection under
 * sensors/, a lone "*" matches everything.
 * Returns 0, or -EINVAL with a one-line reason in err (err may be NULL). */
int osm_cap_check(const char *cap, osm_error *err);

/* Does a store pattern (as in store:read:PATTERN) match a collection name? */
bool osm_cap_pattern_match(const char *pattern, const char *collection);
