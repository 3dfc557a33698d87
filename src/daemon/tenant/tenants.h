/* tenants.h: what other subsystems may ask of the tenants subsystem (d->tenants): who
 * owns what, the quotas and leases that bound it, and the usage accounted to it. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include "daemon/control/server.h"
#include "osmose/error.h"

struct osm_tenants;
struct osm_subsystem;
struct osm_cgroup_stats;
extern const struct osm_subsystem osm_tenants_subsystem;

/* The operator's own workloads and data belong to this tenant; it has no quotas. */
#define OSM_TENANT_OPERATOR "operator"
/* Collections of tenant NAME live under this prefix + NAME + "/". */
#define OSM_TENANT_STORE_PREFIX "tenants/"

typedef struct osm_tenant {
        char name[OSM_TENANT_NAME_MAX + 1];
        char *group;
        gid_t gid;
        uint64_t cpu, memory, pids, disk, store, instances;   /* 0: unlimited */
        int64_t until;           /* µs since the epoch; 0: no end */
        bool network;            /* its workloads may be granted network */
        int64_t created;
        bool expired;            /* the lease ended: instances stopped, new ones refused */
} osm_tenant;

/* Is name a valid tenant name: [a-z][a-z0-9-]{0,31}. */
bool osm_tenant_name_ok(const char *name);

/* The tenant of that name, or NULL (also for OSM_TENANT_OPERATOR and when t is NULL).
 * Borrowed until control returns to the loop. */
const osm_tenant *osm_tenants_find(struct osm_tenants *t, const char *name);

/* May a caller acting for tenant (NULL: the operator) reach this workload owner? */
static inline bool osm_tenant_owns(const char *caller_tenant, const char *owner) {
        if (!caller_tenant)
                return true;
        return owner && strcmp(caller_tenant, owner) == 0;
}

/* Is collection (or a watch pattern) within tenant's part of the store,
 * "tenants/NAME/…"? */
bool osm_tenant_collection_ok(const char *tenant, const char *collection);

/* Checks before a tenant's workload starts: the lease, the instance quota and the disk
 * quota. live is the number of its instances alive now. Returns 0, or -EDQUOT /
 * -EKEYEXPIRED with err filled in and, if call is not NULL, the error reply
 * (QuotaExceeded, LeaseExpired) sent on it. */
int osm_tenants_check_run(struct osm_tenants *t, const char *tenant, unsigned live, osm_call *call,
                          osm_error *err);
/* Before a record is stored in collection: the store quota of the tenant owning the
 * collection's prefix. 0, or the QuotaExceeded reply sent and -EDQUOT. */
int osm_tenants_check_store(struct osm_tenants *t, const char *collection, osm_call *call);
/* May tenant grant (or install with) capability? Operators may grant anything
 * requested; a tenant's members may grant what stays inside their tenant: store scopes
 * under tenants/NAME/, discovery:read, publish:TYPE, and network if the tenant may.
 * false with err filled in. */
bool osm_tenants_grant_ok(struct osm_tenants *t, const char *tenant, const char *capability,
                          osm_error *err);

/* The sandbox group of a tenant's instances ("t-NAME") and its limits. */
void osm_tenant_group_name(const char *tenant, char *out, size_t size);

/* Accounting hooks from the workload subsystem: a sample of a live instance's counters
 * (also the final one when it ends, with ended=true). cpu_usec, memory_bytes and
 * memory_peak are cumulative/current as the cgroup reports them (UINT64_MAX unknown). */
void osm_tenants_account(struct osm_tenants *t, const char *tenant, const char *workload,
                         const char *instance_id, const struct osm_cgroup_stats *st, bool ended);
