/* tenants.c: the tenant registry (tenants.db), the role lookup for the control socket,
 * quotas and leases, and the subsystem's life. */
#include <errno.h>
#include <fnmatch.h>
#include <ftw.h>
#include <grp.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/db.h"
#include "daemon/tenant/tenant-internal.h"
#include "daemon/store/store.h"
#include "daemon/workload/workloads.h"
#include "osmose/log.h"
#include "osmose/util.h"


static const char schema[] =
        "CREATE TABLE IF NOT EXISTS tenants("
        "  name TEXT PRIMARY KEY, grp TEXT NOT NULL, cpu INTEGER, memory INTEGER, pids INTEGER,"
        "  disk INTEGER, store INTEGER, instances INTEGER, until INTEGER, network INTEGER NOT NULL,"
        "  created INTEGER NOT NULL, expired INTEGER NOT NULL DEFAULT 0);"
        /* Usage per tenant, workload and hour; added to, never rewritten from scratch. */
        "CREATE TABLE IF NOT EXISTS usage("
        "  tenant TEXT NOT NULL, workload TEXT NOT NULL, hour INTEGER NOT NULL,"
        "  cpu_usec INTEGER NOT NULL DEFAULT 0, memory_peak INTEGER NOT NULL DEFAULT 0,"
        "  memory_byte_seconds INTEGER NOT NULL DEFAULT 0, instance_usec INTEGER NOT NULL DEFAULT 0,"
        "  disk_bytes INTEGER NOT NULL DEFAULT 0, store_bytes INTEGER NOT NULL DEFAULT 0,"
        "  PRIMARY KEY(tenant, workload, hour));"
        /* Removed tenants whose data is kept until purge_at. */
        "CREATE TABLE IF NOT EXISTS removed("
        "  name TEXT NOT NULL, removed INTEGER NOT NULL, purge_at INTEGER NOT NULL,"
        "  workloads TEXT NOT NULL, purged INTEGER);";

bool osm_tenant_name_ok(const char *n) {
        size_t len = n ? strlen(n) : 0;
        if (len == 0 || len > OSM_TENANT_NAME_MAX || n[0] < 'a' || n[0] > 'z')
                return false;
        return strspn(n, "abcdefghijklmnopqrstuvwxyz0123456789-") == len;
}

bool osm_tenant_collection_ok(const char *tenant, const char *collection) {
        size_t pl = strlen(OSM_TENANT_STORE_PREFIX), tl = strlen(tenant);
        return collection && strncmp(collection, OSM_TENANT_STORE_PREFIX, pl) == 0 &&
               strncmp(collection + pl, tenant, tl) == 0 && collection[pl + tl] == '/' &&
               collection[pl + tl + 1] != '\0';
}

void osm_tenant_group_name(const char *tenant, char *out, size_t size) {
        snprintf(out, size, "t-%s", tenant);
}

osm_tenant *tn_find(osm_tenants *t, const char *name) {
        for (size_t i = 0; t && name && i < t->n; i++)
                if (strcmp(t->tenants[i].name, name) == 0)
                        return &t->tenants[i];
        return NULL;
}

const osm_tenant *osm_tenants_find(osm_tenants *t, const char *name) {
        return tn_find(t, name);
}

/* The control server's role lookup: the one tenant whose group the caller is in. */
static int resolve_tenant(void *userdata, const gid_t *gids, size_t n_gids, char out[OSM_TENANT_NAME_MAX + 1]) {
        osm_tenants *t = userdata;
        const osm_tenant *hit = NULL;
        for (size_t i = 0; i < t->n; i++)
                for (size_t g = 0; g < n_gids; g++)
                        if (gids[g] == t->tenants[i].gid) {
                                if (hit && hit != &t->tenants[i])
                                        return -EADDRINUSE;
                                hit = &t->tenants[i];
                        }
        if (!hit)
                return -ENOENT;
        snprintf(out, OSM_TENANT_NAME_MAX + 1, "%s", hit->name);
        return 0;
}

/* ---- usage now ------------------------------------------------------------------------------ */

