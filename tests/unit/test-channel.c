/* test-channel.c: the channel document: sign and parse back, tampering, and refusals
 * that name the field. */
#include <stdio.h>
#include <string.h>

#include "osmose/channel.h"
#include "tap.h"

#define ID1 "1111111111111111111111111111111111111111111111111111111111111111"
#define ID2 "2222222222222222222222222222222222222222222222222222222222222222"

/* The parser and append with their message in err (512 bytes), "" after a success. */
static int parse(const char *text, size_t len, osm_channel **out, char *err) {
        osm_error e = {};
        int r = osm_channel_parse(text, len, out, &e);
        snprintf(err, 512, "%s", e.message);
        return r;
}

static int append(osm_channel *c, int64_t version, const char *bundle, uint64_t size, const char *notes, char *err) {
        osm_error e = {};
        int r = osm_channel_append(c, version, bundle, size, notes, &e);
        snprintf(err, 512, "%s", e.message);
        return r;
}

static osm_keypair kp;

/* Sign body text as it is (the way osm_channel_sign frames it) to test the body parser
 * through the full one. */
static char *sign_raw(const char *body) {
        size_t blen = strlen(body);
        size_t mlen = sizeof OSM_CHANNEL_SIG_CONTEXT + blen;
        uint8_t *msg = malloc(mlen), sig[OSM_SIG_BYTES];
        memcpy(msg, OSM_CHANNEL_SIG_CONTEXT, sizeof OSM_CHANNEL_SIG_CONTEXT);
        memcpy(msg + sizeof OSM_CHANNEL_SIG_CONTEXT, body, blen);
        osm_sign(&kp, msg, mlen, sig);
        free(msg);
        char key[OSM_PUBKEY_B64], s[128];
        osm_pubkey_encode(kp.pk, key);
        sodium_bin2base64(s, sizeof s, sig, sizeof sig, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        char *out;
        if (asprintf(&out, "%s%s%s %s\n", body, OSM_CHANNEL_SIG_PREFIX, key, s) < 0)
                abort();
        return out;
}

static void refused(const char *body, const char *want_prefix, const char *what) {
        char *text = sign_raw(body);
        osm_channel *c = NULL;
        char err[512] = "";
        int r = parse(text, strlen(text), &c, err);
        tap_ok(r == -EINVAL && strncmp(err, want_prefix, strlen(want_prefix)) == 0,
               "%s: refused naming %s (got %d: %s)", what, want_prefix, r, err);
        osm_channel_free(c);
        free(text);
}

/* Each case makes its key (a key made before the fork would be wiped in the child). */
static void test_sign_parse_tamper(void) {
        osm_keypair_generate(&kp);
        char err[512];

        int r;
        osm_channel *c = osm_channel_new("counter");
        r = append(c, 1, ID1, 100, "first", err);
        TAP_EQ_INT(r, 0, "append version 1");
        r = append(c, 1, ID2, 100, NULL, err);
        TAP_EQ_INT(r, -EINVAL, "the same version again is refused");
        r = append(c, 2, ID1, 100, NULL, err);
        TAP_EQ_INT(r, -EINVAL, "the same bundle again is refused");
        r = append(c, 3, ID2, 200, NULL, err);
        TAP_EQ_INT(r, 0, "append version 3");
        c->sequence = 5;
        c->expires = 1900000000;
        char *text = NULL;
        size_t len = 0;
        r = osm_channel_sign(c, &kp, &text, &len);
        TAP_EQ_INT(r, 0, "sign");
        osm_channel *p = NULL;
        r = parse(text, len, &p, err);
        TAP_EQ_INT(r, 0, "the signed channel parses");
        if (r == 0) {
                TAP_EQ_STR(p->name, "counter", "name");
                TAP_EQ_INT(p->sequence, 5, "sequence");
                TAP_EQ_INT(p->expires, 1900000000, "expires");
                TAP_EQ_INT(p->n_versions, 2, "two versions");
                TAP_EQ_STR(p->versions[0].notes, "first", "notes");
                TAP_OK(p->versions[1].notes == NULL, "no notes on the second");
                TAP_EQ_INT(p->versions[1].size, 200, "size");
                TAP_OK(memcmp(p->signer, kp.pk, sizeof kp.pk) == 0, "the signer is the key");
                TAP_OK(memcmp(p->digest, c->digest, sizeof c->digest) == 0, "the digest matches the signer's");
                TAP_OK(osm_channel_find(p, 3) == &p->versions[1], "find a version");
                TAP_OK(osm_channel_find(p, 2) == NULL, "a version not listed is not found");
                TAP_OK(osm_channel_find_bundle(p, ID1) == &p->versions[0], "find a bundle");
        }
        osm_channel_free(p);
        p = NULL;

        /* Tampering: any byte of the body, and a signature from another key. */
        char *t2 = strdup(text);
        char *sp = strstr(t2, "\"sequence\": 5");
        TAP_OK(sp != NULL, "the body holds the sequence");
        if (sp)
                sp[12] = '9';
        r = parse(t2, len, &p, err);
        TAP_EQ_INT(r, -EBADMSG, "a changed sequence breaks the signature");
        free(t2);
        t2 = strdup(text);
        char *sig = strstr(t2, OSM_CHANNEL_SIG_PREFIX);
        osm_keypair other;
        osm_keypair_generate(&other);
        char okey[OSM_PUBKEY_B64];
        osm_pubkey_encode(other.pk, okey);
        memcpy(sig + strlen(OSM_CHANNEL_SIG_PREFIX), okey, OSM_PUBKEY_B64 - 1);
        r = parse(t2, len, &p, err);
        TAP_EQ_INT(r, -EBADMSG, "another key's name on the signature does not verify");
        free(t2);
        r = parse(text, len - 1, &p, err);
        TAP_EQ_INT(r, -EINVAL, "without the final newline it is refused");
        r = parse(text, 10, &p, err);
        TAP_EQ_INT(r, -EINVAL, "a truncated file is refused");
        osm_keypair_clear(&other);
        free(text);
        osm_channel_free(c);
        osm_keypair_clear(&kp);
}

static void test_body_refusals(void) {
        osm_keypair_generate(&kp);
        char err[512];
        int r;
        osm_channel *p = NULL;
        /* The body's refusals. */
        const char *h = "{\"format\":\"osmose-channel-v1\",\"name\":\"n\",\"sequence\":1,";
        char b[4096];
        snprintf(b, sizeof b, "%s\"versions\":[]}\n", h);
        char *ok = sign_raw(b);
        r = parse(ok, strlen(ok), &p, err);
        TAP_EQ_INT(r, 0, "an empty list of versions parses");
        osm_channel_free(p);
        p = NULL;
        free(ok);
        refused("{\"format\":\"osmose-channel-v2\",\"name\":\"n\",\"sequence\":1,\"versions\":[]}\n", "format", "another format");
        refused("{\"format\":\"osmose-channel-v1\",\"name\":\"a/b\",\"sequence\":1,\"versions\":[]}\n", "name", "a name with a slash");
        refused("{\"format\":\"osmose-channel-v1\",\"name\":\"n\",\"sequence\":0,\"versions\":[]}\n", "sequence", "sequence 0");
        refused("{\"format\":\"osmose-channel-v1\",\"name\":\"n\",\"sequence\":9007199254740993,\"versions\":[]}\n", "sequence", "sequence above 2^53");
        refused("{\"format\":\"osmose-channel-v1\",\"name\":\"n\",\"versions\":[]}\n", "channel", "no sequence");
        refused("{\"format\":\"osmose-channel-v1\",\"name\":\"n\",\"sequence\":1,\"versions\":[],\"x\":1}\n", "channel: unknown field", "an unknown field");
        refused("{\"format\":\"osmose-channel-v1\",\"name\":\"n\",\"sequence\":1,\"sequence\":2,\"versions\":[]}\n", "channel: not valid JSON", "a duplicated key");
        snprintf(b, sizeof b, "%s\"versions\":[{\"version\":2,\"bundle\":\"%s\",\"size\":1},{\"version\":2,\"bundle\":\"%s\",\"size\":1}]}\n", h, ID1, ID2);
        refused(b, "versions[1].version", "versions not increasing");
        snprintf(b, sizeof b, "%s\"versions\":[{\"version\":1,\"bundle\":\"%s\",\"size\":1},{\"version\":2,\"bundle\":\"%s\",\"size\":1}]}\n", h, ID1, ID1);
        refused(b, "versions[1].bundle", "a bundle listed twice");
        snprintf(b, sizeof b, "%s\"versions\":[{\"version\":1,\"bundle\":\"%.63sA\",\"size\":1}]}\n", h, ID1);
        refused(b, "versions[0].bundle", "an upper-case hex id");
        snprintf(b, sizeof b, "%s\"versions\":[{\"version\":1,\"bundle\":\"%s\",\"size\":0}]}\n", h, ID1);
        refused(b, "versions[0].size", "size 0");
        snprintf(b, sizeof b, "%s\"versions\":[{\"version\":1,\"bundle\":\"%s\",\"size\":1,\"notes\":\"a\\nb\"}]}\n", h, ID1);
        refused(b, "versions[0].notes", "notes with a newline");
        snprintf(b, sizeof b, "%s\"versions\":[{\"version\":1,\"bundle\":\"%s\"}]}\n", h, ID1);
        refused(b, "versions[0]", "an entry without a size");
        snprintf(b, sizeof b, "%s\"versions\":[{\"version\":1,\"bundle\":\"%s\",\"size\":1,\"url\":\"x\"}]}\n", h, ID1);
        refused(b, "versions[0]: unknown field", "an unknown field in an entry");
        /* More than the limit of versions. */
        size_t cap = 200 * (OSM_CHANNEL_MAX_VERSIONS + 2);
        char *big = malloc(cap);
        size_t off = (size_t) snprintf(big, cap, "%s\"versions\":[", h);
        for (int i = 0; i <= OSM_CHANNEL_MAX_VERSIONS; i++)
                off += (size_t) snprintf(big + off, cap - off, "%s{\"version\":%d,\"bundle\":\"%064x\",\"size\":1}",
                                         i ? "," : "", i + 1, i);
        snprintf(big + off, cap - off, "]}\n");
        refused(big, "versions: more than", "more than the limit of versions");
        free(big);
        osm_keypair_clear(&kp);
}

int main(int argc, char **argv) {
        osm_crypto_init();
        static const tap_case cases[] = {
                TAP_CASE(test_sign_parse_tamper),
                TAP_CASE(test_body_refusals),
        };
        return tap_run(cases, TAP_N_CASES(cases), argc, argv);
}
