/* token.c: encoding and parsing the join token (see token.h). Parsing takes text from
 * whoever pastes it: every field is bounded and checked. */
#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "daemon/building/token.h"
#include "osmose/util.h"

#define VARIANT sodium_base64_VARIANT_URLSAFE_NO_PADDING

static bool hex32(const char *s) {
        if (!s || strlen(s) != OSM_BUILDING_ID_LEN)
                return false;
        for (const char *p = s; *p; p++)
                if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
                        return false;
        return true;
}

char *osm_token_encode(const osm_token *t) {
        char pk[OSM_PUBKEY_B64], secret[sodium_base64_ENCODED_LEN(OSM_TOKEN_SECRET_BYTES, VARIANT)];
        osm_pubkey_encode(t->key, pk);
        sodium_bin2base64(secret, sizeof secret, t->secret, sizeof t->secret, VARIANT);
        json_t *addrs = json_array();
        for (size_t i = 0; i < t->n_addresses; i++)
                json_array_append_new(addrs, json_string(t->addresses[i]));
        json_t *o = json_pack("{s:i,s:s,s:s,s:o,s:s,s:s,s:I}", "v", 1, "building", t->building, "name", t->name,
                              "addresses", addrs, "key", pk, "secret", secret, "expires", (json_int_t) t->expires_us);
        sodium_memzero(secret, sizeof secret);
        char *js = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        json_decref(o);
        if (!js)
                return NULL;
        size_t n = strlen(js), size = sodium_base64_ENCODED_LEN(n, VARIANT);
        char *out = malloc(size);
        if (out)
                sodium_bin2base64(out, size, (const unsigned char *) js, n, VARIANT);
        sodium_memzero(js, n);
        free(js);
        return out;
}

int osm_token_parse(const char *text, osm_token *t, osm_error *err) {
        memset(t, 0, sizeof *t);
        size_t len = text ? strlen(text) : 0;
        while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' ' || text[len - 1] == '\r'))
                len--;
        if (len == 0 || len > OSM_TOKEN_MAX_TEXT)
                return osm_error_set(err, -EINVAL, 0, "a join token is 1 to 4096 characters of base64");
        unsigned char buf[OSM_TOKEN_MAX_TEXT];
        size_t n = 0;
        if (sodium_base642bin(buf, sizeof buf, text, len, NULL, &n, NULL, VARIANT) != 0)
                return osm_error_set(err, -EINVAL, 0, "not base64");
        json_error_t e;
        json_t *o = json_loadb((const char *) buf, n, JSON_REJECT_DUPLICATES, &e);
        sodium_memzero(buf, sizeof buf);
        int rc = -EINVAL;
        json_int_t v = 0, expires = 0;
        const char *building = NULL, *name = NULL, *key = NULL, *secret = NULL;
        json_t *addrs = NULL;
        if (!o || json_unpack(o, "{s:I,s:s,s:s,s:o,s:s,s:s,s:I}", "v", &v, "building", &building, "name", &name,
                              "addresses", &addrs, "key", &key, "secret", &secret, "expires", &expires) != 0) {
                osm_error_set(err, rc, 0, "not a join token (fields missing or of the wrong type)");
                goto out;
        }
        if (v != 1) {
                osm_error_set(err, rc, 0, "a join token of an unknown version");
                goto out;
        }
        if (!hex32(building)) {
                osm_error_set(err, rc, 0, "the building id is not 32 hex digits");
                goto out;
        }
        if (strlen(name) >= sizeof t->name) {
                osm_error_set(err, rc, 0, "the building name is too long");
                goto out;
        }
        if (!json_is_array(addrs) || json_array_size(addrs) < 1 || json_array_size(addrs) > OSM_TOKEN_MAX_ADDRESSES) {
                osm_error_set(err, rc, 0, "a join token names 1 to 8 addresses");
                goto out;
        }
        for (size_t i = 0; i < json_array_size(addrs); i++) {
                const char *a = json_string_value(json_array_get(addrs, i));
                const char *colon = a ? strrchr(a, ':') : NULL;
                uint64_t port;
                if (!a || strlen(a) >= OSM_TOKEN_ADDR_MAX || !colon || colon == a ||
                    osm_parse_u64(colon + 1, &port) < 0 || port < 1 || port > 65535) {
                        osm_error_set(err, rc, 0, "an address is not HOST:PORT");
                        goto out;
                }
                for (const char *p = a; *p; p++)
                        if ((unsigned char) *p <= ' ' || *p == 0x7f) {
                                osm_error_set(err, rc, 0, "an address has a control character or a space");
                                goto out;
                        }
                strcpy(t->addresses[i], a);
        }
        t->n_addresses = json_array_size(addrs);
        if (osm_pubkey_decode(key, t->key) < 0) {
                osm_error_set(err, rc, 0, "the inviter key is not a public key");
                goto out;
        }
        size_t sl = 0;
        if (sodium_base642bin(t->secret, sizeof t->secret, secret, strlen(secret), NULL, &sl, NULL, VARIANT) != 0 ||
            sl != OSM_TOKEN_SECRET_BYTES) {
                osm_error_set(err, rc, 0, "the secret is not 32 bytes of base64");
                goto out;
        }
        if (expires <= 0) {
                osm_error_set(err, rc, 0, "the expiry is not a time");
                goto out;
        }
        strcpy(t->building, building);
        strcpy(t->name, name);
        t->expires_us = expires;
        rc = 0;
out:
        if (o) {
                /* the secret's text lives in the JSON tree: wipe it before freeing */
                json_t *s = json_object_get(o, "secret");
                if (json_is_string(s))
                        sodium_memzero((char *) json_string_value(s), json_string_length(s));
                json_decref(o);
        }
        if (rc < 0)
                osm_token_wipe(t);
        return rc;
}

void osm_token_wipe(osm_token *t) {
        sodium_memzero(t->secret, sizeof t->secret);
}
