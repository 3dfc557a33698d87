/* usage.c: accounting per tenant and workload — samples of the instances' cgroup counters
 * summed into hourly buckets, written to tenants.db every [tenants] usage-flush and at
 * every instance's end (within TN_END_FLUSH_MS, one commit for the ends that come close
 * together: a synchronous commit per end would stall the loop between back-to-back runs),
 * so a crash loses at most one flush interval. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/db.h"
#include "daemon/sandbox/sandbox.h"
#include "daemon/tenant/tenant-internal.h"
#include "daemon/workload/workloads.h"
#include "osmose/log.h"
#include "osmose/util.h"


static tn_bucket *bucket_get(osm_tenants *t, const char *tenant, const char *workload, int64_t hour) {
        for (tn_bucket *b = t->buckets; b; b = b->next)
                if (b->hour == hour && strcmp(b->tenant, tenant) == 0 && strcmp(b->workload, workload) == 0)
                        return b;
        tn_bucket *b = calloc(1, sizeof *b);
        if (!b || !(b->tenant = strdup(tenant)) || !(b->workload = strdup(workload))) {
                if (b)
                        free(b->tenant);
                free(b);
                return NULL;
        }
        b->hour = hour;
        b->next = t->buckets;
        t->buckets = b;
        return b;
}

static tn_tracked *tracked_get(osm_tenants *t, const char *id, bool create) {
        tn_tracked *free_slot = NULL;
        for (size_t i = 0; i < TN_MAX_TRACKED; i++) {
                if (t->tracked[i].used && strcmp(t->tracked[i].id, id) == 0)
                        return &t->tracked[i];
                if (!t->tracked[i].used && !free_slot)
                        free_slot = &t->tracked[i];
        }
        if (!create || !free_slot)
                return NULL;
        memset(free_slot, 0, sizeof *free_slot);
        snprintf(free_slot->id, sizeof free_slot->id, "%s", id);
        free_slot->used = true;
        free_slot->mono_us = osm_now_mono_us();
        return free_slot;
}

/* Account one instance's counters: the CPU time since its last sample, its memory over
 * the time since, and the time it was alive. The counters are the cgroup's own, so the
 * sum over samples is the cgroup's total (nothing is estimated). */
void osm_tenants_account(osm_tenants *t, const char *tenant, const char *workload, const char *instance_id,
                         const osm_cgroup_stats *st, bool ended) {
        if (!t || !workload || !instance_id)
                return;
        if (!tenant)
                tenant = OSM_TENANT_OPERATOR;
        tn_tracked *tr = tracked_get(t, instance_id, true);
        uint64_t now = osm_now_mono_us();
        int64_t hour = osm_now_real_us() / TN_HOUR_US * TN_HOUR_US;
        tn_bucket *b = bucket_get(t, tenant, workload, hour);
        if (b) {
                uint64_t dt = tr ? now - tr->mono_us : 0;
                if (st && st->cpu_usec != UINT64_MAX) {
                        /* A lower counter is a new run's cgroup: all of it is new. */
                        uint64_t prev = tr ? tr->cpu_usec : 0;
                        b->cpu_usec += st->cpu_usec >= prev ? st->cpu_usec - prev : st->cpu_usec;
                }
                if (st && st->memory_peak != UINT64_MAX && st->memory_peak > b->memory_peak)
                        b->memory_peak = st->memory_peak;
                if (st && st->memory_bytes != UINT64_MAX)
                        b->memory_byte_seconds += st->memory_bytes / 1000 * dt / 1000;
                b->instance_usec += dt;
                b->dirty = true;
        }
        if (tr) {
                if (st && st->cpu_usec != UINT64_MAX)
                        tr->cpu_usec = st->cpu_usec;
                tr->mono_us = now;
                if (ended)
                        tr->used = false;
        }
        if (ended && !t->stopped && !uv_is_active((uv_handle_t *) &t->end_timer))
                uv_timer_start(&t->end_timer, tn_on_end_flush, TN_END_FLUSH_MS, 0);
}

void tn_on_end_flush(uv_timer_t *h) {
        osm_tenants *t = h->data;
        if (tn_usage_flush(t) < 0)
                log_warning("tenants: writing usage failed; kept in memory, tried again");
}

static void sample_one(void *userdata, const char *id, const char *workload, const char *tenant,
                       const osm_cgroup *cg) {
        osm_tenants *t = userdata;
        osm_cgroup_stats st;
        if (!cg || osm_cgroup_stats_read(cg, &st) < 0)
                return;
        osm_tenants_account(t, tenant, workload, id, &st, false);
}

void tn_usage_sample(osm_tenants *t) {
        if (t->d->workloads)
                osm_workloads_foreach_live(t->d->workloads, sample_one, t);
}

/* Add the dirty buckets to their rows in one transaction, then forget the buckets of
 * past hours. Disk and store bytes are levels, not sums: the last sample wins. */
