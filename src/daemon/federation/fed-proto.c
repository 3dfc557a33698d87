/* fed-proto.c: signed federation requests (canonical form, parsing, verification), the
 * replay cache and payload encryption. Pure functions: no I/O, no logging. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fed-proto.h"
#include "osmose/util.h"

static const struct {
        const char *name;
        unsigned http;
} refusals[_FED_REFUSAL_MAX] = {
        [FED_OK]              = { "ok", 200 },
        [FED_UNSIGNED]        = { "unsigned", 401 },
        [FED_MALFORMED]       = { "malformed", 400 },
        [FED_WRONG_RECIPIENT] = { "wrong-recipient", 403 },
        [FED_STALE]           = { "stale", 401 },
        [FED_UNKNOWN_KEY]     = { "unknown-key", 403 },
        [FED_BAD_SIGNATURE]   = { "bad-signature", 401 },
        [FED_REPLAYED]        = { "replayed", 401 },
        [FED_RATE_LIMITED]    = { "rate-limited", 429 },
        [FED_TOO_LARGE]       = { "too-large", 413 },
        [FED_BAD_PAYLOAD]     = { "bad-payload", 400 },
        [FED_NOT_FOUND]       = { "not-found", 404 },
        [FED_BUSY]            = { "busy", 503 },
        [FED_INTERNAL]        = { "internal", 500 },
};

const char *fed_refusal_name(fed_refusal r) {
        if ((unsigned) r >= _FED_REFUSAL_MAX)
                return "internal";
        return refusals[r].name;
}

unsigned fed_refusal_http(fed_refusal r) {
        if ((unsigned) r >= _FED_REFUSAL_MAX)
                return 500;
        return refusals[r].http;
}

static bool is_lower_hex(const char *s, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return false;
        return s[n] == '\0';
}

/* A refusal with its detail: err gets -EBADMSG, the refusal as its kind, and why. */
static fed_refusal refuse(osm_error *err, fed_refusal r, const char *why) {
        osm_error_set(err, -EBADMSG, (int) r, "%s", why);
        return r;
}

