/* bundle.c: the workload bundle file (format in include/osmose/bundle.h): build, copy-and-hash,
 * signature check, and a strict reader that unpacks relative to a directory fd. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "osmose/bundle.h"
#include "osmose/manifest.h"

#define HASH_CONTEXT "osmose-bundle-v1"
#define IO_CHUNK (64u * 1024u)

static void put_le(uint8_t *p, uint64_t v, size_t n) {
        for (size_t i = 0; i < n; i++)
                p[i] = (uint8_t) (v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, size_t n) {
        uint64_t v = 0;
        for (size_t i = 0; i < n; i++)
                v |= (uint64_t) p[i] << (8 * i);
        return v;
}

/* The canonical order: bytewise, except that '/' sorts before every other byte, which
 * makes it depth-first (a directory's whole subtree follows it directly). */
static int path_cmp(const char *a, const char *b) {
        for (;; a++, b++) {
                unsigned ca = (unsigned char) *a, cb = (unsigned char) *b;
                if (ca == cb) {
                        if (!ca)
                                return 0;
                        continue;
                }
                ca = ca == '/' ? 1 : ca == 0 ? 0 : ca + 1;
                cb = cb == '/' ? 1 : cb == 0 ? 0 : cb + 1;
                return ca < cb ? -1 : 1;
        }
}

static bool segment_ok(const char *s, size_t len) {
        if (len == 0 || (len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.'))
                return false;
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char) s[i];
                if (c < 0x20 || c == 0x7f || c == '/')
                        return false;
        }
        return true;
}

/* Check a path's syntax; returns its depth (number of segments) or -1. */
static int path_check(const char *p, size_t len) {
        if (len == 0 || len > OSM_BUNDLE_MAX_PATH || memchr(p, 0, len))
                return -1;
        int depth = 0;
        size_t start = 0;
        for (size_t i = 0; i <= len; i++)
                if (i == len || p[i] == '/') {
                        if (!segment_ok(p + start, i - start) || ++depth > OSM_BUNDLE_MAX_DEPTH)
                                return -1;
                        start = i + 1;
                }
        return depth;
}

/* Top-level names the sandbox mounts over: only an empty directory may stand there. */
static bool reserved_top(const char *p) {
        static const char *const names[] = { "proc", "dev", "sys", "tmp", "run", "data" };
        size_t seg = strcspn(p, "/");
        for (size_t i = 0; i < OSM_ARRAY_SIZE(names); i++)
                if (strlen(names[i]) == seg && memcmp(p, names[i], seg) == 0)
                        return true;
        return false;
}

/* ---- building ---------------------------------------------------------------------- */

typedef struct entry {
        char *path;
        char type;          /* d f x l */
        uint64_t size;
        char *target;       /* symlinks */
} entry;

typedef struct entries {
        entry *v;
        size_t n, cap;
} entries;

static void entries_free(entries *e) {
        for (size_t i = 0; i < e->n; i++) {
                free(e->v[i].path);
                free(e->v[i].target);
        }
        free(e->v);
}

static int entry_cmp(const void *a, const void *b) {
        return path_cmp(((const entry *) a)->path, ((const entry *) b)->path);
}

