/* identity.h: Ed25519 keypairs (space identity, publisher keys), ids and signatures via libsodium. */
#pragma once

#include <sodium.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "osmose/error.h"

#define OSM_PUBKEY_BYTES   crypto_sign_PUBLICKEYBYTES   /* 32 */
#define OSM_SECKEY_BYTES   crypto_sign_SECRETKEYBYTES   /* 64: seed + public key */
#define OSM_SIG_BYTES      crypto_sign_BYTES            /* 64 */
#define OSM_HASH_BYTES     32                           /* BLAKE2b-256 */
#define OSM_HASH_HEX       (OSM_HASH_BYTES * 2 + 1)
#define OSM_SPACE_ID_LEN   32                           /* hex chars, without NUL */
/* Public keys travel as unpadded URL-safe base64: 43 characters. */
#define OSM_PUBKEY_B64     (sodium_base64_ENCODED_LEN(OSM_PUBKEY_BYTES, sodium_base64_VARIANT_URLSAFE_NO_PADDING))

typedef struct osm_keypair {
        uint8_t pk[OSM_PUBKEY_BYTES];
        uint8_t *sk;        /* OSM_SECKEY_BYTES in sodium_malloc'd (guarded, locked) memory */
} osm_keypair;

/* Memory for a secret: sodium_malloc (guard pages, locked, wiped on sodium_free) and
 * MADV_WIPEONFORK, so that a process forked without exec (a sandbox's init is one)
 * sees zeros there instead of the daemon's keys. Free with sodium_free. */
void *osm_secret_alloc(size_t size);

/* sodium_init once; returns 0 or -EIO. */
int osm_crypto_init(void);

/* Generate a new keypair. Returns 0 or -ENOMEM. */
int osm_keypair_generate(osm_keypair *kp);
/* Wipe and free the secret part. Safe on a zeroed struct. */
void osm_keypair_clear(osm_keypair *kp);

/* Load a key file: exactly 64 bytes, mode no wider than 0600, owned by the caller's uid,
 * the embedded public key consistent with the seed. Errors: -ENOENT (missing), -EPERM
 * (wrong mode/owner), -EBADMSG (corrupt), other -errno. err (see error.h) explains in one line. */
int osm_keypair_load(const char *path, osm_keypair *kp, osm_error *err);
/* Write a key file with mode 0600 atomically; refuses to replace an existing file (-EEXIST). */
int osm_keypair_save(const char *path, const osm_keypair *kp);
/* Load path, or create it if missing. *created tells which. */
int osm_keypair_load_or_create(const char *path, osm_keypair *kp, bool *created, osm_error *err);

/* The space id: lowercase hex of the first 16 bytes of BLAKE2b-256("osmose-space-id" || pk). */
void osm_space_id(const uint8_t pk[OSM_PUBKEY_BYTES], char out[OSM_SPACE_ID_LEN + 1]);

/* Public key <-> text (URL-safe base64 without padding). decode returns 0 or -EINVAL. */
void osm_pubkey_encode(const uint8_t pk[OSM_PUBKEY_BYTES], char out[OSM_PUBKEY_B64]);
int osm_pubkey_decode(const char *s, uint8_t pk[OSM_PUBKEY_BYTES]);

/* Detached signatures. verify returns 0 or -EBADMSG. */
void osm_sign(const osm_keypair *kp, const void *msg, size_t len, uint8_t sig[OSM_SIG_BYTES]);
int osm_verify(const uint8_t pk[OSM_PUBKEY_BYTES], const void *msg, size_t len,
               const uint8_t sig[OSM_SIG_BYTES]);

/* BLAKE2b-256 as lowercase hex; parse returns 0 or -EINVAL (not 64 hex chars). */
void osm_hash_hex(const uint8_t h[OSM_HASH_BYTES], char out[OSM_HASH_HEX]);
int osm_hash_parse(const char *s, uint8_t h[OSM_HASH_BYTES]);
