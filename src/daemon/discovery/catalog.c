/* catalog.c: the room's services and the peers derived from them (see catalog.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/discovery/catalog.h"
#include "osmose/util.h"
#include "osmose/varlink.h"

#define MAX_NAME    255         /* bytes of a name, type, domain or host we accept */
#define ADDR_MAX    64          /* text form of an address, with room for a zone */

typedef struct presence {
        int iface, proto;
        char address[ADDR_MAX];         /* "" until resolved */
} presence;

typedef struct dsvc {
        struct dsvc *hnext;
        uint32_t hash;
        char *name, *type, *domain;
        char *host;
        uint16_t port;
        json_t *txt;
        unsigned txt_issues;
        unsigned flags;                 /* OSM_DCAT_LOCAL|OSM_DCAT_OWN, from the browser */
        presence pres[OSM_DCAT_MAX_PRESENCES];
        size_t n_pres;
        bool resolved;                  /* listed */
        int64_t first_seen, last_seen;
} dsvc;

typedef struct dpeer {
        char id[OSM_SPACE_ID_LEN + 1];
        char *instance;                 /* the mDNS service name it is published as */
        char name[OSM_PEER_NAME_MAX + 1];
        char *host;
        json_t *addresses;              /* array of strings */
        uint16_t port;
        unsigned version;
        int64_t first_seen, last_seen;
        bool present, trusted, conflict;
} dpeer;

struct osm_dcat {
        osm_dcat_limits limits;
        char own_id[OSM_SPACE_ID_LEN + 1];
        osm_dcat_notify_fn notify;
        void *userdata;

        dsvc **buckets;
        size_t n_buckets;               /* a power of two */
        size_t n_services;
        size_t n_gateway_services;      /* of them, _osmose._tcp ones (max_peers of them) */
        size_t n_listed;                /* of them resolved (listed), kept for cheap stats */

        dpeer **peers;
        size_t n_peers, peers_alloc;

        osm_dcat_stats counters;        /* only the dropped/invalid counters are kept here */
};

const char *osm_dcat_event_name(osm_dcat_kind kind, osm_dcat_event ev) {
        switch (ev) {
        case OSM_DCAT_ADDED:   return "added";
        case OSM_DCAT_CHANGED: return "changed";
        case OSM_DCAT_REMOVED: return kind == OSM_DCAT_PEER ? "gone" : "removed";
        }
        return "changed";
}

/* --- text from the LAN ------------------------------------------------------------- */

json_t *osm_json_text(const char *s) {
        static const char repl[] = "\xef\xbf\xbd";   /* U+FFFD */
        size_t len = strlen(s), o = 0;
        _cleanup_free_ char *buf = NULL;

        if (osm_txt_is_text((const uint8_t *) s, len))
                return json_string(s);

        buf = malloc(len * 3 + 1);
        if (!buf)
                return NULL;
        for (size_t i = 0; i < len;) {
                size_t n = 1;
                /* find the longest valid text prefix of one character */
                while (n <= 4 && i + n <= len && !osm_txt_is_text((const uint8_t *) s + i, n))
                        n++;
                if (n <= 4 && i + n <= len) {
                        memcpy(buf + o, s + i, n);
                        o += n;
                        i += n;
                } else {
                        memcpy(buf + o, repl, 3);
                        o += 3;
                        i++;
                }
        }
        return json_stringn(buf, o);
}

/* --- services ---------------------------------------------------------------------- */

static uint32_t hash_key(const char *name, const char *type, const char *domain) {
        const char *parts[3] = { name, type, domain };
        uint32_t h = 2166136261u;   /* FNV-1a, parts separated by their NUL */

        for (size_t i = 0; i < 3; i++) {
                for (const char *c = parts[i]; *c; c++)
                        h = (h ^ (uint8_t) *c) * 16777619u;
                h = (h ^ 0) * 16777619u;
        }
        return h;
}