static int walk(int dfd, const char *prefix, int depth, entries *out, osm_error *err) {
        int r = 0;
        int fd2 = dup(dfd);
        if (fd2 < 0)
                return -errno;
        DIR *d = fdopendir(fd2);
        if (!d) {
                r = -errno;
                close(fd2);
                return r;
        }
        struct dirent *de;
        while ((errno = 0, de = readdir(d))) {
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                _cleanup_free_ char *path = NULL;
                if (asprintf(&path, "%s%s%s", prefix, *prefix ? "/" : "", de->d_name) < 0) {
                        r = -ENOMEM;
                        goto out;
                }
                if (path_check(path, strlen(path)) < 0) {
                        r = osm_error_set(err, -EINVAL, 0, "rootfs/%s: name not allowed in a bundle "
                                 "(control characters, too long or deeper than %d)", path,
                                 OSM_BUNDLE_MAX_DEPTH);
                        goto out;
                }
                struct stat st;
                if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                        r = osm_error_set(err, -errno, 0, "rootfs/%s: %m", path);
                        goto out;
                }
                if (out->n == OSM_BUNDLE_MAX_ENTRIES) {
                        r = osm_error_set(err, -E2BIG, 0, "rootfs: more than %d entries", OSM_BUNDLE_MAX_ENTRIES);
                        goto out;
                }
                if (out->n == out->cap) {
                        size_t cap = out->cap ? out->cap * 2 : 64;
                        entry *v = realloc(out->v, cap * sizeof *v);
                        if (!v) {
                                r = -ENOMEM;
                                goto out;
                        }
                        out->v = v;
                        out->cap = cap;
                }
                entry *e = &out->v[out->n];
                *e = (entry) { 0 };
                if (S_ISDIR(st.st_mode)) {
                        e->type = 'd';
                } else if (S_ISREG(st.st_mode)) {
                        if (st.st_mode & (S_ISUID | S_ISGID)) {
                                r = osm_error_set(err, -EPERM, 0, "rootfs/%s: setuid/setgid files are "
                                         "not allowed in a bundle", path);
                                goto out;
                        }
                        /* A hardlinked file is packed as an independent copy. */
                        e->type = (st.st_mode & 0111) ? 'x' : 'f';
                        e->size = (uint64_t) st.st_size;
                } else if (S_ISLNK(st.st_mode)) {
                        char buf[OSM_BUNDLE_MAX_LINK + 1];
                        ssize_t n = readlinkat(dfd, de->d_name, buf, sizeof buf);
                        if (n < 0) {
                                r = osm_error_set(err, -errno, 0, "rootfs/%s: %m", path);
                                goto out;
                        }
                        if (n == 0 || n > OSM_BUNDLE_MAX_LINK) {
                                r = osm_error_set(err, -EINVAL, 0, "rootfs/%s: symlink target longer "
                                         "than %d bytes", path, OSM_BUNDLE_MAX_LINK);
                                goto out;
                        }
                        e->type = 'l';
                        e->size = (uint64_t) n;
                        e->target = strndup(buf, (size_t) n);
                        if (!e->target) {
                                r = -ENOMEM;
                                goto out;
                        }
                } else {
                        r = osm_error_set(err, -EPERM, 0, "rootfs/%s: devices, fifos and sockets are "
                                 "not allowed in a bundle", path);
                        goto out;
                }
                if (reserved_top(path) && (e->type != 'd' || strchr(path, '/'))) {
                        free(e->target);
                        r = osm_error_set(err, -EPERM, 0, "rootfs/%s: the sandbox mounts over this "
                                 "place; it may only be an empty directory", path);
                        goto out;
                }
                e->path = steal_pointer(&path);
                out->n++;
                if (e->type == 'd') {
                        int sub = openat(dfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                        if (sub < 0) {
                                r = osm_error_set(err, -errno, 0, "rootfs/%s: %m", e->path);
                                goto out;
                        }
                        r = walk(sub, e->path, depth + 1, out, err);
                        close(sub);
                        if (r < 0)
                                goto out;
                }
        }
        if (errno)
                r = -errno;
out:
        closedir(d);
        return r;
}

typedef struct writer {
        int fd;
        crypto_generichash_state h;
        uint8_t buf[IO_CHUNK];
        size_t used;
} writer;

static int w_flush(writer *w) {
        int r = osm_write_all(w->fd, w->buf, w->used);
        w->used = 0;
        return r;
}

