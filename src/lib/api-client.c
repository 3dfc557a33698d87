/* api-client.c: the workload side of io.osmose.Api, typed calls over the shared client. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "osmose/api-client.h"

#define RATE_RETRIES 5

struct osm_api_client {
        osm_client *c;
};

int osm_api_connect(const char *path, osm_api_client **out) {
        if (!path)
                path = getenv("OSMOSE_API");
        if (!path || !*path)
                path = OSM_API_SOCKET;
        osm_api_client *a = calloc(1, sizeof *a);
        if (!a)
                return -ENOMEM;
        int r = osm_client_connect(path, &a->c);
        if (r < 0) {
                free(a);
                return r;
        }
        *out = a;
        return 0;
}

osm_api_client *osm_api_close(osm_api_client *c) {
        if (c) {
                osm_client_free(c->c);
                free(c);
        }
        return NULL;
}

const char *osm_api_error_grant(const osm_client_error *err) {
        return err ? json_string_value(json_object_get(err->parameters, "grant")) : NULL;
}

bool osm_api_error_is(const osm_client_error *err, const char *name) {
        return err && err->name && name && strcmp(err->name, name) == 0;
}

static void sleep_ms(int64_t ms) {
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000 };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

int osm_api_call(osm_api_client *c, const char *method, json_t *params, json_t **reply, osm_client_error *err) {
        char full[128];
        if (snprintf(full, sizeof full, OSM_I_API ".%s", method) >= (int) sizeof full)
                return -EINVAL;
        for (int attempt = 0;; attempt++) {
                int r = osm_client_call(c->c, full, params, NULL, 0, reply, NULL, NULL, err);
                if (r != -EREMOTEIO || attempt >= RATE_RETRIES || !osm_api_error_is(err, OSM_E_API_RATE_LIMITED))
                        return r;
                json_int_t ms = json_integer_value(json_object_get(err->parameters, "retry_after"));
                osm_client_error_clear(err);
                sleep_ms(ms > 0 && ms < 10000 ? ms : 10);
        }
}

int osm_api_info(osm_api_client *c, json_t **out, osm_client_error *err) {
        return osm_api_call(c, "Info", NULL, out, err);
}

int osm_api_put(osm_api_client *c, const char *collection, json_t *body, char id[64], osm_client_error *err) {
        _cleanup_json_ json_t *p = json_pack("{s:s, s:O}", "collection", collection, "body", body);
        _cleanup_json_ json_t *reply = NULL;
        if (!p)
                return -EINVAL;
        int r = osm_api_call(c, "Put", p, &reply, err);
        if (r == 0 && id)
                snprintf(id, 64, "%s", json_string_value(json_object_get(reply, "id")) ?: "");
        return r;
}

int osm_api_put_batch(osm_api_client *c, const char *collection, json_t *records, size_t *stored,
                      osm_client_error *err) {
        _cleanup_json_ json_t *p = json_pack("{s:s, s:O}", "collection", collection, "records", records);
        _cleanup_json_ json_t *reply = NULL;
        if (!p)
                return -EINVAL;
        int r = osm_api_call(c, "PutBatch", p, &reply, err);
        if (r == 0 && stored)
                *stored = (size_t) json_integer_value(json_object_get(reply, "stored"));
        return r;
}

int osm_api_query(osm_api_client *c, const char *collection, int64_t since_us, int64_t until_us,
                  size_t limit, json_t **records, osm_client_error *err) {
        _cleanup_json_ json_t *all = json_array();
        _cleanup_free_ char *cursor = NULL;
        if (!all)
                return -ENOMEM;
        for (;;) {
                _cleanup_json_ json_t *p = json_pack("{s:s}", "collection", collection);
                _cleanup_json_ json_t *reply = NULL;
                if (!p)
                        return -ENOMEM;
                if (since_us)
                        json_object_set_new(p, "since", json_integer(since_us));
                if (until_us)
                        json_object_set_new(p, "until", json_integer(until_us));
                if (limit)
                        json_object_set_new(p, "limit", json_integer((json_int_t) (limit - json_array_size(all))));
                if (cursor)
                        json_object_set_new(p, "cursor", json_string(cursor));
                int r = osm_api_call(c, "Query", p, &reply, err);
                if (r < 0)
                        return r;
                json_array_extend(all, json_object_get(reply, "records"));
                free(cursor);
                cursor = NULL;
                const char *next = json_string_value(json_object_get(reply, "cursor"));
                if (!next || (limit && json_array_size(all) >= limit))
                        break;
                cursor = strdup(next);
                if (!cursor)
                        return -ENOMEM;
        }
        *records = steal_pointer(&all);
        return 0;
}

typedef struct watch_ctx {
        osm_api_record_cb cb;
        void *userdata;
} watch_ctx;

static int on_watch_reply(json_t *params, bool continues, void *userdata) {
        watch_ctx *w = userdata;
        json_t *rec = json_object_get(params, "record");
        return rec ? w->cb(rec, w->userdata) : 0;
}

int osm_api_watch(osm_api_client *c, const char *pattern, osm_api_record_cb cb, void *userdata,
                  osm_client_error *err) {
        _cleanup_json_ json_t *p = json_pack("{s:s}", "pattern", pattern);
        watch_ctx w = { cb, userdata };
        if (!p)
                return -EINVAL;
        return osm_client_call_more(c->c, OSM_M_API_WATCH, p, on_watch_reply, &w, err);
}

int osm_api_services(osm_api_client *c, const char *type, json_t **out, osm_client_error *err) {
        _cleanup_json_ json_t *p = json_object();
        _cleanup_json_ json_t *reply = NULL;
        if (!p)
                return -ENOMEM;
        if (type)
                json_object_set_new(p, "type", json_string(type));
        int r = osm_api_call(c, "Services", p, &reply, err);
        if (r == 0)
                *out = json_incref(json_object_get(reply, "services"));
        return r;
}

int osm_api_publish(osm_api_client *c, const char *type, uint16_t port, const char *name, json_t *txt,
                    int64_t *id, osm_client_error *err) {
        _cleanup_json_ json_t *p = json_pack("{s:s, s:i}", "type", type, "port", (int) port);
        _cleanup_json_ json_t *reply = NULL;
        if (!p)
                return -EINVAL;
        if (name)
                json_object_set_new(p, "name", json_string(name));
        if (txt)
                json_object_set(p, "txt", txt);
        int r = osm_api_call(c, "Publish", p, &reply, err);
        if (r == 0 && id)
                *id = json_integer_value(json_object_get(json_object_get(reply, "publication"), "id"));
        return r;
}

int osm_api_withdraw(osm_api_client *c, int64_t id, osm_client_error *err) {
        _cleanup_json_ json_t *p = json_pack("{s:I}", "id", (json_int_t) id);
        _cleanup_json_ json_t *reply = NULL;
        if (!p)
                return -ENOMEM;
        return osm_api_call(c, "Withdraw", p, &reply, err);
}