uint64_t tn_store_bytes(osm_tenants *t, const char *tenant) {
        json_t *cols = NULL;
        if (!t->d->store || osm_store_collections(t->d->store, &cols) < 0)
                return 0;
        uint64_t sum = 0;
        size_t i;
        json_t *c;
        json_array_foreach(cols, i, c) {
                if (osm_tenant_collection_ok(tenant, json_string_value(json_object_get(c, "name"))))
                        sum += (uint64_t) json_integer_value(json_object_get(c, "bytes"));
        }
        json_decref(cols);
        return sum;
}

static __thread uint64_t du_sum;
static __thread uint64_t du_entries;

static int du_one(const char *path, const struct stat *st, int flag, struct FTW *f) {
        if (flag == FTW_F || flag == FTW_D)
                du_sum += (uint64_t) st->st_blocks * 512;
        /* Bounded: a tenant with millions of files is counted up to here. */
        return ++du_entries > 200000 ? 1 : 0;
}

typedef struct du_ctx {
        const char *tenant;
        const char *data_root;
        uint64_t sum;
} du_ctx;

/* Bytes of one data directory (bounded walk). */
static uint64_t du_dir(const char *data_root, const char *workload) {
        char path[4096];
        if ((size_t) snprintf(path, sizeof path, "%s/%s", data_root, workload) >= sizeof path)
                return 0;
        du_sum = 0;
        du_entries = 0;
        (void) nftw(path, du_one, 16, FTW_PHYS | FTW_MOUNT);
        return du_sum;
}

static void du_workload(void *userdata, const char *workload, const char *tenant) {
        du_ctx *c = userdata;
        if (tenant && strcmp(tenant, c->tenant) == 0)
                c->sum += du_dir(c->data_root, workload);
}

uint64_t tn_workload_disk_bytes(osm_tenants *t, const char *workload) {
        char root[4096];
        snprintf(root, sizeof root, "%s/data", t->d->cfg.state_dir);
        return du_dir(root, workload);
}

uint64_t tn_disk_bytes(osm_tenants *t, const char *tenant) {
        if (!t->d->workloads)
                return 0;
        char root[4096];
        snprintf(root, sizeof root, "%s/data", t->d->cfg.state_dir);
        du_ctx c = { .tenant = tenant, .data_root = root };
        osm_workloads_foreach(t->d->workloads, du_workload, &c);
        return c.sum;
}

/* ---- checks --------------------------------------------------------------------------------- */

static int refuse_quota(osm_call *call, const osm_tenant *tn, const char *quota, uint64_t limit, uint64_t used,
                        osm_error *err) {
        char msg[256];
        snprintf(msg, sizeof msg, "tenant %s: %s quota reached (%" PRIu64 " of %" PRIu64 ")", tn->name, quota,
                 used, limit);
        osm_error_set(err, -EDQUOT, 0, "%s", msg);
        if (call)
                osm_call_fail(call, osm_error_tenant_quota_exceeded(msg, tn->name, quota, (int64_t) limit, (int64_t) used));
        return -EDQUOT;
}

int osm_tenants_check_run(osm_tenants *t, const char *tenant, unsigned live, osm_call *call, osm_error *err) {
        const osm_tenant *tn = tn_find(t, tenant);
        if (!tn)
                return 0;
        if (tn->expired || (tn->until && osm_now_real_us() >= tn->until)) {
                char msg[256];
                snprintf(msg, sizeof msg, "tenant %s: its lease has ended; nothing of it may run", tn->name);
                osm_error_set(err, -EKEYEXPIRED, 0, "%s", msg);
                if (call)
                        osm_call_fail(call, osm_error_tenant_lease_expired(msg, tn->name, tn->until));
                return -EKEYEXPIRED;
        }
        if (tn->instances && live >= tn->instances)
                return refuse_quota(call, tn, "instances", tn->instances, live, err);
        if (tn->disk) {
                uint64_t used = tn_disk_bytes(t, tn->name);
                if (used >= tn->disk)
                        return refuse_quota(call, tn, "disk", tn->disk, used, err);
        }
        return 0;
}