static dsvc **svc_slot(osm_dcat *c, const char *name, const char *type, const char *domain,
                       uint32_t h) {
        dsvc **sp = &c->buckets[h & (c->n_buckets - 1)];

        for (; *sp; sp = &(*sp)->hnext) {
                dsvc *s = *sp;
                if (s->hash == h && strcmp(s->name, name) == 0 && strcmp(s->type, type) == 0 &&
                    strcmp(s->domain, domain) == 0)
                        break;
        }
        return sp;
}

static void svc_free(dsvc *s) {
        if (!s)
                return;
        free(s->name);
        free(s->type);
        free(s->domain);
        free(s->host);
        json_decref(s->txt);
        free(s);
}

static bool str_ok(const char *s) {
        return s && *s && strnlen(s, MAX_NAME + 1) <= MAX_NAME;
}

static json_t *svc_addresses(const dsvc *s) {
        json_t *a = json_array();

        if (!a)
                return NULL;
        for (size_t i = 0; i < s->n_pres; i++) {
                const char *addr = s->pres[i].address;
                bool dup = false;
                if (!*addr)
                        continue;
                for (size_t j = 0; j < i; j++)
                        dup = dup || strcmp(s->pres[j].address, addr) == 0;
                if (!dup && json_array_append_new(a, json_string(addr)) < 0) {
                        json_decref(a);
                        return NULL;
                }
        }
        return a;
}

static json_t *svc_json(const dsvc *s) {
        json_t *o = json_object();

        if (!o)
                return NULL;
        if (json_object_set_new(o, "name", osm_json_text(s->name)) < 0 ||
            json_object_set_new(o, "type", osm_json_text(s->type)) < 0 ||
            json_object_set_new(o, "domain", osm_json_text(s->domain)) < 0 ||
            json_object_set_new(o, "host", osm_json_text(s->host ? s->host : "")) < 0 ||
            json_object_set_new(o, "addresses", svc_addresses(s)) < 0 ||
            json_object_set_new(o, "port", json_integer(s->port)) < 0 ||
            json_object_set_new(o, "txt", s->txt ? json_incref(s->txt) : json_object()) < 0 ||
            json_object_set_new(o, "txt_issues", osm_txt_issues_json(s->txt_issues)) < 0 ||
            json_object_set_new(o, "local", json_boolean(s->flags & OSM_DCAT_LOCAL)) < 0 ||
            json_object_set_new(o, "first_seen", json_integer(s->first_seen)) < 0 ||
            json_object_set_new(o, "last_seen", json_integer(s->last_seen)) < 0) {
                json_decref(o);
                return NULL;
        }
        return o;
}

static void emit(osm_dcat *c, osm_dcat_kind kind, osm_dcat_event ev, json_t *obj) {
        if (c->notify && obj)
                c->notify(kind, ev, obj, c->userdata);
}

/* Did an entry change, other than its last_seen (which moves with every announcement)? */
static bool changed(json_t *before, json_t *after) {
        bool r;

        if (!before || !after)
                return false;
        json_t *a = json_deep_copy(after);
        if (!a)
                return false;
        json_object_del(before, "last_seen");
        json_object_del(a, "last_seen");
        r = !json_equal(before, a);
        json_decref(a);
        return r;
}

static void peers_service_lost(osm_dcat *c, const dsvc *s);
static void peers_service_resolved(osm_dcat *c, const dsvc *s);

static bool is_peer_service(const dsvc *s) {
        return strcmp(s->type, OSM_OSMOSE_SERVICE_TYPE) == 0;
}

