/* discovery.c: the discovery subsystem: avahi-client on the libuv loop publishing this
 * space as _osmose._tcp, browsing the room's service types, resolving what it finds into
 * the catalog, and keeping the peer list (with the operator's trust) on disk. */
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

#define RESOLVE_INFLIGHT        16      /* resolvers at a time (each is an avahi-daemon object) */
#define RETRY_MAX_MS            10000   /* back-off ceiling for re-creating the client */
#define SWEEP_DELAY_MS          4000    /* after a reconnect, what was not seen again goes */
#define SAVE_DELAY_MS           2000    /* peer list writes are batched this long */
#define MAX_BROWSED_TYPES       128     /* types found on the LAN that we browse */
#define RATELIMIT_WINDOW_US     (10 * 1000000ull)
#define RATELIMIT_BURST         5

/* --- small helpers ----------------------------------------------------------------- */

/* Log at most RATELIMIT_BURST messages per window for one kind of LAN noise. */
static bool ratelimit_ok(osm_ratelimit *rl) {
        uint64_t now = osm_now_mono_us();

        if (now - rl->window_start_us > RATELIMIT_WINDOW_US) {
                if (rl->suppressed)
                        log_warning("discovery: %u similar messages suppressed", rl->suppressed);
                rl->window_start_us = now;
                rl->count = rl->suppressed = 0;
        }
        if (rl->count < RATELIMIT_BURST) {
                rl->count++;
                return true;
        }
        rl->suppressed++;
        return false;
}

static bool client_running(const osm_discovery *disc) {
        return disc->client && disc->state == AVAHI_CLIENT_S_RUNNING;
}

bool osm_discovery_available(const osm_discovery *disc) {
        return disc && disc->enabled;
}

static const char *avahi_state_name(const osm_discovery *disc) {
        if (!disc->enabled)
                return "off";
        if (!disc->client)
                return "unavailable";
        switch (disc->state) {
        case AVAHI_CLIENT_S_RUNNING:     return "running";
        case AVAHI_CLIENT_S_REGISTERING: return "registering";
        case AVAHI_CLIENT_S_COLLISION:   return "host-name-collision";
        case AVAHI_CLIENT_CONNECTING:    return "waiting";
        case AVAHI_CLIENT_FAILURE:       return "failed";
        }
        return "unknown";
}

/* The port our record announces: the federation port while federation is on and listens
 * beyond loopback, else 0. Port 0 (as Apple's TXT-only _device-info._tcp uses) names no
 * connectable service at all, while a "discard" port 9 would still invite connections,
 * and DESIGN §10 wants nothing in the record to invite one while federation is off. */
static uint16_t federation_port(const osm_config *cfg) {
        const char *listen = cfg->federation_listen, *colon;
        uint64_t port;

        if (!cfg->federation_enabled || !listen || !(colon = strrchr(listen, ':')))
                return 0;
        if (strncmp(listen, "127.", 4) == 0 || strncmp(listen, "[::1]", 5) == 0 ||
            strncmp(listen, "localhost:", 10) == 0)
                return 0;
        if (osm_parse_u64(colon + 1, &port) < 0 || port == 0 || port > 65535)
                return 0;
        return (uint16_t) port;
}

/* --- subscribers ------------------------------------------------------------------- */

static void schedule_save(osm_discovery *disc);