static int w_put(writer *w, const void *data, size_t len) {
        crypto_generichash_update(&w->h, data, len);
        const uint8_t *p = data;
        while (len > 0) {
                size_t n = OSM_MIN(len, sizeof w->buf - w->used);
                memcpy(w->buf + w->used, p, n);
                w->used += n;
                p += n;
                len -= n;
                if (w->used == sizeof w->buf) {
                        int r = w_flush(w);
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

static int w_int(writer *w, uint64_t v, size_t n) {
        uint8_t b[8];
        put_le(b, v, n);
        return w_put(w, b, n);
}

static void encode_header(uint8_t h[OSM_BUNDLE_HEADER_SIZE], const osm_bundle_info *info) {
        memset(h, 0, OSM_BUNDLE_HEADER_SIZE);
        memcpy(h, OSM_BUNDLE_MAGIC, 8);
        put_le(h + 8, info->is_signed ? OSM_BUNDLE_FLAG_SIGNED : 0, 4);
        if (info->is_signed) {
                memcpy(h + 16, info->pubkey, OSM_PUBKEY_BYTES);
                memcpy(h + 48, info->sig, OSM_SIG_BYTES);
        }
}

static void sig_message(const uint8_t id[OSM_HASH_BYTES], uint8_t msg[sizeof OSM_BUNDLE_SIG_CONTEXT + OSM_HASH_BYTES]) {
        memcpy(msg, OSM_BUNDLE_SIG_CONTEXT, sizeof OSM_BUNDLE_SIG_CONTEXT);   /* with its NUL */
        memcpy(msg + sizeof OSM_BUNDLE_SIG_CONTEXT, id, OSM_HASH_BYTES);
}

static int pack_file(writer *w, int rootfd, const entry *e, osm_error *err) {
        _cleanup_close_ int fd = openat(rootfd, e->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return osm_error_set(err, -errno, 0, "rootfs/%s: %m", e->path);
        struct stat st;
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t) st.st_size != e->size)
                return osm_error_set(err, -EAGAIN, 0, "rootfs/%s: changed while packing", e->path);
        uint64_t left = e->size;
        uint8_t buf[IO_CHUNK];
        while (left > 0) {
                ssize_t n = read(fd, buf, OSM_MIN(left, sizeof buf));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return osm_error_set(err, -errno, 0, "rootfs/%s: %m", e->path);
                if (n == 0)
                        return osm_error_set(err, -EAGAIN, 0, "rootfs/%s: changed while packing", e->path);
                int r = w_put(w, buf, (size_t) n);
                if (r < 0)
                        return osm_error_set(err, r, 0, "writing the bundle: %s", strerror(-r));
                left -= (uint64_t) n;
        }
        return 0;
}

int osm_bundle_build(const char *dir, int out_fd, const osm_keypair *kp, osm_bundle_info *info,
                     osm_error *err) {
        int r;
        entries es = { 0 };
        _cleanup_free_ char *mtext = NULL;
        _cleanup_free_ writer *w = NULL;
        _cleanup_close_ int dfd = -1, rootfd = -1, mfd = -1;

        *info = (osm_bundle_info) { 0 };
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return osm_error_set(err, -errno, 0, "%s: %m", dir);

        mfd = openat(dfd, "manifest.json", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (mfd < 0)
                return osm_error_set(err, -errno, 0, "%s/manifest.json: %m", dir);
        mtext = malloc(OSM_MANIFEST_MAX_SIZE + 1);
        if (!mtext)
                return -ENOMEM;
        size_t mlen = 0;
        for (;;) {
                ssize_t n = read(mfd, mtext + mlen, OSM_MANIFEST_MAX_SIZE + 1 - mlen);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return osm_error_set(err, -errno, 0, "%s/manifest.json: %m", dir);
                if (n == 0)
                        break;
                mlen += (size_t) n;
                if (mlen > OSM_MANIFEST_MAX_SIZE)
                        return osm_error_set(err, -EFBIG, 0, "%s/manifest.json: larger than %u bytes",
                                    dir, OSM_MANIFEST_MAX_SIZE);
        }
        {
                _cleanup_manifest_ osm_manifest *m = NULL;
                osm_error why;
                r = osm_manifest_parse(mtext, mlen, &m, &why);
                if (r < 0)
                        return osm_error_set(err, r, 0, "%s/manifest.json: %s", dir,
                                             r == -EINVAL ? why.message : strerror(-r));
        }

        struct stat st;
        bool has_rootfs = false;
        if (fstatat(dfd, "rootfs", &st, AT_SYMLINK_NOFOLLOW) == 0) {
                if (!S_ISDIR(st.st_mode))
                        return osm_error_set(err, -ENOTDIR, 0, "%s/rootfs: not a directory", dir);
                rootfd = openat(dfd, "rootfs", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (rootfd < 0)
                        return osm_error_set(err, -errno, 0, "%s/rootfs: %m", dir);
                has_rootfs = true;
                r = walk(rootfd, "", 1, &es, err);
                if (r < 0)
                        goto out;
                qsort(es.v, es.n, sizeof *es.v, entry_cmp);
        } else if (errno != ENOENT)
                return osm_error_set(err, -errno, 0, "%s/rootfs: %m", dir);

        w = malloc(sizeof *w);
        if (!w) {
                r = -ENOMEM;
                goto out;
        }
        w->fd = out_fd;
        w->used = 0;
        crypto_generichash_init(&w->h, NULL, 0, OSM_HASH_BYTES);
        crypto_generichash_update(&w->h, (const uint8_t *) HASH_CONTEXT, sizeof HASH_CONTEXT);

        uint8_t header[OSM_BUNDLE_HEADER_SIZE];
        encode_header(header, info);
        if (lseek(out_fd, 0, SEEK_SET) < 0 || (r = osm_write_all(out_fd, header, sizeof header)) < 0) {
                r = osm_error_set(err, errno ? -errno : r, 0, "writing the bundle: %m");
                goto out;
        }
        if ((r = w_int(w, mlen, 4)) < 0 || (r = w_put(w, mtext, mlen)) < 0 ||
            (r = w_int(w, has_rootfs, 1)) < 0 || (r = w_int(w, es.n, 4)) < 0)
                goto write_error;
        for (size_t i = 0; i < es.n; i++) {
                entry *e = &es.v[i];
                size_t plen = strlen(e->path);
                if ((r = w_int(w, (uint8_t) e->type, 1)) < 0 || (r = w_int(w, plen, 2)) < 0 ||
                    (r = w_put(w, e->path, plen)) < 0 || (r = w_int(w, e->size, 8)) < 0)
                        goto write_error;
                if (e->type == 'l')
                        r = w_put(w, e->target, e->size);
                else if (e->type != 'd')
                        r = pack_file(w, rootfd, e, err);
                if (r < 0)
                        goto out;
        }
        if ((r = w_flush(w)) < 0)
                goto write_error;
        crypto_generichash_final(&w->h, info->id, OSM_HASH_BYTES);
        if (kp) {
                uint8_t msg[sizeof OSM_BUNDLE_SIG_CONTEXT + OSM_HASH_BYTES];
                sig_message(info->id, msg);
                info->is_signed = true;
                memcpy(info->pubkey, kp->pk, OSM_PUBKEY_BYTES);
                osm_sign(kp, msg, sizeof msg, info->sig);
                encode_header(header, info);
                if (pwrite(out_fd, header, sizeof header, 0) != (ssize_t) sizeof header) {
                        r = osm_error_set(err, -EIO, 0, "writing the bundle header: %m");
                        goto out;
                }
        }
        off_t end = lseek(out_fd, 0, SEEK_CUR);
        info->size = end > 0 ? (uint64_t) end : 0;
        r = 0;
        goto out;
write_error:
        r = osm_error_set(err, r, 0, "writing the bundle: %s", strerror(-r));
out:
        entries_free(&es);
        return r;
}

/* ---- copy and verify ----------------------------------------------------------------- */

static ssize_t read_full(int fd, void *buf, size_t len) {
        size_t got = 0;
        while (got < len) {
                ssize_t n = read(fd, (uint8_t *) buf + got, len - got);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        break;
                got += (size_t) n;
        }
        return (ssize_t) got;
}

static bool all_zero(const uint8_t *p, size_t n) {
        uint8_t acc = 0;
        for (size_t i = 0; i < n; i++)
                acc |= p[i];
        return acc == 0;
}

static int decode_header(const uint8_t h[OSM_BUNDLE_HEADER_SIZE], osm_bundle_info *info,
                         osm_error *err) {
        if (memcmp(h, OSM_BUNDLE_MAGIC, 8) != 0)
                return osm_error_set(err, -EBADMSG, 0, "not an Osmose bundle (bad magic)");
        uint32_t flags = (uint32_t) get_le(h + 8, 4);
        if ((flags & ~OSM_BUNDLE_FLAG_SIGNED) || get_le(h + 12, 4) != 0)
                return osm_error_set(err, -EBADMSG, 0, "bundle header: unknown flags (a newer format?)");
        info->is_signed = flags & OSM_BUNDLE_FLAG_SIGNED;
        memcpy(info->pubkey, h + 16, OSM_PUBKEY_BYTES);
        memcpy(info->sig, h + 48, OSM_SIG_BYTES);
        if (!info->is_signed && !(all_zero(info->pubkey, OSM_PUBKEY_BYTES) && all_zero(info->sig, OSM_SIG_BYTES)))
                return osm_error_set(err, -EBADMSG, 0, "bundle header: unsigned but carries a key or signature");
        return 0;
}

int osm_bundle_copy(int src_fd, int dst_fd, uint64_t max_size, osm_bundle_info *info,
                    osm_error *err) {
        uint8_t h[OSM_BUNDLE_HEADER_SIZE];
        *info = (osm_bundle_info) { 0 };
        ssize_t n = read_full(src_fd, h, sizeof h);
        if (n < 0)
                return osm_error_set(err, (int) n, 0, "reading the bundle: %s", strerror((int) -n));
        if (n < (ssize_t) sizeof h)
                return osm_error_set(err, -EBADMSG, 0, "not an Osmose bundle (too short)");
        int r = decode_header(h, info, err);
        if (r < 0)
                return r;
        if ((r = osm_write_all(dst_fd, h, sizeof h)) < 0)
                return osm_error_set(err, r, 0, "storing the bundle: %s", strerror(-r));

        _cleanup_free_ uint8_t *buf = malloc(IO_CHUNK);
        if (!buf)
                return -ENOMEM;
        crypto_generichash_state st;
        crypto_generichash_init(&st, NULL, 0, OSM_HASH_BYTES);
        crypto_generichash_update(&st, (const uint8_t *) HASH_CONTEXT, sizeof HASH_CONTEXT);
        uint64_t total = sizeof h;
        for (;;) {
                n = read(src_fd, buf, IO_CHUNK);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return osm_error_set(err, -errno, 0, "reading the bundle: %m");
                if (n == 0)
                        break;
                total += (uint64_t) n;
                if (total > max_size)
                        return osm_error_set(err, -EFBIG, 0, "bundle larger than the limit of %llu bytes",
                                    (unsigned long long) max_size);
                crypto_generichash_update(&st, buf, (size_t) n);
                if ((r = osm_write_all(dst_fd, buf, (size_t) n)) < 0)
                        return osm_error_set(err, r, 0, "storing the bundle: %s", strerror(-r));
        }
        crypto_generichash_final(&st, info->id, OSM_HASH_BYTES);
        info->size = total;
        return 0;
}

int osm_bundle_verify_signature(const osm_bundle_info *info) {
        if (!info->is_signed)
                return -ENOKEY;
        uint8_t msg[sizeof OSM_BUNDLE_SIG_CONTEXT + OSM_HASH_BYTES];
        sig_message(info->id, msg);
        return osm_verify(info->pubkey, msg, sizeof msg, info->sig) == 0 ? 0 : -EBADMSG;
}

/* ---- reading and unpacking ------------------------------------------------------------ */

typedef struct reader {
        int fd;
        uint64_t off, end;
} reader;

static int rd(reader *r, void *buf, size_t len) {
        if (len > r->end - r->off)
                return -EBADMSG;
        size_t got = 0;
        while (got < len) {
                ssize_t n = pread(r->fd, (uint8_t *) buf + got, len - got, (off_t) (r->off + got));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        return -EBADMSG;
                got += (size_t) n;
        }
        r->off += len;
        return 0;
}

static int rd_int(reader *r, size_t n, uint64_t *v) {
        uint8_t b[8];
        int k = rd(r, b, n);
        if (k < 0)
                return k;
        *v = get_le(b, n);
        return 0;
}

/* Copy size bytes of the bundle into out_fd (or skip them when out_fd < 0). */
static int rd_copy(reader *r, uint64_t size, int out_fd, uint8_t *buf) {
        if (size > r->end - r->off)
                return -EBADMSG;
        if (out_fd < 0) {
                r->off += size;
                return 0;
        }
        while (size > 0) {
                size_t n = (size_t) OSM_MIN(size, (uint64_t) IO_CHUNK);
                int k = rd(r, buf, n);
                if (k < 0)
                        return k;
                if ((k = osm_write_all(out_fd, buf, n)) < 0)
                        return k;
                size -= n;
        }
        return 0;
}

typedef struct dirstack {
        char *path[OSM_BUNDLE_MAX_DEPTH + 1];   /* [0] is the root, "" */
        int fd[OSM_BUNDLE_MAX_DEPTH + 1];
        size_t n;
} dirstack;

static void dirstack_pop(dirstack *s) {
        s->n--;
        free(s->path[s->n]);
        if (s->n > 0)
                osm_close(s->fd[s->n]);
}

int osm_bundle_unpack(int fd, int dirfd, char **manifest, size_t *manifest_len, bool *has_rootfs,
                      osm_error *err) {
        int r;
        struct stat st;
        dirstack ds = { .n = 1, .fd = { dirfd } };
        _cleanup_free_ char *mtext = NULL, *prev = NULL;
        _cleanup_free_ uint8_t *buf = NULL;

        ds.path[0] = strdup("");
        if (!ds.path[0])
                return -ENOMEM;
        if (fstat(fd, &st) < 0) {
                r = -errno;
                goto out;
        }
        reader rr = { .fd = fd, .off = 0, .end = (uint64_t) st.st_size };
        uint8_t h[OSM_BUNDLE_HEADER_SIZE];
        osm_bundle_info info;
        if (rd(&rr, h, sizeof h) < 0) {
                r = osm_error_set(err, -EBADMSG, 0, "not an Osmose bundle (too short)");
                goto out;
        }
        if ((r = decode_header(h, &info, err)) < 0)
                goto out;

        uint64_t mlen, hr, n_entries;
        if ((r = rd_int(&rr, 4, &mlen)) < 0)
                goto truncated;
        if (mlen > OSM_MANIFEST_MAX_SIZE) {
                r = osm_error_set(err, -EBADMSG, 0, "bundle: manifest larger than %u bytes", OSM_MANIFEST_MAX_SIZE);
                goto out;
        }
        mtext = malloc(mlen + 1);
        if (!mtext) {
                r = -ENOMEM;
                goto out;
        }
        if ((r = rd(&rr, mtext, mlen)) < 0)
                goto truncated;
        mtext[mlen] = 0;
        if ((r = rd_int(&rr, 1, &hr)) < 0 || (r = rd_int(&rr, 4, &n_entries)) < 0)
                goto truncated;
        if (hr > 1 || (hr == 0 && n_entries > 0) || n_entries > OSM_BUNDLE_MAX_ENTRIES) {
                r = osm_error_set(err, -EBADMSG, 0, "bundle: bad rootfs header");
                goto out;
        }
        buf = malloc(IO_CHUNK);
        if (!buf) {
                r = -ENOMEM;
                goto out;
        }

        for (uint64_t i = 0; i < n_entries; i++) {
                uint64_t type, plen, size;
                char path[OSM_BUNDLE_MAX_PATH + 1];
                if ((r = rd_int(&rr, 1, &type)) < 0 || (r = rd_int(&rr, 2, &plen)) < 0)
                        goto truncated;
                if (plen == 0 || plen > OSM_BUNDLE_MAX_PATH) {
                        r = osm_error_set(err, -EBADMSG, 0, "bundle entry %llu: bad path length",
                                 (unsigned long long) i);
                        goto out;
                }
                if ((r = rd(&rr, path, plen)) < 0 || (r = rd_int(&rr, 8, &size)) < 0)
                        goto truncated;
                path[plen] = 0;
                int depth = path_check(path, plen);
                if (depth < 0) {
                        r = osm_error_set(err, -EBADMSG, 0, "bundle entry %llu: path not allowed "
                                 "(empty, '.', '..' or control characters, or too deep)",
                                 (unsigned long long) i);
                        goto out;
                }
                if (prev && path_cmp(prev, path) >= 0) {
                        r = osm_error_set(err, -EBADMSG, 0, "bundle entry %s: out of order or duplicated", path);
                        goto out;
                }
                free(prev);
                prev = strdup(path);
                if (!prev) {
                        r = -ENOMEM;
                        goto out;
                }
                if ((type != 'd' && type != 'f' && type != 'x' && type != 'l') ||
                    (type == 'd' && size != 0) ||
                    (type == 'l' && (size == 0 || size > OSM_BUNDLE_MAX_LINK))) {
                        r = osm_error_set(err, -EBADMSG, 0, "bundle entry %s: bad type or size", path);
                        goto out;
                }
                if (reserved_top(path) && (type != 'd' || depth > 1)) {
                        r = osm_error_set(err, -EBADMSG, 0, "bundle entry %s: the sandbox mounts over "
                                 "this place; it may only be an empty directory", path);
                        goto out;
                }
                /* Find the parent among the open directories: pop until the top is a
                 * prefix directory of path; it must then be the direct parent. */
                while (ds.n > 1) {
                        size_t tl = strlen(ds.path[ds.n - 1]);
                        if (strncmp(path, ds.path[ds.n - 1], tl) == 0 && path[tl] == '/')
                                break;
                        dirstack_pop(&ds);
                }
                const char *base = strrchr(path, '/');
                base = base ? base + 1 : path;
                if ((size_t) (base - path) != (ds.n > 1 ? strlen(ds.path[ds.n - 1]) + 1 : 0)) {
                        r = osm_error_set(err, -EBADMSG, 0, "bundle entry %s: its directory is not in the "
                                 "bundle before it", path);
                        goto out;
                }
                int parent = ds.fd[ds.n - 1];

                if (type == 'd') {
                        int sub = -1;
                        if (dirfd >= 0) {
                                if (mkdirat(parent, base, 0755) < 0 ||
                                    (sub = openat(parent, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
                                        r = osm_error_set(err, -errno, 0, "unpacking %s: %m", path);
                                        goto out;
                                }
                                (void) fchmod(sub, 0755);   /* whatever the umask */
                        }
                        if (ds.n > OSM_BUNDLE_MAX_DEPTH) {   /* cannot happen: depth is checked */
                                osm_close(sub);
                                r = -EBADMSG;
                                goto out;
                        }
                        ds.path[ds.n] = strdup(path);
                        ds.fd[ds.n] = sub;
                        if (!ds.path[ds.n]) {
                                osm_close(sub);
                                r = -ENOMEM;
                                goto out;
                        }
                        ds.n++;
                } else if (type == 'l') {
                        char target[OSM_BUNDLE_MAX_LINK + 1];
                        if ((r = rd(&rr, target, size)) < 0)
                                goto truncated;
                        target[size] = 0;
                        if (strlen(target) != size) {
                                r = osm_error_set(err, -EBADMSG, 0, "bundle entry %s: NUL in symlink target", path);
                                goto out;
                        }
                        if (dirfd >= 0 && symlinkat(target, parent, base) < 0) {
                                r = osm_error_set(err, -errno, 0, "unpacking %s: %m", path);
                                goto out;
                        }
                } else {
                        _cleanup_close_ int ofd = -1;
                        mode_t mode = type == 'x' ? 0755 : 0644;
                        if (dirfd >= 0) {
                                ofd = openat(parent, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
                                             O_CLOEXEC | O_NOCTTY, mode);
                                if (ofd < 0 || fchmod(ofd, mode) < 0) {
                                        r = osm_error_set(err, -errno, 0, "unpacking %s: %m", path);
                                        goto out;
                                }
                        }
                        if ((r = rd_copy(&rr, size, ofd, buf)) < 0) {
                                if (r == -EBADMSG)
                                        goto truncated;
                                r = osm_error_set(err, r, 0, "unpacking %s: %s", path, strerror(-r));
                                goto out;
                        }
                }
        }
        if (rr.off != rr.end) {
                r = osm_error_set(err, -EBADMSG, 0, "bundle: %llu bytes of garbage after the last entry",
                         (unsigned long long) (rr.end - rr.off));
                goto out;
        }
        *manifest_len = (size_t) mlen;
        *manifest = steal_pointer(&mtext);
        *has_rootfs = hr == 1;
        r = 0;
        goto out;
truncated:
        if (r == -EBADMSG)
                r = osm_error_set(err, -EBADMSG, 0, "bundle: truncated");
        else
                r = osm_error_set(err, r, 0, "reading the bundle: %s", strerror(-r));
out:
        while (ds.n > 0)
                dirstack_pop(&ds);
        return r;
}