int osm_dcat_seen(osm_dcat *c, int iface, int proto, const char *name, const char *type,
                  const char *domain, unsigned flags) {
        uint32_t h;
        dsvc **sp, *s;

        if (!str_ok(name) || !str_ok(type) || !str_ok(domain))
                return -EINVAL;
        h = hash_key(name, type, domain);
        sp = svc_slot(c, name, type, domain, h);
        s = *sp;
        if (!s) {
                /* Gateways' records have room of their own (max_peers), apart from the
                 * other services: a flood of services cannot hide a gateway, nor one that
                 * claims this space's id. */
                bool gateway = strcmp(type, OSM_OSMOSE_SERVICE_TYPE) == 0;
                if (gateway ? c->n_gateway_services >= c->limits.max_peers
                            : c->n_services - c->n_gateway_services >= c->limits.max_services) {
                        c->counters.dropped_services++;
                        return -ENOSPC;
                }
                s = calloc(1, sizeof(*s));
                if (!s)
                        return -ENOMEM;
                s->hash = h;
                s->name = strdup(name);
                s->type = strdup(type);
                s->domain = strdup(domain);
                if (!s->name || !s->type || !s->domain) {
                        svc_free(s);
                        return -ENOMEM;
                }
                s->first_seen = s->last_seen = osm_now_real_us();
                *sp = s;
                c->n_services++;
                c->n_gateway_services += gateway;
        }
        /* OUR_OWN/LOCAL only come with new items; keep what we learnt */
        s->flags |= flags;
        for (size_t i = 0; i < s->n_pres; i++)
                if (s->pres[i].iface == iface && s->pres[i].proto == proto)
                        return 0;
        if (s->n_pres == OSM_DCAT_MAX_PRESENCES)
                return 0;   /* enough ways to reach it: do not resolve it once more */
        s->pres[s->n_pres++] = (presence) { .iface = iface, .proto = proto };
        return 1;
}

static presence *find_presence(dsvc *s, int iface, int proto) {
        for (size_t i = 0; i < s->n_pres; i++)
                if (s->pres[i].iface == iface && s->pres[i].proto == proto)
                        return &s->pres[i];
        return NULL;
}

int osm_dcat_resolved(osm_dcat *c, int iface, int proto, const char *name, const char *type,
                      const char *domain, const osm_dcat_resolution *res) {
        _cleanup_json_ json_t *before = NULL, *after = NULL, *txt = NULL;
        dsvc *s;
        presence *p;
        unsigned issues = 0;
        char *host;
        bool was_listed;
        int r;

        if (!str_ok(name) || !str_ok(type) || !str_ok(domain))
                return -ENOENT;
        s = *svc_slot(c, name, type, domain, hash_key(name, type, domain));
        if (!s || !(p = find_presence(s, iface, proto)))
                return -ENOENT;

        r = osm_txt_to_json(res->txt, res->n_txt, &txt, &issues);
        if (r < 0)
                return r;
        host = strdup(str_ok(res->host) ? res->host : "");
        if (!host)
                return -ENOMEM;

        was_listed = s->resolved;
        if (was_listed)
                before = svc_json(s);
        free(s->host);
        s->host = host;
        s->port = res->port;
        json_decref(s->txt);
        s->txt = steal_pointer(&txt);
        s->txt_issues = issues;
        snprintf(p->address, sizeof(p->address), "%s", res->address ? res->address : "");
        c->n_listed += !was_listed;
        s->resolved = true;
        s->last_seen = osm_now_real_us();

        after = svc_json(s);
        if (!was_listed)
                emit(c, OSM_DCAT_SERVICE, OSM_DCAT_ADDED, after);
        else if (changed(before, after))
                emit(c, OSM_DCAT_SERVICE, OSM_DCAT_CHANGED, after);
        if (is_peer_service(s))
                peers_service_resolved(c, s);
        return 0;
}

static void svc_remove(osm_dcat *c, dsvc **sp) {
        dsvc *s = *sp;

        if (s->resolved) {
                _cleanup_json_ json_t *o = svc_json(s);
                emit(c, OSM_DCAT_SERVICE, OSM_DCAT_REMOVED, o);
                c->n_listed--;
        }
        if (is_peer_service(s))
                peers_service_lost(c, s);
        *sp = s->hnext;
        c->n_services--;
        c->n_gateway_services -= is_peer_service(s);
        svc_free(s);
}

void osm_dcat_lost(osm_dcat *c, int iface, int proto, const char *name, const char *type,
                   const char *domain) {
        dsvc **sp, *s;
        presence *p;

        if (!str_ok(name) || !str_ok(type) || !str_ok(domain))
                return;
        sp = svc_slot(c, name, type, domain, hash_key(name, type, domain));
        s = *sp;
        if (!s || !(p = find_presence(s, iface, proto)))
                return;
        *p = s->pres[--s->n_pres];
        s->last_seen = osm_now_real_us();
        if (s->n_pres == 0) {
                svc_remove(c, sp);
                return;
        }
        if (s->resolved) {
                _cleanup_json_ json_t *o = svc_json(s);
                emit(c, OSM_DCAT_SERVICE, OSM_DCAT_CHANGED, o);
                if (is_peer_service(s))
                        peers_service_resolved(c, s);   /* its addresses changed */
        }
}

