/* txt.h: DNS-SD TXT records from the LAN turned into bounded, valid JSON, and the
 * _osmose._tcp record (id, name, v) read and checked. Pure functions: no Avahi, no I/O. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "osmose/error.h"
#include "osmose/identity.h"

/* Limits on what one TXT record may cost us (RFC 6763 §6: a record is a list of
 * length-prefixed strings of at most 255 bytes; keys are printable ASCII without '='
 * and case-insensitive; only the first occurrence of a key counts). */
#define OSM_TXT_MAX_ITEMS      256     /* strings looked at; the rest are ignored */
#define OSM_TXT_MAX_KEYS       64      /* keys kept */
#define OSM_TXT_MAX_KEY_LEN    64      /* longer keys are invalid (RFC 6763 suggests <= 9) */
#define OSM_TXT_MAX_BYTES      2048    /* key + value bytes kept in all */

/* Problems found while reading a record (a bit set). */
enum {
        OSM_TXT_TRUNCATED   = 1 << 0,   /* more items, keys or bytes than the limits */
        OSM_TXT_DUPLICATE   = 1 << 1,   /* a key appeared again (ignored) */
        OSM_TXT_INVALID_KEY = 1 << 2,   /* empty, too long, or not printable ASCII */
        OSM_TXT_BINARY      = 1 << 3,   /* a value that is not UTF-8 text (kept as hex) */
};

/* One string of a TXT record, in wire order. */
typedef struct osm_txt_item {
        const uint8_t *data;
        size_t len;
} osm_txt_item;

/* Turn items into a JSON object {key: value}: keys lowercased; a key without '=' maps to
 * true, "key=" to "", a text value to its string, any other value to {"hex": "…"}.
 * Never fails on content (bad items are skipped and flagged in *issues); returns 0, or
 * -ENOMEM. *out is a new reference. */
int osm_txt_to_json(const osm_txt_item *items, size_t n, json_t **out, unsigned *issues);

/* The same for a record in DNS wire format (a sequence of length-prefixed strings).
 * A length byte running past the end truncates the record (flagged). */
int osm_txt_wire_to_json(const uint8_t *buf, size_t len, json_t **out, unsigned *issues);

/* Names of the bits in issues, as a JSON array of strings (new reference, NULL on ENOMEM). */
json_t *osm_txt_issues_json(unsigned issues);

/* What an _osmose._tcp record announces. */
#define OSM_PEER_NAME_MAX 63
typedef struct osm_peer_txt {
        char id[OSM_SPACE_ID_LEN + 1];
        char name[OSM_PEER_NAME_MAX + 1];   /* "" if absent */
        unsigned version;
} osm_peer_txt;

/* Read the keys of an _osmose._tcp record from txt (as made by osm_txt_to_json): "id"
 * must be a space id (32 lowercase hex), "v" a decimal protocol version 1..65535, "name"
 * (optional) UTF-8 text of at most 63 bytes. Returns 0, or -EINVAL with err set. */
int osm_peer_txt_parse(json_t *txt, osm_peer_txt *out, osm_error *err);

/* Is s a space id: exactly 32 lowercase hex digits? (s may be NULL) */
bool osm_space_id_valid(const char *s);

/* Is s (len bytes) valid UTF-8 without control characters? */
bool osm_txt_is_text(const uint8_t *s, size_t len);

/* Copy s into dst (size bytes, NUL-terminated), cut at a UTF-8 character boundary so
 * that it fits. Returns the length written. */
size_t osm_utf8_truncate(char *dst, size_t size, const char *s);