int osm_tenants_check_store(osm_tenants *t, const char *collection, osm_call *call) {
        if (!t || !collection)
                return 0;
        size_t pl = strlen(OSM_TENANT_STORE_PREFIX);
        if (strncmp(collection, OSM_TENANT_STORE_PREFIX, pl) != 0)
                return 0;
        char name[OSM_TENANT_NAME_MAX + 1];
        const char *slash = strchr(collection + pl, '/');
        size_t len = slash ? (size_t) (slash - collection - pl) : 0;
        if (len == 0 || len > OSM_TENANT_NAME_MAX)
                return 0;
        memcpy(name, collection + pl, len);
        name[len] = 0;
        const osm_tenant *tn = tn_find(t, name);
        if (!tn || !tn->store)
                return 0;
        uint64_t used = tn_store_bytes(t, tn->name);
        if (used >= tn->store)
                return refuse_quota(call, tn, "store", tn->store, used, NULL);
        return 0;
}

bool osm_tenants_grant_ok(osm_tenants *t, const char *tenant, const char *cap, osm_error *err) {
        if (!tenant)
                return true;
        const osm_tenant *tn = tn_find(t, tenant);
        if (!tn) {
                osm_error_set(err, -ENOENT, 0, "tenant %s does not exist", tenant);
                return false;
        }
        if (strcmp(cap, "network") == 0) {
                if (tn->network)
                        return true;
                osm_error_set(err, -EPERM, 0, "tenant %s may not grant network access (tenant set %s --network allowed)",
                              tenant, tenant);
                return false;
        }
        if (strcmp(cap, "discovery:read") == 0 || strncmp(cap, "publish:", 8) == 0)
                return true;
        const char *scope = NULL;
        if (strncmp(cap, "store:read:", 11) == 0 || strncmp(cap, "store:write:", 12) == 0)
                scope = strchr(cap + 6, ':') + 1;
        if (scope && osm_tenant_collection_ok(tenant, scope))
                return true;
        osm_error_set(err, -EPERM, 0, "%s reaches outside tenant %s (its store is %s%s/…); only an operator may grant it",
                      cap, tenant, OSM_TENANT_STORE_PREFIX, tenant);
        return false;
}

/* ---- the registry --------------------------------------------------------------------------- */

static void tenant_clear(osm_tenant *tn) {
        free(tn->group);
        tn->group = NULL;
}

static int cmp_tenant(const void *a, const void *b) {
        return strcmp(((const osm_tenant *) a)->name, ((const osm_tenant *) b)->name);
}

static void bind_u64(sqlite3_stmt *st, int col, uint64_t v) {
        if (v)
                sqlite3_bind_int64(st, col, (sqlite3_int64) v);
        else
                sqlite3_bind_null(st, col);
}

int tn_save(osm_tenants *t, const osm_tenant *tn) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(t->db, "INSERT OR REPLACE INTO tenants(name, grp, cpu, memory, pids, disk, store,"
                               " instances, until, network, created, expired) VALUES(?,?,?,?,?,?,?,?,?,?,?,?)",
                               -1, &st, NULL) != SQLITE_OK)
                return -EIO;
        sqlite3_bind_text(st, 1, tn->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, tn->group, -1, SQLITE_STATIC);
        bind_u64(st, 3, tn->cpu);
        bind_u64(st, 4, tn->memory);
        bind_u64(st, 5, tn->pids);
        bind_u64(st, 6, tn->disk);
        bind_u64(st, 7, tn->store);
        bind_u64(st, 8, tn->instances);
        bind_u64(st, 9, (uint64_t) tn->until);
        sqlite3_bind_int(st, 10, tn->network);
        sqlite3_bind_int64(st, 11, tn->created);
        sqlite3_bind_int(st, 12, tn->expired);
        return sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
}

/* Append a copy of tn (its group duplicated) to the array. */
static int append(osm_tenants *t, const osm_tenant *tn) {
        osm_tenant *a = realloc(t->tenants, (t->n + 1) * sizeof *a);
        if (!a)
                return -ENOMEM;
        t->tenants = a;
        a[t->n] = *tn;
        if (!(a[t->n].group = strdup(tn->group)))
                return -ENOMEM;
        t->n++;
        return 0;
}