void osm_dcat_mark_stale(osm_dcat *c) {
        for (size_t b = 0; b < c->n_buckets; b++)
                for (dsvc *s = c->buckets[b]; s; s = s->hnext)
                        s->n_pres = 0;
}

void osm_dcat_sweep(osm_dcat *c) {
        for (size_t b = 0; b < c->n_buckets; b++) {
                dsvc **sp = &c->buckets[b];
                while (*sp) {
                        if ((*sp)->n_pres == 0)
                                svc_remove(c, sp);
                        else
                                sp = &(*sp)->hnext;
                }
        }
}

static int cmp_services(const void *a, const void *b) {
        const dsvc *x = *(const dsvc *const *) a, *y = *(const dsvc *const *) b;
        int r = strcmp(x->type, y->type);

        if (r == 0)
                r = strcmp(x->name, y->name);
        if (r == 0)
                r = strcmp(x->domain, y->domain);
        return r;
}

json_t *osm_dcat_services(osm_dcat *c, const char *type) {
        _cleanup_free_ dsvc **v = NULL;
        json_t *a;
        size_t n = 0;

        v = calloc(c->n_services + 1, sizeof(*v));
        a = json_array();
        if (!v || !a) {
                json_decref(a);
                return NULL;
        }
        for (size_t b = 0; b < c->n_buckets; b++)
                for (dsvc *s = c->buckets[b]; s; s = s->hnext)
                        if (s->resolved && (!type || strcmp(s->type, type) == 0))
                                v[n++] = s;
        qsort(v, n, sizeof(*v), cmp_services);
        for (size_t i = 0; i < n; i++)
                if (json_array_append_new(a, svc_json(v[i])) < 0) {
                        json_decref(a);
                        return NULL;
                }
        return a;
}

/* --- peers ------------------------------------------------------------------------- */

static json_t *peer_json(const osm_dcat *c, const dpeer *p) {
        json_t *o = json_object();
        const char *reason = NULL;

        if (!o)
                return NULL;
        if (strcmp(p->id, c->own_id) == 0)
                reason = "claims this gateway's own id";
        else if (p->conflict)
                reason = "another gateway claims the same id";
        if (json_object_set_new(o, "id", json_string(p->id)) < 0 ||
            json_object_set_new(o, "instance", osm_json_text(p->instance)) < 0 ||
            json_object_set_new(o, "name", osm_json_text(p->name)) < 0 ||
            json_object_set_new(o, "host", osm_json_text(p->host ? p->host : "")) < 0 ||
            json_object_set_new(o, "addresses", p->addresses ? json_incref(p->addresses) : json_array()) < 0 ||
            json_object_set_new(o, "port", json_integer(p->port)) < 0 ||
            json_object_set_new(o, "version", json_integer(p->version)) < 0 ||
            json_object_set_new(o, "first_seen", json_integer(p->first_seen)) < 0 ||
            json_object_set_new(o, "last_seen", json_integer(p->last_seen)) < 0 ||
            json_object_set_new(o, "state", json_string(p->present ? "present" : "gone")) < 0 ||
            json_object_set_new(o, "trusted", json_boolean(p->trusted)) < 0 ||
            json_object_set_new(o, "conflict", json_boolean(p->conflict)) < 0 ||
            (reason && json_object_set_new(o, "conflict_reason", json_string(reason)) < 0)) {
                json_decref(o);
                return NULL;
        }
        return o;
}

static void peer_emit(osm_dcat *c, const dpeer *p, osm_dcat_event ev) {
        _cleanup_json_ json_t *o = NULL;

        if (!c->notify)
                return;
        o = peer_json(c, p);
        emit(c, OSM_DCAT_PEER, ev, o);
}