int tn_usage_flush(osm_tenants *t) {
        bool any = false;
        for (tn_bucket *b = t->buckets; b; b = b->next)
                any |= b->dirty;
        if (!any || !t->db)
                return 0;
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        if (sqlite3_exec(t->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
                return -EIO;
        if (sqlite3_prepare_v2(t->db,
                               "INSERT INTO usage(tenant, workload, hour, cpu_usec, memory_peak, memory_byte_seconds,"
                               " instance_usec, disk_bytes, store_bytes) VALUES(?,?,?,?,?,?,?,?,?)"
                               " ON CONFLICT(tenant, workload, hour) DO UPDATE SET"
                               " cpu_usec = cpu_usec + excluded.cpu_usec,"
                               " memory_peak = max(memory_peak, excluded.memory_peak),"
                               " memory_byte_seconds = memory_byte_seconds + excluded.memory_byte_seconds,"
                               " instance_usec = instance_usec + excluded.instance_usec,"
                               " disk_bytes = excluded.disk_bytes, store_bytes = excluded.store_bytes",
                               -1, &st, NULL) != SQLITE_OK)
                goto fail;
        for (tn_bucket *b = t->buckets; b; b = b->next) {
                if (!b->dirty)
                        continue;
                if (strcmp(b->tenant, OSM_TENANT_OPERATOR) != 0) {
                        /* The workload's own data directory (as Usage says), and the
                         * tenant's store bytes: listed once per tenant in this flush. */
                        b->disk_bytes = tn_workload_disk_bytes(t, b->workload);
                        const tn_bucket *same = NULL;
                        for (const tn_bucket *o = t->buckets; o != b && !same; o = o->next)
                                if (o->dirty && strcmp(o->tenant, b->tenant) == 0)
                                        same = o;
                        b->store_bytes = same ? same->store_bytes : tn_store_bytes(t, b->tenant);
                }
                sqlite3_reset(st);
                sqlite3_bind_text(st, 1, b->tenant, -1, SQLITE_STATIC);
                sqlite3_bind_text(st, 2, b->workload, -1, SQLITE_STATIC);
                sqlite3_bind_int64(st, 3, b->hour);
                sqlite3_bind_int64(st, 4, (sqlite3_int64) b->cpu_usec);
                sqlite3_bind_int64(st, 5, (sqlite3_int64) b->memory_peak);
                sqlite3_bind_int64(st, 6, (sqlite3_int64) b->memory_byte_seconds);
                sqlite3_bind_int64(st, 7, (sqlite3_int64) b->instance_usec);
                sqlite3_bind_int64(st, 8, (sqlite3_int64) b->disk_bytes);
                sqlite3_bind_int64(st, 9, (sqlite3_int64) b->store_bytes);
                if (sqlite3_step(st) != SQLITE_DONE)
                        goto fail;
        }
        if (sqlite3_exec(t->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
                goto fail;
        /* Written: the sums start again from zero (the rows hold them now). */
        int64_t hour = osm_now_real_us() / TN_HOUR_US * TN_HOUR_US;
        for (tn_bucket **pp = &t->buckets; *pp;) {
                tn_bucket *b = *pp;
                if (b->dirty) {
                        b->cpu_usec = b->memory_byte_seconds = b->instance_usec = 0;
                        b->dirty = false;
                }
                if (b->hour < hour) {
                        *pp = b->next;
                        free(b->tenant);
                        free(b->workload);
                        free(b);
                } else
                        pp = &b->next;
        }
        return 0;
fail:
        log_warning("tenants: usage: %s", sqlite3_errmsg(t->db));
        sqlite3_exec(t->db, "ROLLBACK", NULL, NULL, NULL);
        return -EIO;
}

json_t *tn_usage_query(osm_tenants *t, const char *tenant, int64_t since) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        json_t *out = json_array();
        if (!out || sqlite3_prepare_v2(t->db, "SELECT tenant, workload, hour, cpu_usec, memory_peak,"
                                       " memory_byte_seconds, instance_usec, disk_bytes, store_bytes FROM usage"
                                       " WHERE (?1 IS NULL OR tenant = ?1) AND hour >= ?2"
                                       " ORDER BY hour, tenant, workload LIMIT 100000", -1, &st, NULL) != SQLITE_OK) {
                json_decref(out);
                return NULL;
        }
        if (tenant)
                sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, since / TN_HOUR_US * TN_HOUR_US);
        static const char *const keys[] = { "cpu_usec", "memory_peak", "memory_byte_seconds", "instance_usec",
                                            "disk_bytes", "store_bytes" };
        while (sqlite3_step(st) == SQLITE_ROW) {
                json_t *u = json_pack("{s:s,s:s,s:I}", "tenant", (const char *) sqlite3_column_text(st, 0),
                                      "workload", (const char *) sqlite3_column_text(st, 1), "hour",
                                      (json_int_t) sqlite3_column_int64(st, 2));
                for (int k = 0; u && k < 6; k++)
                        json_object_set_new(u, keys[k], json_integer(sqlite3_column_int64(st, 3 + k)));
                if (u)
                        json_array_append_new(out, u);
        }
        return out;
}

void tn_usage_free(osm_tenants *t) {
        while (t->buckets) {
                tn_bucket *b = t->buckets;
                t->buckets = b->next;
                free(b->tenant);
                free(b->workload);
                free(b);
        }
}
