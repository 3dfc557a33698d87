/* ingest.c: the ingest subsystem: the bridges of osmosed.conf ([ingest.NAME]) and those
 * added with `osmosectl ingest add` (kept in STATE/ingest.json), started after the store,
 * restarted when their definition changes on reload, and their state for status. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "daemon/daemon.h"
#include "daemon/ingest/bridge.h"
#include "daemon/ingest/ingest.h"
#if HAVE_AVAHI
#include "daemon/discovery/discovery.h"
#endif
#include "osmose/log.h"
#include "osmose/util.h"

#define MAX_BRIDGES 64

typedef struct entry {
        struct entry *next;
        osm_bridge *bridge;
} entry;

struct osm_ingest {
        osm_daemon *d;
        entry *bridges;
        size_t n;
        char *path;              /* STATE/ingest.json */
        osm_ingest_def *cli;     /* bridges added with Add */
        size_t n_cli;
};

static entry *find(osm_ingest *ing, const char *name) {
        for (entry *e = ing->bridges; e; e = e->next)
                if (strcmp(osm_bridge_name(e->bridge), name) == 0)
                        return e;
        return NULL;
}

static int start_bridge(osm_ingest *ing, const osm_ingest_def *def, osm_error *err) {
        osm_bridge *b;
        entry *e = calloc(1, sizeof *e);
        if (!e)
                return -ENOMEM;
        int r = osm_bridge_new(ing->d->loop, ing->d->store, ing->d->cfg.state_dir, ing->d->space_id, def, &b, err);
        if (r < 0) {
                free(e);
                return r;
        }
        e->bridge = b;
        e->next = ing->bridges;
        ing->bridges = e;
        ing->n++;
        osm_bridge_start(b);
        return 0;
}

static void stop_bridge(osm_ingest *ing, const char *name) {
        for (entry **pe = &ing->bridges; *pe; pe = &(*pe)->next) {
                entry *e = *pe;
                if (strcmp(osm_bridge_name(e->bridge), name) == 0) {
                        *pe = e->next;
                        osm_bridge_free(e->bridge);
                        free(e);
                        ing->n--;
                        return;
                }
        }
}

static int save(osm_ingest *ing) {
        json_t *arr = json_array();
        for (size_t i = 0; i < ing->n_cli; i++)
                json_array_append_new(arr, osm_ingest_def_json(&ing->cli[i]));
        _cleanup_json_ json_t *doc = json_pack("{s:i, s:o}", "version", 1, "bridges", arr);
        _cleanup_free_ char *text = doc ? json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
        if (!text)
                return -ENOMEM;
        return osm_write_file_atomic(ing->path, text, strlen(text), 0600);
}

static void load(osm_ingest *ing) {
        json_error_t jerr;
        _cleanup_json_ json_t *doc = json_load_file(ing->path, 0, &jerr);
        if (!doc) {
                if (access(ing->path, F_OK) == 0)
                        log_error("ingest: %s: %s (bridges added with 'ingest add' are not started)", ing->path, jerr.text);
                return;
        }
        size_t i;
        json_t *o;
        json_array_foreach(json_object_get(doc, "bridges"), i, o) {
                osm_ingest_def def = { 0 };
                osm_error why = {};
                if (ing->n_cli >= MAX_BRIDGES || osm_ingest_def_from_json(o, &def, &why) < 0) {
                        log_error("ingest: %s: bridge %zu skipped: %s", ing->path, i, osm_error_message(&why, "too many"));
                        osm_ingest_def_clear(&def);
                        continue;
                }
                osm_ingest_def *n = realloc(ing->cli, (ing->n_cli + 1) * sizeof *n);
                if (!n) {
                        osm_ingest_def_clear(&def);
                        continue;
                }
                ing->cli = n;
                ing->cli[ing->n_cli++] = def;
        }
}

static bool in_config(const osm_config *cfg, const char *name) {
        for (size_t i = 0; i < cfg->n_ingest; i++)
                if (strcmp(cfg->ingest[i].name, name) == 0)
                        return true;
        return false;
}