static void peer_free(dpeer *p) {
        if (!p)
                return;
        free(p->instance);
        free(p->host);
        json_decref(p->addresses);
        free(p);
}

static dpeer *peer_find(osm_dcat *c, const char *id, const char *instance) {
        for (size_t i = 0; i < c->n_peers; i++)
                if (strcmp(c->peers[i]->id, id) == 0 && strcmp(c->peers[i]->instance, instance) == 0)
                        return c->peers[i];
        return NULL;
}

/* A record conflicts when it claims our id, or another record claims the same id: two
 * gateways announcing one id are never merged into one peer. Emits "changed" for
 * records whose flag flips, except skip (which the caller reports itself). */
static void peers_update_conflicts(osm_dcat *c, const char *id, const dpeer *skip) {
        size_t n = 0;

        for (size_t i = 0; i < c->n_peers; i++)
                n += strcmp(c->peers[i]->id, id) == 0;
        for (size_t i = 0; i < c->n_peers; i++) {
                dpeer *p = c->peers[i];
                bool conflict;
                if (strcmp(p->id, id) != 0)
                        continue;
                conflict = n > 1 || strcmp(id, c->own_id) == 0;
                if (conflict != p->conflict) {
                        p->conflict = conflict;
                        if (p != skip)
                                peer_emit(c, p, OSM_DCAT_CHANGED);
                }
        }
}

static void peer_remove_at(osm_dcat *c, size_t i) {
        dpeer *p = c->peers[i];
        char id[OSM_SPACE_ID_LEN + 1];

        memcpy(id, p->id, sizeof(id));
        c->peers[i] = c->peers[--c->n_peers];
        peer_free(p);
        peers_update_conflicts(c, id, NULL);
}

/* Make room for one more record: forget the gone, untrusted record seen longest ago. */
static bool peers_make_room(osm_dcat *c) {
        size_t victim = SIZE_MAX;

        if (c->n_peers < c->limits.max_peers)
                return true;
        for (size_t i = 0; i < c->n_peers; i++) {
                const dpeer *p = c->peers[i];
                if (p->present || p->trusted)
                        continue;
                if (victim == SIZE_MAX || p->last_seen < c->peers[victim]->last_seen)
                        victim = i;
        }
        if (victim == SIZE_MAX)
                return false;
        peer_remove_at(c, victim);
        return true;
}

static dpeer *peer_add(osm_dcat *c, const char *id, const char *instance) {
        dpeer *p;

        if (!peers_make_room(c)) {
                c->counters.dropped_peers++;
                return NULL;
        }
        if (c->n_peers == c->peers_alloc) {
                size_t na = c->peers_alloc ? c->peers_alloc * 2 : 8;
                dpeer **np = realloc(c->peers, na * sizeof(*np));
                if (!np)
                        return NULL;
                c->peers = np;
                c->peers_alloc = na;
        }
        p = calloc(1, sizeof(*p));
        if (!p)
                return NULL;
        p->instance = strdup(instance);
        if (!p->instance) {
                free(p);
                return NULL;
        }
        memcpy(p->id, id, OSM_SPACE_ID_LEN + 1);
        c->peers[c->n_peers++] = p;
        return p;
}

static void peer_set_gone(osm_dcat *c, dpeer *p) {
        if (!p->present)
                return;
        p->present = false;
        p->last_seen = osm_now_real_us();
        peer_emit(c, p, OSM_DCAT_REMOVED);
}

static void peers_service_lost(osm_dcat *c, const dsvc *s) {
        for (size_t i = 0; i < c->n_peers; i++)
                if (strcmp(c->peers[i]->instance, s->name) == 0)
                        peer_set_gone(c, c->peers[i]);
}

