/* fuzz-channel.c: the channel document parser — the whole signed file, and the body on
 * its own (signed here with a fixed key, so mutations reach the JSON checks too). */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "osmose/channel.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static osm_keypair kp;

static void same(const osm_channel *a, const osm_channel *b) {
        if (strcmp(a->name, b->name) != 0 || a->sequence != b->sequence || a->expires != b->expires ||
            a->published != b->published || a->n_versions != b->n_versions)
                __builtin_trap();
        for (size_t i = 0; i < a->n_versions; i++) {
                const osm_channel_version *x = &a->versions[i], *y = &b->versions[i];
                if (x->version != y->version || x->size != y->size || strcmp(x->bundle, y->bundle) != 0 ||
                    !x->notes != !y->notes || (x->notes && strcmp(x->notes, y->notes) != 0))
                        __builtin_trap();
                if (osm_channel_find(a, x->version) != x || osm_channel_find_bundle(a, x->bundle) != x)
                        __builtin_trap();
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (!kp.sk) {
                uint8_t seed[crypto_sign_SEEDBYTES] = { 7 };
                if (sodium_init() < 0 || !(kp.sk = sodium_malloc(OSM_SECKEY_BYTES)))
                        __builtin_trap();
                crypto_sign_seed_keypair(kp.pk, kp.sk, seed);
        }
        osm_error err = {};
        osm_channel *c = NULL;
        int r = osm_channel_parse((const char *) data, size, &c, &err);
        if (r == 0) {
                if (osm_channel_check(c, &err) != 0)
                        __builtin_trap();   /* what parses passes the publisher's checks */
                osm_channel_free(c);
        } else if (!err.message[0])
                __builtin_trap();   /* every refusal says why */

        c = NULL;
        err = (osm_error) {};
        r = osm_channel_parse_body((const char *) data, size, &c, &err);
        if (r == 0) {
                /* Signed and parsed again: the same channel, the signer and digest set. */
                char *text = NULL;
                size_t len = 0;
                if (osm_channel_sign(c, &kp, &text, &len) != 0)
                        __builtin_trap();
                osm_channel *c2 = NULL;
                if (osm_channel_parse(text, len, &c2, &err) != 0)
                        __builtin_trap();
                same(c, c2);
                if (memcmp(c2->signer, kp.pk, sizeof kp.pk) != 0 || memcmp(c->digest, c2->digest, sizeof c->digest) != 0)
                        __builtin_trap();
                /* One flipped byte in the body breaks the signature. */
                text[1] ^= 1;
                osm_channel *c3 = NULL;
                if (osm_channel_parse(text, len, &c3, &err) == 0)
                        __builtin_trap();
                osm_channel_free(c2);
                free(text);
                osm_channel_free(c);
        } else if (!err.message[0] && r != -ENOMEM)
                __builtin_trap();
        return 0;
}
