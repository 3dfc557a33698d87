/* bundle.h: the workload bundle file — build, sign, verify, and hardened unpacking. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "osmose/identity.h"

/* The file format (version 1). All integers little-endian.
 *
 *   header (112 bytes, not hashed):
 *     magic    8   "OSMBNDL1"
 *     flags    4   bit 0: signed; every other bit must be 0
 *     reserved 4   0
 *     pubkey  32   the publisher's Ed25519 public key (all zero when unsigned)
 *     sig     64   Ed25519 over "osmose-bundle-sig-v1\0" || id (all zero when unsigned)
 *   body (hashed):
 *     manifest_len 4, manifest  (the manifest.json bytes exactly as written, ≤ 64 KiB)
 *     has_rootfs   1            (0 or 1)
 *     n_entries    4            (0 when has_rootfs is 0)
 *     entries, each:
 *       type     1   'd' directory, 'f' file, 'x' executable file, 'l' symlink
 *       path_len 2, path        relative to rootfs/, see below
 *       size     8, data        file contents, or the symlink target; 0 for a directory
 *   and nothing after the last entry.
 *
 *   id = BLAKE2b-256("osmose-bundle-v1\0" || body): one hash over the manifest and the
 *   tree, computed while the body streams by. The body is canonical by construction —
 *   entries strictly sorted by path (bytewise), no owners, times or modes beyond the
 *   executable bit — so the same DIR always gives the same id, and the reader refuses
 *   anything out of order, duplicated, or otherwise non-canonical.
 *
 * Paths: 1..OSM_BUNDLE_MAX_PATH bytes, '/'-separated segments of printable characters,
 * no empty, "." or ".." segment, no leading '/', at most OSM_BUNDLE_MAX_DEPTH segments;
 * every entry's parent must be an earlier directory entry (so nothing is ever written
 * through a symlink). Top-level names the sandbox mounts over (proc, dev, sys, tmp,
 * run, data) may only be directories. No devices, fifos, sockets, hardlinks, setuid or
 * setgid bits: the format has no way to say them.
 *
 * Why not tar through libarchive: the id must be a hash of a canonical encoding, and tar
 * has many encodings of one tree (pax/gnu headers, owners, times, order), so we would
 * still have to define and check a canonical form; and the reader handles hostile input
 * before anything else, where a 40-line format of four entry types is a far smaller
 * surface than a library that speaks dozens of archive and compression formats. */

#define OSM_BUNDLE_MAGIC         "OSMBNDL1"
#define OSM_BUNDLE_HEADER_SIZE   112
#define OSM_BUNDLE_FLAG_SIGNED   1u
#define OSM_BUNDLE_MAX_PATH      1024
#define OSM_BUNDLE_MAX_LINK      1024
#define OSM_BUNDLE_MAX_DEPTH     32
#define OSM_BUNDLE_MAX_ENTRIES   65536
#define OSM_BUNDLE_DEFAULT_MAX_SIZE (512ull * 1024 * 1024)

typedef struct osm_bundle_info {
        bool is_signed;
        uint8_t pubkey[OSM_PUBKEY_BYTES];
        uint8_t sig[OSM_SIG_BYTES];
        uint8_t id[OSM_HASH_BYTES];
        uint64_t size;              /* of the whole file */
} osm_bundle_info;

/* Pack dir (its manifest.json and optional rootfs/) into out_fd (a seekable file,
 * written from offset 0), signing with kp when not NULL. Fills *info. On error returns
 * negative errno and one line in err naming the file or field at fault. */
int osm_bundle_build(const char *dir, int out_fd, const osm_keypair *kp, osm_bundle_info *info,
                     osm_error *err);

/* Copy a bundle from src_fd (read sequentially: a pipe or socket works) into dst_fd (a
 * private file the caller made, written from its current offset), hashing the body on
 * the way. Refuses more than max_size bytes (-EFBIG), a bad header (-EBADMSG). Fills
 * *info; it does not judge the signature. */
int osm_bundle_copy(int src_fd, int dst_fd, uint64_t max_size, osm_bundle_info *info,
                    osm_error *err);

/* Check info->sig over info->id with info->pubkey: 0, -EBADMSG (bad signature), or
 * -ENOKEY (unsigned). */
int osm_bundle_verify_signature(const osm_bundle_info *info);

/* Read the body of the bundle in fd (a private copy; read with pread from offset 0):
 * check the header and the whole structure, and — if dirfd >= 0 — unpack the tree into
 * the empty directory dirfd as it goes (openat relative to dirfd, O_NOFOLLOW, O_EXCL:
 * nothing outside it is touched). Files become 0644 or 0755, directories 0755.
 * On success *manifest (malloc'd, NUL-terminated, *manifest_len bytes) holds the
 * manifest text and *has_rootfs tells if there was a tree. The caller should verify
 * the signature of this very file first. Errors: -EBADMSG with one line in err. */
int osm_bundle_unpack(int fd, int dirfd, char **manifest, size_t *manifest_len, bool *has_rootfs,
                      osm_error *err);

/* The signed message for an id: "osmose-bundle-sig-v1\0" || id. */
#define OSM_BUNDLE_SIG_CONTEXT "osmose-bundle-sig-v1"