static void peers_service_resolved(osm_dcat *c, const dsvc *s) {
        osm_peer_txt txt;
        dpeer *p;
        bool is_new = false;
        _cleanup_json_ json_t *before = NULL, *after = NULL;

        if (s->flags & OSM_DCAT_OWN)
                return;   /* our own announcement */

        if (osm_peer_txt_parse(s->txt, &txt, NULL) < 0) {
                c->counters.invalid_peer_records++;
                peers_service_lost(c, s);   /* it no longer announces a valid peer */
                return;
        }

        /* The instance moved to another id (e.g. a new identity): its old record goes. */
        for (size_t i = 0; i < c->n_peers; i++) {
                dpeer *q = c->peers[i];
                if (q->present && strcmp(q->instance, s->name) == 0 && strcmp(q->id, txt.id) != 0)
                        peer_set_gone(c, q);
        }

        p = peer_find(c, txt.id, s->name);
        if (!p) {
                p = peer_add(c, txt.id, s->name);
                if (!p)
                        return;
                p->first_seen = osm_now_real_us();
                is_new = true;
        } else
                before = peer_json(c, p);

        snprintf(p->name, sizeof(p->name), "%s", *txt.name ? txt.name : "");
        if (!*p->name)
                osm_utf8_truncate(p->name, sizeof(p->name), s->name);
        free(p->host);
        p->host = s->host ? strdup(s->host) : NULL;
        json_decref(p->addresses);
        p->addresses = svc_addresses(s);
        p->port = s->port;
        p->version = txt.version;
        p->last_seen = osm_now_real_us();
        p->present = true;

        peers_update_conflicts(c, p->id, p);
        if (is_new) {
                peer_emit(c, p, OSM_DCAT_ADDED);
                return;
        }
        after = peer_json(c, p);
        if (changed(before, after))
                emit(c, OSM_DCAT_PEER, OSM_DCAT_CHANGED, after);
}

static int cmp_peers(const void *a, const void *b) {
        const dpeer *x = *(const dpeer *const *) a, *y = *(const dpeer *const *) b;
        int r = strcmp(x->name, y->name);

        if (r == 0)
                r = strcmp(x->id, y->id);
        if (r == 0)
                r = strcmp(x->instance, y->instance);
        return r;
}

json_t *osm_dcat_peers(osm_dcat *c) {
        _cleanup_free_ dpeer **v = NULL;
        json_t *a;

        v = calloc(c->n_peers + 1, sizeof(*v));
        a = json_array();
        if (!v || !a) {
                json_decref(a);
                return NULL;
        }
        if (c->n_peers)   /* c->peers is NULL until the first record */
                memcpy(v, c->peers, c->n_peers * sizeof(*v));
        qsort(v, c->n_peers, sizeof(*v), cmp_peers);
        for (size_t i = 0; i < c->n_peers; i++)
                if (json_array_append_new(a, peer_json(c, v[i])) < 0) {
                        json_decref(a);
                        return NULL;
                }
        return a;
}

int osm_dcat_trust(osm_dcat *c, const char *id, bool trusted, json_t **instances) {
        size_t n = 0;

        if (instances)
                *instances = NULL;
        for (size_t i = 0; i < c->n_peers; i++)
                n += strcmp(c->peers[i]->id, id) == 0;
        if (n == 0)
                return -ENOENT;
        if (trusted && (n > 1 || strcmp(id, c->own_id) == 0)) {
                if (instances && (*instances = json_array()))
                        for (size_t i = 0; i < c->n_peers; i++)
                                if (strcmp(c->peers[i]->id, id) == 0)
                                        json_array_append_new(*instances, osm_json_text(c->peers[i]->instance));
                return -EADDRINUSE;
        }
        for (size_t i = 0; i < c->n_peers; i++) {
                dpeer *p = c->peers[i];
                if (strcmp(p->id, id) != 0 || p->trusted == trusted)
                        continue;
                p->trusted = trusted;
                peer_emit(c, p, OSM_DCAT_CHANGED);
        }
        return 0;
}

json_t *osm_dcat_save(osm_dcat *c) {
        _cleanup_json_ json_t *doc = NULL, *a = NULL;

        a = json_array();
        if (!a)
                return NULL;
        for (size_t i = 0; i < c->n_peers; i++) {
                const dpeer *p = c->peers[i];
                json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:I, s:b}",
                                      "id", p->id, "instance", p->instance, "name", p->name,
                                      "first_seen", (json_int_t) p->first_seen,
                                      "last_seen", (json_int_t) p->last_seen,
                                      "trusted", p->trusted);
                if (json_array_append_new(a, o) < 0)
                        return NULL;
        }
        doc = json_pack("{s:i, s:O}", "version", 1, "peers", a);
        return steal_pointer(&doc);
}

