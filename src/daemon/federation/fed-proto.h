/* fed-proto.h: the federation wire protocol: signed request headers, their canonical form,
 * verification, the nonce cache, and payload encryption between paired spaces. No I/O, no
 * logging: everything here is pure so that it can be fuzzed and unit-tested. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "osmose/error.h"
#include "osmose/identity.h"

#define FED_PROTO          "osmose-fed-v1"
#define FED_HDR_FROM       "X-Osmose-From"        /* sender's public key, URL-safe base64 */
#define FED_HDR_TO         "X-Osmose-To"          /* recipient's space id (32 hex) */
#define FED_HDR_TIME       "X-Osmose-Time"        /* sender's clock, µs since the epoch */
#define FED_HDR_NONCE      "X-Osmose-Nonce"       /* 16 random bytes, 32 lowercase hex */
#define FED_HDR_SIG        "X-Osmose-Signature"   /* Ed25519 signature, URL-safe base64 */

#define FED_NONCE_BYTES    16
#define FED_NONCE_HEX      (FED_NONCE_BYTES * 2 + 1)
#define FED_SIG_B64        (sodium_base64_ENCODED_LEN(OSM_SIG_BYTES, sodium_base64_VARIANT_URLSAFE_NO_PADDING))
#define FED_MAX_PATH       128

/* The request types, by path (fed-serve.c's table maps each to its handler). */
#define FED_PATH_HELLO     "/v1/hello"     /* {space_id, name} → {space_id, name, time} */
#define FED_PATH_RECORDS   "/v1/records"   /* a push of records → {accepted, duplicates, rejected} */
#define FED_PATH_OBJECT    "/v1/object"    /* {hash} → the object's bytes */
#define FED_PATH_CHANNEL   "/v1/channel"   /* {channel} → the channel's signed list */
#define FED_PATH_CHANNEL_BUNDLE "/v1/channel-bundle"   /* {channel, bundle} → a bundle it lists */
#define FED_MAX_SKEW_US    (300LL * 1000000LL)    /* timestamps further than 5 min away are stale */
#define FED_MAX_BODY       (8u * 1024u * 1024u)   /* bytes in one request or response body */

/* Why a request was refused; each has a stable name sent back to the caller. */
typedef enum fed_refusal {
        FED_OK = 0,
        FED_UNSIGNED,          /* a signature header is missing */
        FED_MALFORMED,         /* a header is present but cannot be parsed */
        FED_WRONG_RECIPIENT,   /* signed for another space */
        FED_STALE,             /* timestamp outside the window */
        FED_UNKNOWN_KEY,       /* sender not paired */
        FED_BAD_SIGNATURE,
        FED_REPLAYED,          /* nonce seen before inside the window */
        FED_RATE_LIMITED,
        FED_TOO_LARGE,
        FED_BAD_PAYLOAD,       /* decryption or payload parsing failed */
        FED_NOT_FOUND,
        FED_BUSY,
        FED_INTERNAL,
        _FED_REFUSAL_MAX,
} fed_refusal;

const char *fed_refusal_name(fed_refusal r);
/* The HTTP status that goes with a refusal. */
unsigned fed_refusal_http(fed_refusal r);

/* The authenticated envelope of one request. */
typedef struct fed_auth {
        char method[8];
        char path[FED_MAX_PATH];
        uint8_t body_hash[OSM_HASH_BYTES];
        int64_t time_us;
        uint8_t nonce[FED_NONCE_BYTES];
        uint8_t from_pk[OSM_PUBKEY_BYTES];
        char from_id[OSM_SPACE_ID_LEN + 1];
        char to_id[OSM_SPACE_ID_LEN + 1];
        uint8_t sig[OSM_SIG_BYTES];
} fed_auth;

/* Header values as received (any may be NULL when absent). */
typedef struct fed_headers {
        const char *from, *to, *time, *nonce, *sig;
} fed_headers;

/* Header values to send, NUL-terminated. */
typedef struct fed_headers_out {
        char from[OSM_PUBKEY_B64];
        char to[OSM_SPACE_ID_LEN + 1];
        char time[24];
        char nonce[FED_NONCE_HEX];
        char sig[FED_SIG_B64];
} fed_headers_out;

/* Parse method, path and the signature headers into *out (body hash not yet set).
 * Returns FED_OK, FED_UNSIGNED (a header missing) or FED_MALFORMED; err (may be NULL)
 * then names the problem in a few words, with the refusal as its kind. (The checks of
 * this file return the refusal, the protocol's own verdict, rather than an errno.) */
fed_refusal fed_auth_parse(const char *method, const char *path, const fed_headers *h,
                           fed_auth *out, osm_error *err);

/* Hash the body into a->body_hash. */
void fed_auth_set_body(fed_auth *a, const void *body, size_t len);

/* The canonical bytes that are signed: protocol, method, path, body hash, time, nonce,
 * sender id and recipient id, one per line. Returns the length written (< size) or 0 if
 * buf is too small. 512 bytes always suffice. */
