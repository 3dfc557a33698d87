/* fed-share.c: sharing collections: store watches that feed the outbox, and the catch-up after a crash. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "federation.h"
#include "osmose/log.h"
#include "osmose/varlink.h"

#include "daemon/store/store.h"

struct fed_watch {
        char *collection;
        osm_store_watch *w;
        fed_watch *next;
};

/* --- sharing --- */
static void on_shared_record(const osm_record *rec, void *userdata);

/* Make the set of store watches match the shares table. */
void fed_watches_sync(osm_federation *f) {
        _cleanup_json_ json_t *shares = NULL;
        if (!f->d->store || fed_db_shares(f->db, &shares) < 0)
                return;
        /* Drop watches of collections no longer shared. */
        for (fed_watch **pw = &f->watches; *pw;) {
                fed_watch *w = *pw;
                bool used = false;
                size_t i;
                json_t *s;
                json_array_foreach(shares, i, s)
                        used = used || strcmp(json_string_value(json_object_get(s, "collection")), w->collection) == 0;
                if (used) {
                        pw = &w->next;
                        continue;
                }
                *pw = w->next;
                osm_store_watch_remove(w->w);
                free(w->collection);
                free(w);
        }
        size_t i;
        json_t *s;
        json_array_foreach(shares, i, s) {
                const char *c = json_string_value(json_object_get(s, "collection"));
                bool have = false;
                for (fed_watch *w = f->watches; w; w = w->next)
                        have = have || strcmp(w->collection, c) == 0;
                if (have)
                        continue;
                fed_watch *w = calloc(1, sizeof(*w));
                if (!w || !(w->collection = strdup(c)) ||
                    !(w->w = osm_store_watch_add(f->d->store, c, on_shared_record, f))) {
                        if (w)
                                free(w->collection);
                        free(w);
                        log_error("federation: cannot watch collection %s", c);
                        continue;
                }
                w->next = f->watches;
                f->watches = w;
        }
}

static void on_shared_record(const osm_record *rec, void *userdata) {
        osm_federation *f = userdata;
        /* Only this space's own records are shared: received ones stay where they landed
         * (no loops, no re-export of another space's data). */
        if (strncmp(rec->writer, "remote:", 7) == 0)
                return;
        _cleanup_json_ json_t *shares = NULL;
        if (fed_db_shares(f->db, &shares) < 0)
                return;
        size_t i;
        json_t *s;
        json_array_foreach(shares, i, s) {
                if (strcmp(json_string_value(json_object_get(s, "collection")), rec->collection) != 0)
                        continue;
                if (rec->time_us < json_integer_value(json_object_get(s, "since")))
                        continue;
                fed_remote *r = fed_remote_by_name(f, json_string_value(json_object_get(s, "remote")));
                if (r)
                        fed_outbox_enqueue(f, r, rec->collection, rec->id, rec->time_us, rec->body);
        }
}

/* After a crash, records committed by the store just before it may have missed the
 * outbox (it commits once per loop iteration). At start each share asks the store for its
 * records since the newest one it queued; re-queueing one that was already sent is
 * harmless: the remote drops the duplicate. */
struct fed_catchup {
        osm_federation *f;        /* NULL once federation stopped: the store's callback frees */
        char *collection, *remote, *cursor;
        int64_t since;
        fed_catchup *next;
};

static void catchup_free(fed_catchup *c) {
        if (c->f) {
                fed_catchup **pc = &c->f->catchups;
                while (*pc && *pc != c)
                        pc = &(*pc)->next;
                if (*pc)
                        *pc = c->next;
        }
        free(c->collection);
        free(c->remote);
        free(c->cursor);
        free(c);
}

static void catchup_next(fed_catchup *c);

static void on_catchup_page(int res, json_t *records, const char *cursor, void *userdata) {
        fed_catchup *c = userdata;
        osm_federation *f = c->f;
        if (!f || res < 0) {
                if (f && res != -ENOENT)
                        log_warning("federation: catching up %s for %s: %s", c->collection, c->remote, strerror(-res));
                json_decref(records);
                catchup_free(c);
                return;
        }
        fed_remote *r = fed_remote_by_name(f, c->remote);
        size_t i;
        json_t *rec;
        unsigned n = 0;
        json_array_foreach(records, i, rec) {
                const char *writer = json_string_value(json_object_get(rec, "writer"));
                if (!r || !writer || strncmp(writer, "remote:", 7) == 0)
                        continue;
                _cleanup_free_ char *body = json_dumps(json_object_get(rec, "body"), JSON_COMPACT | JSON_ENCODE_ANY);
                if (!body)
                        continue;
                uint64_t before = r->queued;
                fed_outbox_enqueue(f, r, c->collection, json_string_value(json_object_get(rec, "id")),
                               json_integer_value(json_object_get(rec, "time")), body);
                n += r->queued > before;
        }
        json_decref(records);
        if (n)
                log_info("federation: queued %u records of %s for %s that had missed the queue (or were shared "
                         "with --since)", n, c->collection, c->remote);
        free(c->cursor);
        c->cursor = cursor && r ? strdup(cursor) : NULL;
        if (!c->cursor) {
                catchup_free(c);
                return;
        }
        catchup_next(c);
}

static void catchup_next(fed_catchup *c) {
        osm_store_query_req q = {
                .collection = c->collection, .since_us = c->since, .until_us = INT64_MAX,
                .limit = OSM_STORE_PAGE_RECORDS, .cursor = c->cursor,
        };
        if (osm_store_query(c->f->d->store, &q, on_catchup_page, c) < 0)
                catchup_free(c);
}

/* Queue the records of collection since `since` for remote, page by page (the same way
 * for a catch-up after a crash and for share --since). 0 or -ENOMEM. */
int fed_catchup_one(osm_federation *f, const char *collection, const char *remote, int64_t since) {
        fed_catchup *c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->f = f;
        c->collection = strdup(collection);
        c->remote = strdup(remote);
        c->since = since;
        if (!c->collection || !c->remote) {
                catchup_free(c);
                return -ENOMEM;
        }
        c->next = f->catchups;
        f->catchups = c;
        catchup_next(c);
        return 0;
}

void fed_catchup_start(osm_federation *f) {
        _cleanup_json_ json_t *shares = NULL;
        if (!f->d->store || fed_db_shares(f->db, &shares) < 0)
                return;
        size_t i;
        json_t *s;
        json_array_foreach(shares, i, s)
                if (fed_catchup_one(f, json_string_value(json_object_get(s, "collection")),
                                    json_string_value(json_object_get(s, "remote")),
                                    json_integer_value(json_object_get(s, "high_water"))) < 0)
                        return;
}

void fed_share_stop(osm_federation *f) {
        while (f->catchups) {
                /* The store answers later (or with -ECANCELED when it closes): orphan them. */
                fed_catchup *c = f->catchups;
                f->catchups = c->next;
                c->f = NULL;
        }
        while (f->watches) {
                fed_watch *w = f->watches;
                f->watches = w->next;
                osm_store_watch_remove(w->w);
                free(w->collection);
                free(w);
        }
}
