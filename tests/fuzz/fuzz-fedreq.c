/* fuzz-fedreq.c: everything a federation server does with a request before acting on it:
 * header parsing, the envelope checks, the signature, the replay cache, decryption and
 * the check of a pushed record list. Input: seven lines (method, path, and the From, To,
 * Time, Nonce and Signature headers; "-" for an absent one), then the body. The
 * receiver's and the sender's keys are fixed so that seeds can carry valid signatures. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/federation/fed-proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_NOW 1800000000000000LL   /* the seeds are signed for this time */

static osm_keypair receiver, sender;
static char receiver_id[OSM_SPACE_ID_LEN + 1];
static fed_nonce_cache *nonces;

static void init(void) {
        static bool done;
        if (done)
                return;
        done = true;
        osm_crypto_init();
        uint8_t seed[crypto_sign_SEEDBYTES];
        receiver.sk = sodium_malloc(OSM_SECKEY_BYTES);
        sender.sk = sodium_malloc(OSM_SECKEY_BYTES);
        memset(seed, 1, sizeof(seed));
        crypto_sign_seed_keypair(receiver.pk, receiver.sk, seed);
        memset(seed, 2, sizeof(seed));
        crypto_sign_seed_keypair(sender.pk, sender.sk, seed);
        osm_space_id(receiver.pk, receiver_id);
        nonces = fed_nonce_cache_new(1024, 1000);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        init();
        char *lines[7] = { 0 };
        size_t off = 0;
        int n = 0;
        for (; n < 7 && off < size; n++) {
                const uint8_t *nl = memchr(data + off, '\n', size - off);
                size_t len = nl ? (size_t) (nl - (data + off)) : size - off;
                lines[n] = strndup((const char *) data + off, len);
                off += len + (nl ? 1 : 0);
        }
        const uint8_t *body = data + off;
        size_t body_len = size - off;
        if (n < 7)
                goto out;
        const char *v[7];
        for (int i = 0; i < 7; i++)
                v[i] = strcmp(lines[i], "-") == 0 ? NULL : lines[i];
        fed_headers h = { v[2], v[3], v[4], v[5], v[6] };
        fed_auth a;
        osm_error why;
        if (fed_auth_parse(v[0], v[1], &h, &a, &why) != FED_OK)
                goto out;
        if (fed_auth_check_envelope(&a, receiver_id, FUZZ_NOW, 0) != FED_OK)
                goto out;
        fed_auth_set_body(&a, body, body_len);
        if (fed_auth_check_signature(&a) != FED_OK)
                goto out;
        /* A fresh clock each run: the cache sees many nonces but never fills up. */
        static uint64_t mono;
        mono += 2000;
        if (fed_nonce_cache_insert(nonces, a.from_pk, a.nonce, mono) != 0)
                goto out;
        uint8_t key[FED_BOX_KEY_BYTES], zero[16] = { 0 };
        if (fed_box_key(&receiver, a.from_pk, key) < 0)
                goto out;
        uint8_t *pt = NULL;
        size_t pt_len = 0;
        if (fed_box_open(key, zero, body, body_len, &pt, &pt_len) == 0) {
                json_error_t jerr;
                json_t *j = json_loadb((const char *) pt, pt_len, JSON_REJECT_DUPLICATES, &jerr);
                const char *coll;
                if (j)
                        fed_push_check(j, a.from_id, 5000, &coll, &why);
                json_decref(j);
                free(pt);
        }
out:
        for (int i = 0; i < 7; i++)
                free(lines[i]);
        return 0;
}
