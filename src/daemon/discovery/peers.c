/* peers.c: the peers and services found (the catalog), its subscribers, and the peer list (with the operator's trust) on disk. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <avahi-common/address.h>
#include <avahi-common/alternative.h>
#include <avahi-common/domain.h>
#include <avahi-common/error.h>
#include <avahi-common/malloc.h>
#include <avahi-common/strlst.h>

#include "daemon/discovery/discovery-internal.h"
#include "osmose/log.h"
#include "osmose/varlink.h"

#define SAVE_DELAY_MS           2000    /* peer list writes are batched this long */

/* --- subscribers ------------------------------------------------------------------- */

static void schedule_save(osm_discovery *disc);

void osm_disc_subs_sweep(osm_discovery *disc) {
        osm_discovery_sub *s = disc->subs, *next;

        for (; s; s = next) {
                next = s->next;
                if (!s->dead)
                        continue;
                if (s->prev)
                        s->prev->next = s->next;
                else
                        disc->subs = s->next;
                if (s->next)
                        s->next->prev = s->prev;
                free(s->type);
                free(s);
        }
}

void osm_disc_catalog_notify(osm_dcat_kind kind, osm_dcat_event ev, json_t *obj, void *userdata) {
        osm_discovery *disc = userdata;
        const char *type;

        if (kind == OSM_DCAT_PEER)
                schedule_save(disc);

        type = json_string_value(json_object_get(obj, "type"));
        disc->dispatching++;
        for (osm_discovery_sub *s = disc->subs; s; s = s->next) {
                if (s->dead || s->kind != kind)
                        continue;
                if (kind == OSM_DCAT_SERVICE && s->type && (!type || strcmp(type, s->type) != 0))
                        continue;
                s->fn(kind, ev, obj, s->userdata);
        }
        if (--disc->dispatching == 0)
                osm_disc_subs_sweep(disc);
}

int osm_discovery_subscribe(osm_discovery *disc, osm_dcat_kind kind, const char *type,
                            osm_discovery_fn fn, void *userdata, osm_discovery_sub **out) {
        osm_discovery_sub *s;

        if (!disc)
                return -ENODEV;
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        if (type && !(s->type = strdup(type))) {
                free(s);
                return -ENOMEM;
        }
        s->disc = disc;
        s->kind = kind;
        s->fn = fn;
        s->userdata = userdata;
        s->next = disc->subs;
        if (disc->subs)
                disc->subs->prev = s;
        disc->subs = s;
        *out = s;
        return 0;
}

osm_discovery_sub *osm_discovery_unsubscribe(osm_discovery_sub *s) {
        if (!s)
                return NULL;
        if (!s->disc) {         /* detached when the subsystem stopped */
                free(s->type);
                free(s);
                return NULL;
        }
        s->dead = true;
        if (s->disc->dispatching == 0)
                osm_disc_subs_sweep(s->disc);
        return NULL;
}

json_t *osm_discovery_services(osm_discovery *disc, const char *type) {
        if (!osm_discovery_available(disc))
                return NULL;
        json_t *services = osm_dcat_services(disc->cat, type);
        if (services)
                osm_disc_add_publications(disc, services, type);
        return services;
}

json_t *osm_discovery_peers(osm_discovery *disc) {
        if (!disc)
                return NULL;
        return osm_dcat_peers(disc->cat);
}

/* --- the peer list on disk --------------------------------------------------------- */

int osm_discovery_save_now(osm_discovery *disc) {
        _cleanup_json_ json_t *doc = NULL;
        _cleanup_free_ char *text = NULL;

        uv_timer_stop(&disc->save_timer);
        disc->save_pending = false;
        doc = osm_dcat_save(disc->cat);
        if (!doc)
                return -ENOMEM;
        text = json_dumps(doc, JSON_INDENT(1));
        if (!text)
                return -ENOMEM;
        return osm_write_file_atomic(disc->state_path, text, strlen(text), 0600);
}

static void save_timer_cb(uv_timer_t *t) {
        osm_discovery *disc = t->data;
        int r = osm_discovery_save_now(disc);

        if (r < 0)
                log_error("discovery: cannot write %s: %s", disc->state_path, strerror(-r));
}

static void schedule_save(osm_discovery *disc) {
        if (disc->save_pending)
                return;
        disc->save_pending = true;
        uv_timer_start(&disc->save_timer, save_timer_cb, SAVE_DELAY_MS, 0);
}

/* Load the peer list. A file we cannot read as one is moved aside, never overwritten. */
void osm_disc_load_peers(osm_discovery *disc) {
        _cleanup_free_ char *text = NULL;
        _cleanup_json_ json_t *doc = NULL;
        json_error_t jerr;
        osm_error err = {};
        size_t skipped = 0;
        int r;

        r = osm_read_file(disc->state_path, 4u << 20, &text, NULL);
        if (r == -ENOENT)
                return;
        if (r < 0) {
                log_error("discovery: cannot read %s: %s", disc->state_path, strerror(-r));
                return;
        }
        doc = json_loads(text, 0, &jerr);
        if (!doc)
                r = osm_error_set(&err, -EINVAL, 0, "%s", jerr.text);
        else
                r = osm_dcat_load(disc->cat, doc, &skipped, &err);
        if (r < 0) {
                char aside[4096];
                snprintf(aside, sizeof(aside), "%s.bad", disc->state_path);
                log_error("discovery: %s is not a peer list (%s); moved to %s, starting with none",
                          disc->state_path, err.message, aside);
                if (rename(disc->state_path, aside) < 0)
                        log_error("discovery: cannot move %s aside: %s", disc->state_path, strerror(errno));
                return;
        }
        if (skipped)
                log_warning("discovery: %zu invalid entries in %s ignored", skipped, disc->state_path);
}
