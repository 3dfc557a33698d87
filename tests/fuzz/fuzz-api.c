/* fuzz-api.c: what the workload API does with a call's parameters before the store or
 * discovery sees them: the Varlink check against io.osmose.Api, then collection names,
 * store and watch grants, Put/Query parameters and publish types, as in api.c. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "daemon/store/store-params.h"
#include "osmose/grant.h"
#include "osmose/varlink.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const grants[] = { "discovery:read", "publish:_http._tcp", "store:read:sensors/*",
                                      "store:read:rooms/x", "store:write:rooms/summary", "store:write:s*", NULL };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        osm_vl_call call;
        osm_error why;
        if (size > OSM_VARLINK_MAX_MESSAGE || osm_vl_parse_call((const char *) data, size, &call, &why) < 0)
                return 0;
        const osm_vl_method *m = osm_vl_find_method(call.method);
        const char *bad = NULL;
        if (!m || strncmp(call.method, "io.osmose.Api.", 14) != 0 || osm_vl_check_params(m, call.parameters, &bad) < 0) {
                osm_vl_call_done(&call);
                return 0;
        }
        const char *member = call.method + 14;
        json_t *p = call.parameters;
        const char *coll = json_string_value(json_object_get(p, "collection"));
        if (coll && osm_name_valid(coll, 128, true)) {
                const char *w = osm_grant_find_store(grants, "write", coll);
                const char *r = osm_grant_find_store(grants, "read", coll);
                if (w && !osm_grant_pattern_match(strrchr(w, ':') + 1, coll))
                        __builtin_trap();
                (void) r;
        }
        if (strcmp(member, "Put") == 0) {
                osm_store_put_req req = { 0 };
                (void) osm_store_parse_put(p, &req, NULL);
        } else if (strcmp(member, "PutBatch") == 0) {
                (void) osm_store_check_batch(p, NULL);
        } else if (strcmp(member, "Query") == 0) {
                osm_store_query_req q;
                const char *param = NULL;
                (void) osm_store_parse_query(p, &q, &param);
        } else if (strcmp(member, "Watch") == 0) {
                const char *pat = json_string_value(json_object_get(p, "pattern"));
                if (osm_grant_watch_pattern_valid(pat))
                        (void) osm_grant_find_watch(grants, pat);
        } else if (strcmp(member, "Publish") == 0) {
                const char *type = json_string_value(json_object_get(p, "type"));
                char grant[96];
                if (type && strlen(type) < 64) {
                        snprintf(grant, sizeof grant, "publish:%s", type);
                        (void) osm_grant_has(grants, grant);
                }
        }
        osm_vl_call_done(&call);
        return 0;
}