int tn_add(osm_tenants *t, const osm_tenant *tn) {
        if (t->n >= TN_MAX_TENANTS)
                return -EBUSY;
        int r = tn_save(t, tn);
        if (r < 0 || (r = append(t, tn)) < 0)
                return r;
        qsort(t->tenants, t->n, sizeof *t->tenants, cmp_tenant);
        return 0;
}

int tn_remove(osm_tenants *t, const char *name, int64_t purge_at, json_t *workloads) {
        _cleanup_stmt_ sqlite3_stmt *del = NULL, *ins = NULL;
        _cleanup_free_ char *wtext = json_dumps(workloads, JSON_COMPACT);
        if (!wtext)
                return -ENOMEM;
        if (sqlite3_exec(t->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
                return -EIO;
        if (sqlite3_prepare_v2(t->db, "DELETE FROM tenants WHERE name = ?", -1, &del, NULL) != SQLITE_OK ||
            sqlite3_prepare_v2(t->db, "INSERT INTO removed(name, removed, purge_at, workloads) VALUES(?,?,?,?)",
                               -1, &ins, NULL) != SQLITE_OK)
                goto fail;
        sqlite3_bind_text(del, 1, name, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 1, name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(ins, 2, osm_now_real_us());
        sqlite3_bind_int64(ins, 3, purge_at);
        sqlite3_bind_text(ins, 4, wtext, -1, SQLITE_STATIC);
        if (sqlite3_step(del) != SQLITE_DONE || sqlite3_step(ins) != SQLITE_DONE ||
            sqlite3_exec(t->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
                goto fail;
        osm_tenant *tn = tn_find(t, name);
        if (tn) {
                tenant_clear(tn);
                size_t idx = (size_t) (tn - t->tenants);
                memmove(tn, tn + 1, (t->n - idx - 1) * sizeof *tn);
                t->n--;
        }
        return 0;
fail:
        sqlite3_exec(t->db, "ROLLBACK", NULL, NULL, NULL);
        return -EIO;
}

static int load(osm_tenants *t) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(t->db, "SELECT name, grp, cpu, memory, pids, disk, store, instances, until, network,"
                               " created, expired FROM tenants ORDER BY name", -1, &st, NULL) != SQLITE_OK)
                return -EIO;
        while (sqlite3_step(st) == SQLITE_ROW) {
                osm_tenant tn = { 0 };
                const char *name = (const char *) sqlite3_column_text(st, 0);
                const char *grp = (const char *) sqlite3_column_text(st, 1);
                if (!osm_tenant_name_ok(name) || !grp)
                        continue;
                snprintf(tn.name, sizeof tn.name, "%s", name);
                tn.group = (char *) grp;
                tn.cpu = (uint64_t) sqlite3_column_int64(st, 2);
                tn.memory = (uint64_t) sqlite3_column_int64(st, 3);
                tn.pids = (uint64_t) sqlite3_column_int64(st, 4);
                tn.disk = (uint64_t) sqlite3_column_int64(st, 5);
                tn.store = (uint64_t) sqlite3_column_int64(st, 6);
                tn.instances = (uint64_t) sqlite3_column_int64(st, 7);
                tn.until = sqlite3_column_int64(st, 8);
                tn.network = sqlite3_column_int(st, 9);
                tn.created = sqlite3_column_int64(st, 10);
                tn.expired = sqlite3_column_int(st, 11);
                struct group *g = getgrnam(grp);
                tn.gid = g ? g->gr_gid : (gid_t) -1;
                if (!g)
                        log_warning("tenant %s: group %s does not exist; nobody acts for it", name, grp);
                if (append(t, &tn) < 0)
                        return -ENOMEM;
        }
        return 0;
}

json_t *tn_tenant_json(osm_tenants *t, const osm_tenant *tn) {
        json_t *o = json_pack("{s:s,s:s,s:s,s:I,s:b}", "name", tn->name, "group", tn->group, "network",
                              tn->network ? "allowed" : "denied", "created", (json_int_t) tn->created, "expired",
                              tn->expired);
        if (!o)
                return NULL;
        struct { const char *k; uint64_t v; } q[] = {
                { "cpu", tn->cpu }, { "memory", tn->memory }, { "pids", tn->pids }, { "disk", tn->disk },
                { "store", tn->store }, { "instances", tn->instances }, { "until", (uint64_t) tn->until },
        };
        for (size_t i = 0; i < OSM_ARRAY_SIZE(q); i++)
                if (q[i].v)
                        json_object_set_new(o, q[i].k, json_integer((json_int_t) q[i].v));
        unsigned nw = 0, running = 0;
        if (t->d->workloads)
                osm_workloads_tenant_counts(t->d->workloads, tn->name, &nw, &running);
        json_object_set_new(o, "workloads", json_integer(nw));
        json_object_set_new(o, "running", json_integer(running));
        json_object_set_new(o, "disk_bytes", json_integer((json_int_t) tn_disk_bytes(t, tn->name)));
        json_object_set_new(o, "store_bytes", json_integer((json_int_t) tn_store_bytes(t, tn->name)));
        return o;
}

/* A lease that ended stops the tenant's instances (once) and refuses new ones. */
void tn_check_leases(osm_tenants *t) {
        int64_t now = osm_now_real_us();
        for (size_t i = 0; i < t->n; i++) {
                osm_tenant *tn = &t->tenants[i];
                if (tn->expired || !tn->until || now < tn->until)
                        continue;
                tn->expired = true;
                (void) tn_save(t, tn);
                log_notice("tenant %s: lease ended; stopping its instances", tn->name);
                if (t->d->workloads)
                        osm_workloads_stop_tenant(t->d->workloads, tn->name);
        }
}

/* Removed tenants whose keep-data time has passed: their workloads' data goes. */
static void purge_removed(osm_tenants *t) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL, *done = NULL;
        if (sqlite3_prepare_v2(t->db, "SELECT rowid, name, workloads FROM removed WHERE purged IS NULL AND purge_at <= ?",
                               -1, &st, NULL) != SQLITE_OK ||
            sqlite3_prepare_v2(t->db, "UPDATE removed SET purged = ? WHERE rowid = ?", -1, &done, NULL) != SQLITE_OK)
                return;
        sqlite3_bind_int64(st, 1, osm_now_real_us());
        while (sqlite3_step(st) == SQLITE_ROW) {
                const char *name = (const char *) sqlite3_column_text(st, 1);
                json_t *names = json_loads((const char *) sqlite3_column_text(st, 2), 0, NULL);
                size_t i;
                json_t *n;
                json_array_foreach(names, i, n) {
                        const char *wl = json_string_value(n);
                        if (wl && t->d->workloads && osm_workloads_purge_data(t->d->workloads, wl) == 0)
                                log_notice("tenant %s: removed the data of workload %s (keep-data ended)", name, wl);
                }
                json_decref(names);
                sqlite3_reset(done);
                sqlite3_bind_int64(done, 1, osm_now_real_us());
                sqlite3_bind_int64(done, 2, sqlite3_column_int64(st, 0));
                (void) sqlite3_step(done);
        }
}

/* ---- the subsystem -------------------------------------------------------------------------- */

static void on_sample(uv_timer_t *h) {
        osm_tenants *t = h->data;
        tn_check_leases(t);
        tn_usage_sample(t);
        uint64_t now = osm_now_mono_us();
        if (now - t->last_flush_mono >= t->d->cfg.usage_flush_us) {
                t->last_flush_mono = now;
                if (tn_usage_flush(t) < 0)
                        log_warning("tenants: writing usage failed; kept in memory, tried again");
                purge_removed(t);
        }
}

static int tenants_start(osm_daemon *d) {
        osm_tenants *t = calloc(1, sizeof *t);
        if (!t)
                return -ENOMEM;
        t->d = d;
        char path[4096];
        snprintf(path, sizeof path, "%s/tenants.db", d->cfg.state_dir);
        osm_error err = {};
        if (osm_db_open(path, OSM_DB_CREATE, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", &t->db, &err) < 0) {
                log_error("tenants: %s", err.message);
                free(t);
                return -EIO;
        }
        if (sqlite3_exec(t->db, schema, NULL, NULL, NULL) != SQLITE_OK || load(t) < 0) {
                log_error("tenants: loading %s: %s", path, sqlite3_errmsg(t->db));
                sqlite3_close(t->db);
                free(t);
                return -EIO;
        }
        /* Loaded: the schema's and rows' pages need not stay cached in an idle room. */
        sqlite3_db_release_memory(t->db);
        d->tenants = t;
        osm_server_set_roles(d->server, d->reader_gid, resolve_tenant, t);
        int r = tn_register_methods(t);
        if (r < 0)
                return r;
        uv_timer_init(d->loop, &t->sample_timer);
        t->sample_timer.data = t;
        uv_timer_init(d->loop, &t->end_timer);
        t->end_timer.data = t;
        t->open_handles = 2;
        t->last_flush_mono = osm_now_mono_us();
        uint64_t ms = d->cfg.usage_sample_us / 1000;
        uv_timer_start(&t->sample_timer, on_sample, ms ? ms : 1000, ms ? ms : 1000);
        tn_check_leases(t);
        return 0;
}

static void on_timer_closed(uv_handle_t *h) {
        osm_tenants *t = h->data;
        if (--t->open_handles == 0 && t->stopped) {
                for (size_t i = 0; i < t->n; i++)
                        tenant_clear(&t->tenants[i]);
                free(t->tenants);
                free(t);
        }
}

static void tenants_stop(osm_daemon *d) {
        osm_tenants *t = d->tenants;
        if (!t)
                return;
        tn_usage_sample(t);
        (void) tn_usage_flush(t);
        tn_usage_free(t);
        sqlite3_close(t->db);
        t->db = NULL;
        osm_server_set_roles(d->server, d->reader_gid, NULL, NULL);
        d->tenants = NULL;
        t->stopped = true;
        uv_timer_stop(&t->sample_timer);
        uv_close((uv_handle_t *) &t->sample_timer, on_timer_closed);
        uv_timer_stop(&t->end_timer);
        uv_close((uv_handle_t *) &t->end_timer, on_timer_closed);
}

/* Health without building a JSON object: GetStatus asks for it in a loop. */
static osm_health tenants_health(osm_daemon *d, char *detail, size_t size) {
        osm_tenants *t = d->tenants;
        if (!t) {
                snprintf(detail, size, "not started");
                return OSM_HEALTH_FAILED;
        }
        unsigned nogroup = 0;
        for (size_t i = 0; i < t->n; i++)
                nogroup += t->tenants[i].gid == (gid_t) -1;
        if (!nogroup)
                return OSM_HEALTH_OK;
        snprintf(detail, size, "%u tenant(s) name a group that does not exist", nogroup);
        return OSM_HEALTH_DEGRADED;
}

static void tenants_status(osm_daemon *d, json_t *obj) {
        osm_tenants *t = d->tenants;
        if (!t)
                return;
        unsigned expired = 0;
        for (size_t i = 0; i < t->n; i++)
                expired += t->tenants[i].expired;
        json_object_set_new(obj, "tenants", json_integer((json_int_t) t->n));
        json_object_set_new(obj, "expired", json_integer(expired));
}

/* Groups may have been made since: look their ids up again. */
static void tenants_reload(osm_daemon *d, const osm_config *old) {
        osm_tenants *t = d->tenants;
        if (!t)
                return;
        for (size_t i = 0; i < t->n; i++) {
                struct group *g = getgrnam(t->tenants[i].group);
                t->tenants[i].gid = g ? g->gr_gid : (gid_t) -1;
        }
        osm_server_set_roles(d->server, d->reader_gid, resolve_tenant, t);
}

const osm_subsystem osm_tenants_subsystem = {
        .name = "tenants",
        .start = tenants_start,
        .stop = tenants_stop,
        .health = tenants_health,
        .status = tenants_status,
        .reload = tenants_reload,
};
