/* tenant-internal.h: internals shared by the files of the tenants subsystem. */
#pragma once

#include <sqlite3.h>
#include <uv.h>

#include "daemon/daemon.h"
#include "daemon/tenant/tenants.h"

#define TN_MAX_TENANTS 256
#define TN_MAX_TRACKED 512         /* instances whose last counters are remembered */
#define TN_HOUR_US (3600ll * 1000000ll)

/* Usage of one (tenant, workload) in the current hour, not yet written. */
typedef struct tn_bucket {
        struct tn_bucket *next;
        char *tenant, *workload;
        int64_t hour;
        uint64_t cpu_usec, memory_peak, memory_byte_seconds, instance_usec;
        uint64_t disk_bytes, store_bytes;
        bool dirty;
} tn_bucket;

/* The counters of a live instance at its last sample, to account deltas. */
typedef struct tn_tracked {
        char id[72];
        uint64_t cpu_usec;
        uint64_t mono_us;
        bool used;
} tn_tracked;

typedef struct osm_tenants {
        osm_daemon *d;
        sqlite3 *db;
        osm_tenant *tenants;       /* array, sorted by name */
        size_t n;
        uv_timer_t sample_timer;   /* accounting samples and the lease check */
        uv_timer_t end_timer;      /* one flush for the instances that end close together */
        uint64_t last_flush_mono;
        tn_bucket *buckets;
        tn_tracked tracked[TN_MAX_TRACKED];
        unsigned open_handles;
        bool stopped;
} osm_tenants;

/* tenants.c */
osm_tenant *tn_find(osm_tenants *t, const char *name);
json_t *tn_tenant_json(osm_tenants *t, const osm_tenant *tn);
int tn_save(osm_tenants *t, const osm_tenant *tn);
int tn_add(osm_tenants *t, const osm_tenant *tn);
int tn_remove(osm_tenants *t, const char *name, int64_t purge_at, json_t *workloads);
void tn_check_leases(osm_tenants *t);
uint64_t tn_store_bytes(osm_tenants *t, const char *tenant);
uint64_t tn_disk_bytes(osm_tenants *t, const char *tenant);
uint64_t tn_workload_disk_bytes(osm_tenants *t, const char *workload);

/* usage.c */
void tn_usage_sample(osm_tenants *t);
int tn_usage_flush(osm_tenants *t);
void tn_on_end_flush(uv_timer_t *h);   /* the flush after instances ended */
#define TN_END_FLUSH_MS 500
json_t *tn_usage_query(osm_tenants *t, const char *tenant, int64_t since);
void tn_usage_free(osm_tenants *t);

/* iface-tenant.c */
int tn_register_methods(osm_tenants *t);