fed_refusal fed_auth_parse(const char *method, const char *path, const fed_headers *h,
                           fed_auth *out, osm_error *err) {
        memset(out, 0, sizeof(*out));
        if (!h->from || !h->to || !h->time || !h->nonce || !h->sig) {
                return refuse(err, FED_UNSIGNED, "missing signature headers");
        }
        if (!method || strlen(method) >= sizeof(out->method) || !path ||
            strlen(path) >= sizeof(out->path) || path[0] != '/') {
                return refuse(err, FED_MALFORMED, "bad method or path");
        }
        for (const char *p = path; *p; p++)
                if (*p <= ' ' || *p >= 0x7f) {
                        return refuse(err, FED_MALFORMED, "bad path");
                }
        strcpy(out->method, method);
        strcpy(out->path, path);

        if (osm_pubkey_decode(h->from, out->from_pk) < 0) {
                return refuse(err, FED_MALFORMED, "bad " FED_HDR_FROM);
        }
        osm_space_id(out->from_pk, out->from_id);

        if (strlen(h->to) != OSM_SPACE_ID_LEN || !is_lower_hex(h->to, OSM_SPACE_ID_LEN)) {
                return refuse(err, FED_MALFORMED, "bad " FED_HDR_TO);
        }
        memcpy(out->to_id, h->to, OSM_SPACE_ID_LEN + 1);

        /* Digits only: no sign, no spaces, at most 18 of them so it cannot overflow. */
        size_t tl = strlen(h->time);
        if (tl == 0 || tl > 18 || strspn(h->time, "0123456789") != tl) {
                return refuse(err, FED_MALFORMED, "bad " FED_HDR_TIME);
        }
        out->time_us = strtoll(h->time, NULL, 10);

        if (strlen(h->nonce) != FED_NONCE_HEX - 1 || !is_lower_hex(h->nonce, FED_NONCE_HEX - 1) ||
            sodium_hex2bin(out->nonce, sizeof(out->nonce), h->nonce, FED_NONCE_HEX - 1,
                           NULL, NULL, NULL) != 0) {
                return refuse(err, FED_MALFORMED, "bad " FED_HDR_NONCE);
        }

        size_t siglen = 0;
        const char *end = NULL;
        if (strlen(h->sig) != FED_SIG_B64 - 1 ||
            sodium_base642bin(out->sig, sizeof(out->sig), h->sig, strlen(h->sig), NULL, &siglen,
                              &end, sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
            siglen != OSM_SIG_BYTES || *end != '\0') {
                return refuse(err, FED_MALFORMED, "bad " FED_HDR_SIG);
        }
        return FED_OK;
}

void fed_auth_set_body(fed_auth *a, const void *body, size_t len) {
        crypto_generichash(a->body_hash, sizeof(a->body_hash), body, len, NULL, 0);
}

size_t fed_auth_canonical(const fed_auth *a, char *buf, size_t size) {
        char hash[OSM_HASH_HEX], nonce[FED_NONCE_HEX];
        osm_hash_hex(a->body_hash, hash);
        sodium_bin2hex(nonce, sizeof(nonce), a->nonce, sizeof(a->nonce));
        int n = snprintf(buf, size, FED_PROTO "\n%s\n%s\n%s\n%" PRId64 "\n%s\n%s\n%s\n",
                         a->method, a->path, hash, a->time_us, nonce, a->from_id, a->to_id);
        if (n < 0 || (size_t) n >= size)
                return 0;
        return (size_t) n;
}

fed_refusal fed_auth_check_envelope(const fed_auth *a, const char *my_id, int64_t now_us,
                                    int64_t not_before_us) {
        if (strcmp(a->to_id, my_id) != 0)
                return FED_WRONG_RECIPIENT;
        if (a->time_us < now_us - FED_MAX_SKEW_US || a->time_us > now_us + FED_MAX_SKEW_US)
                return FED_STALE;
        if (a->time_us < not_before_us)
                return FED_STALE;
        return FED_OK;
}

fed_refusal fed_auth_check_signature(const fed_auth *a) {
        char buf[512];
        size_t n = fed_auth_canonical(a, buf, sizeof(buf));
        if (n == 0)
                return FED_MALFORMED;
        if (osm_verify(a->from_pk, buf, n, a->sig) < 0)
                return FED_BAD_SIGNATURE;
        return FED_OK;
}

int fed_auth_sign(fed_auth *a, const osm_keypair *kp, const char *method, const char *path,
                  const char *to_id, int64_t now_us, const void *body, size_t len,
                  fed_headers_out *h) {
        memset(a, 0, sizeof(*a));
        if (strlen(method) >= sizeof(a->method) || strlen(path) >= sizeof(a->path) ||
            strlen(to_id) != OSM_SPACE_ID_LEN)
                return -EINVAL;
        strcpy(a->method, method);
        strcpy(a->path, path);
        memcpy(a->to_id, to_id, OSM_SPACE_ID_LEN + 1);
        a->time_us = now_us;
        randombytes_buf(a->nonce, sizeof(a->nonce));
        memcpy(a->from_pk, kp->pk, OSM_PUBKEY_BYTES);
        osm_space_id(a->from_pk, a->from_id);
        fed_auth_set_body(a, body, len);

        char buf[512];
        size_t n = fed_auth_canonical(a, buf, sizeof(buf));
        if (n == 0)
                return -EINVAL;
        osm_sign(kp, buf, n, a->sig);

        osm_pubkey_encode(a->from_pk, h->from);
        memcpy(h->to, a->to_id, sizeof(h->to));
        snprintf(h->time, sizeof(h->time), "%" PRId64, a->time_us);
        sodium_bin2hex(h->nonce, sizeof(h->nonce), a->nonce, sizeof(a->nonce));
        sodium_bin2base64(h->sig, sizeof(h->sig), a->sig, sizeof(a->sig),
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        return 0;
}

/* --- nonce cache ---
 * Entries are kept in a ring in arrival order; since every entry lives the same ttl,
 * arrival order is expiry order, so expiring is popping the ring's tail. Lookups go
 * through an open-addressing index (linear probing, backward-shift deletion) over the
 * ring slots. Hand-written because no Debian C library offers a bounded expiring set and
 * this one is 80 lines. */
typedef struct nonce_entry {
        uint8_t key[16];          /* BLAKE2b-128(pk || nonce) */
        uint64_t expires_us;
} nonce_entry;

struct fed_nonce_cache {
        nonce_entry *ring;
        size_t capacity, head, count;   /* oldest at head, count live */
        uint32_t *index;                /* ring slot + 1; 0 = empty */
        size_t index_size;              /* power of two, >= 2 * capacity */
        uint64_t ttl_us;
        uint8_t hash_key[crypto_shorthash_KEYBYTES];
};

fed_nonce_cache *fed_nonce_cache_new(size_t capacity, uint64_t ttl_us) {
        if (capacity == 0 || capacity > (1u << 24))
                return NULL;
        fed_nonce_cache *c = calloc(1, sizeof(*c));
        if (!c)
                return NULL;
        c->capacity = capacity;
        c->ttl_us = ttl_us;
        c->index_size = 16;
        while (c->index_size < capacity * 2)
                c->index_size <<= 1;
        c->ring = calloc(capacity, sizeof(*c->ring));
        c->index = calloc(c->index_size, sizeof(*c->index));
        if (!c->ring || !c->index)
                return fed_nonce_cache_free(c);
        /* A keyed index hash so that a peer cannot choose nonces that collide. */
        crypto_shorthash_keygen(c->hash_key);
        return c;
}

fed_nonce_cache *fed_nonce_cache_free(fed_nonce_cache *c) {
        if (!c)
                return NULL;
        free(c->ring);
        free(c->index);
        free(c);
        return NULL;
}

size_t fed_nonce_cache_size(const fed_nonce_cache *c) {
        return c->count;
}

static size_t nonce_slot(const fed_nonce_cache *c, const uint8_t key[16]) {
        uint8_t h[crypto_shorthash_BYTES];
        crypto_shorthash(h, key, 16, c->hash_key);
        uint64_t v;
        memcpy(&v, h, sizeof(v));
        return (size_t) (v & (c->index_size - 1));
}

static void nonce_index_remove(fed_nonce_cache *c, size_t ring_slot) {
        size_t mask = c->index_size - 1;
        size_t i = nonce_slot(c, c->ring[ring_slot].key);
        while (c->index[i] != ring_slot + 1) {
                if (c->index[i] == 0)
                        return; /* not indexed: cannot happen */
                i = (i + 1) & mask;
        }
        /* Backward-shift deletion keeps every probe chain unbroken. */
        size_t j = i;
        for (;;) {
                c->index[i] = 0;
                for (;;) {
                        j = (j + 1) & mask;
                        if (c->index[j] == 0)
                                return;
                        size_t k = nonce_slot(c, c->ring[c->index[j] - 1].key);
                        /* Move j back to i unless its home k lies cyclically in (i, j]. */
                        if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
                                continue;
                        break;
                }
                c->index[i] = c->index[j];
                i = j;
        }
}

static void nonce_expire(fed_nonce_cache *c, uint64_t now_us) {
        while (c->count > 0 && c->ring[c->head].expires_us <= now_us) {
                nonce_index_remove(c, c->head);
                c->head = (c->head + 1) % c->capacity;
                c->count--;
        }
}

static void nonce_key(const uint8_t pk[OSM_PUBKEY_BYTES], const uint8_t nonce[FED_NONCE_BYTES],
                      uint8_t key[16]) {
        crypto_generichash_state st;
        crypto_generichash_init(&st, NULL, 0, 16);
        crypto_generichash_update(&st, pk, OSM_PUBKEY_BYTES);
        crypto_generichash_update(&st, nonce, FED_NONCE_BYTES);
        crypto_generichash_final(&st, key, 16);
}

/* The index position holding key, or of the empty slot where it would go. */
static size_t nonce_find(const fed_nonce_cache *c, const uint8_t key[16], bool *found) {
        size_t mask = c->index_size - 1;
        size_t i = nonce_slot(c, key);
        *found = false;
        while (c->index[i] != 0) {
                if (memcmp(c->ring[c->index[i] - 1].key, key, 16) == 0) {
                        *found = true;
                        break;
                }
                i = (i + 1) & mask;
        }
        return i;
}

bool fed_nonce_cache_contains(fed_nonce_cache *c, const uint8_t pk[OSM_PUBKEY_BYTES],
                              const uint8_t nonce[FED_NONCE_BYTES], uint64_t mono_us) {
        if (!c)
                return false;
        uint8_t key[16];
        nonce_key(pk, nonce, key);
        nonce_expire(c, mono_us);
        bool found;
        nonce_find(c, key, &found);
        return found;
}

int fed_nonce_cache_insert(fed_nonce_cache *c, const uint8_t pk[OSM_PUBKEY_BYTES],
                           const uint8_t nonce[FED_NONCE_BYTES], uint64_t mono_us) {
        uint8_t key[16];
        nonce_key(pk, nonce, key);
        nonce_expire(c, mono_us);
        bool found;
        size_t i = nonce_find(c, key, &found);
        if (found)
                return -EEXIST;
        if (c->count == c->capacity)
                return -ENOSPC;
        size_t slot = (c->head + c->count) % c->capacity;
        memcpy(c->ring[slot].key, key, sizeof(key));
        c->ring[slot].expires_us = mono_us + c->ttl_us;
        c->index[i] = (uint32_t) slot + 1;
        c->count++;
        return 0;
}

/* --- payload encryption --- */
int fed_box_key(const osm_keypair *me, const uint8_t peer_pk[OSM_PUBKEY_BYTES],
                uint8_t key[FED_BOX_KEY_BYTES]) {
        uint8_t peer_x[crypto_box_PUBLICKEYBYTES], my_x[crypto_box_SECRETKEYBYTES];
        int r = -EINVAL;
        if (crypto_sign_ed25519_pk_to_curve25519(peer_x, peer_pk) != 0)
                goto out;
        if (crypto_sign_ed25519_sk_to_curve25519(my_x, me->sk) != 0)
                goto out;
        if (crypto_box_beforenm(key, peer_x, my_x) != 0)
                goto out;
        r = 0;
out:
        sodium_memzero(my_x, sizeof(my_x));
        return r;
}

void fed_box_binding(const uint8_t sig[OSM_SIG_BYTES], uint8_t binding[16]) {
        crypto_generichash(binding, 16, sig, OSM_SIG_BYTES, NULL, 0);
}

int fed_box_seal(const uint8_t key[FED_BOX_KEY_BYTES], const uint8_t binding[16],
                 const void *pt, size_t len, uint8_t **out, size_t *out_len) {
        if (len > FED_MAX_BODY)
                return -E2BIG;
        size_t inner = 16 + len;
        size_t total = crypto_box_NONCEBYTES + crypto_box_MACBYTES + inner;
        uint8_t *buf = malloc(total + inner);
        if (!buf)
                return -ENOMEM;
        uint8_t *plain = buf + total;   /* scratch for binding || pt */
        memcpy(plain, binding, 16);
        if (len > 0)
                memcpy(plain + 16, pt, len);
        randombytes_buf(buf, crypto_box_NONCEBYTES);
        crypto_box_easy_afternm(buf + crypto_box_NONCEBYTES, plain, inner, buf, key);
        sodium_memzero(plain, inner);
        *out = buf;
        *out_len = total;
        return 0;
}

int fed_box_open(const uint8_t key[FED_BOX_KEY_BYTES], const uint8_t binding[16],
                 const void *ct, size_t len, uint8_t **out, size_t *out_len) {
        const uint8_t *c = ct;
        if (len < crypto_box_NONCEBYTES + crypto_box_MACBYTES + 16)
                return -EBADMSG;
        size_t inner = len - crypto_box_NONCEBYTES - crypto_box_MACBYTES;
        uint8_t *plain = malloc(inner + 1);
        if (!plain)
                return -ENOMEM;
        if (crypto_box_open_easy_afternm(plain, c + crypto_box_NONCEBYTES,
                                         len - crypto_box_NONCEBYTES, c, key) != 0 ||
            sodium_memcmp(plain, binding, 16) != 0) {
                free(plain);
                return -EBADMSG;
        }
        memmove(plain, plain + 16, inner - 16);
        plain[inner - 16] = '\0';
        *out = plain;
        *out_len = inner - 16;
        return 0;
}

bool fed_id_from_origin(const char *id, const char *origin_id) {
        const char *dash = strrchr(id, '-');
        if (!dash || dash == id || dash[1] == '\0')
                return false;
        size_t pl = (size_t) (dash - id);
        return pl <= OSM_SPACE_ID_LEN && strlen(origin_id) >= pl && strncmp(id, origin_id, pl) == 0;
}

fed_refusal fed_push_check(json_t *j, const char *origin_id, size_t max_records,
                           const char **collection, osm_error *err) {
        const char *coll = json_string_value(json_object_get(j, "collection"));
        json_t *recs = json_object_get(j, "records");
        if (!coll || !osm_name_valid(coll, FED_MAX_COLLECTION, true)) {
                return refuse(err, FED_BAD_PAYLOAD, "records: bad collection name");
        }
        if (!json_is_array(recs) || json_array_size(recs) == 0 || json_array_size(recs) > max_records) {
                return refuse(err, FED_BAD_PAYLOAD, "records: not a list of 1 to 5000 records");
        }
        size_t i;
        json_t *rec;
        json_array_foreach(recs, i, rec) {
                const char *id = json_string_value(json_object_get(rec, "id"));
                json_t *t = json_object_get(rec, "time");
                if (!id || strlen(id) > FED_MAX_RECORD_ID || !fed_id_from_origin(id, origin_id)) {
                        return refuse(err, FED_BAD_PAYLOAD, "records: a record id is not one of the sender's");
                }
                if (!json_is_integer(t) || json_integer_value(t) <= 0 || !json_object_get(rec, "body")) {
                        return refuse(err, FED_BAD_PAYLOAD, "records: a record lacks a valid time or body");
                }
        }
        *collection = coll;
        return FED_OK;
}
