/* browse.c: browsing the room's service types and resolving what is found into the catalog. */
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
#define MAX_BROWSED_TYPES       128     /* types found on the LAN that we browse */

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

void osm_disc_jobs_start(osm_discovery *disc);

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
                          avahi_strerror(sym_avahi_client_errno(sym_avahi_service_resolver_get_client(r))));

        job_unlink(&disc->inflight, NULL, j);
        disc->n_inflight--;
        sym_avahi_service_resolver_free(r);
        job_free(j);
        osm_disc_jobs_start(disc);
}

void osm_disc_jobs_start(osm_discovery *disc) {
        while (osm_disc_client_running(disc) && disc->n_inflight < RESOLVE_INFLIGHT && disc->queue_head) {
                osm_resolve_job *j = disc->queue_head;

                job_unlink(&disc->queue_head, &disc->queue_tail, j);
                disc->n_queued--;
                j->resolver = sym_avahi_service_resolver_new(disc->client, j->iface, j->proto, j->name,
                                                         j->type, j->domain, j->proto, 0,
                                                         resolve_cb, j);
                if (!j->resolver) {
                        if (osm_disc_ratelimit_ok(&disc->rl_cap))
                                log_warning("discovery: cannot resolve '%s' (%s): %s", j->name, j->type,
                                            avahi_strerror(sym_avahi_client_errno(disc->client)));
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

        /* As many as the catalog holds: its services, and its gateways' records apart. */
        const osm_config *cfg = &disc->d->cfg;
        if (disc->n_queued + disc->n_inflight >= cfg->discovery_max_services + cfg->discovery_max_peers) {
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
        osm_disc_jobs_start(disc);
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
                        sym_avahi_service_resolver_free(j->resolver);
                        job_free(j);
                        osm_disc_jobs_start(disc);
                        return;
                }
}

/* Forget every job. free_resolvers: false when sym_avahi_client_free() frees them. */
void osm_disc_jobs_clear(osm_discovery *disc, bool free_resolvers) {
        while (disc->queue_head) {
                osm_resolve_job *j = disc->queue_head;
                job_unlink(&disc->queue_head, &disc->queue_tail, j);
                job_free(j);
        }
        while (disc->inflight) {
                osm_resolve_job *j = disc->inflight;
                job_unlink(&disc->inflight, NULL, j);
                if (free_resolvers && j->resolver)
                        sym_avahi_service_resolver_free(j->resolver);
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
                else if (r == -ENOSPC && osm_disc_ratelimit_ok(&disc->rl_cap))
                        log_warning("discovery: service catalog full (%" PRIu64 " entries): ignoring '%s' (%s)",
                                    disc->d->cfg.discovery_max_services, name, type);
                break;
        case AVAHI_BROWSER_REMOVE:
                job_cancel(disc, iface, proto, name, type, domain);
                osm_dcat_lost(disc->cat, iface, proto, name, type, domain);
                break;
        case AVAHI_BROWSER_FAILURE:
                log_warning("discovery: browsing %s failed: %s", br->type,
                            avahi_strerror(sym_avahi_client_errno(sym_avahi_service_browser_get_client(b))));
                sym_avahi_service_browser_free(b);
                br->browser = NULL;
                break;
        case AVAHI_BROWSER_ALL_FOR_NOW:
        case AVAHI_BROWSER_CACHE_EXHAUSTED:
                break;
        }
}

static void browser_start(osm_discovery *disc, osm_browser *br) {
        if (br->browser || !osm_disc_client_running(disc))
                return;
        br->browser = sym_avahi_service_browser_new(disc->client, AVAHI_IF_UNSPEC, AVAHI_PROTO_UNSPEC,
                                                br->type, NULL, 0, browse_cb, br);
        if (!br->browser)
                log_warning("discovery: cannot browse %s: %s", br->type,
                            avahi_strerror(sym_avahi_client_errno(disc->client)));
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
                if (osm_disc_ratelimit_ok(&disc->rl_cap))
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
                            avahi_strerror(sym_avahi_client_errno(sym_avahi_service_type_browser_get_client(b))));
                sym_avahi_service_type_browser_free(b);
                disc->type_browser = NULL;
                break;
        default:
                break;   /* a type going away: its services' own removals say it all */
        }
}

void osm_disc_browse_all(osm_discovery *disc) {
        if (!disc->type_browser) {
                disc->type_browser = sym_avahi_service_type_browser_new(disc->client, AVAHI_IF_UNSPEC,
                                                                    AVAHI_PROTO_UNSPEC, NULL, 0,
                                                                    type_browse_cb, disc);
                if (!disc->type_browser)
                        log_warning("discovery: cannot browse service types: %s",
                                    avahi_strerror(sym_avahi_client_errno(disc->client)));
        }
        for (osm_browser *br = disc->browsers; br; br = br->next)
                browser_start(disc, br);
}

/* Configured types: "_osmose._tcp" always, and each valid one of service_types. */
void osm_disc_browsers_configure(osm_discovery *disc) {
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

void osm_disc_browsers_free(osm_discovery *disc) {
        while (disc->browsers) {
                osm_browser *br = disc->browsers;
                disc->browsers = br->next;
                free(br->type);
                free(br);
        }
        disc->n_browsers = 0;
}