size_t fed_auth_canonical(const fed_auth *a, char *buf, size_t size);

/* Cheap checks done before the body is read: addressed to my_id, timestamp within
 * [now - skew, now + skew] and not before not_before_us (the time the listener started:
 * the nonce cache lives in memory, so a request signed before it cannot have been seen). */
fed_refusal fed_auth_check_envelope(const fed_auth *a, const char *my_id, int64_t now_us,
                                    int64_t not_before_us);

/* Check the signature over the canonical form (after fed_auth_set_body). */
fed_refusal fed_auth_check_signature(const fed_auth *a);

/* Fill a for an outgoing request: time, fresh nonce, sender from kp, recipient to_id,
 * body hash, and sign. Then format the headers into *h. */
int fed_auth_sign(fed_auth *a, const osm_keypair *kp, const char *method, const char *path,
                  const char *to_id, int64_t now_us, const void *body, size_t len,
                  fed_headers_out *h);

/* --- nonce cache: bounded, time-windowed set of (sender, nonce) --- */
typedef struct fed_nonce_cache fed_nonce_cache;

/* capacity: most entries kept; an entry lives ttl_us (twice the skew window covers every
 * timestamp that can still pass the envelope check). */
fed_nonce_cache *fed_nonce_cache_new(size_t capacity, uint64_t ttl_us);
fed_nonce_cache *fed_nonce_cache_free(fed_nonce_cache *c);
/* Insert (pk, nonce) seen at mono_us. Returns 0 if new, -EEXIST if seen inside its
 * lifetime, -ENOSPC if the cache is full of live entries (refuse rather than forget:
 * forgetting a live nonce would open a replay). */
int fed_nonce_cache_insert(fed_nonce_cache *c, const uint8_t pk[OSM_PUBKEY_BYTES],
                           const uint8_t nonce[FED_NONCE_BYTES], uint64_t mono_us);
/* Has (pk, nonce) been seen inside its lifetime? Does not insert. */
bool fed_nonce_cache_contains(fed_nonce_cache *c, const uint8_t pk[OSM_PUBKEY_BYTES],
                              const uint8_t nonce[FED_NONCE_BYTES], uint64_t mono_us);
size_t fed_nonce_cache_size(const fed_nonce_cache *c);

/* --- payload encryption ---
 * Why crypto_box over plain HTTP rather than TLS: both ends already hold each other's
 * Ed25519 key from pairing, so converting them to X25519 gives an authenticated,
 * confidential channel pinned by construction — no CA, no certificates to rotate, and a
 * captured body is useless to anyone but the two spaces. Headers (keys, ids, time, nonce,
 * signature) stay readable; they carry no room data. */
#define FED_BOX_KEY_BYTES  crypto_box_BEFORENMBYTES
#define FED_BOX_OVERHEAD   (crypto_box_NONCEBYTES + crypto_box_MACBYTES + 16)

/* The shared key between my keypair and a peer's Ed25519 public key. 0 or -EINVAL. */
int fed_box_key(const osm_keypair *me, const uint8_t peer_pk[OSM_PUBKEY_BYTES],
                uint8_t key[FED_BOX_KEY_BYTES]);
/* Seal pt: out = nonce(24) || box(binding(16) || pt). binding ties a response to the
 * request it answers (the first 16 bytes of BLAKE2b of the request signature); requests
 * use a binding of zeros. *out is malloc'd. 0 or -ENOMEM/-E2BIG. */
int fed_box_seal(const uint8_t key[FED_BOX_KEY_BYTES], const uint8_t binding[16],
                 const void *pt, size_t len, uint8_t **out, size_t *out_len);
/* Open what fed_box_seal made and check its binding. *out is malloc'd (NUL-terminated
 * for convenience, not counted). 0, -EBADMSG, -ENOMEM. */
int fed_box_open(const uint8_t key[FED_BOX_KEY_BYTES], const uint8_t binding[16],
                 const void *ct, size_t len, uint8_t **out, size_t *out_len);
/* The binding of a response to the request with signature sig. */
void fed_box_binding(const uint8_t sig[OSM_SIG_BYTES], uint8_t binding[16]);

/* --- payloads --- */
#define FED_MAX_COLLECTION 128   /* as the store's OSM_STORE_MAX_NAME */
#define FED_MAX_RECORD_ID  64    /* as the store's OSM_STORE_MAX_ID */

/* Is id one of origin_id's records? The store's ids are "<prefix of the origin's space
 * id>-<sequence>", so a remote can only send ids under its own prefix and cannot collide
 * with another space's records. */
bool fed_id_from_origin(const char *id, const char *origin_id);

/* Check a push {collection, records: [{id, time, body}, …]} from origin_id before anything
 * is stored: a valid collection name, 1..max_records records, each with an id of the
 * origin, a positive integer time and a body. FED_OK (and *collection, borrowed from j) or
 * FED_BAD_PAYLOAD with err saying why. */
fed_refusal fed_push_check(json_t *j, const char *origin_id, size_t max_records,
                           const char **collection, osm_error *err);