static void start_all(osm_ingest *ing) {
        const osm_config *cfg = &ing->d->cfg;
        for (size_t i = 0; i < cfg->n_ingest + ing->n_cli; i++) {
                const osm_ingest_def *def = i < cfg->n_ingest ? &cfg->ingest[i] : &ing->cli[i - cfg->n_ingest];
                osm_error why = {};
                if (find(ing, def->name))
                        continue;   /* a CLI bridge shadowed by the config file */
                int r = start_bridge(ing, def, &why);
                if (r < 0)
                        log_error("ingest %s: not started: %s: %s", def->name, osm_error_message(&why, "error"),
                                  strerror(-r));
        }
}

static int ingest_start(osm_daemon *d) {
        osm_ingest *ing = calloc(1, sizeof *ing);
        if (!ing)
                return -ENOMEM;
        ing->d = d;
        if (asprintf(&ing->path, "%s/ingest.json", d->cfg.state_dir) < 0) {
                free(ing);
                return -ENOMEM;
        }
        d->ingest = ing;
        int r = osm_ingest_iface_register(ing, d->server);
        if (r < 0) {
                log_error("ingest: cannot register io.osmose.Ingest: %s", strerror(-r));
                return r;
        }
        load(ing);
        start_all(ing);
        return 0;
}

static void ingest_stop(osm_daemon *d) {
        osm_ingest *ing = d->ingest;
        if (!ing)
                return;
        while (ing->bridges)
                stop_bridge(ing, osm_bridge_name(ing->bridges->bridge));
        osm_ingest_defs_free(ing->cli, ing->n_cli);
        free(ing->path);
        free(ing);
        d->ingest = NULL;
        /* mosquitto_lib_cleanup() is left out: bridges still waiting for the store hold
         * their (idle) mosquitto handles until the store has answered. */
}

/* Health without building a JSON object: GetStatus asks for it in a loop. */
static osm_health ingest_health(osm_daemon *d, char *detail, size_t size) {
        osm_ingest *ing = d->ingest;
        size_t up = 0;
        if (!ing) {
                snprintf(detail, size, "not running");
                return OSM_HEALTH_FAILED;
        }
        if (ing->n == 0) {
                snprintf(detail, size, "no bridges");
                return OSM_HEALTH_OK;
        }
        for (entry *e = ing->bridges; e; e = e->next)
                up += osm_bridge_connected(e->bridge);
        snprintf(detail, size, "%zu of %zu bridge%s connected", up, ing->n, ing->n == 1 ? "" : "s");
        return up == ing->n ? OSM_HEALTH_OK : OSM_HEALTH_DEGRADED;
}

static void ingest_status(osm_daemon *d, json_t *obj) {
        osm_ingest *ing = d->ingest;
        if (!ing)
                return;
        json_t *list = json_array();
        for (entry *e = ing->bridges; e; e = e->next) {
                json_t *b = osm_bridge_json(e->bridge);
                json_array_append_new(list, json_pack("{s:O, s:O, s:O, s:O, s:O?}", "name", json_object_get(b, "name"),
                                                      "state", json_object_get(b, "state"),
                                                      "messages", json_object_get(b, "messages"),
                                                      "stored", json_object_get(b, "stored"),
                                                      "last_error", json_object_get(b, "last_error")));
                json_decref(b);
        }
        json_object_set_new(obj, "bridges", list);
}

static bool def_equal(const osm_ingest_def *a, const osm_ingest_def *b) {
        json_t *ja = osm_ingest_def_json(a), *jb = osm_ingest_def_json(b);
        bool eq = ja && jb && json_equal(ja, jb);
        json_decref(ja);
        json_decref(jb);
        return eq;
}

static void ingest_reload(osm_daemon *d, const osm_config *old) {
        osm_ingest *ing = d->ingest;
        if (!ing)
                return;
        /* Stop bridges whose config section went or changed; start_all starts the rest. */
        for (size_t i = 0; i < old->n_ingest; i++) {
                const osm_ingest_def *o = &old->ingest[i];
                bool same = false;
                for (size_t j = 0; j < d->cfg.n_ingest && !same; j++)
                        same = def_equal(o, &d->cfg.ingest[j]);
                if (!same)
                        stop_bridge(ing, o->name);
        }
        /* A CLI bridge now shadowed by a new section gives way to it. */
        for (size_t i = 0; i < ing->n_cli; i++) {
                entry *e = find(ing, ing->cli[i].name);
                if (e && !osm_bridge_def(e->bridge)->from_config && in_config(&d->cfg, ing->cli[i].name))
                        stop_bridge(ing, ing->cli[i].name);
        }
        start_all(ing);
}

