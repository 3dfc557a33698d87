/* wlog.c: an instance's log on disk: timestamped stdout/stderr entries in two rotating
 * files, so that logs outlive the daemon (restarts, crashes, reboots) within a bound.
 *
 * A file is a sequence of records, each a 20-byte header and its data:
 *   seq (u64 LE) · time µs (i64 LE) · len (u16 LE) · stream (u8) · check (u8) · data[len]
 * check is a sum over the other header bytes plus 0x5a, so that a zero-filled tail (what a
 * power cut can leave after the last record) never reads as a record. Files are only
 * appended to, and not synced: a log entry lost in a power cut is acceptable, a write
 * that waits for the disk on the daemon's loop is not. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "daemon/workload/wlog.h"
#include "osmose/util.h"

#define HDR 20
#define MAX_FILE (64u << 20)   /* a reader never takes more than this of one file */
#define MAX_NAME 200

struct wl_log {
        int dirfd;                /* borrowed */
        int fd;
        char name[MAX_NAME];
        uint64_t cap;
        uint64_t size;            /* of the current file */
        uint64_t next_seq;
};

static void put_le(uint8_t *p, uint64_t v, int n) {
        for (int k = 0; k < n; k++)
                p[k] = (uint8_t) (v >> (8 * k));
}

static uint64_t get_le(const uint8_t *p, int n) {
        uint64_t v = 0;
        for (int k = n - 1; k >= 0; k--)
                v = v << 8 | p[k];
        return v;
}

static uint8_t check_of(const uint8_t *h) {
        unsigned s = 0x5a;
        for (int k = 0; k < HDR - 1; k++)
                s += h[k];
        return (uint8_t) s;
}

/* Parse the record at buf[off..n): its entry, and the offset after it; false if there
 * is no whole, valid record there. */
static bool parse(const uint8_t *buf, size_t n, size_t off, wl_log_entry *e, size_t *next) {
        if (n - off < HDR)
                return false;
        const uint8_t *h = buf + off;
        size_t len = (size_t) get_le(h + 16, 2);
        if (h[HDR - 1] != check_of(h) || len == 0 || len > WL_LOG_LINE_MAX ||
            (h[18] != WL_LOG_STDOUT && h[18] != WL_LOG_STDERR) || n - off - HDR < len)
                return false;
        e->seq = get_le(h, 8);
        e->time_us = (int64_t) get_le(h + 8, 8);
        e->stream = h[18];
        e->len = len;
        e->data = h + HDR;
        *next = off + HDR + len;
        return true;
}

/* The whole of dirfd/name in memory (at most MAX_FILE bytes). */
static int slurp(int dirfd, const char *name, uint8_t **out, size_t *n) {
        _cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) < 0)
                return -errno;
        size_t want = (size_t) OSM_MIN((uint64_t) st.st_size, (uint64_t) MAX_FILE);
        uint8_t *buf = malloc(want ? want : 1);
        if (!buf)
                return -ENOMEM;
        size_t got = 0;
        while (got < want) {
                ssize_t r = read(fd, buf + got, want - got);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r <= 0)
                        break;
                got += (size_t) r;
        }
        *out = buf;
        *n = got;
        return 0;
}

static bool name_ok(const char *name) {
        return name[0] && name[0] != '.' && strlen(name) < MAX_NAME - 3 && !strchr(name, '/');
}

/* The last seq in dirfd/name and the length of its valid prefix. */
static int scan(int dirfd, const char *name, uint64_t *last_seq, uint64_t *valid) {
        _cleanup_free_ uint8_t *buf = NULL;
        size_t n = 0;
        int r = slurp(dirfd, name, &buf, &n);
        if (r < 0)
                return r;
        size_t off = 0, next;
        wl_log_entry e;
        *last_seq = 0;
        while (parse(buf, n, off, &e, &next)) {
                *last_seq = e.seq;
                off = next;
        }
        *valid = off;
        return 0;
}

int wl_log_open(int dirfd, const char *name, uint64_t cap, wl_log **out) {
        if (!name_ok(name))
                return -EINVAL;
        wl_log *l = calloc(1, sizeof *l);
        if (!l)
                return -ENOMEM;
        l->dirfd = dirfd;
        l->cap = OSM_MAX(cap, (uint64_t) 2 * (HDR + WL_LOG_LINE_MAX));
        snprintf(l->name, sizeof l->name, "%s", name);
        /* A log just made has nothing to scan (its older half may: a crash between the
         * two steps of a rotation leaves only NAME.1). */
        const int flags = O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW;
        l->fd = openat(dirfd, name, flags | O_EXCL, 0600);
        bool made = l->fd >= 0;
        if (!made && errno == EEXIST)
                l->fd = openat(dirfd, name, flags, 0600);
        if (l->fd < 0) {
                int r = -errno;
                free(l);
                return r;
        }
        uint64_t last = 0, valid = 0;
        if (!made && scan(dirfd, name, &last, &valid) == 0) {
                struct stat st;
                /* a torn record at the end: cut it off so that appends stay readable */
                if (fstat(l->fd, &st) == 0 && (uint64_t) st.st_size > valid && ftruncate(l->fd, (off_t) valid) < 0)
                        valid = (uint64_t) st.st_size;   /* appends after it are lost to readers */
                l->size = valid;
        }
        if (last == 0) {
                char old[MAX_NAME + 2];
                uint64_t v;
                snprintf(old, sizeof old, "%s.1", name);
                (void) scan(dirfd, old, &last, &v);
        }
        l->next_seq = last + 1;
        *out = l;
        return 0;
}

