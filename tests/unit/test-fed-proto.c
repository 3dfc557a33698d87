/* test-fed-proto.c: unit tests of the federation wire protocol: signing, verification,
 * refusals (forged, stale, misdirected, replayed), the nonce cache and payload boxes. */
#include <errno.h>
#include <string.h>

#include "daemon/federation/fed-proto.h"
#include "tap.h"

/* TAP_EQ_INT evaluates its arguments twice: call through this once. */
static void eq(long long got, long long want, const char *what) {
        TAP_EQ_INT(got, want, what);
}

static fed_refusal roundtrip(const fed_headers_out *h, const char *method, const char *path,
                             const void *body, size_t len, const char *me, int64_t now,
                             fed_auth *a) {
        fed_headers in = { h->from, h->to, h->time, h->nonce, h->sig };
        fed_refusal r = fed_auth_parse(method, path, &in, a, NULL);
        if (r != FED_OK)
                return r;
        r = fed_auth_check_envelope(a, me, now, 0);
        if (r != FED_OK)
                return r;
        fed_auth_set_body(a, body, len);
        return fed_auth_check_signature(a);
}

/* Set up by each case (setup()): three keypairs, and a request a signed for b. Not
 * once in main: secret keys are wiped in a forked child (MADV_WIPEONFORK). */
static osm_keypair a, b, evil;
static char a_id[OSM_SPACE_ID_LEN + 1], b_id[OSM_SPACE_ID_LEN + 1];
static const int64_t now = 1800000000000000LL;
static const char body[] = "{\"hello\":1}";
static fed_auth sa;
static fed_headers_out h;
static int sign_result;

static void setup(void) {
        osm_keypair_generate(&a);
        osm_keypair_generate(&b);
        osm_keypair_generate(&evil);
        osm_space_id(a.pk, a_id);
        osm_space_id(b.pk, b_id);
        sign_result = fed_auth_sign(&sa, &a, "POST", "/v1/hello", b_id, now, body, sizeof(body) - 1, &h);
}

static void test_signing(void) {
        setup();
        eq(sign_result, 0, "sign");
        fed_auth ra;
        eq(roundtrip(&h, "POST", "/v1/hello", body, sizeof(body) - 1, b_id, now, &ra), FED_OK, "good request verifies");
        TAP_OK(strcmp(ra.from_id, a_id) == 0, "sender id derived from the key");

        eq(roundtrip(&h, "POST", "/v1/hello", "{\"hello\":2}", 11, b_id, now, &ra), FED_BAD_SIGNATURE, "changed body refused");
        eq(roundtrip(&h, "POST", "/v1/object", body, sizeof(body) - 1, b_id, now, &ra), FED_BAD_SIGNATURE, "changed path refused");
        eq(roundtrip(&h, "PUT", "/v1/hello", body, sizeof(body) - 1, b_id, now, &ra), FED_BAD_SIGNATURE, "changed method refused");
        eq(roundtrip(&h, "POST", "/v1/hello", body, sizeof(body) - 1, a_id, now, &ra), FED_WRONG_RECIPIENT, "request to B refused by A");
        eq(roundtrip(&h, "POST", "/v1/hello", body, sizeof(body) - 1, b_id, now + FED_MAX_SKEW_US + 1, &ra), FED_STALE, "old request is stale");
        eq(roundtrip(&h, "POST", "/v1/hello", body, sizeof(body) - 1, b_id, now - FED_MAX_SKEW_US - 1, &ra), FED_STALE, "future request is stale");
        {
                fed_headers in = { h.from, h.to, h.time, h.nonce, h.sig };
                fed_auth x;
                fed_auth_parse("POST", "/v1/hello", &in, &x, NULL);
                eq(fed_auth_check_envelope(&x, b_id, now, now + 1), FED_STALE, "signed before the listener started: stale");
        }
}

