/* iface-tenant.c: the io.osmose.Tenant Varlink methods: Add, List, Set, Remove, Usage. */
#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "daemon/sandbox/sandbox.h"
#include "daemon/tenant/tenant-internal.h"
#include "daemon/workload/workloads.h"
#include "osmose/log.h"
#include "osmose/util.h"

static void no_such_tenant(osm_call *call, const char *name) {
        char msg[128];
        snprintf(msg, sizeof msg, "no tenant named '%s'", name);
        osm_call_fail(call, osm_error_tenant_no_such_tenant(msg, name));
}

/* Read the optional quota fields of Add/Set into tn. Returns the name of a bad field. */
static const char *read_fields(json_t *params, osm_tenant *tn) {
        struct { const char *k; uint64_t *v; } q[] = {
                { "cpu", &tn->cpu }, { "memory", &tn->memory }, { "pids", &tn->pids }, { "disk", &tn->disk },
                { "store", &tn->store }, { "instances", &tn->instances },
        };
        for (size_t i = 0; i < OSM_ARRAY_SIZE(q); i++) {
                json_t *v = json_object_get(params, q[i].k);
                if (!v || json_is_null(v))
                        continue;
                json_int_t n = json_integer_value(v);
                if (n < 0)
                        return q[i].k;
                *q[i].v = (uint64_t) n;
        }
        json_t *until = json_object_get(params, "until");
        if (until && !json_is_null(until)) {
                if (json_integer_value(until) < 0)
                        return "until";
                tn->until = json_integer_value(until);
                tn->expired = tn->until && osm_now_real_us() >= tn->until ? tn->expired : false;
        }
        const char *net = json_string_value(json_object_get(params, "network"));
        if (net)
                tn->network = strcmp(net, "allowed") == 0;
        return NULL;
}

/* Look the group up; reply NoSuchGroup and return -ENOENT if it does not exist. */
static int set_group(osm_call *call, osm_tenant *tn, const char *group) {
        struct group *g = group && *group && strlen(group) <= 64 ? getgrnam(group) : NULL;
        if (!g) {
                char msg[160];
                snprintf(msg, sizeof msg, "no Unix group named '%s' (make it first: groupadd %s)", group ? group : "",
                         group ? group : "GROUP");
                osm_call_fail(call, osm_error_tenant_no_such_group(msg, group ? group : ""));
                return -ENOENT;
        }
        tn->gid = g->gr_gid;
        tn->group = (char *) group;
        return 0;
}

static void method_add(osm_call *call, json_t *params, void *userdata) {
        osm_tenants *t = userdata;
        const char *name = json_string_value(json_object_get(params, "name"));
        if (!osm_tenant_name_ok(name) || strcmp(name, OSM_TENANT_OPERATOR) == 0) {
                osm_call_invalid_param(call, "name");   /* a tenant name is 1 to N of a-z, 0-9 and '-', starting with a letter, and not '…' */
                return;
        }
        if (tn_find(t, name)) {
                char msg[128];
                snprintf(msg, sizeof msg, "tenant '%s' exists already (change it with 'tenant set')", name);
                osm_call_fail(call, osm_error_tenant_tenant_exists(msg, name));
                return;
        }
        osm_tenant tn = { .network = true, .created = osm_now_real_us() };
        snprintf(tn.name, sizeof tn.name, "%s", name);
        if (set_group(call, &tn, json_string_value(json_object_get(params, "group"))) < 0)
                return;
        const char *bad = read_fields(params, &tn);
        if (bad) {
                osm_call_invalid_param(call, bad);   /* must not be negative */
                return;
        }
        int r = tn_add(t, &tn);
        if (r == -EBUSY) {
                osm_call_errorf(call, OSM_E_BUSY, "already %d tenants; remove one first", TN_MAX_TENANTS);
                return;
        }
        if (r < 0) {
                osm_call_errorf(call, OSM_E_INTERNAL_ERROR, "saving the tenant: %s", strerror(-r));
                return;
        }
        log_notice("tenant %s added (group %s)", name, tn.group);
        osm_call_reply(call, osm_reply_tenant_add(tn_tenant_json(t, tn_find(t, name))), false);
}

static void method_list(osm_call *call, json_t *params, void *userdata) {
        osm_tenants *t = userdata;
        const char *mine = osm_call_tenant(call);
        json_t *list = json_array();
        for (size_t i = 0; list && i < t->n; i++)
                if (osm_tenant_owns(mine, t->tenants[i].name))
                        json_array_append_new(list, tn_tenant_json(t, &t->tenants[i]));
        osm_call_reply(call, osm_reply_tenant_list(list), false);
}