wl_log *wl_log_close(wl_log *l) {
        if (l) {
                osm_close(l->fd);
                free(l);
        }
        return NULL;
}

/* The current file becomes NAME.1, and appends go to a new NAME. */
static int rotate(wl_log *l) {
        char old[MAX_NAME + 2];
        snprintf(old, sizeof old, "%s.1", l->name);
        if (renameat(l->dirfd, l->name, l->dirfd, old) < 0)
                return -errno;
        int fd = openat(l->dirfd, l->name, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return -errno;
        osm_close(l->fd);
        l->fd = fd;
        l->size = 0;
        return 0;
}

int wl_log_write(wl_log *l, int stream, int64_t time_us, const uint8_t *data, size_t n,
                 wl_log_fn fn, void *userdata) {
        if (stream != WL_LOG_STDOUT && stream != WL_LOG_STDERR)
                return -EINVAL;
        int result = 0;
        while (n > 0) {
                /* Entries for one write() at a time: up to 64 of them, one header each. */
                enum { BATCH = 64 };
                uint8_t hdrs[BATCH][HDR];
                struct iovec iov[2 * BATCH];
                wl_log_entry ents[BATCH];
                size_t k = 0, bytes = 0;
                while (n > 0 && k < BATCH) {
                        const uint8_t *nl = memchr(data, '\n', OSM_MIN(n, (size_t) WL_LOG_LINE_MAX));
                        size_t len = nl ? (size_t) (nl - data) + 1 : OSM_MIN(n, (size_t) WL_LOG_LINE_MAX);
                        if (l->size + bytes + HDR + len > l->cap / 2 && l->size + bytes > 0) {
                                if (bytes == 0 && rotate(l) < 0)
                                        l->size = 0;   /* cannot rotate: let this file grow past the bound */
                                else if (bytes > 0)
                                        break;   /* write what we have, rotate next round */
                        }
                        uint8_t *h = hdrs[k];
                        put_le(h, l->next_seq, 8);
                        put_le(h + 8, (uint64_t) time_us, 8);
                        put_le(h + 16, len, 2);
                        h[18] = (uint8_t) stream;
                        h[19] = check_of(h);
                        iov[2 * k] = (struct iovec) { h, HDR };
                        iov[2 * k + 1] = (struct iovec) { (void *) data, len };
                        ents[k] = (wl_log_entry) { l->next_seq, time_us, stream, data, len };
                        l->next_seq++;
                        bytes += HDR + len;
                        data += len;
                        n -= len;
                        k++;
                }
                ssize_t w = writev(l->fd, iov, (int) (2 * k));
                if (w != (ssize_t) bytes) {
                        int r = w < 0 ? -errno : -EIO;
                        /* A short write leaves a torn record: cut it off again. */
                        if (w > 0 && ftruncate(l->fd, (off_t) l->size) < 0)
                                l->size += (uint64_t) w;
                        return r;
                }
                l->size += bytes;
                for (size_t j = 0; fn && j < k && result == 0; j++)
                        result = fn(&ents[j], userdata);
        }
        return result < 0 ? result : 0;
}

/* Walk one file's entries through the filter; count only (fn NULL) or emit. */
static int walk(const uint8_t *buf, size_t n, const wl_log_filter *f, size_t skip, size_t *seen,
                wl_log_fn fn, void *userdata, uint64_t *first) {
        size_t off = 0, next;
        wl_log_entry e;
        while (parse(buf, n, off, &e, &next)) {
                off = next;
                if (first && *first == 0)
                        *first = e.seq;
                if (e.seq <= f->after_seq || e.time_us < f->since_us)
                        continue;
                if ((*seen)++ < skip || !fn)
                        continue;
                int r = fn(&e, userdata);
                if (r)
                        return r;
        }
        return 0;
}

int wl_log_read(int dirfd, const char *name, const wl_log_filter *f, wl_log_fn fn, void *userdata,
                uint64_t *first) {
        if (!name_ok(name))
                return -EINVAL;
        wl_log_filter none = { 0 };
        if (!f)
                f = &none;
        char old[MAX_NAME + 2];
        snprintf(old, sizeof old, "%s.1", name);
        _cleanup_free_ uint8_t *b1 = NULL, *b0 = NULL;
        size_t n1 = 0, n0 = 0;
        int r1 = slurp(dirfd, old, &b1, &n1), r0 = slurp(dirfd, name, &b0, &n0);
        if (r0 < 0 && r1 < 0)
                return r0;
        if (first)
                *first = 0;
        size_t skip = 0, seen = 0;
        if (f->tail) {
                walk(b1, n1, f, 0, &seen, NULL, NULL, NULL);
                walk(b0, n0, f, 0, &seen, NULL, NULL, NULL);
                skip = seen > f->tail ? seen - f->tail : 0;
                seen = 0;
        }
        int r = walk(b1, n1, f, skip, &seen, fn, userdata, first);
        if (r == 0)
                r = walk(b0, n0, f, skip, &seen, fn, userdata, first);
        return r;
}

int wl_log_unlink(int dirfd, const char *name) {
        if (!name_ok(name))
                return -EINVAL;
        char old[MAX_NAME + 2];
        snprintf(old, sizeof old, "%s.1", name);
        int r = 0;
        if (unlinkat(dirfd, old, 0) < 0 && errno != ENOENT)
                r = -errno;
        if (unlinkat(dirfd, name, 0) < 0 && errno != ENOENT)
                r = -errno;
        return r;
}
