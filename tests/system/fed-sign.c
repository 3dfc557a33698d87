/* fed-sign.c: test helper that builds one federation request by hand, so that system
 * tests can send good, forged, stale, replayed and misdirected requests with curl.
 *
 *   fed-sign KEYFILE RECIPIENT_PUBKEY PATH PLAINTEXT_JSON BODY_OUT [TIME_OFFSET_S] [SIGNER_KEYFILE]
 *
 * Encrypts PLAINTEXT_JSON from KEYFILE's space to RECIPIENT, signs it (with SIGNER_KEYFILE
 * if given, to forge) and prints curl -H lines; the body goes to BODY_OUT. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/federation/fed-proto.h"
#include "osmose/util.h"

int main(int argc, char **argv) {
        if (argc < 6) {
                fprintf(stderr, "usage: fed-sign KEYFILE RECIPIENT_PUBKEY PATH PLAINTEXT BODY_OUT [TIME_OFFSET_S] [SIGNER_KEYFILE]\n");
                return 2;
        }
        osm_crypto_init();
        osm_keypair me = { 0 }, signer = { 0 };
        osm_error why = {};
        if (osm_keypair_load(argv[1], &me, &why) < 0) {
                fprintf(stderr, "fed-sign: %s: %s\n", argv[1], why.message);
                return 1;
        }
        uint8_t to_pk[OSM_PUBKEY_BYTES];
        if (osm_pubkey_decode(argv[2], to_pk) < 0) {
                fprintf(stderr, "fed-sign: bad recipient key\n");
                return 1;
        }
        char to_id[OSM_SPACE_ID_LEN + 1];
        osm_space_id(to_pk, to_id);
        int64_t offset = argc > 6 ? strtoll(argv[6], NULL, 10) : 0;
        if (argc > 7 && osm_keypair_load(argv[7], &signer, &why) < 0) {
                fprintf(stderr, "fed-sign: %s: %s\n", argv[7], why.message);
                return 1;
        }
        uint8_t key[FED_BOX_KEY_BYTES], zero[16] = { 0 };
        fed_box_key(&me, to_pk, key);
        uint8_t *ct;
        size_t ct_len;
        fed_box_seal(key, zero, argv[4], strlen(argv[4]), &ct, &ct_len);
        FILE *f = fopen(argv[5], "w");
        if (!f || fwrite(ct, 1, ct_len, f) != ct_len || fclose(f) != 0) {
                fprintf(stderr, "fed-sign: cannot write %s\n", argv[5]);
                return 1;
        }
        fed_auth a;
        fed_headers_out h;
        fed_auth_sign(&a, &me, "POST", argv[3], to_id, osm_now_real_us() + offset * 1000000, ct, ct_len, &h);
        if (signer.sk) {
                /* Forge: keep the claimed sender, sign with another key. */
                char canon[512];
                size_t n = fed_auth_canonical(&a, canon, sizeof(canon));
                osm_sign(&signer, canon, n, a.sig);
                sodium_bin2base64(h.sig, sizeof(h.sig), a.sig, sizeof(a.sig), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        }
        printf("%s: %s\n%s: %s\n%s: %s\n%s: %s\n%s: %s\n", FED_HDR_FROM, h.from, FED_HDR_TO, h.to,
               FED_HDR_TIME, h.time, FED_HDR_NONCE, h.nonce, FED_HDR_SIG, h.sig);
        free(ct);
        osm_keypair_clear(&me);
        osm_keypair_clear(&signer);
        return 0;
}