static void method_set(osm_call *call, json_t *params, void *userdata) {
        osm_tenants *t = userdata;
        const char *name = json_string_value(json_object_get(params, "name"));
        osm_tenant *cur = tn_find(t, name);
        if (!cur) {
                no_such_tenant(call, name);
                return;
        }
        osm_tenant tn = *cur;
        const char *group = json_string_value(json_object_get(params, "group"));
        if (group && set_group(call, &tn, group) < 0)
                return;
        const char *bad = read_fields(params, &tn);
        if (bad) {
                osm_call_invalid_param(call, bad);   /* must not be negative */
                return;
        }
        char *old_group = cur->group;
        char *new_group = strdup(tn.group);
        if (!new_group) {
                osm_call_errorf(call, OSM_E_INTERNAL_ERROR, "out of memory");
                return;
        }
        tn.group = new_group;
        int r = tn_save(t, &tn);
        if (r < 0) {
                free(new_group);
                osm_call_errorf(call, OSM_E_INTERNAL_ERROR, "saving the tenant: %s", strerror(-r));
                return;
        }
        *cur = tn;
        free(old_group);
        log_notice("tenant %s changed", name);
        tn_check_leases(t);
        osm_call_reply(call, osm_reply_tenant_set(tn_tenant_json(t, cur)), false);
}

static void method_remove(osm_call *call, json_t *params, void *userdata) {
        osm_tenants *t = userdata;
        const char *name = json_string_value(json_object_get(params, "name"));
        if (!tn_find(t, name)) {
                no_such_tenant(call, name);
                return;
        }
        json_t *removed = json_array();
        if (!removed) {
                osm_call_errorf(call, OSM_E_INTERNAL_ERROR, "out of memory");
                return;
        }
        if (t->d->workloads)
                osm_workloads_remove_tenant(t->d->workloads, name, removed);
        int64_t purge_at = osm_now_real_us() + (int64_t) t->d->cfg.tenant_keep_data_us;
        int r = tn_remove(t, name, purge_at, removed);
        if (r < 0) {
                json_decref(removed);
                osm_call_errorf(call, OSM_E_INTERNAL_ERROR, "removing the tenant: %s", strerror(-r));
                return;
        }
        char group[64];
        osm_tenant_group_name(name, group, sizeof group);
        (void) osm_sandbox_remove_group(t->d->sandbox, group);
        log_notice("tenant %s removed with %zu workload(s); their data is kept until %" PRId64, name,
                   json_array_size(removed), purge_at);
        osm_call_reply(call, osm_reply_tenant_remove(removed, (int64_t) purge_at), false);
}

static void method_usage(osm_call *call, json_t *params, void *userdata) {
        osm_tenants *t = userdata;
        const char *want = json_string_value(json_object_get(params, "tenant"));
        const char *mine = osm_call_tenant(call);
        if (mine && want && strcmp(want, mine) != 0) {
                no_such_tenant(call, want);
                return;
        }
        if (mine)
                want = mine;
        json_t *since = json_object_get(params, "since");
        /* What is still in memory counts too: write it first. */
        tn_usage_sample(t);
        (void) tn_usage_flush(t);
        json_t *u = tn_usage_query(t, want, since ? json_integer_value(since) : 0);
        if (!u) {
                osm_call_errorf(call, OSM_E_INTERNAL_ERROR, "reading usage: %s", sqlite3_errmsg(t->db));
                return;
        }
        osm_call_reply(call, osm_reply_tenant_usage(u), false);
}

static const osm_method methods[] = {
        { OSM_M_TENANT_ADD, method_add, OSM_ACCESS_WRITE },
        { OSM_M_TENANT_LIST, method_list, OSM_ACCESS_MONITOR },
        { OSM_M_TENANT_SET, method_set, OSM_ACCESS_WRITE },
        { OSM_M_TENANT_REMOVE, method_remove, OSM_ACCESS_WRITE },
        { OSM_M_TENANT_USAGE, method_usage, OSM_ACCESS_MONITOR },
};

int tn_register_methods(osm_tenants *t) {
        return osm_server_add_methods(t->d->server, methods, OSM_ARRAY_SIZE(methods), t);
}
