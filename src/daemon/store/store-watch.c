/* store-watch.c: watches: callbacks on the loop for each record committed to a matching collection. */
#include <fcntl.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "daemon/store/store-internal.h"
#include "osmose/varlink.h"
#include "daemon/store/store-params.h"

struct osm_store_watch {
        struct osm_store_watch *next;
        osm_store *store;
        osm_store_watch_cb cb;
        void *userdata;
        bool dead;
        char pattern[];
};

void store_watches_notify(osm_store *s, store_op *op) {
        osm_record rec = {
                .id = op->id, .collection = op->coll, .time_us = op->ts,
                .writer = op->writer, .body = op->body,
        };
        s->watch_iterating++;
        for (struct osm_store_watch *w = s->watches; w; w = w->next)
                if (!w->dead && fnmatch(w->pattern, op->coll, FNM_PATHNAME) == 0)
                        w->cb(&rec, w->userdata);
        s->watch_iterating--;
        if (s->watch_iterating == 0 && s->watch_dirty) {
                struct osm_store_watch **p = &s->watches;
                while (*p) {
                        if ((*p)->dead) {
                                struct osm_store_watch *d = *p;
                                *p = d->next;
                                free(d);
                        } else
                                p = &(*p)->next;
                }
                s->watch_dirty = false;
        }
}

/* ---- watches ---- */

osm_store_watch *osm_store_watch_add(osm_store *s, const char *pattern, osm_store_watch_cb cb, void *userdata) {
        size_t n = strnlen(pattern, OSM_STORE_MAX_NAME + 1);
        if (n == 0 || n > OSM_STORE_MAX_NAME || !cb) {
                errno = EINVAL;
                return NULL;
        }
        osm_store_watch *w = calloc(1, sizeof(*w) + n + 1);
        if (!w)
                return NULL;
        memcpy(w->pattern, pattern, n);
        w->store = s;
        w->cb = cb;
        w->userdata = userdata;
        w->next = s->watches;
        s->watches = w;
        return w;
}

void osm_store_watch_remove(osm_store_watch *w) {
        if (!w)
                return;
        osm_store *s = w->store;
        if (s->watch_iterating > 0) {
                w->dead = true;
                s->watch_dirty = true;
                return;
        }
        for (osm_store_watch **p = &s->watches; *p; p = &(*p)->next)
                if (*p == w) {
                        *p = w->next;
                        break;
                }
        free(w);
}


void store_watches_free(osm_store *s) {
        while (s->watches) {
                struct osm_store_watch *w = s->watches;
                s->watches = w->next;
                free(w);
        }
}
