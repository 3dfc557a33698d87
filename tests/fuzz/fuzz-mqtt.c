/* fuzz-mqtt.c: what a broker and its devices hand MQTT ingest: topics (→ collection
 * names), payloads (→ record bodies: JSON, text, binary, deep nesting, sizes), and the
 * other parsers of outside input beside them: broker URLs, topic filters, bridge
 * definitions as JSON (STATE/ingest.json, Ingest.Add) and in-flight file lines.
 * (The MQTT packets themselves are parsed by libmosquitto.) */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/ingest/ingest-map.h"
#include "daemon/store/store.h"
#include "osmose/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool cond) {
        if (!cond)
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size < 1)
                return 0;
        /* First byte: where the topic ends (the rest is the payload). */
        size_t split = OSM_MIN((size_t) data[0], size - 1);
        const char *topic = (const char *) data + 1;
        const uint8_t *payload = data + 1 + split;
        size_t plen = size - 1 - split;
        osm_error why = {};

        char coll[OSM_STORE_MAX_NAME + 1];
        if (osm_ingest_collection("sensors/", topic, split, coll, sizeof coll, &why) == 0) {
                check(strncmp(coll, "sensors/", 8) == 0);
                check(osm_name_valid(coll, OSM_STORE_MAX_NAME, true));
                check(!strstr(coll, "..") || strstr(coll, "/../") == NULL);
        } else
                check(why.message[0] != 0);

        osm_ingest_kind kind;
        json_t *body = NULL;
        int r = osm_ingest_payload(payload, plen, 4096, &kind, &body, &why);
        if (r == 0 && kind == OSM_INGEST_BODY) {
                check(json_is_object(body));
                char *text = json_dumps(body, JSON_COMPACT);
                check(text != NULL);
                json_t *back = json_loads(text, 0, NULL);
                check(back && json_equal(back, body));
                json_decref(back);
                free(text);
        } else if (r == 0)
                check(body == NULL && plen > OSM_INGEST_INLINE_BINARY);
        else
                check(r == -EMSGSIZE || r == -ELOOP || r == -ENOMEM);
        json_decref(body);

        /* The same bytes as the other inputs. */
        char *s = strndup((const char *) data + 1, size - 1);
        if (!s)
                return 0;
        char host[256];
        uint16_t port;
        bool tls;
        if (osm_ingest_parse_url(s, host, sizeof host, &port, &tls) == 0)
                check(port > 0 && host[0]);
        (void) osm_ingest_filter_valid(s);
        osm_ingest_intent in;
        if (osm_ingest_intent_parse(s, strlen(s), &in) == 0) {
                char line[256];
                size_t n = osm_ingest_intent_format(&in, line, sizeof line);
                check(n > 0 && line[n - 1] == '\n');
                osm_ingest_intent again;
                check(osm_ingest_intent_parse(line, n - 1, &again) == 0 && again.time_us == in.time_us &&
                      memcmp(again.key, in.key, 16) == 0 && strcmp(again.collection, in.collection) == 0);
        }
        json_t *j = json_loadb((const char *) data + 1, size - 1, 0, NULL);
        if (j) {
                osm_ingest_def d = { 0 };
                if (osm_ingest_def_from_json(j, &d, &why) == 0) {
                        check(osm_ingest_def_check(&d, &why) == 0);
                        json_t *o = osm_ingest_def_json(&d);
                        osm_ingest_def d2 = { 0 };
                        check(o && osm_ingest_def_from_json(o, &d2, &why) == 0);
                        osm_ingest_def_clear(&d2);
                        json_decref(o);
                }
                osm_ingest_def_clear(&d);
                json_decref(j);
        }
        free(s);
        return 0;
}
