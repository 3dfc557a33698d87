/* test-identity.c: key files (mode, corruption, never replaced), ids, signatures, hashes. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "osmose/identity.h"
#include "osmose/util.h"
#include "tap.h"

static char dir[] = "/tmp/osm-id-XXXXXX";

/* A new key in a file of the case's own (each case runs in a process of its own). */
static void new_key(const char *name, char path[static 256], osm_keypair *kp, const char *what) {
        bool created = false;
        osm_error why = {};
        snprintf(path, 256, "%s/%s.key", dir, name);
        TAP_OK(osm_keypair_load_or_create(path, kp, &created, &why) == 0 && created, "%s", what);
}

static void test_key_ids_signatures(void) {
        char path[256];
        osm_keypair kp, kp2;
        bool created;
        osm_error why = {};
        new_key("first", path, &kp, "first start creates the key");
        struct stat st;
        TAP_OK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600 && st.st_size == OSM_SECKEY_BYTES,
               "key file is 0600 and 64 bytes");
        TAP_OK(osm_keypair_load_or_create(path, &kp2, &created, &why) == 0 && !created &&
               memcmp(kp.pk, kp2.pk, OSM_PUBKEY_BYTES) == 0, "second start reuses the key");
        osm_keypair_clear(&kp2);

        char id1[OSM_SPACE_ID_LEN + 1], id2[OSM_SPACE_ID_LEN + 1];
        osm_space_id(kp.pk, id1);
        osm_space_id(kp.pk, id2);
        TAP_OK(strlen(id1) == OSM_SPACE_ID_LEN && strcmp(id1, id2) == 0, "space id is stable, 32 hex chars");

        char b64[OSM_PUBKEY_B64];
        uint8_t pk[OSM_PUBKEY_BYTES];
        osm_pubkey_encode(kp.pk, b64);
        TAP_OK(strlen(b64) == 43 && osm_pubkey_decode(b64, pk) == 0 && memcmp(pk, kp.pk, sizeof pk) == 0,
               "public key text round trip");
        TAP_OK(osm_pubkey_decode("short", pk) == -EINVAL, "bad public key text refused");

        uint8_t sig[OSM_SIG_BYTES];
        osm_sign(&kp, "msg", 3, sig);
        TAP_OK(osm_verify(kp.pk, "msg", 3, sig) == 0, "signature verifies");
        TAP_OK(osm_verify(kp.pk, "msh", 3, sig) == -EBADMSG, "tampered message fails");
        osm_keypair_clear(&kp);
}

static void test_key_file_refusals(void) {
        char path[256];
        osm_keypair kp, kp2;
        bool created;
        osm_error why = {};
        new_key("refusals", path, &kp, "a key to spoil");
        /* wrong mode */
        chmod(path, 0644);
        TAP_OK(osm_keypair_load(path, &kp2, &why) == -EPERM, "group/other-readable key refused");
        TAP_OK(osm_keypair_load_or_create(path, &kp2, &created, &why) == -EPERM, "...and not replaced");
        chmod(path, 0600);
        /* corrupt: flip a bit of the public half */
        int fd = open(path, O_RDWR);
        uint8_t b;
        pread(fd, &b, 1, 40);
        b ^= 1;
        pwrite(fd, &b, 1, 40);
        close(fd);
        TAP_OK(osm_keypair_load(path, &kp2, &why) == -EBADMSG, "corrupt key refused");
        TAP_OK(osm_keypair_load_or_create(path, &kp2, &created, &why) == -EBADMSG, "corrupt key never replaced");
        truncate(path, 10);
        TAP_OK(osm_keypair_load(path, &kp2, &why) == -EBADMSG, "truncated key refused");
        TAP_OK(osm_keypair_save(path, &kp) == -EEXIST, "save refuses to replace an existing file");
        char link[300];
        snprintf(link, sizeof link, "%s/link.key", dir);
        symlink(path, link);
        TAP_OK(osm_keypair_load(link, &kp2, &why) == -ELOOP, "symlinked key refused");
        osm_keypair_clear(&kp);
}

static void test_hashes(void) {
        uint8_t h[OSM_HASH_BYTES];
        char hex[OSM_HASH_HEX];
        crypto_generichash(h, sizeof h, (const uint8_t *) "abc", 3, NULL, 0);
        osm_hash_hex(h, hex);
        uint8_t h2[OSM_HASH_BYTES];
        TAP_OK(osm_hash_parse(hex, h2) == 0 && memcmp(h, h2, sizeof h) == 0, "hash hex round trip");
        TAP_EQ_STR(hex, "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319", "BLAKE2b-256 of abc");
        hex[0] = 'G';
        TAP_OK(osm_hash_parse(hex, h2) == -EINVAL, "non-hex refused");
        TAP_OK(osm_hash_parse("abc", h2) == -EINVAL, "short hash refused");
}

int main(int argc, char **argv) {
        TAP_OK(osm_crypto_init() == 0, "libsodium init");
        if (!mkdtemp(dir)) {
                printf("Bail out! mkdtemp\n");
                return 1;
        }
        static const tap_case cases[] = {
                TAP_CASE(test_key_ids_signatures),
                TAP_CASE(test_key_file_refusals),
                TAP_CASE(test_hashes),
        };
        int r = tap_run(cases, TAP_N_CASES(cases), argc, argv);
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        system(cmd);
        return r;
}