const osm_subsystem osm_ingest_subsystem = {
        .name = "ingest",
        .start = ingest_start,
        .stop = ingest_stop,
        .health = ingest_health,
        .status = ingest_status,
        .reload = ingest_reload,
};

json_t *osm_ingest_list(osm_ingest *ing) {
        json_t *arr = json_array();
        for (entry *e = ing->bridges; e; e = e->next)
                json_array_append_new(arr, osm_bridge_json(e->bridge));
        return arr;
}

int osm_ingest_add(osm_ingest *ing, const osm_ingest_def *def, osm_error *err) {
        int r = osm_ingest_def_check(def, err);
        if (r < 0)
                return r;
        if (find(ing, def->name) || in_config(&ing->d->cfg, def->name))
                return osm_error_set(err, -EEXIST, 0, "a bridge of this name exists");
        if (ing->n >= MAX_BRIDGES)
                return osm_error_set(err, -ENOSPC, 0, "at most 64 bridges");
        osm_ingest_def *n = realloc(ing->cli, (ing->n_cli + 1) * sizeof *n);
        if (!n)
                return -ENOMEM;
        ing->cli = n;
        if ((r = osm_ingest_def_copy(&ing->cli[ing->n_cli], def)) < 0)
                return r;
        ing->cli[ing->n_cli].from_config = false;
        ing->n_cli++;
        /* Started only once it is on disk. */
        if ((r = save(ing)) < 0) {
                osm_ingest_def_clear(&ing->cli[--ing->n_cli]);
                return osm_error_set(err, r, 0, "cannot write STATE/ingest.json");
        }
        r = start_bridge(ing, &ing->cli[ing->n_cli - 1], err);
        if (r < 0) {
                osm_ingest_def_clear(&ing->cli[--ing->n_cli]);
                save(ing);
        }
        return r;
}

int osm_ingest_remove(osm_ingest *ing, const char *name) {
        if (in_config(&ing->d->cfg, name))
                return -EPERM;
        for (size_t i = 0; i < ing->n_cli; i++) {
                if (strcmp(ing->cli[i].name, name) != 0)
                        continue;
                osm_ingest_def gone = ing->cli[i];
                memmove(&ing->cli[i], &ing->cli[i + 1], (ing->n_cli - i - 1) * sizeof *ing->cli);
                ing->n_cli--;
                int r = save(ing);
                if (r < 0) {
                        memmove(&ing->cli[i + 1], &ing->cli[i], (ing->n_cli - i) * sizeof *ing->cli);
                        ing->cli[i] = gone;
                        ing->n_cli++;
                        return r;
                }
                stop_bridge(ing, name);
                osm_ingest_def_clear(&gone);
                log_notice("ingest %s: removed", name);
                return 0;
        }
        return -ENOENT;
}

json_t *osm_ingest_discovered(osm_ingest *ing) {
#if HAVE_AVAHI
        if (!ing->d->discovery)
                return NULL;
        json_t *services = osm_discovery_services(ing->d->discovery, "_mqtt._tcp");
        if (!services)
                return NULL;
        json_t *out = json_array();
        size_t i;
        json_t *s;
        json_array_foreach(services, i, s) {
                const char *host = json_string_value(json_object_get(s, "host"));
                json_int_t port = json_integer_value(json_object_get(s, "port"));
                json_t *addrs = json_object_get(s, "addresses");
                const char *a0 = json_string_value(json_array_get(addrs, 0));
                char url[300];
                const char *h = a0 ? a0 : host ? host : "";
                snprintf(url, sizeof url, strchr(h, ':') ? "mqtt://[%s]:%lld" : "mqtt://%s:%lld", h, (long long) port);
                json_array_append_new(out, json_pack("{s:O, s:s, s:o, s:I, s:s}", "name", json_object_get(s, "name"),
                                                     "host", host ? host : "", "addresses", addrs ? json_incref(addrs) : json_array(),
                                                     "port", port, "url", url));
        }
        json_decref(services);
        return out;
#else
        (void) ing;
        return NULL;
#endif
}
