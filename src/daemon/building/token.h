/* token.h: the building join token — base64 (URL-safe) of a small JSON document naming the
 * building, the inviter's addresses and key, a one-time secret and an expiry. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "osmose/identity.h"

#define OSM_TOKEN_MAX_ADDRESSES 8
#define OSM_TOKEN_ADDR_MAX      256
#define OSM_TOKEN_SECRET_BYTES  32
#define OSM_TOKEN_MAX_TEXT      4096
#define OSM_BUILDING_ID_LEN     32   /* hex */

typedef struct osm_token {
        char building[OSM_BUILDING_ID_LEN + 1];
        char name[64];
        char addresses[OSM_TOKEN_MAX_ADDRESSES][OSM_TOKEN_ADDR_MAX];
        size_t n_addresses;
        uint8_t key[OSM_PUBKEY_BYTES];          /* the inviter's identity key: pinned */
        uint8_t secret[OSM_TOKEN_SECRET_BYTES];
        int64_t expires_us;                     /* real time */
} osm_token;

/* Encode into a malloc'd string. Returns NULL on failure. */
char *osm_token_encode(const osm_token *t);
/* Parse text; *why says what is wrong. Returns 0 or -EINVAL. Expiry is not checked here. */
int osm_token_parse(const char *text, osm_token *t, osm_error *err);
/* Wipe a token's secret. */
void osm_token_wipe(osm_token *t);
