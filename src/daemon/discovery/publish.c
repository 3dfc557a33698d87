/* publish.c: publishing services on mDNS: this space's own _osmose._tcp record and what workloads publish. */
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
                            avahi_strerror(sym_avahi_client_errno(sym_avahi_entry_group_get_client(g))));
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

        if (!osm_disc_client_running(disc))
                return;
        if (!pub->group) {
                pub->group = sym_avahi_entry_group_new(disc->client, group_cb, pub);
                if (!pub->group) {
                        log_warning("discovery: cannot publish '%s': %s", pub->name,
                                    avahi_strerror(sym_avahi_client_errno(disc->client)));
                        return;
                }
        } else
                sym_avahi_entry_group_reset(pub->group);
        pub->established = false;

        for (int attempt = 0; attempt < 16; attempt++) {
                char *alt;

                r = sym_avahi_entry_group_add_service_strlst(pub->group, AVAHI_IF_UNSPEC, AVAHI_PROTO_UNSPEC,
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
        if (r < 0 || (r = sym_avahi_entry_group_commit(pub->group)) < 0)
                log_warning("discovery: cannot publish '%s' (%s): %s", pub->name, pub->type,
                            avahi_strerror(r));
}

void osm_disc_publish_all(osm_discovery *disc) {
        if (disc->self && (!disc->self->group || sym_avahi_entry_group_is_empty(disc->self->group)))
                pub_register(disc, disc->self);
        for (osm_discovery_pub *p = disc->pubs; p; p = p->next)
                if (!p->group || sym_avahi_entry_group_is_empty(p->group))
                        pub_register(disc, p);
}

void osm_disc_pub_free(osm_discovery_pub *pub) {
        if (!pub)
                return;
        if (pub->group)
                sym_avahi_entry_group_free(pub->group);
        avahi_string_list_free(pub->txt);
        free(pub->name);
        free(pub->type);
        free(pub);
}

static int txt_from_json(json_t *txt, AvahiStringList **out, osm_error *err) {
        AvahiStringList *l = NULL;
        const char *key;
        json_t *v;
        size_t total = 0;

        json_object_foreach(txt, key, v) {
                const char *s = json_string_value(v);
                size_t klen = strlen(key), vlen;

                if (!s) {
                        osm_error_set(err, -EINVAL, 0, "TXT values must be strings");
                        goto fail;
                }
                vlen = strlen(s);
                if (klen == 0 || klen > OSM_TXT_MAX_KEY_LEN || strchr(key, '=') ||
                    !osm_txt_is_text((const uint8_t *) key, klen) || strspn(key, "\x20\x21\x22\x23\x24\x25\x26\x27\x28\x29\x2a\x2b\x2c\x2d\x2e\x2f"
                                                                        "0123456789:;<>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`"
                                                                        "abcdefghijklmnopqrstuvwxyz{|}~") != klen) {
                        osm_error_set(err, -EINVAL, 0, "TXT keys must be 1..64 printable ASCII characters without '='");
                        goto fail;
                }
                if (klen + 1 + vlen > 255) {
                        osm_error_set(err, -EINVAL, 0, "a TXT entry (key=value) is longer than 255 bytes");
                        goto fail;
                }
                total += klen + 2 + vlen;
                if (total > OSM_DISCOVERY_MAX_TXT) {
                        osm_error_set(err, -EINVAL, 0, "TXT data is longer than 1300 bytes");
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
                osm_disc_pub_free(pub);
                return NULL;
        }
        return pub;
}

int osm_discovery_publish(osm_discovery *disc, const char *name, const char *type, uint16_t port,
                          json_t *txt, osm_discovery_pub **out, osm_error *err) {
        AvahiStringList *l = NULL;
        osm_discovery_pub *pub;
        int r;

        if (!disc)
                return osm_error_set(err, -ENODEV, 0, "discovery is not running");
        if (!name || !avahi_is_valid_service_name(name) || !osm_txt_is_text((const uint8_t *) name, strlen(name)))
                return osm_error_set(err, -EINVAL, 0, "a service name is 1..63 bytes of text");
        if (!type || !avahi_is_valid_service_type_strict(type))
                return osm_error_set(err, -EINVAL, 0, "a service type looks like _name._tcp or _name._udp");
        if (txt && !json_is_object(txt))
                return osm_error_set(err, -EINVAL, 0, "TXT must be an object of strings");
        if (disc->n_pubs >= OSM_DISCOVERY_MAX_PUBS)
                return osm_error_set(err, -ENOSPC, 0, "too many published services");
        if (txt && (r = txt_from_json(txt, &l, err)) < 0)
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
        osm_disc_pub_free(pub);  /* freeing the group withdraws the records (goodbye packets) */
        return NULL;
}

const char *osm_discovery_pub_name(const osm_discovery_pub *pub) {
        return pub->name;
}

bool osm_discovery_pub_established(const osm_discovery_pub *pub) {
        return pub->established;
}

/* Our own record: instance name = the space's name, TXT id, name, v. */
int osm_disc_self_configure(osm_discovery *disc) {
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
                osm_disc_pub_free(disc->self);
        disc->self = pub_new(disc, name, OSM_OSMOSE_SERVICE_TYPE, osm_disc_federation_port(cfg), txt);
        if (!disc->self || !disc->configured_name)
                return -ENOMEM;
        disc->self->own = true;
        disc->name_conflicts = 0;
        pub_register(disc, disc->self);
        return 0;
}

/* The services published on this host for workloads (not our own _osmose._tcp) that the
 * catalog does not hold (yet): when avahi-daemon is not running, before Avahi has
 * established them, or of a type the room's browsers have not seen. Appended to services
 * (an array of Service objects) as local entries, with published true and established
 * saying whether Avahi announces them on the network now. */
void osm_disc_add_publications(osm_discovery *disc, json_t *services, const char *type) {
        int64_t now = osm_now_real_us();
        for (osm_discovery_pub *pub = disc->pubs; pub; pub = pub->next) {
                if (pub->own || (type && strcasecmp(type, pub->type) != 0))
                        continue;
                bool listed = false;
                size_t i;
                json_t *s;
                json_array_foreach(services, i, s) {
                        const char *n = json_string_value(json_object_get(s, "name"));
                        const char *t = json_string_value(json_object_get(s, "type"));
                        if (json_is_true(json_object_get(s, "local")) && n && t && strcmp(n, pub->name) == 0 &&
                            strcasecmp(t, pub->type) == 0) {
                                json_object_set_new(s, "published", json_true());
                                json_object_set_new(s, "established", json_boolean(pub->established));
                                listed = true;
                        }
                }
                if (listed)
                        continue;
                json_t *txt = json_object();
                for (AvahiStringList *l = pub->txt; txt && l; l = avahi_string_list_get_next(l)) {
                        char *key = NULL, *value = NULL;
                        if (avahi_string_list_get_pair(l, &key, &value, NULL) == 0) {
                                json_object_set_new(txt, key, value ? json_string(value) : json_true());
                                avahi_free(key);
                                avahi_free(value);
                        }
                }
                json_array_append_new(services, json_pack("{s:s, s:s, s:s, s:s, s:[], s:i, s:o, s:[], s:b, s:I, s:I, s:b, s:b}",
                        "name", pub->name, "type", pub->type, "domain", "local", "host", "",
                        "addresses", "port", (int) pub->port, "txt", txt ? txt : json_object(), "txt_issues",
                        "local", 1, "first_seen", (json_int_t) now, "last_seen", (json_int_t) now,
                        "published", 1, "established", pub->established));
        }
}