int osm_dcat_load(osm_dcat *c, json_t *doc, size_t *skipped, osm_error *err) {
        json_t *a, *o;
        size_t i;

        *skipped = 0;
        if (!json_is_object(doc) || json_integer_value(json_object_get(doc, "version")) != 1)
                return osm_error_set(err, -EINVAL, 0, "not a version 1 peer list");
        a = json_object_get(doc, "peers");
        if (!json_is_array(a))
                return osm_error_set(err, -EINVAL, 0, "'peers' is not an array");
        json_array_foreach(a, i, o) {
                const char *id = NULL, *instance = NULL, *name = NULL;
                json_int_t first = 0, last = 0;
                int trusted = 0;
                dpeer *p;

                if (json_unpack(o, "{s:s, s:s, s:s, s:I, s:I, s:b}", "id", &id, "instance", &instance,
                                "name", &name, "first_seen", &first, "last_seen", &last,
                                "trusted", &trusted) < 0 ||
                    !osm_space_id_valid(id) ||
                    !str_ok(instance) || strlen(name) > OSM_PEER_NAME_MAX ||
                    peer_find(c, id, instance)) {
                        (*skipped)++;
                        continue;
                }
                p = peer_add(c, id, instance);
                if (!p) {
                        (*skipped)++;
                        continue;
                }
                memcpy(p->name, name, strlen(name) + 1);
                p->first_seen = first;
                p->last_seen = last;
                p->trusted = trusted;
                p->addresses = json_array();
                peers_update_conflicts(c, id, NULL);
        }
        return 0;
}

/* --- the catalog ------------------------------------------------------------------- */

static size_t buckets_for(size_t max_services) {
        size_t n = 64;

        while (n < max_services && n < (1u << 16))
                n *= 2;
        return n;
}

int osm_dcat_new(const osm_dcat_limits *limits, const char *own_id,
                 osm_dcat_notify_fn notify, void *userdata, osm_dcat **out) {
        osm_dcat *c = calloc(1, sizeof(*c));

        if (!c)
                return -ENOMEM;
        c->limits = *limits;
        snprintf(c->own_id, sizeof(c->own_id), "%s", own_id ? own_id : "");
        c->notify = notify;
        c->userdata = userdata;
        c->n_buckets = buckets_for(limits->max_services);
        c->buckets = calloc(c->n_buckets, sizeof(*c->buckets));
        if (!c->buckets) {
                free(c);
                return -ENOMEM;
        }
        *out = c;
        return 0;
}

void osm_dcat_set_limits(osm_dcat *c, const osm_dcat_limits *limits) {
        /* Lower caps apply to what comes next; nothing present is thrown away. */
        c->limits = *limits;
}

osm_dcat *osm_dcat_free(osm_dcat *c) {
        if (!c)
                return NULL;
        for (size_t b = 0; b < c->n_buckets; b++)
                while (c->buckets[b]) {
                        dsvc *s = c->buckets[b];
                        c->buckets[b] = s->hnext;
                        svc_free(s);
                }
        free(c->buckets);
        for (size_t i = 0; i < c->n_peers; i++)
                peer_free(c->peers[i]);
        free(c->peers);
        free(c);
        return NULL;
}

void osm_dcat_get_stats(osm_dcat *c, osm_dcat_stats *st) {
        *st = c->counters;
        st->services = c->n_services;
        st->gateway_services = c->n_gateway_services;
        st->services_listed = c->n_listed;
        st->peers = c->n_peers;
        st->peers_present = st->peers_conflicting = 0;
        st->own_id_claimed = false;
        for (size_t i = 0; i < c->n_peers; i++) {
                const dpeer *p = c->peers[i];
                st->peers_present += p->present;
                st->peers_conflicting += p->conflict;
                if (p->present && strcmp(p->id, c->own_id) == 0)
                        st->own_id_claimed = true;
        }
}