static void test_forgery(void) {
        setup();
        fed_auth ra;
        /* Forged: another key signs but claims a's key. */
        fed_headers_out hf;
        fed_auth sf;
        fed_auth_sign(&sf, &evil, "POST", "/v1/hello", b_id, now, body, sizeof(body) - 1, &hf);
        memcpy(hf.from, h.from, sizeof(hf.from));
        eq(roundtrip(&hf, "POST", "/v1/hello", body, sizeof(body) - 1, b_id, now, &ra), FED_BAD_SIGNATURE, "forged sender refused");

        /* Changed timestamp or nonce invalidates the signature. */
        fed_headers_out ht = h;
        snprintf(ht.time, sizeof(ht.time), "%lld", (long long) now + 1);
        eq(roundtrip(&ht, "POST", "/v1/hello", body, sizeof(body) - 1, b_id, now, &ra), FED_BAD_SIGNATURE, "changed time refused");
        ht = h;
        ht.nonce[0] = ht.nonce[0] == 'a' ? 'b' : 'a';
        eq(roundtrip(&ht, "POST", "/v1/hello", body, sizeof(body) - 1, b_id, now, &ra), FED_BAD_SIGNATURE, "changed nonce refused");
}

static void test_malformed_headers(void) {
        setup();
        fed_auth ra;
        /* Malformed and missing headers. */
        fed_headers in = { h.from, h.to, h.time, h.nonce, NULL };
        osm_error why = {};
        eq(fed_auth_parse("POST", "/v1/hello", &in, &ra, &why), FED_UNSIGNED, "missing signature: unsigned");
        tap_ok(why.kind == FED_UNSIGNED && why.message[0], "…with the refusal as the error's kind and a detail (%s)", why.message);
        in = (fed_headers){ h.from, h.to, "-5", h.nonce, h.sig };
        eq(fed_auth_parse("POST", "/v1/hello", &in, &ra, &why), FED_MALFORMED, "negative time malformed");
        in = (fed_headers){ h.from, h.to, "99999999999999999999", h.nonce, h.sig };
        eq(fed_auth_parse("POST", "/v1/hello", &in, &ra, &why), FED_MALFORMED, "overlong time malformed");
        in = (fed_headers){ "!!", h.to, h.time, h.nonce, h.sig };
        eq(fed_auth_parse("POST", "/v1/hello", &in, &ra, &why), FED_MALFORMED, "bad key malformed");
        in = (fed_headers){ h.from, "ABC", h.time, h.nonce, h.sig };
        eq(fed_auth_parse("POST", "/v1/hello", &in, &ra, &why), FED_MALFORMED, "bad recipient malformed");
        in = (fed_headers){ h.from, h.to, h.time, h.nonce, h.sig };
        eq(fed_auth_parse("POST", "/v1/he llo", &in, &ra, &why), FED_MALFORMED, "space in path malformed");
}

static void test_nonce_cache(void) {
        setup();
        /* Nonce cache. */
        fed_nonce_cache *c = fed_nonce_cache_new(4, 1000);
        uint8_t n[FED_NONCE_BYTES] = { 1 };
        eq(fed_nonce_cache_insert(c, a.pk, n, 0), 0, "first nonce accepted");
        eq(fed_nonce_cache_insert(c, a.pk, n, 10), -EEXIST, "replayed nonce refused");
        TAP_OK(fed_nonce_cache_contains(c, a.pk, n, 10), "contains: a seen nonce");
        TAP_OK(!fed_nonce_cache_contains(c, evil.pk, n, 10), "contains: not the same nonce of another sender");
        eq(fed_nonce_cache_insert(c, b.pk, n, 10), 0, "same nonce from another sender accepted");
        for (int i = 2; i <= 3; i++) {
                n[0] = (uint8_t) i;
                fed_nonce_cache_insert(c, a.pk, n, 20);
        }
        n[0] = 9;
        eq(fed_nonce_cache_insert(c, a.pk, n, 30), -ENOSPC, "full cache refuses instead of forgetting");
        eq(fed_nonce_cache_insert(c, a.pk, n, 1001), 0, "after expiry there is room again");
        n[0] = 1;
        eq(fed_nonce_cache_insert(c, a.pk, n, 1011), 0, "expired nonce forgotten (its timestamp is stale by now)");
        n[0] = 3;
        eq(fed_nonce_cache_insert(c, a.pk, n, 1012), -EEXIST, "live nonce still remembered after deletions");
        fed_nonce_cache_free(c);
}