static void subs_sweep(osm_discovery *disc) {
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

static void catalog_notify(osm_dcat_kind kind, osm_dcat_event ev, json_t *obj, void *userdata) {
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
                subs_sweep(disc);
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
                subs_sweep(s->disc);
        return NULL;
}

json_t *osm_discovery_services(osm_discovery *disc, const char *type) {
        if (!osm_discovery_available(disc))
                return NULL;
        return osm_dcat_services(disc->cat, type);
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
static void load_peers(osm_discovery *disc) {
        _cleanup_free_ char *text = NULL;
        _cleanup_json_ json_t *doc = NULL;
        json_error_t jerr;
        const char *why = NULL;
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
                why = jerr.text;
        else if (osm_dcat_load(disc->cat, doc, &skipped, &why) == 0)
                why = NULL;
        if (why) {
                char aside[4096];
                snprintf(aside, sizeof(aside), "%s.bad", disc->state_path);
                log_error("discovery: %s is not a peer list (%s); moved to %s, starting with none",
                          disc->state_path, why, aside);
                if (rename(disc->state_path, aside) < 0)
                        log_error("discovery: cannot move %s aside: %s", disc->state_path, strerror(errno));
                return;
        }
        if (skipped)
                log_warning("discovery: %zu invalid entries in %s ignored", skipped, disc->state_path);
}

/* --- resolving --------------------------------------------------------------------- */

static void job_unlink(osm_resolve_job **head, osm_resolve_job **tail, osm_resolve_job *j) {
        if (j->prev)
                j->prev->next = j->next;
        else
                *head = j->next;
        if (j->next)
                j->next->prev = j->prev;
        else if (tail)
                *tail = j->prev;
        j->prev = j->next = NULL;
}

static void job_free(osm_resolve_job *j) {
        free(j->name);
        free(j->type);
        free(j->domain);
        free(j);
}

static void jobs_start(osm_discovery *disc);

static void resolve_cb(AvahiServiceResolver *r, AvahiIfIndex iface, AvahiProtocol proto,
                       AvahiResolverEvent event, const char *name, const char *type,
                       const char *domain, const char *host, const AvahiAddress *addr,
                       uint16_t port, AvahiStringList *txt, AvahiLookupResultFlags flags,
                       void *userdata) {
        osm_resolve_job *j = userdata;
        osm_discovery *disc = j->disc;

        if (event == AVAHI_RESOLVER_FOUND) {
                char a[AVAHI_ADDRESS_STR_MAX] = "";
                size_t n = (size_t) avahi_string_list_length(txt), i = 0;
                _cleanup_free_ osm_txt_item *items = NULL;
                osm_dcat_resolution res;
                int rr;

                if (addr)
                        avahi_address_snprint(a, sizeof(a), addr);
                /* The list is in wire order (avahi-daemon keeps it reversed, and
                 * avahi-client reverses it back by prepending), which matters because
                 * only a key's first occurrence counts (checked against the packets). */
                items = calloc(n ? n : 1, sizeof(*items));
                if (items)
                        for (AvahiStringList *l = txt; l && i < n; l = avahi_string_list_get_next(l)) {
                                items[i].data = avahi_string_list_get_text(l);
                                items[i].len = avahi_string_list_get_size(l);
                                i++;
                        }
                res = (osm_dcat_resolution) {
                        .host = host, .address = addr ? a : NULL, .port = port,
                        .txt = items, .n_txt = items ? n : 0,
                };
                rr = osm_dcat_resolved(disc->cat, j->iface, j->proto, j->name, j->type, j->domain, &res);
                if (rr < 0 && rr != -ENOENT)
                        log_warning("discovery: cannot record '%s' (%s): %s", j->name, j->type, strerror(-rr));
        } else
                log_debug("discovery: resolving '%s' (%s) failed: %s", j->name, j->type,
                          avahi_strerror(avahi_client_errno(avahi_service_resolver_get_client(r))));

        job_unlink(&disc->inflight, NULL, j);
        disc->n_inflight--;
        avahi_service_resolver_free(r);
        job_free(j);
        jobs_start(disc);
}

static void jobs_start(osm_discovery *disc) {
        while (client_running(disc) && disc->n_inflight < RESOLVE_INFLIGHT && disc->queue_head) {
                osm_resolve_job *j = disc->queue_head;

                job_unlink(&disc->queue_head, &disc->queue_tail, j);
                disc->n_queued--;
                j->resolver = avahi_service_resolver_new(disc->client, j->iface, j->proto, j->name,
                                                         j->type, j->domain, j->proto, 0,
                                                         resolve_cb, j);
                if (!j->resolver) {
                        if (ratelimit_ok(&disc->rl_cap))
                                log_warning("discovery: cannot resolve '%s' (%s): %s", j->name, j->type,
                                            avahi_strerror(avahi_client_errno(disc->client)));
                        job_free(j);
                        continue;
                }
                j->next = disc->inflight;
                if (disc->inflight)
                        disc->inflight->prev = j;
                disc->inflight = j;
                disc->n_inflight++;
        }
}

static void job_queue(osm_discovery *disc, int iface, int proto, const char *name,
                      const char *type, const char *domain) {
        osm_resolve_job *j;

        if (disc->n_queued + disc->n_inflight >= disc->d->cfg.discovery_max_services) {
                disc->dropped_resolves++;
                return;
        }
        j = calloc(1, sizeof(*j));
        if (!j)
                return;
        j->disc = disc;
        j->iface = iface;
        j->proto = proto;
        j->name = strdup(name);
        j->type = strdup(type);
        j->domain = strdup(domain);
        if (!j->name || !j->type || !j->domain) {
                job_free(j);
                return;
        }
        j->prev = disc->queue_tail;
        if (disc->queue_tail)
                disc->queue_tail->next = j;
        else
                disc->queue_head = j;
        disc->queue_tail = j;
        disc->n_queued++;
        jobs_start(disc);
}

static bool job_matches(const osm_resolve_job *j, int iface, int proto, const char *name,
                        const char *type, const char *domain) {
        return j->iface == iface && j->proto == proto && strcmp(j->name, name) == 0 &&
               strcmp(j->type, type) == 0 && strcmp(j->domain, domain) == 0;
}

/* The presence went away: drop its resolution, queued or running. */
static void job_cancel(osm_discovery *disc, int iface, int proto, const char *name,
                       const char *type, const char *domain) {
        for (osm_resolve_job *j = disc->queue_head; j; j = j->next)
                if (job_matches(j, iface, proto, name, type, domain)) {
                        job_unlink(&disc->queue_head, &disc->queue_tail, j);
                        disc->n_queued--;
                        job_free(j);
                        return;
                }
        for (osm_resolve_job *j = disc->inflight; j; j = j->next)
                if (job_matches(j, iface, proto, name, type, domain)) {
                        job_unlink(&disc->inflight, NULL, j);
                        disc->n_inflight--;
                        avahi_service_resolver_free(j->resolver);
                        job_free(j);
                        jobs_start(disc);
                        return;
                }
}

/* Forget every job. free_resolvers: false when avahi_client_free() frees them. */
static void jobs_clear(osm_discovery *disc, bool free_resolvers) {
        while (disc->queue_head) {
                osm_resolve_job *j = disc->queue_head;
                job_unlink(&disc->queue_head, &disc->queue_tail, j);
                job_free(j);
        }
        while (disc->inflight) {
                osm_resolve_job *j = disc->inflight;
                job_unlink(&disc->inflight, NULL, j);
                if (free_resolvers && j->resolver)
                        avahi_service_resolver_free(j->resolver);
                job_free(j);
        }
        disc->n_queued = disc->n_inflight = 0;
}

/* --- browsing ---------------------------------------------------------------------- */

static void browse_cb(AvahiServiceBrowser *b, AvahiIfIndex iface, AvahiProtocol proto,
                      AvahiBrowserEvent event, const char *name, const char *type,
                      const char *domain, AvahiLookupResultFlags flags, void *userdata) {
        osm_browser *br = userdata;
        osm_discovery *disc = br->disc;
        unsigned f = 0;
        int r;

        switch (event) {
        case AVAHI_BROWSER_NEW:
                if (flags & AVAHI_LOOKUP_RESULT_LOCAL)
                        f |= OSM_DCAT_LOCAL;
                if (flags & AVAHI_LOOKUP_RESULT_OUR_OWN)
                        f |= OSM_DCAT_OWN;
                r = osm_dcat_seen(disc->cat, iface, proto, name, type, domain, f);
                if (r == 1)
                        job_queue(disc, iface, proto, name, type, domain);
                else if (r == -ENOSPC && ratelimit_ok(&disc->rl_cap))
                        log_warning("discovery: service catalog full (%" PRIu64 " entries): ignoring '%s' (%s)",
                                    disc->d->cfg.discovery_max_services, name, type);
                break;
        case AVAHI_BROWSER_REMOVE:
                job_cancel(disc, iface, proto, name, type, domain);
                osm_dcat_lost(disc->cat, iface, proto, name, type, domain);
                break;
        case AVAHI_BROWSER_FAILURE:
                log_warning("discovery: browsing %s failed: %s", br->type,
                            avahi_strerror(avahi_client_errno(avahi_service_browser_get_client(b))));
                avahi_service_browser_free(b);
                br->browser = NULL;
                break;
        case AVAHI_BROWSER_ALL_FOR_NOW:
        case AVAHI_BROWSER_CACHE_EXHAUSTED:
                break;
        }
}

static void browser_start(osm_discovery *disc, osm_browser *br) {
        if (br->browser || !client_running(disc))
                return;
        br->browser = avahi_service_browser_new(disc->client, AVAHI_IF_UNSPEC, AVAHI_PROTO_UNSPEC,
                                                br->type, NULL, 0, browse_cb, br);
        if (!br->browser)
                log_warning("discovery: cannot browse %s: %s", br->type,
                            avahi_strerror(avahi_client_errno(disc->client)));
}

/* Browse type (once). Types found on the LAN are capped; configured ones are not. */
static void browser_ensure(osm_discovery *disc, const char *type, bool configured) {
        osm_browser *br;
        size_t found = 0;

        for (br = disc->browsers; br; br = br->next) {
                if (strcmp(br->type, type) == 0) {
                        br->configured |= configured;
                        browser_start(disc, br);
                        return;
                }
                found += !br->configured;
        }
        if (!configured && found >= MAX_BROWSED_TYPES) {
                disc->dropped_types++;
                if (ratelimit_ok(&disc->rl_cap))
                        log_warning("discovery: already browsing %d service types; ignoring %s",
                                    MAX_BROWSED_TYPES, type);
                return;
        }
        br = calloc(1, sizeof(*br));
        if (!br || !(br->type = strdup(type))) {
                free(br);
                return;
        }
        br->disc = disc;
        br->configured = configured;
        br->next = disc->browsers;
        disc->browsers = br;
        disc->n_browsers++;
        browser_start(disc, br);
}

static void type_browse_cb(AvahiServiceTypeBrowser *b, AvahiIfIndex iface, AvahiProtocol proto,
                           AvahiBrowserEvent event, const char *type, const char *domain,
                           AvahiLookupResultFlags flags, void *userdata) {
        osm_discovery *disc = userdata;

        switch (event) {
        case AVAHI_BROWSER_NEW:
                if (type && avahi_is_valid_service_type_generic(type))
                        browser_ensure(disc, type, false);
                break;
        case AVAHI_BROWSER_FAILURE:
                log_warning("discovery: browsing service types failed: %s",
                            avahi_strerror(avahi_client_errno(avahi_service_type_browser_get_client(b))));
                avahi_service_type_browser_free(b);
                disc->type_browser = NULL;
                break;
        default:
                break;   /* a type going away: its services' own removals say it all */
        }
}

static void browse_all(osm_discovery *disc) {
        if (!disc->type_browser) {
                disc->type_browser = avahi_service_type_browser_new(disc->client, AVAHI_IF_UNSPEC,
                                                                    AVAHI_PROTO_UNSPEC, NULL, 0,
                                                                    type_browse_cb, disc);
                if (!disc->type_browser)
                        log_warning("discovery: cannot browse service types: %s",
                                    avahi_strerror(avahi_client_errno(disc->client)));
        }
        for (osm_browser *br = disc->browsers; br; br = br->next)
                browser_start(disc, br);
}

/* Configured types: "_osmose._tcp" always, and each valid one of service_types. */
static void browsers_configure(osm_discovery *disc) {
        _cleanup_free_ char *types = NULL;
        char *save = NULL;

        browser_ensure(disc, OSM_OSMOSE_SERVICE_TYPE, true);
        if (!disc->d->cfg.service_types || !(types = strdup(disc->d->cfg.service_types)))
                return;
        for (char *t = strtok_r(types, " \t,", &save); t; t = strtok_r(NULL, " \t,", &save)) {
                if (!avahi_is_valid_service_type_generic(t)) {
                        log_warning("discovery: service_types: '%s' is not a DNS-SD service type "
                                    "(like _ipp._tcp); ignored", t);
                        continue;
                }
                browser_ensure(disc, t, true);
        }
}

static void browsers_free(osm_discovery *disc) {
        while (disc->browsers) {
                osm_browser *br = disc->browsers;
                disc->browsers = br->next;
                free(br->type);
                free(br);
        }
        disc->n_browsers = 0;
}

/* --- publishing -------------------------------------------------------------------- */

static void pub_register(osm_discovery *disc, osm_discovery_pub *pub);

static void group_cb(AvahiEntryGroup *g, AvahiEntryGroupState state, void *userdata) {
        osm_discovery_pub *pub = userdata;
        osm_discovery *disc = pub->disc;
        char *alt;

        if (!disc)
                return;
        switch (state) {
        case AVAHI_ENTRY_GROUP_ESTABLISHED:
                pub->established = true;
                log_info("discovery: published '%s' (%s, port %u)", pub->name, pub->type, pub->port);
                break;
        case AVAHI_ENTRY_GROUP_COLLISION:
                alt = avahi_alternative_service_name(pub->name);
                if (!alt)
                        break;
                log_notice("discovery: name conflict: '%s' (%s) is taken on the network; now '%s'",
                           pub->name, pub->type, alt);
                free(pub->name);
                pub->name = strdup(alt);
                avahi_free(alt);
                if (!pub->name)
                        break;
                if (pub->own)
                        disc->name_conflicts++;
                pub_register(disc, pub);
                break;
        case AVAHI_ENTRY_GROUP_FAILURE:
                pub->established = false;
                log_warning("discovery: publishing '%s' (%s) failed: %s", pub->name, pub->type,
                            avahi_strerror(avahi_client_errno(avahi_entry_group_get_client(g))));
                break;
        case AVAHI_ENTRY_GROUP_UNCOMMITED:
        case AVAHI_ENTRY_GROUP_REGISTERING:
                break;
        }
}

/* (Re)publish pub under its current name; a name taken by another program on this host
 * is a local collision, answered at once, like one on the network. */
static void pub_register(osm_discovery *disc, osm_discovery_pub *pub) {
        int r = 0;

        if (!client_running(disc))
                return;
        if (!pub->group) {
                pub->group = avahi_entry_group_new(disc->client, group_cb, pub);
                if (!pub->group) {
                        log_warning("discovery: cannot publish '%s': %s", pub->name,
                                    avahi_strerror(avahi_client_errno(disc->client)));
                        return;
                }
        } else
                avahi_entry_group_reset(pub->group);
        pub->established = false;

        for (int attempt = 0; attempt < 16; attempt++) {
                char *alt;

                r = avahi_entry_group_add_service_strlst(pub->group, AVAHI_IF_UNSPEC, AVAHI_PROTO_UNSPEC,
                                                         0, pub->name, pub->type, NULL, NULL,
                                                         pub->port, pub->txt);
                if (r != AVAHI_ERR_COLLISION)
                        break;
                alt = avahi_alternative_service_name(pub->name);
                if (!alt)
                        break;
                log_notice("discovery: name conflict: '%s' (%s) is taken on this host; now '%s'",
                           pub->name, pub->type, alt);
                free(pub->name);
                pub->name = strdup(alt);
                avahi_free(alt);
                if (!pub->name)
                        return;
                if (pub->own)
                        disc->name_conflicts++;
        }
        if (r < 0 || (r = avahi_entry_group_commit(pub->group)) < 0)
                log_warning("discovery: cannot publish '%s' (%s): %s", pub->name, pub->type,
                            avahi_strerror(r));
}

static void publish_all(osm_discovery *disc) {
        if (disc->self && (!disc->self->group || avahi_entry_group_is_empty(disc->self->group)))
                pub_register(disc, disc->self);
        for (osm_discovery_pub *p = disc->pubs; p; p = p->next)
                if (!p->group || avahi_entry_group_is_empty(p->group))
                        pub_register(disc, p);
}

static void pub_free(osm_discovery_pub *pub) {
        if (!pub)
                return;
        if (pub->group)
                avahi_entry_group_free(pub->group);
        avahi_string_list_free(pub->txt);
        free(pub->name);
        free(pub->type);
        free(pub);
}

static int txt_from_json(json_t *txt, AvahiStringList **out, const char **why) {
        AvahiStringList *l = NULL;
        const char *key;
        json_t *v;
        size_t total = 0;

        json_object_foreach(txt, key, v) {
                const char *s = json_string_value(v);
                size_t klen = strlen(key), vlen;

                if (!s) {
                        *why = "TXT values must be strings";
                        goto fail;
                }
                vlen = strlen(s);
                if (klen == 0 || klen > OSM_TXT_MAX_KEY_LEN || strchr(key, '=') ||
                    !osm_txt_is_text((const uint8_t *) key, klen) || strspn(key, "\x20\x21\x22\x23\x24\x25\x26\x27\x28\x29\x2a\x2b\x2c\x2d\x2e\x2f"
                                                                        "0123456789:;<>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`"
                                                                        "abcdefghijklmnopqrstuvwxyz{|}~") != klen) {
                        *why = "TXT keys must be 1..64 printable ASCII characters without '='";
                        goto fail;
                }
                if (klen + 1 + vlen > 255) {
                        *why = "a TXT entry (key=value) is longer than 255 bytes";
                        goto fail;
                }
                total += klen + 2 + vlen;
                if (total > OSM_DISCOVERY_MAX_TXT) {
                        *why = "TXT data is longer than 1300 bytes";
                        goto fail;
                }
                l = avahi_string_list_add_pair(l, key, s);
                if (!l)
                        return -ENOMEM;
        }
        *out = l;
        return 0;
fail:
        avahi_string_list_free(l);
        return -EINVAL;
}

static osm_discovery_pub *pub_new(osm_discovery *disc, const char *name, const char *type,
                                  uint16_t port, AvahiStringList *txt) {
        osm_discovery_pub *pub = calloc(1, sizeof(*pub));

        if (!pub)
                return NULL;
        pub->disc = disc;
        pub->name = strdup(name);
        pub->type = strdup(type);
        pub->port = port;
        pub->txt = txt;
        if (!pub->name || !pub->type) {
                pub_free(pub);
                return NULL;
        }
        return pub;
}

int osm_discovery_publish(osm_discovery *disc, const char *name, const char *type, uint16_t port,
                          json_t *txt, osm_discovery_pub **out, const char **why) {
        AvahiStringList *l = NULL;
        osm_discovery_pub *pub;
        int r;

        if (!disc) {
                *why = "discovery is not running";
                return -ENODEV;
        }
        if (!name || !avahi_is_valid_service_name(name) || !osm_txt_is_text((const uint8_t *) name, strlen(name))) {
                *why = "a service name is 1..63 bytes of text";
                return -EINVAL;
        }
        if (!type || !avahi_is_valid_service_type_strict(type)) {
                *why = "a service type looks like _name._tcp or _name._udp";
                return -EINVAL;
        }
        if (txt && !json_is_object(txt)) {
                *why = "TXT must be an object of strings";
                return -EINVAL;
        }
        if (disc->n_pubs >= OSM_DISCOVERY_MAX_PUBS) {
                *why = "too many published services";
                return -ENOSPC;
        }
        if (txt && (r = txt_from_json(txt, &l, why)) < 0)
                return r;
        pub = pub_new(disc, name, type, port, l);
        if (!pub) {
                avahi_string_list_free(l);
                return -ENOMEM;
        }
        pub->next = disc->pubs;
        if (disc->pubs)
                disc->pubs->prev = pub;
        disc->pubs = pub;
        disc->n_pubs++;
        if (disc->enabled)
                pub_register(disc, pub);
        *out = pub;
        return 0;
}

osm_discovery_pub *osm_discovery_withdraw(osm_discovery_pub *pub) {
        osm_discovery *disc;

        if (!pub)
                return NULL;
        disc = pub->disc;
        if (disc) {
                if (pub->prev)
                        pub->prev->next = pub->next;
                else
                        disc->pubs = pub->next;
                if (pub->next)
                        pub->next->prev = pub->prev;
                disc->n_pubs--;
        }
        pub_free(pub);  /* freeing the group withdraws the records (goodbye packets) */
        return NULL;
}

const char *osm_discovery_pub_name(const osm_discovery_pub *pub) {
        return pub->name;
}

bool osm_discovery_pub_established(const osm_discovery_pub *pub) {
        return pub->established;
}

/* Our own record: instance name = the space's name, TXT id, name, v. */
static int self_configure(osm_discovery *disc) {
        const osm_config *cfg = &disc->d->cfg;
        char name[OSM_PEER_NAME_MAX + 1], v[16];
        AvahiStringList *txt;

        osm_utf8_truncate(name, sizeof(name), cfg->name && *cfg->name ? cfg->name : "osmose");
        snprintf(v, sizeof(v), "%d", OSM_DISCOVERY_PROTOCOL_VERSION);
        txt = avahi_string_list_add_pair(NULL, "v", v);
        txt = avahi_string_list_add_pair(txt, "name", name);
        txt = avahi_string_list_add_pair(txt, "id", disc->d->space_id);
        if (!txt)
                return -ENOMEM;

        free(disc->configured_name);
        disc->configured_name = strdup(name);
        if (disc->self)
                pub_free(disc->self);
        disc->self = pub_new(disc, name, OSM_OSMOSE_SERVICE_TYPE, federation_port(cfg), txt);
        if (!disc->self || !disc->configured_name)
                return -ENOMEM;
        disc->self->own = true;
        disc->name_conflicts = 0;
        pub_register(disc, disc->self);
        return 0;
}

/* --- the Avahi client ---------------------------------------------------------------- */

static void client_start(osm_discovery *disc);

/* Drop every Avahi object we hold without freeing it: avahi_client_free() does that
 * (and after a failure their server side is gone anyway). */
static void forget_avahi_objects(osm_discovery *disc) {
        jobs_clear(disc, false);
        disc->type_browser = NULL;
        for (osm_browser *br = disc->browsers; br; br = br->next)
                br->browser = NULL;
        if (disc->self) {
                disc->self->group = NULL;
                disc->self->established = false;
        }
        for (osm_discovery_pub *p = disc->pubs; p; p = p->next) {
                p->group = NULL;
                p->established = false;
        }
}

static void client_teardown(osm_discovery *disc) {
        forget_avahi_objects(disc);
        if (disc->client)
                avahi_client_free(disc->client);
        disc->client = NULL;
        disc->state = AVAHI_CLIENT_FAILURE;
        uv_timer_stop(&disc->sweep_timer);
        /* keep what we knew, until the browsers confirm it again or the sweep */
        osm_dcat_mark_stale(disc->cat);
}

static void retry_timer_cb(uv_timer_t *t) {
        osm_discovery *disc = t->data;

        client_teardown(disc);
        client_start(disc);
}

static void schedule_retry(osm_discovery *disc) {
        unsigned delay = disc->retry_ms;

        disc->retry_ms = OSM_MIN(OSM_MAX(disc->retry_ms * 2, 1000u), (unsigned) RETRY_MAX_MS);
        uv_timer_start(&disc->retry_timer, retry_timer_cb, delay, 0);
}

static void sweep_timer_cb(uv_timer_t *t) {
        osm_discovery *disc = t->data;

        osm_dcat_sweep(disc->cat);
}

static void client_cb(AvahiClient *c, AvahiClientState state, void *userdata) {
        osm_discovery *disc = userdata;
        AvahiClientState old = disc->state;

        /* The first callbacks come from inside avahi_client_new(), before it returns. */
        disc->client = c;
        disc->state = state;

        switch (state) {
        case AVAHI_CLIENT_S_RUNNING:
                log_info("discovery: avahi-daemon is running; publishing and browsing");
                disc->retry_ms = 0;
                disc->last_error = 0;
                publish_all(disc);
                browse_all(disc);
                jobs_start(disc);
                if (disc->connected_once && old != AVAHI_CLIENT_S_REGISTERING && old != AVAHI_CLIENT_S_COLLISION)
                        uv_timer_start(&disc->sweep_timer, sweep_timer_cb, SWEEP_DELAY_MS, 0);
                disc->connected_once = true;
                break;
        case AVAHI_CLIENT_S_COLLISION:
        case AVAHI_CLIENT_S_REGISTERING:
                /* The host name is being (re)established: our records go until it is. */
                if (disc->self && disc->self->group)
                        avahi_entry_group_reset(disc->self->group);
                for (osm_discovery_pub *p = disc->pubs; p; p = p->next)
                        if (p->group)
                                avahi_entry_group_reset(p->group);
                break;
        case AVAHI_CLIENT_FAILURE:
                disc->last_error = avahi_client_errno(c);
                log_warning("discovery: lost avahi-daemon (%s); serving what was last seen, reconnecting",
                            avahi_strerror(disc->last_error));
                /* Not from inside the client's own callback: re-create it from the loop. */
                schedule_retry(disc);
                break;
        case AVAHI_CLIENT_CONNECTING:
                log_notice("discovery: avahi-daemon is not running; waiting for it");
                break;
        }
}

static void client_start(osm_discovery *disc) {
        AvahiClient *c;
        int err = 0;

        disc->state = AVAHI_CLIENT_CONNECTING;
        c = avahi_client_new(osm_avahi_poll_get(disc->poll), AVAHI_CLIENT_NO_FAIL, client_cb, disc, &err);
        if (!c) {
                /* No system bus (or no memory): nothing will tell us when it appears. */
                forget_avahi_objects(disc);
                disc->client = NULL;
                disc->state = AVAHI_CLIENT_FAILURE;
                if (err != disc->last_error)
                        log_warning("discovery: cannot reach avahi-daemon: %s; retrying", avahi_strerror(err));
                disc->last_error = err;
                schedule_retry(disc);
                return;
        }
        disc->client = c;
}

static int discovery_enable(osm_discovery *disc) {
        int r;

        disc->enabled = true;
        r = osm_avahi_poll_new(disc->d->loop, &disc->poll);
        if (r < 0)
                return r;
        r = self_configure(disc);
        if (r < 0)
                return r;
        browsers_configure(disc);
        disc->retry_ms = 0;
        disc->connected_once = false;
        client_start(disc);
        return 0;
}

static void discovery_disable(osm_discovery *disc) {
        if (!disc->enabled)
                return;
        disc->enabled = false;
        uv_timer_stop(&disc->retry_timer);
        /* Withdraw our records before the client goes (goodbye packets). */
        if (disc->self) {
                pub_free(disc->self);
                disc->self = NULL;
        }
        for (osm_discovery_pub *p = disc->pubs; p; p = p->next)
                if (p->group) {
                        avahi_entry_group_free(p->group);
                        p->group = NULL;
                }
        jobs_clear(disc, true);
        client_teardown(disc);
        browsers_free(disc);
        disc->poll = osm_avahi_poll_free(disc->poll);
        /* Nothing is seen while off: services go, peers are gone (and stay listed). */
        osm_dcat_sweep(disc->cat);
}

/* --- the subsystem ------------------------------------------------------------------- */

static osm_dcat_limits limits_of(const osm_config *cfg) {
        return (osm_dcat_limits) {
                .max_services = (size_t) cfg->discovery_max_services,
                .max_peers = (size_t) cfg->discovery_max_peers,
        };
}

static void free_when_closed(uv_handle_t *h) {
        osm_discovery *disc = h->data;

        /* the three timers close in no promised order; the last one frees */
        if (--disc->n_closing == 0)
                free(disc);
}

static int discovery_start(osm_daemon *d) {
        osm_discovery *disc;
        osm_dcat_limits lim = limits_of(&d->cfg);
        int r;

        disc = calloc(1, sizeof(*disc));
        if (!disc)
                return -ENOMEM;
        disc->d = d;
        uv_timer_init(d->loop, &disc->retry_timer);
        uv_timer_init(d->loop, &disc->sweep_timer);
        uv_timer_init(d->loop, &disc->save_timer);
        disc->retry_timer.data = disc->sweep_timer.data = disc->save_timer.data = disc;
        /* These timers must not keep the loop alive on their own at shutdown. */
        uv_unref((uv_handle_t *) &disc->retry_timer);
        uv_unref((uv_handle_t *) &disc->sweep_timer);
        uv_unref((uv_handle_t *) &disc->save_timer);
        d->discovery = disc;

        if (asprintf(&disc->state_path, "%s/discovery.json", d->cfg.state_dir) < 0) {
                disc->state_path = NULL;
                return -ENOMEM;
        }
        r = osm_dcat_new(&lim, d->space_id, catalog_notify, disc, &disc->cat);
        if (r < 0)
                return r;
        load_peers(disc);
        r = osm_discovery_iface_register(disc);
        if (r < 0)
                return r;

        if (!d->cfg.discovery_enabled) {
                log_info("discovery: off ([discovery] enabled = no)");
                return 0;
        }
        return discovery_enable(disc);
}

static void discovery_stop(osm_daemon *d) {
        osm_discovery *disc = d->discovery;

        if (!disc)
                return;
        osm_discovery_iface_stop(disc);
        discovery_disable(disc);

        /* Publications and subscriptions belong to their owners: detach them. */
        while (disc->pubs) {
                osm_discovery_pub *p = disc->pubs;
                disc->pubs = p->next;
                p->prev = p->next = NULL;
                p->disc = NULL;
        }
        subs_sweep(disc);
        while (disc->subs) {
                osm_discovery_sub *s = disc->subs;
                disc->subs = s->next;
                s->prev = s->next = NULL;
                s->disc = NULL;
        }
        if (disc->save_pending) {
                int r = osm_discovery_save_now(disc);
                if (r < 0)
                        log_error("discovery: cannot write %s: %s", disc->state_path, strerror(-r));
        }
        disc->cat = osm_dcat_free(disc->cat);
        free(disc->state_path);
        free(disc->configured_name);
        d->discovery = NULL;

        disc->n_closing = 3;
        uv_close((uv_handle_t *) &disc->retry_timer, free_when_closed);
        uv_close((uv_handle_t *) &disc->sweep_timer, free_when_closed);
        uv_close((uv_handle_t *) &disc->save_timer, free_when_closed);
}

static void discovery_status(osm_daemon *d, json_t *obj) {
        osm_discovery *disc = d->discovery;
        osm_dcat_stats st;
        char detail[512];
        const char *published = NULL;
        bool conflict;
        osm_health h;
        json_t *info;

        if (!disc) {
                osm_status_set(obj, OSM_HEALTH_FAILED, "not started");
                return;
        }
        osm_dcat_get_stats(disc->cat, &st);
        published = disc->self ? disc->self->name : NULL;
        conflict = disc->self && disc->configured_name && strcmp(disc->self->name, disc->configured_name) != 0;

        if (!disc->enabled) {
                h = OSM_HEALTH_DISABLED;
                snprintf(detail, sizeof(detail), "off in the configuration ([discovery] enabled = no)");
        } else if (!client_running(disc)) {
                h = OSM_HEALTH_DEGRADED;
                if (disc->client && disc->state == AVAHI_CLIENT_CONNECTING)
                        snprintf(detail, sizeof(detail), "avahi-daemon is not running; waiting for it");
                else if (disc->client)
                        snprintf(detail, sizeof(detail), "avahi-daemon is registering its host name");
                else
                        snprintf(detail, sizeof(detail), "avahi-daemon not reachable (%s); retrying",
                                 avahi_strerror(disc->last_error));
        } else if (st.own_id_claimed) {
                h = OSM_HEALTH_DEGRADED;
                snprintf(detail, sizeof(detail), "another gateway on the LAN announces this space's id");
        } else {
                h = OSM_HEALTH_OK;
                snprintf(detail, sizeof(detail), "published as '%s'%s%s%s; %zu of %zu peers present; %zu services",
                         published ? published : "", conflict ? " (name conflict: '" : "",
                         conflict ? disc->configured_name : "", conflict ? "' is taken)" : "",
                         st.peers_present, st.peers, st.services_listed);
        }
        osm_status_set(obj, h, detail);
        info = json_object();
        json_object_set_new(obj, "info", info);
        json_object_set_new(info, "avahi", json_string(avahi_state_name(disc)));
        json_object_set_new(info, "published_name", published ? osm_json_text(published) : json_null());
        json_object_set_new(info, "name_conflict", json_boolean(conflict));
        json_object_set_new(info, "peers", json_integer((json_int_t) st.peers));
        json_object_set_new(info, "peers_present", json_integer((json_int_t) st.peers_present));
        json_object_set_new(info, "peers_conflicting", json_integer((json_int_t) st.peers_conflicting));
        json_object_set_new(info, "own_id_claimed", json_boolean(st.own_id_claimed));
        json_object_set_new(info, "services", json_integer((json_int_t) st.services_listed));
        json_object_set_new(info, "browsed_types", json_integer((json_int_t) disc->n_browsers));
        json_object_set_new(info, "dropped_services", json_integer((json_int_t) st.dropped_services));
        json_object_set_new(info, "dropped_peers", json_integer((json_int_t) st.dropped_peers));
        json_object_set_new(info, "dropped_types", json_integer((json_int_t) disc->dropped_types));
        json_object_set_new(info, "invalid_peer_records", json_integer((json_int_t) st.invalid_peer_records));
}

static void discovery_reload(osm_daemon *d, const osm_config *old) {
        osm_discovery *disc = d->discovery;
        osm_dcat_limits lim = limits_of(&d->cfg);
        const osm_config *cfg = &d->cfg;
        bool renamed, port_changed;

        if (!disc)
                return;
        osm_dcat_set_limits(disc->cat, &lim);
        if (!cfg->discovery_enabled) {
                if (disc->enabled)
                        log_info("discovery: switched off");
                discovery_disable(disc);
                return;
        }
        if (!disc->enabled) {
                log_info("discovery: switched on");
                if (discovery_enable(disc) < 0)
                        log_error("discovery: cannot start: out of memory");
                return;
        }
        renamed = !old->name || !cfg->name || strcmp(old->name, cfg->name) != 0;
        port_changed = federation_port(old) != federation_port(cfg);
        if (renamed || port_changed)
                self_configure(disc);
        browsers_configure(disc);
}

const osm_subsystem osm_discovery_subsystem = {
        .name = "discovery",
        .start = discovery_start,
        .stop = discovery_stop,
        .status = discovery_status,
        .reload = discovery_reload,
};
