/* fuzz-mdns-txt.c: what the LAN sends discovery: TXT records in wire format (keys, values,
 * duplicates, binary, truncation), _osmose._tcp records (id, name, v), and sequences of
 * browse/resolve/lose events driving the catalog (caps, peers, conflicts, persistence). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/discovery/catalog.h"
#include "daemon/discovery/txt.h"
#include "osmose/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define OWN_ID "00112233445566778899aabbccddeeff"

static void check(bool cond) {
        if (!cond)
                abort();
}

/* The record alone: valid JSON within the limits, whatever the bytes. */
static void fuzz_txt(const uint8_t *data, size_t size) {
        json_t *txt = NULL;
        unsigned issues = 0;
        osm_peer_txt peer;
        osm_error why;
        char *text;

        if (osm_txt_wire_to_json(data, size, &txt, &issues) < 0)
                return;
        check(json_is_object(txt) && json_object_size(txt) <= OSM_TXT_MAX_KEYS);
        text = json_dumps(txt, JSON_COMPACT);   /* fails on invalid UTF-8 */
        check(text != NULL);
        free(text);
        if (osm_peer_txt_parse(txt, &peer, &why) == 0)
                check(strlen(peer.id) == OSM_SPACE_ID_LEN && peer.version >= 1 && strlen(peer.name) <= OSM_PEER_NAME_MAX);
        json_decref(txt);
}

/* Events: each op is one byte, followed (for a resolution) by a length and TXT bytes. */
static void fuzz_catalog(const uint8_t *data, size_t size) {
        static const char *const names[] = { "a", "b", "c", "d", "e", "\xff\x01 bad", "gw" };
        static const char *const types[] = { OSM_OSMOSE_SERVICE_TYPE, "_http._tcp" };
        osm_dcat_limits lim = { .max_services = 4, .max_peers = 3 };
        osm_dcat *c, *c2;
        osm_dcat_stats st;
        json_t *j, *instances;
        size_t i = 0, skipped;
        osm_error why;

        if (osm_dcat_new(&lim, OWN_ID, NULL, NULL, &c) < 0)
                return;
        while (i < size) {
                uint8_t op = data[i++];
                const char *name = names[(op >> 3) % OSM_ARRAY_SIZE(names)];
                const char *type = types[(op >> 6) & 1];
                int iface = (op >> 7) & 1;

                switch (op & 7) {
                case 0:
                case 1:
                        osm_dcat_seen(c, iface, 0, name, type, "local", op & 1 ? OSM_DCAT_OWN : 0);
                        break;
                case 2: {
                        size_t n = i < size ? data[i++] : 0;
                        osm_txt_item items[8];
                        size_t k = 0, off = i;
                        n = n > size - i ? size - i : n;
                        /* split the chunk into up to 8 items at 0xfe bytes */
                        while (off <= i + n && k < 8) {
                                const uint8_t *e = memchr(data + off, 0xfe, i + n - off);
                                size_t len = e ? (size_t) (e - (data + off)) : i + n - off;
                                items[k++] = (osm_txt_item) { data + off, len };
                                off += len + 1;
                                if (!e)
                                        break;
                        }
                        osm_dcat_resolved(c, iface, 0, name, type, "local",
                                          &(osm_dcat_resolution) { "h.local", "198.51.100.9", 1, items, k });
                        i += n;
                        break;
                }
                case 3:
                        osm_dcat_lost(c, iface, 0, name, type, "local");
                        break;
                case 4:
                        osm_dcat_mark_stale(c);
                        break;
                case 5:
                        osm_dcat_sweep(c);
                        break;
                case 6:
                        instances = NULL;
                        osm_dcat_trust(c, OWN_ID, op & 8, &instances);
                        json_decref(instances);
                        break;
                case 7:
                        json_decref(osm_dcat_services(c, (op & 8) ? type : NULL));
                        json_decref(osm_dcat_peers(c));
                        break;
                }
                osm_dcat_get_stats(c, &st);
                /* the services within their cap, the gateways' records within theirs */
                check(st.gateway_services <= st.services && st.services - st.gateway_services <= lim.max_services &&
                      st.gateway_services <= lim.max_peers && st.peers <= lim.max_peers);
        }

        /* what is saved loads back, record for record */
        j = osm_dcat_save(c);
        if (j && osm_dcat_new(&lim, OWN_ID, NULL, NULL, &c2) == 0) {
                check(osm_dcat_load(c2, j, &skipped, &why) == 0);
                osm_dcat_get_stats(c, &st);
                osm_dcat_stats st2;
                osm_dcat_get_stats(c2, &st2);
                check(st2.peers == st.peers && skipped == 0);
                osm_dcat_free(c2);
        }
        json_decref(j);
        osm_dcat_free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size == 0)
                return 0;
        if (data[0] & 1)
                fuzz_catalog(data + 1, size - 1);
        else
                fuzz_txt(data + 1, size - 1);
        return 0;
}
