/* ingest-map.h: the pure part of MQTT ingest, without I/O: bridge definitions and their
 * checks, broker URLs, topic → collection names, payload → record body, and the line
 * format of the in-flight file. Shared by the bridge, the config parser and fuzz-mqtt. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "osmose/error.h"

#define OSM_INGEST_MAX_NAME     32      /* bytes of a bridge name ([A-Za-z0-9_-]) */
#define OSM_INGEST_MAX_TOPICS   16      /* topic filters per bridge */
#define OSM_INGEST_MAX_FILTER   256     /* bytes of one topic filter */
#define OSM_INGEST_MAX_DEPTH    32      /* nesting of a JSON payload */
#define OSM_INGEST_INLINE_BINARY 64     /* binary payloads up to this many bytes go inline as hex */

/* One bridge: where to connect, what to subscribe to, where records go. */
typedef struct osm_ingest_def {
        char *name;
        char *url;                 /* mqtt://HOST[:PORT] or mqtts://HOST[:PORT] */
        char *topics[OSM_INGEST_MAX_TOPICS];
        size_t n_topics;
        char *into;                /* collection prefix, ends with '/' */
        int qos;                   /* 0 or 1 */
        char *username;            /* NULL: none */
        char *password_file;       /* NULL: none; must be 0600 (or stricter) */
        char *ca_file;             /* TLS: CA certificates; implies TLS */
        uint64_t max_payload;      /* bytes; larger payloads are refused and counted */
        bool from_config;          /* an [ingest.NAME] section (not removable by the CLI) */
} osm_ingest_def;

void osm_ingest_def_clear(osm_ingest_def *d);
int osm_ingest_def_copy(osm_ingest_def *dst, const osm_ingest_def *src);

/* Set one key of a definition from text (the [ingest.NAME] keys: broker, topic (repeatable),
 * into, qos, username, password-file, ca-file, max-payload). Returns 0, -ENOENT (unknown key)
 * or -EINVAL with err. */
int osm_ingest_def_set(osm_ingest_def *d, const char *key, const char *value, osm_error *err);
/* Check a complete definition: name, URL, filters, prefix, qos. 0 or -EINVAL with err. */
int osm_ingest_def_check(const osm_ingest_def *d, osm_error *err);

/* As JSON (the Bridge fields of io.osmose.Ingest, without run-time state) and back. */
json_t *osm_ingest_def_json(const osm_ingest_def *d);
int osm_ingest_def_from_json(json_t *o, osm_ingest_def *d, osm_error *err);

bool osm_ingest_name_valid(const char *name);
/* A subscription filter: 1..256 bytes of UTF-8, no NUL, '+' only as a whole level, '#'
 * only as the last whole level (MQTT 3.1.1 §4.7). */
bool osm_ingest_filter_valid(const char *f);

/* Parse mqtt://HOST[:PORT] (1883) or mqtts://HOST[:PORT] (8883); HOST may be [v6].
 * host gets at most hostsz-1 bytes. Returns 0 or -EINVAL. */
int osm_ingest_parse_url(const char *url, char *host, size_t hostsz, uint16_t *port, bool *tls);

/* The collection for a message on topic under prefix (ending in '/'): the topic's levels
 * become segments. Refused (-EINVAL, err) when a level is empty, ".", "..", a wildcard,
 * starts with '$', or has a byte outside [A-Za-z0-9._-], or the name is too long. */
int osm_ingest_collection(const char *prefix, const char *topic, size_t topic_len, char *out,
                          size_t outsz, osm_error *err);

typedef enum osm_ingest_kind {
        OSM_INGEST_BODY,           /* *body is the record body */
        OSM_INGEST_OBJECT,         /* binary: store the payload as an object, then {"object","size"} */
} osm_ingest_kind;

/* Turn a payload into a record body: a JSON object stays as it is; other JSON values and
 * UTF-8 text become {"value": …}; binary up to OSM_INGEST_INLINE_BINARY bytes becomes
 * {"hex": "…"}, longer binary is OSM_INGEST_OBJECT. Refused with -EMSGSIZE (over max),
 * -ELOOP (JSON nested deeper than OSM_INGEST_MAX_DEPTH), err set. *body is new. */
int osm_ingest_payload(const void *payload, size_t len, uint64_t max, osm_ingest_kind *kind,
                       json_t **body, osm_error *err);

/* In-flight file: one line per QoS 1 message handed to the store but not yet acknowledged
 * to the broker: "<time_us> <key: 32 hex> <collection>\n". */
typedef struct osm_ingest_intent {
        int64_t time_us;
        uint8_t key[16];
        char collection[129];
} osm_ingest_intent;

/* The dedup key of a message: BLAKE2b-128 over (topic, packet id, payload). */
void osm_ingest_key(const char *topic, int mid, const void *payload, size_t len, uint8_t key[16]);
/* Format (buf >= 200 bytes) and parse one line (without its '\n'). parse: 0 or -EINVAL. */
size_t osm_ingest_intent_format(const osm_ingest_intent *in, char *buf, size_t size);
int osm_ingest_intent_parse(const char *line, size_t len, osm_ingest_intent *out);

/* [ingest.NAME] sections of osmosed.conf (config.c calls these): set key of bridge name
 * (added on first use, at most 64), deep copy, free, and print for --dump-config. */
int osm_ingest_conf_set(osm_ingest_def **defs, size_t *n, const char *name, const char *key,
                        const char *value, osm_error *err);
int osm_ingest_defs_copy(osm_ingest_def **dst, const osm_ingest_def *src, size_t n);
void osm_ingest_defs_free(osm_ingest_def *defs, size_t n);
void osm_ingest_defs_dump(const osm_ingest_def *defs, size_t n, FILE *out);
