/* identity.c: Ed25519 keypairs on disk (0600, checked, never silently replaced), the space
 * id, public-key text form, signatures and BLAKE2b-256 hashes, all through libsodium. */
#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "osmose/identity.h"
#include "osmose/util.h"

int osm_crypto_init(void) {
        return sodium_init() < 0 ? -EIO : 0;
}

void *osm_secret_alloc(size_t size) {
        uint8_t *p = sodium_malloc(size);
        if (!p)
                return NULL;
        long page = sysconf(_SC_PAGESIZE);
        uintptr_t start = (uintptr_t) p & ~((uintptr_t) page - 1);
        uintptr_t end = ((uintptr_t) p + size + (uintptr_t) page - 1) & ~((uintptr_t) page - 1);
        /* Best effort: kernels before 4.14 do not know MADV_WIPEONFORK. */
        (void) madvise((void *) start, end - start, MADV_WIPEONFORK);
        return p;
}

static int alloc_sk(osm_keypair *kp) {
        kp->sk = osm_secret_alloc(OSM_SECKEY_BYTES);
        return kp->sk ? 0 : -ENOMEM;
}

int osm_keypair_generate(osm_keypair *kp) {
        memset(kp, 0, sizeof *kp);
        if (alloc_sk(kp) < 0)
                return -ENOMEM;
        crypto_sign_keypair(kp->pk, kp->sk);
        return 0;
}

void osm_keypair_clear(osm_keypair *kp) {
        if (kp->sk)
                sodium_free(kp->sk);   /* sodium_free wipes before unmapping */
        memset(kp, 0, sizeof *kp);
}

int osm_keypair_load(const char *path, osm_keypair *kp, osm_error *err) {
        memset(kp, 0, sizeof *kp);
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (fd < 0) {
                int r = -errno;
                return osm_error_set(err, r, 0, "%s",
                                     r == -ENOENT  ? "key file does not exist"
                                     : r == -ELOOP ? "key file is a symbolic link"
                                                   : "cannot open key file");
        }
        struct stat st;
        if (fstat(fd, &st) < 0)
                return osm_error_set(err, -errno, 0, "cannot stat key file");
        if (!S_ISREG(st.st_mode))
                return osm_error_set(err, -EBADMSG, 0, "key file is not a regular file");
        if (st.st_uid != geteuid())
                return osm_error_set(err, -EPERM, 0, "key file is owned by another user");
        if (st.st_mode & 077)
                return osm_error_set(err, -EPERM, 0, "key file is readable or writable by group or others (must be 0600)");
        if (st.st_size != OSM_SECKEY_BYTES)
                return osm_error_set(err, -EBADMSG, 0, "key file has the wrong size (corrupt?)");
        int r = alloc_sk(kp);
        if (r < 0)
                return osm_error_set(err, r, 0, "out of memory");
        r = osm_read_all(fd, kp->sk, OSM_SECKEY_BYTES);
        if (r < 0) {
                osm_keypair_clear(kp);
                return osm_error_set(err, r, 0, "cannot read key file");
        }
        /* The secret key is seed || public key: recompute the public key from the seed
         * and compare, so that a flipped bit anywhere is caught. */
        uint8_t pk[OSM_PUBKEY_BYTES];
        uint8_t *sk2 = osm_secret_alloc(OSM_SECKEY_BYTES);
        if (!sk2) {
                osm_keypair_clear(kp);
                return osm_error_set(err, -ENOMEM, 0, "out of memory");
        }
        crypto_sign_seed_keypair(pk, sk2, kp->sk);
        sodium_free(sk2);
        if (sodium_memcmp(pk, kp->sk + crypto_sign_SEEDBYTES, OSM_PUBKEY_BYTES) != 0) {
                osm_keypair_clear(kp);
                return osm_error_set(err, -EBADMSG, 0, "key file is corrupt (public key does not match the seed)");
        }
        memcpy(kp->pk, pk, sizeof pk);
        return 0;
}

int osm_keypair_save(const char *path, const osm_keypair *kp) {
        /* Never replaces a key; after a power cut there is either no key (the next start
         * makes one) or the whole key. */
        return osm_write_file_new(path, kp->sk, OSM_SECKEY_BYTES, 0600);
}

int osm_keypair_load_or_create(const char *path, osm_keypair *kp, bool *created, osm_error *err) {
        *created = false;
        int r = osm_keypair_load(path, kp, err);
        if (r != -ENOENT)
                return r;
        r = osm_keypair_generate(kp);
        if (r < 0)
                return osm_error_set(err, r, 0, "out of memory");
        r = osm_keypair_save(path, kp);
        if (r < 0) {
                osm_keypair_clear(kp);
                return osm_error_set(err, r, 0, "cannot write key file");
        }
        *created = true;
        return 0;
}

void osm_space_id(const uint8_t pk[OSM_PUBKEY_BYTES], char out[OSM_SPACE_ID_LEN + 1]) {
        static const char ctx[] = "osmose-space-id";
        uint8_t h[OSM_HASH_BYTES];
        crypto_generichash_state st;
        crypto_generichash_init(&st, NULL, 0, sizeof h);
        crypto_generichash_update(&st, (const uint8_t *) ctx, sizeof ctx - 1);
        crypto_generichash_update(&st, pk, OSM_PUBKEY_BYTES);
        crypto_generichash_final(&st, h, sizeof h);
        sodium_bin2hex(out, OSM_SPACE_ID_LEN + 1, h, OSM_SPACE_ID_LEN / 2);
}

void osm_pubkey_encode(const uint8_t pk[OSM_PUBKEY_BYTES], char out[OSM_PUBKEY_B64]) {
        sodium_bin2base64(out, OSM_PUBKEY_B64, pk, OSM_PUBKEY_BYTES,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

int osm_pubkey_decode(const char *s, uint8_t pk[OSM_PUBKEY_BYTES]) {
        size_t len;
        const char *end;
        if (!s || strlen(s) != OSM_PUBKEY_B64 - 1)
                return -EINVAL;
        if (sodium_base642bin(pk, OSM_PUBKEY_BYTES, s, strlen(s), NULL, &len, &end,
                              sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
            len != OSM_PUBKEY_BYTES || *end)
                return -EINVAL;
        return 0;
}

void osm_sign(const osm_keypair *kp, const void *msg, size_t len, uint8_t sig[OSM_SIG_BYTES]) {
        crypto_sign_detached(sig, NULL, msg, len, kp->sk);
}

int osm_verify(const uint8_t pk[OSM_PUBKEY_BYTES], const void *msg, size_t len,
               const uint8_t sig[OSM_SIG_BYTES]) {
        return crypto_sign_verify_detached(sig, msg, len, pk) == 0 ? 0 : -EBADMSG;
}

void osm_hash_hex(const uint8_t h[OSM_HASH_BYTES], char out[OSM_HASH_HEX]) {
        sodium_bin2hex(out, OSM_HASH_HEX, h, OSM_HASH_BYTES);
}

int osm_hash_parse(const char *s, uint8_t h[OSM_HASH_BYTES]) {
        size_t len;
        const char *end;
        if (!s || strlen(s) != OSM_HASH_BYTES * 2)
                return -EINVAL;
        for (const char *p = s; *p; p++)
                if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
                        return -EINVAL;   /* lowercase only: one name per object */
        if (sodium_hex2bin(h, OSM_HASH_BYTES, s, strlen(s), NULL, &len, &end) != 0 || len != OSM_HASH_BYTES)
                return -EINVAL;
        return 0;
}
