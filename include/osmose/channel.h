/* channel.h: the software channel document — a publisher-signed, ordered list of versions
 * of one workload, each naming an immutable bundle by its id. Shared by the daemon (which
 * follows channels) and osmosectl (which publishes them). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "osmose/error.h"
#include "osmose/identity.h"
#include "osmose/util.h"

/* The file NAME.channel (UTF-8 text):
 *
 *   BODY                                  one JSON object, any layout, ending in "\n"
 *   osmose-channel-signature KEY SIG\n    the last line
 *
 * KEY is the publisher's Ed25519 public key and SIG the Ed25519 signature over
 * "osmose-channel-sig-v1\0" || BODY (the exact bytes), both URL-safe base64 without
 * padding. Signing the bytes as they are needs no canonical JSON, and the signature is
 * checked before the body is parsed at all. The body (strict: unknown fields refused):
 *
 *   { "format": "osmose-channel-v1",
 *     "name": "counter",            the channel (and workload) name
 *     "sequence": 7,                1 .. 2^53, strictly increasing with every signing
 *     "published": 1767225600,      optional, seconds since the epoch
 *     "expires": 1767830400,        optional, seconds since the epoch
 *     "versions": [ { "version": 1, "bundle": "<64 hex>", "size": 12345, "notes": "…" }, … ] }
 *
 * versions are strictly increasing and each bundle id appears once; the bundle is
 * served beside the channel as bundles/<id>. */

#define OSM_CHANNEL_FORMAT        "osmose-channel-v1"
#define OSM_CHANNEL_SIG_CONTEXT   "osmose-channel-sig-v1"
#define OSM_CHANNEL_SIG_PREFIX    "osmose-channel-signature "
#define OSM_CHANNEL_MAX_SIZE      (1024u * 1024u)   /* bytes of the whole file */
#define OSM_CHANNEL_MAX_VERSIONS  1024
#define OSM_CHANNEL_MAX_NOTES     1024
#define OSM_CHANNEL_MAX_NAME      48                /* as a workload name */
#define OSM_CHANNEL_MAX_SEQUENCE  (1LL << 53)
#define OSM_CHANNEL_MAX_BUNDLE    (1ull << 50)      /* bytes */
#define OSM_CHANNEL_MAX_TIME      (1LL << 40)       /* seconds: year 36812 */

typedef struct osm_channel_version {
        int64_t version;              /* 1 .. 2^53, as in the manifest */
        char bundle[OSM_HASH_HEX];    /* the bundle id, lowercase hex */
        uint64_t size;                /* bytes of the bundle file */
        char *notes;                  /* NULL when none */
} osm_channel_version;

typedef struct osm_channel {
        char *name;
        int64_t sequence;
        int64_t published, expires;   /* seconds since the epoch; 0 when absent */
        osm_channel_version *versions;
        size_t n_versions;
        uint8_t signer[OSM_PUBKEY_BYTES];
        uint8_t digest[OSM_HASH_BYTES];   /* BLAKE2b-256 of the whole file: tells a replay */
} osm_channel;

/* Parse a channel file of len bytes: the signature line first, the signature checked
 * against the key it names (not whether that key is trusted: the caller decides), then
 * the body, strictly. Returns 0, -EBADMSG (the signature does not match: tampered),
 * -EINVAL (malformed; err names the field), or -ENOMEM. */
int osm_channel_parse(const char *text, size_t len, osm_channel **out, osm_error *err);

/* Parse only a body (no signature; signer and digest left zero). For the publisher and
 * the fuzzer; same errors as above. */
int osm_channel_parse_body(const char *body, size_t len, osm_channel **out, osm_error *err);

/* Write c as a signed channel file (body indented JSON, then the signature line) signed
 * with kp; c->signer and c->digest are set to match. *out is malloc'd. c must be valid
 * (what osm_channel_check accepts). Returns 0, -EINVAL, or -ENOMEM. */
int osm_channel_sign(osm_channel *c, const osm_keypair *kp, char **out, size_t *out_len);

/* The checks of the parser on a channel built in memory (limits, order). */
int osm_channel_check(const osm_channel *c, osm_error *err);

/* Append a version (copying notes). Returns 0, -EINVAL (not higher than the last, a
 * bundle already listed, or over a limit; err says which) or -ENOMEM. */
int osm_channel_append(osm_channel *c, int64_t version, const char *bundle_hex, uint64_t size,
                       const char *notes, osm_error *err);

/* The entry of a version, the newest entry, or NULL. */
const osm_channel_version *osm_channel_find(const osm_channel *c, int64_t version);
const osm_channel_version *osm_channel_find_bundle(const osm_channel *c, const char *bundle_hex);

/* A list of publisher keys separated by spaces or commas (NULL or empty: none): are they
 * all keys, and is pk one of them? */
bool osm_channel_keys_ok(const char *list);
bool osm_channel_key_listed(const char *list, const uint8_t pk[OSM_PUBKEY_BYTES]);

osm_channel *osm_channel_new(const char *name);
osm_channel *osm_channel_free(osm_channel *c);
OSM_DEFINE_CLEANUP(osm_channel *, osm_channel_free)
#define _cleanup_channel_ _cleanup_(osm_channel_freep)