static void test_nonce_cache_churn(void) {
        setup();
        /* A bigger run exercising the index under churn. */
        fed_nonce_cache *c = fed_nonce_cache_new(1100, 100);
        int bad = 0;
        for (uint64_t t = 0; t < 20000; t++) {
                uint8_t nn[FED_NONCE_BYTES] = { 0 };
                memcpy(nn, &t, sizeof(t));
                if (fed_nonce_cache_insert(c, a.pk, nn, t / 10) != 0)
                        bad++;
                if (t >= 5 && fed_nonce_cache_insert(c, a.pk, (uint8_t[FED_NONCE_BYTES]){ 0 }, t / 10) != -EEXIST && t / 10 < 100)
                        bad++;
        }
        eq(bad, 0, "20000 nonces with expiry: no false accept or refusal");
        fed_nonce_cache_free(c);
}

static void test_boxes(void) {
        setup();
        /* Boxes. */
        uint8_t kab[FED_BOX_KEY_BYTES], kba[FED_BOX_KEY_BYTES], kev[FED_BOX_KEY_BYTES];
        eq(fed_box_key(&a, b.pk, kab), 0, "shared key a->b");
        fed_box_key(&b, a.pk, kba);
        fed_box_key(&evil, b.pk, kev);
        TAP_OK(memcmp(kab, kba, sizeof(kab)) == 0, "both ends derive the same key");
        uint8_t bind[16] = { 0 }, bind2[16];
        fed_box_binding(sa.sig, bind2);
        uint8_t *ct, *pt;
        size_t ctl, ptl;
        eq(fed_box_seal(kab, bind2, "secret", 6, &ct, &ctl), 0, "seal");
        TAP_OK(memmem(ct, ctl, "secret", 6) == NULL, "ciphertext does not contain the plaintext");
        eq(fed_box_open(kba, bind2, ct, ctl, &pt, &ptl), 0, "open");
        TAP_OK(ptl == 6 && memcmp(pt, "secret", 6) == 0, "plaintext round trip");
        free(pt);
        eq(fed_box_open(kba, bind, ct, ctl, &pt, &ptl), -EBADMSG, "response bound to another request refused");
        eq(fed_box_open(kev, bind2, ct, ctl, &pt, &ptl), -EBADMSG, "third party cannot open");
        ct[ctl - 1] ^= 1;
        eq(fed_box_open(kba, bind2, ct, ctl, &pt, &ptl), -EBADMSG, "tampered ciphertext refused");
        eq(fed_box_open(kba, bind2, ct, 10, &pt, &ptl), -EBADMSG, "short ciphertext refused");
        free(ct);
}

static void test_push_payloads(void) {
        setup();
        /* Push payloads. */
        char ok_json[512], other_json[512];
        snprintf(ok_json, sizeof(ok_json), "{\"collection\":\"s/t\",\"records\":[{\"id\":\"%.16s-7\",\"time\":5,\"body\":{}}]}", a_id);
        snprintf(other_json, sizeof(other_json), "{\"collection\":\"s/t\",\"records\":[{\"id\":\"%.16s-7\",\"time\":5,\"body\":{}}]}", b_id);
        json_t *pj = json_loads(ok_json, 0, NULL);
        const char *coll = NULL;
        osm_error why = {};
        eq(fed_push_check(pj, a_id, 10, &coll, &why), FED_OK, "a push of the sender's own record passes");
        TAP_OK(coll && strcmp(coll, "s/t") == 0, "…and names its collection");
        json_decref(pj);
        pj = json_loads(other_json, 0, NULL);
        eq(fed_push_check(pj, a_id, 10, &coll, &why), FED_BAD_PAYLOAD, "a record id of another origin is refused");
        json_decref(pj);
        pj = json_loads("{\"collection\":\"../x\",\"records\":[]}", 0, NULL);
        eq(fed_push_check(pj, a_id, 10, &coll, &why), FED_BAD_PAYLOAD, "a bad collection name is refused");
        json_decref(pj);
        TAP_OK(!fed_id_from_origin("-1", a_id) && !fed_id_from_origin("abc-", a_id) && !fed_id_from_origin("x", a_id),
               "ids without prefix or sequence are refused");
}

int main(int argc, char **argv) {
        osm_crypto_init();

        static const tap_case cases[] = {
                TAP_CASE(test_signing),
                TAP_CASE(test_forgery),
                TAP_CASE(test_malformed_headers),
                TAP_CASE(test_nonce_cache),
                TAP_CASE(test_nonce_cache_churn),
                TAP_CASE(test_boxes),
                TAP_CASE(test_push_payloads),
        };
        return tap_run(cases, TAP_N_CASES(cases), argc, argv);
}
