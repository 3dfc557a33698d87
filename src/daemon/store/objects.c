/* objects.c: content-addressed objects: files objects/ab/cdef… written through a synced
 * temp file while hashing (BLAKE2b-256), refcounts and pins in SQLite, garbage collection,
 * optional encryption at rest with libsodium secretstream. */
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "daemon/store/store-internal.h"
#include "osmose/log.h"

/* Encrypted files: a secretstream header, then blocks of ENC_CHUNK plain bytes (+ABYTES);
 * every block but the last is full, and the last carries TAG_FINAL (it may be empty). */
#define ENC_CHUNK        (64u * 1024u)
#define ENC_BLOCK        (ENC_CHUNK + crypto_secretstream_xchacha20poly1305_ABYTES)
#define PUT_SLOT         (256u * 1024u)  /* bytes read at once: a multiple of ENC_CHUNK */
#define PUT_SLOTS        8              /* slots of a put in flight between reading, hashing and writing */
#define IO_TIMEOUT_MS    30000          /* a client fd that stalls this long is given up */
#define MAX_TRANSFERS    4              /* object puts in flight */
#define READ_BLOCKS      4              /* encrypted blocks a reader decrypts per read: a slot */
#define READ_SLOTS       4              /* slots of a reader in flight between decrypting and the socket */
_Static_assert(READ_SLOTS <= PUT_SLOTS, "a stage's ring holds at most PUT_SLOTS slots");
#define READ_SOCK_BUF    (1u << 20)     /* a reader's socket send buffer, in bytes */
#define MAX_READERS      16             /* decrypting readers in flight */
#define KEY_FILE         "object.key"

static _Atomic unsigned n_readers;

bool osm_store_hash_valid(const char *s) {
        if (!s)
                return false;
        for (size_t i = 0; i < OSM_HASH_BYTES * 2; i++)
                if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return false;
        return s[OSM_HASH_BYTES * 2] == 0;
}

static void object_path(osm_store *s, const char *hash, char *buf, size_t size) {
        snprintf(buf, size, "%s/%.2s/%s", s->obj_dir, hash, hash + 2);
}

/* ---- the key ---- */

/* Load state_dir/object.key, or make it when create is set. Keeps it in guarded memory. */
static int key_load(osm_store *s, bool create) {
        if (s->obj_key)
                return 0;
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", s->state_dir, KEY_FILE);
        uint8_t *key = osm_secret_alloc(crypto_secretstream_xchacha20poly1305_KEYBYTES);
        if (!key)
                return -ENOMEM;
        int r;
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd >= 0) {
                struct stat st;
                if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (st.st_mode & 077) ||
                    st.st_uid != geteuid()) {
                        r = -EPERM;
                        goto fail;
                }
                ssize_t n = read(fd, key, crypto_secretstream_xchacha20poly1305_KEYBYTES + 1);
                if (n != crypto_secretstream_xchacha20poly1305_KEYBYTES) {
                        r = -EBADMSG;
                        goto fail;
                }
        } else if (errno == ENOENT && create) {
                crypto_secretstream_xchacha20poly1305_keygen(key);
                r = osm_write_file_atomic(path, key, crypto_secretstream_xchacha20poly1305_KEYBYTES, 0600);
                if (r < 0)
                        goto fail;
        } else {
                r = errno == ENOENT ? -ENOKEY : -errno;
                goto fail;
        }
        sodium_mprotect_readonly(key);
        s->obj_key = key;
        return 0;
fail:
        sodium_free(key);
        return r;
}

int store_obj_init(osm_store *s, osm_error *err) {
        int r = osm_mkdir_p(s->tmp_dir, 0700);
        if (r < 0) {
                return osm_error_set(err, r, 0, "cannot create the object directory");
        }
        /* Temp files left by a crash never made it into the store: remove them. */
        DIR *d = opendir(s->tmp_dir);
        if (d) {
                struct dirent *e;
                while ((e = readdir(d)))
                        if (e->d_name[0] != '.')
                                unlinkat(dirfd(d), e->d_name, 0);
                closedir(d);
        }
        r = key_load(s, atomic_load(&s->encrypt_objects));
        if (r < 0 && r != -ENOKEY) {
                return osm_error_set(err, r, 0, "%s", r == -EPERM ? "object.key must be a regular file of mode 0600 owned by the daemon"
                                                               : "cannot read or create object.key");
        }
        /* A crash between a rename and its commit leaves a file with no row: collect it. */
        store_op *gc = store_op_new(OP_OBJ_GC, 0);
        if (gc)
                store_enqueue(s, gc);
        return 0;
}

void store_obj_fini(osm_store *s) {
        sodium_free(s->obj_key);
        s->obj_key = NULL;
}

/* ---- blocking I/O helpers (thread side) ---- */

/* Read up to len bytes, stopping early only at end of file. Waits at most IO_TIMEOUT_MS
 * for each chunk when fd is not a regular file. Returns bytes read or -errno. */
static ssize_t read_full(int fd, bool regular, uint8_t *buf, size_t len) {
        size_t got = 0;
        while (got < len) {
                if (!regular) {
                        struct pollfd p = { .fd = fd, .events = POLLIN };
                        int k = poll(&p, 1, IO_TIMEOUT_MS);
                        if (k < 0 && errno == EINTR)
                                continue;
                        if (k < 0)
                                return -errno;
                        if (k == 0)
                                return -ETIMEDOUT;
                }
                ssize_t n = read(fd, buf + got, len - got);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                continue;   /* a non-blocking fd: poll again */
                        return -errno;
                }
                if (n == 0)
                        break;
                got += (size_t) n;
        }
        return (ssize_t) got;
}

/* ---- put: stream in, hash, write temp file (thread pool) ---- */

typedef struct put_work {
        uv_work_t req;
        osm_store *s;
        int fd;
        bool pin;
        bool enc;
        int r;
        char *tmp_path;
        char hash[OSM_HASH_HEX];
        uint64_t size;
        osm_store_object_cb cb;
        void *userdata;
} put_work;

/* A put is a pipeline of three: its own thread reads each piece into a slot of a small ring
 * (and encrypts it into the slot's twin when objects are encrypted); a hashing stage takes
 * BLAKE2b of the plain slot, a writing stage writes the slot (or its ciphertext) to the temp
 * file. Hashing, encrypting and copying into the page cache each cost about as much as the
 * others, so on two cores the three overlap instead of adding up, the scheduler sharing the
 * cores among them. A slot is refilled only once both stages are done with it. Each stage
 * has a thread of its own, started at the first slot that is not the content's last:
 * content that fits in one slot is hashed and written in place, without a thread.
 * Here a 256 MiB put waits mostly on the disk: its final fsync still has up to 0.3 s to
 * write when the last slot is in, and paired with a plain `dd conv=fsync` of the file it
 * takes 1.1-1.2x as long. Measured against this code on the 2-core VM (paired runs) and not
 * kept: writing with O_DIRECT from aligned slots (0.2 s less CPU encrypted, but one write
 * in flight at a time: 1.2-1.3x slower), encrypting in the writing stage (1.0x), slots of
 * 64 KiB or 1 MiB, fallocate to the source's size, write-back every 2 or 32 MiB (1.0x);
 * no write-back until the fsync: 1.3x slower. */
typedef struct stage stage;
typedef int (*stage_fn)(stage *st, unsigned i, size_t n);
struct stage {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        stage_fn fn;              /* processes slot i, n bytes; < 0 stops the stage */
        void *ctx;
        unsigned slots;           /* the ring's size, at most PUT_SLOTS */
        size_t len[PUT_SLOTS];
        bool full[PUT_SLOTS];     /* handed over, not processed yet */
        bool last[PUT_SLOTS];     /* the content's end */
        bool stop;                /* the put failed: leave */
        bool started;
        bool alone;               /* decided at the first slot: no thread, slots processed in place */
        int r;                    /* the first failure of fn */
        pthread_t thread;
};

static void *stage_main(void *arg) {
        stage *st = arg;
        for (unsigned i = 0;; i = (i + 1) % st->slots) {
                pthread_mutex_lock(&st->lock);
                while (!st->full[i] && !st->stop)
                        pthread_cond_wait(&st->cond, &st->lock);
                bool stop = st->stop;
                size_t n = st->len[i];
                bool last = st->last[i];
                pthread_mutex_unlock(&st->lock);
                if (stop)
                        break;
                int r = st->fn(st, i, n);
                pthread_mutex_lock(&st->lock);
                if (r < 0) {
                        st->r = r;   /* whoever waits for a slot sees it */
                        st->stop = true;
                } else
                        st->full[i] = false;
                pthread_cond_broadcast(&st->cond);
                pthread_mutex_unlock(&st->lock);
                if (last || r < 0)
                        break;
        }
        return NULL;
}

/* Wait until slot i is processed (free to refill). Returns the stage's failure, if any. */
static int stage_wait(stage *st, unsigned i) {
        if (!st->started)
                return st->r;
        pthread_mutex_lock(&st->lock);
        while (st->full[i] && st->r == 0)
                pthread_cond_wait(&st->cond, &st->lock);
        int r = st->r;
        pthread_mutex_unlock(&st->lock);
        return r;
}

/* Hand slot i (n bytes) to the stage; the first slot starts its thread unless it is also the
 * last (without one, as when all of the content fits in one slot or no thread could be
 * started, every slot is processed here). */
static int stage_give(stage *st, unsigned i, size_t n, bool last) {
        if (!st->started && !st->alone) {
                if (!last && pthread_create(&st->thread, NULL, stage_main, st) == 0)
                        st->started = true;
                else
                        st->alone = true;
        }
        if (st->alone) {
                if (st->r == 0)
                        st->r = OSM_MIN(st->fn(st, i, n), 0);
                return st->r;
        }
        pthread_mutex_lock(&st->lock);
        st->len[i] = n;
        st->last[i] = last;
        st->full[i] = true;
        int r = st->r;
        pthread_cond_broadcast(&st->cond);
        pthread_mutex_unlock(&st->lock);
        return r;
}

/* Wait for the stage to finish (or, with stop, to leave). Returns its failure, if any. */
static int stage_end(stage *st, bool stop) {
        if (st->started) {
                if (stop) {
                        pthread_mutex_lock(&st->lock);
                        st->stop = true;
                        pthread_cond_broadcast(&st->cond);
                        pthread_mutex_unlock(&st->lock);
                }
                pthread_join(st->thread, NULL);
                st->started = false;
        }
        return st->r;
}

typedef struct put_hash {
        crypto_generichash_state hs;
        uint8_t *slot[PUT_SLOTS];
} put_hash;

static int hash_slot(stage *st, unsigned i, size_t n) {
        put_hash *ph = st->ctx;
        crypto_generichash_update(&ph->hs, ph->slot[i], n);
        return 0;
}

typedef struct put_writer {
        int fd;
        uint8_t *slot[PUT_SLOTS];   /* the plain slots, or their ciphertext twins */
        uint64_t pos;               /* bytes written to the file */
        uint64_t synced_pos;
} put_writer;

static int write_slot(stage *st, unsigned i, size_t n) {
        put_writer *pw = st->ctx;
        int r = osm_write_all(pw->fd, pw->slot[i], n);
        if (r < 0)
                return r;
        pw->pos += n;
        /* Start writing back what is there every 8 MiB, so that the disk works while we
         * hash and the final fsync has little left to wait for. */
        if (pw->pos - pw->synced_pos >= (8u << 20)) {
                sync_file_range(pw->fd, (off_t) pw->synced_pos, (off_t) (pw->pos - pw->synced_pos),
                                SYNC_FILE_RANGE_WRITE);
                pw->synced_pos = pw->pos;
        }
        return 0;
}

/* Encrypt n plain bytes into c in blocks of ENC_CHUNK, as if read one by one: every block
 * full but the content's last, which is final (maybe empty). Returns the ciphertext's size. */
static size_t encrypt_slot(crypto_secretstream_xchacha20poly1305_state *ss, uint8_t *c, const uint8_t *m,
                           size_t n, bool last) {
        size_t clen = 0;
        for (size_t off = 0;;) {
                size_t k = OSM_MIN(ENC_CHUNK, n - off);
                bool final = last && k < ENC_CHUNK;
                if (k == 0 && !final)
                        break;
                unsigned long long cl;
                crypto_secretstream_xchacha20poly1305_push(ss, c + clen, &cl, m + off, k, NULL, 0,
                        final ? crypto_secretstream_xchacha20poly1305_TAG_FINAL : 0);
                clen += (size_t) cl;
                off += k;
                if (final)
                        break;
        }
        return clen;
}

#define CSLOT (PUT_SLOT / ENC_CHUNK * (size_t) ENC_BLOCK)   /* a slot's ciphertext, at most */

static void put_run(uv_work_t *req) {
        put_work *w = req->data;
        osm_store *s = w->s;
        put_hash ph;
        put_writer pw = { .fd = -1 };
        stage hash = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER, .fn = hash_slot, .ctx = &ph,
                       .slots = PUT_SLOTS };
        stage wr = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER, .fn = write_slot, .ctx = &pw,
                     .slots = PUT_SLOTS };
        crypto_secretstream_xchacha20poly1305_state ss;
        uint8_t digest[OSM_HASH_BYTES];
        _cleanup_free_ uint8_t *ring = NULL, *cring = NULL;
        _cleanup_close_ int out = -1;
        struct stat st;
        int r;

        if (fstat(w->fd, &st) < 0) {
                r = -errno;
                goto fail;
        }
        bool regular = S_ISREG(st.st_mode);
        if (S_ISDIR(st.st_mode)) {
                r = -EISDIR;
                goto fail;
        }
        if (regular)
                posix_fadvise(w->fd, 0, 0, POSIX_FADV_SEQUENTIAL);   /* larger read-ahead */
        if (asprintf(&w->tmp_path, "%s/put-XXXXXX", s->tmp_dir) < 0) {
                w->tmp_path = NULL;
                r = -ENOMEM;
                goto fail;
        }
        out = mkostemp(w->tmp_path, O_CLOEXEC);
        if (out < 0) {
                r = -errno;
                free(w->tmp_path);
                w->tmp_path = NULL;
                goto fail;
        }
        pw.fd = out;
        ring = malloc(PUT_SLOTS * (size_t) PUT_SLOT);
        cring = w->enc ? malloc(PUT_SLOTS * CSLOT) : NULL;
        if (!ring || (w->enc && !cring)) {
                r = -ENOMEM;
                goto fail;
        }
        for (unsigned i = 0; i < PUT_SLOTS; i++) {
                ph.slot[i] = ring + i * (size_t) PUT_SLOT;
                pw.slot[i] = w->enc ? cring + i * CSLOT : ph.slot[i];
        }
        crypto_generichash_init(&ph.hs, NULL, 0, OSM_HASH_BYTES);
        if (w->enc) {
                uint8_t header[crypto_secretstream_xchacha20poly1305_HEADERBYTES];
                crypto_secretstream_xchacha20poly1305_init_push(&ss, header, s->obj_key);
                r = osm_write_all(out, header, sizeof(header));
                if (r < 0)
                        goto fail;
                pw.pos = pw.synced_pos = sizeof(header);
        }
        uint64_t checked_free = 0;
        for (unsigned i = 0;; i = (i + 1) % PUT_SLOTS) {
                if ((r = stage_wait(&hash, i)) < 0 || (r = stage_wait(&wr, i)) < 0)
                        goto fail;
                uint8_t *buf = ph.slot[i];
                ssize_t n = read_full(w->fd, regular, buf, PUT_SLOT);
                if (n < 0) {
                        r = (int) n;
                        goto fail;
                }
                w->size += (uint64_t) n;
                /* Objects are not in the database budget: bound each one, and never let
                 * one fill the filesystem the database also lives on. */
                uint64_t max = atomic_load(&s->max_object_size);
                if (max && w->size > max) {
                        r = -EFBIG;
                        goto fail;
                }
                if (w->size - checked_free >= (8u << 20) || checked_free == 0) {
                        struct statvfs sv;
                        if (fstatvfs(out, &sv) == 0 &&
                            (uint64_t) sv.f_bavail * sv.f_frsize < atomic_load(&s->min_free) + (uint64_t) n) {
                                r = -ENOSPC;
                                goto fail;
                        }
                        checked_free = w->size;
                }
                bool last = (size_t) n < PUT_SLOT;
                if ((r = stage_give(&hash, i, (size_t) n, last)) < 0)
                        goto fail;
                size_t len = w->enc ? encrypt_slot(&ss, pw.slot[i], buf, (size_t) n, last) : (size_t) n;
                if ((r = stage_give(&wr, i, len, last)) < 0)
                        goto fail;
                if (last)
                        break;
        }
        /* the content is durable before its name appears (the writer renames it); the
         * hasher finishes its last slots meanwhile */
        if ((r = stage_end(&wr, false)) < 0)
                goto fail;
        if (fsync(out) < 0) {
                r = -errno;
                goto fail;
        }
        if ((r = stage_end(&hash, false)) < 0)
                goto fail;
        crypto_generichash_final(&ph.hs, digest, sizeof(digest));
        sodium_bin2hex(w->hash, sizeof(w->hash), digest, sizeof(digest));
        sodium_memzero(&ss, sizeof(ss));
        w->r = 0;
        return;
fail:
        stage_end(&wr, true);
        stage_end(&hash, true);
        sodium_memzero(&ss, sizeof(ss));
        if (w->tmp_path) {
                unlink(w->tmp_path);
                free(w->tmp_path);
                w->tmp_path = NULL;
        }
        w->r = r;
}

static void put_after(uv_work_t *req, int status) {
        put_work *w = req->data;
        osm_store *s = w->s;
        osm_close(w->fd);
        s->n_transfers--;
        if (status < 0 && w->r == 0)
                w->r = -ECANCELED;
        if (w->r == 0 && s->closing)
                w->r = -ECANCELED;
        if (w->r < 0) {
                if (w->tmp_path)
                        unlink(w->tmp_path);
                w->cb(w->r, NULL, 0, false, w->userdata);
                goto out;
        }
        store_op *op = store_op_new(OP_OBJ_COMMIT, 0);
        if (!op) {
                unlink(w->tmp_path);
                w->cb(-ENOMEM, NULL, 0, false, w->userdata);
                goto out;
        }
        op->tmp_path = steal_pointer(&w->tmp_path);
        memcpy(op->hash, w->hash, sizeof(op->hash));
        op->size = w->size;
        op->enc = w->enc;
        op->pin = w->pin;
        op->obj_cb = w->cb;
        op->userdata = w->userdata;
        store_enqueue(s, op);
out:
        free(w->tmp_path);
        free(w);
        store_work_done(s);
}

int osm_store_object_put_fd(osm_store *s, int fd, bool pin, osm_store_object_cb cb, void *userdata) {
        if (s->closing) {
                osm_close(fd);
                return -ECANCELED;
        }
        if (s->n_transfers >= MAX_TRANSFERS) {
                osm_close(fd);
                return -EBUSY;
        }
        bool enc = atomic_load(&s->encrypt_objects);
        if (enc) {
                int r = key_load(s, true);
                if (r < 0) {
                        osm_close(fd);
                        return r;
                }
        }
        put_work *w = calloc(1, sizeof(*w));
        if (!w) {
                osm_close(fd);
                return -ENOMEM;
        }
        w->s = s;
        w->fd = fd;
        w->pin = pin;
        w->enc = enc;
        w->cb = cb;
        w->userdata = userdata;
        w->req.data = w;
        int r = uv_queue_work(s->loop, &w->req, put_run, put_after);
        if (r < 0) {
                osm_close(fd);
                free(w);
                return r;
        }
        s->n_works++;
        s->n_transfers++;
        return 0;
}

/* ---- the writer's side: inside its transaction ---- */

static int add_unlink(store_op *op, const char *hash) {
        char **n = realloc(op->unlink_after, (op->n_unlink + 1) * sizeof(char *));
        if (!n)
                return -ENOMEM;
        op->unlink_after = n;
        if (!(n[op->n_unlink] = strdup(hash)))
                return -ENOMEM;
        op->n_unlink++;
        return 0;
}

static int obj_commit(osm_store *s, store_op *op) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        char final[4096], dir[4096];
        int rc;

        rc = sqlite3_prepare_v2(s->wdb, "SELECT 1 FROM objects WHERE hash=?1", -1, &st, NULL);
        if (rc != SQLITE_OK)
                return osm_db_errno(s->wdb, rc);
        sqlite3_bind_text(st, 1, op->hash, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE)
                return osm_db_errno(s->wdb, rc);
        bool row = rc == SQLITE_ROW;
        sqlite3_finalize(st);
        st = NULL;

        object_path(s, op->hash, final, sizeof(final));
        if (row && access(final, F_OK) == 0) {
                /* Identical content is stored once. The copy is unlinked after the reply,
                 * on the loop's thread pool: freeing a large file's blocks here held up
                 * every write queued behind it (0.18 s for 256 MiB). */
                op->tmp_spare = true;
        } else {
                snprintf(dir, sizeof(dir), "%s/%.2s", s->obj_dir, op->hash);
                if (mkdir(dir, 0700) == 0)
                        store_fsync_dir(s->obj_dir);
                else if (errno != EEXIST)
                        return -errno;
                if (rename(op->tmp_path, final) < 0)
                        return -errno;
                int r = store_fsync_dir(dir);
                if (r < 0)
                        return r;
                op->created = !row;
        }
        if (row)
                rc = sqlite3_prepare_v2(s->wdb,
                        "UPDATE objects SET pinned = pinned OR ?2, refs = refs + ?3 WHERE hash=?1",
                        -1, &st, NULL);
        else
                rc = sqlite3_prepare_v2(s->wdb,
                        "INSERT INTO objects(hash, size, enc, refs, pinned, created) "
                        "VALUES(?1, ?4, ?5, ?3, ?2, ?6)", -1, &st, NULL);
        if (rc != SQLITE_OK)
                return osm_db_errno(s->wdb, rc);
        sqlite3_bind_text(st, 1, op->hash, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 2, op->pin);
        sqlite3_bind_int(st, 3, op->pin ? 0 : 1);
        if (!row) {
                sqlite3_bind_int64(st, 4, (int64_t) op->size);
                sqlite3_bind_int(st, 5, op->enc);
                sqlite3_bind_int64(st, 6, osm_now_real_us());
        }
        rc = sqlite3_step(st);
        return rc == SQLITE_DONE ? 0 : osm_db_errno(s->wdb, rc);
}

static int obj_ref(osm_store *s, store_op *op) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(s->wdb, "SELECT refs, pinned FROM objects WHERE hash=?1", -1, &st, NULL);
        if (rc != SQLITE_OK)
                return osm_db_errno(s->wdb, rc);
        sqlite3_bind_text(st, 1, op->hash, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
                return -ENOENT;
        if (rc != SQLITE_ROW)
                return osm_db_errno(s->wdb, rc);
        int64_t refs = sqlite3_column_int64(st, 0) + op->delta;
        bool pinned = sqlite3_column_int(st, 1) && !op->unpin;
        if (refs < 0)
                refs = 0;
        sqlite3_finalize(st);
        st = NULL;
        bool gone = refs == 0 && !pinned;
        rc = sqlite3_prepare_v2(s->wdb, gone ? "DELETE FROM objects WHERE hash=?1"
                                             : "UPDATE objects SET refs=?2, pinned=?3 WHERE hash=?1",
                                -1, &st, NULL);
        if (rc != SQLITE_OK)
                return osm_db_errno(s->wdb, rc);
        sqlite3_bind_text(st, 1, op->hash, -1, SQLITE_STATIC);
        if (!gone) {
                sqlite3_bind_int64(st, 2, refs);
                sqlite3_bind_int(st, 3, pinned);
        }
        rc = sqlite3_step(st);
        if (rc != SQLITE_DONE)
                return osm_db_errno(s->wdb, rc);
        op->created = gone;   /* for the caller: the object was deleted */
        return gone ? add_unlink(op, op->hash) : 0;
}

/* Delete unreferenced rows (files go after the commit) and files that have no row. */
static int obj_gc(osm_store *s, store_op *op) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL, *ex = NULL;
        int rc = sqlite3_prepare_v2(s->wdb,
                "DELETE FROM objects WHERE refs <= 0 AND pinned = 0 RETURNING hash", -1, &st, NULL);
        if (rc != SQLITE_OK)
                return osm_db_errno(s->wdb, rc);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                int r = add_unlink(op, (const char *) sqlite3_column_text(st, 0));
                if (r < 0)
                        return r;
        }
        if (rc != SQLITE_DONE)
                return osm_db_errno(s->wdb, rc);
        op->size = op->n_unlink;

        rc = sqlite3_prepare_v2(s->wdb, "SELECT 1 FROM objects WHERE hash=?1", -1, &ex, NULL);
        if (rc != SQLITE_OK)
                return osm_db_errno(s->wdb, rc);
        DIR *top = opendir(s->obj_dir);
        if (!top)
                return 0;
        struct dirent *e;
        while ((e = readdir(top))) {
                /* only the two-hex-digit fan-out directories hold objects */
                if (strlen(e->d_name) != 2 || !isxdigit((unsigned char) e->d_name[0]) ||
                    !isxdigit((unsigned char) e->d_name[1]))
                        continue;
                int dfd = openat(dirfd(top), e->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (dfd < 0)
                        continue;
                DIR *sub = fdopendir(dfd);
                if (!sub) {
                        close(dfd);
                        continue;
                }
                struct dirent *f;
                while ((f = readdir(sub))) {
                        if (f->d_name[0] == '.')
                                continue;
                        char hash[OSM_HASH_HEX];
                        bool keep = false;
                        if (strlen(f->d_name) == OSM_HASH_BYTES * 2 - 2) {
                                memcpy(hash, e->d_name, 2);
                                memcpy(hash + 2, f->d_name, OSM_HASH_BYTES * 2 - 2 + 1);
                        } else
                                hash[0] = 0;
                        if (osm_store_hash_valid(hash)) {
                                sqlite3_reset(ex);
                                sqlite3_bind_text(ex, 1, hash, -1, SQLITE_TRANSIENT);
                                rc = sqlite3_step(ex);
                                keep = rc == SQLITE_ROW;
                                /* a row deleted just above still has its file: unlinked after commit */
                                for (size_t i = 0; i < op->n_unlink && !keep; i++)
                                        keep = strcmp(op->unlink_after[i], hash) == 0;
                        }
                        if (!keep && unlinkat(dfd, f->d_name, 0) == 0)
                                op->size++;
                }
                closedir(sub);
        }
        closedir(top);
        return 0;
}

int store_obj_exec(osm_store *s, store_op *op) {
        switch (op->kind) {
        case OP_OBJ_COMMIT: return obj_commit(s, op);
        case OP_OBJ_REF: return obj_ref(s, op);
        case OP_OBJ_GC: return obj_gc(s, op);
        default: return -EINVAL;
        }
}

void store_obj_after_commit(osm_store *s, store_op *op, bool committed) {
        if (op->kind == OP_OBJ_COMMIT && !committed && op->tmp_path)
                unlink(op->tmp_path);   /* ENOENT if it had been renamed: a stray the next gc takes */
        if (!committed)
                return;
        if (op->n_unlink)
                s->erased = true;   /* their rows too: checkpoint the WAL (store-erase.c) */
        for (size_t i = 0; i < op->n_unlink; i++) {
                /* A later op of the same batch may have stored the same content again (an
                 * object put racing rm or gc): its row is committed and its file is this
                 * path, so unlink only if no row names the hash any more. */
                _cleanup_stmt_ sqlite3_stmt *st = NULL;
                if (sqlite3_prepare_v2(s->wdb, "SELECT 1 FROM objects WHERE hash=?1", -1, &st, NULL) != SQLITE_OK)
                        continue;   /* when in doubt, keep the file: the next gc takes strays */
                sqlite3_bind_text(st, 1, op->unlink_after[i], -1, SQLITE_STATIC);
                if (sqlite3_step(st) != SQLITE_DONE)
                        continue;
                char path[4096];
                object_path(s, op->unlink_after[i], path, sizeof(path));
                unlink(path);
        }
}

/* ---- completions on the loop ---- */

static void on_spare_unlinked(uv_fs_t *req) {
        if (req->result < 0 && req->result != UV_ENOENT)
                log_warning("store: cannot remove %s: %s (removed at the next start)", req->path, uv_strerror((int) req->result));
        uv_fs_req_cleanup(req);
        free(req);
}

void store_obj_done(osm_store *s, store_op *op) {
        switch (op->kind) {
        case OP_OBJ_COMMIT:
                if (op->obj_cb)
                        op->obj_cb(op->r, op->r >= 0 ? op->hash : NULL, op->size, op->created, op->userdata);
                if (op->tmp_spare && op->r >= 0) {   /* not committed: store_obj_after_commit unlinked it */
                        uv_fs_t *req = malloc(sizeof *req);
                        if (!req || uv_fs_unlink(s->loop, req, op->tmp_path, on_spare_unlinked) < 0) {
                                free(req);
                                unlink(op->tmp_path);
                        }
                }
                break;
        case OP_OBJ_REF:
                if (op->done_cb)
                        op->done_cb(op->r < 0 ? op->r : op->created, op->userdata);
                break;
        case OP_OBJ_GC:
                if (op->done_cb)
                        op->done_cb(op->r < 0 ? op->r : (int) OSM_MIN(op->size, (uint64_t) INT32_MAX), op->userdata);
                break;
        default:
                break;
        }
}

int osm_store_object_ref(osm_store *s, const char *hash, int delta, bool unpin,
                         osm_store_done_cb cb, void *userdata) {
        if (s->closing)
                return -ECANCELED;
        if (!osm_store_hash_valid(hash))
                return -EINVAL;
        store_op *op = store_op_new(OP_OBJ_REF, 0);
        if (!op)
                return -ENOMEM;
        memcpy(op->hash, hash, OSM_HASH_HEX);
        op->delta = delta;
        op->unpin = unpin;
        op->done_cb = cb;
        op->userdata = userdata;
        store_enqueue(s, op);
        return 0;
}

int osm_store_object_gc(osm_store *s, osm_store_done_cb cb, void *userdata) {
        if (s->closing)
                return -ECANCELED;
        store_op *op = store_op_new(OP_OBJ_GC, 0);
        if (!op)
                return -ENOMEM;
        op->done_cb = cb;
        op->userdata = userdata;
        store_enqueue(s, op);
        return 0;
}

/* ---- reading ---- */

typedef struct reader {
        int in;          /* the encrypted file */
        int out;         /* our end of the socket pair */
        uint8_t *key;    /* sodium_malloc'd copy */
} reader;

static int write_stream(int fd, const uint8_t *buf, size_t len) {
        while (len > 0) {
                ssize_t n = write(fd, buf, len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN) {
                        struct pollfd p = { .fd = fd, .events = POLLOUT };
                        int k = poll(&p, 1, IO_TIMEOUT_MS);
                        if (k == 0)
                                return -ETIMEDOUT;   /* nobody reads: give up */
                        if (k < 0 && errno != EINTR)
                                return -errno;
                        continue;
                }
                if (n < 0)
                        return -errno;
                buf += n;
                len -= (size_t) n;
        }
        return 0;
}

typedef struct stream_writer {
        int fd;
        uint8_t *slot[PUT_SLOTS];
} stream_writer;

static int stream_slot(stage *st, unsigned i, size_t n) {
        stream_writer *pw = st->ctx;
        return write_stream(pw->fd, pw->slot[i], n);
}

/* Decrypt r->in into the socket; on any failure (tampering, a reader that went away) it
 * closes early, and the reader sees fewer bytes than the object's size. Blocks are read
 * READ_BLOCKS at a time and decrypted into a slot of a ring, each checked before any of its
 * bytes leave; a stage of its own copies the slots into the socket meanwhile (the copy costs
 * about as much as the decryption: on two cores they overlap). */
static void *reader_main(void *arg) {
        reader *rd = arg;
        crypto_secretstream_xchacha20poly1305_state ss;
        uint8_t header[crypto_secretstream_xchacha20poly1305_HEADERBYTES];
        stream_writer pw = { .fd = rd->out };
        stage wr = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER, .fn = stream_slot, .ctx = &pw,
                     .slots = READ_SLOTS };
        const size_t slot_size = READ_BLOCKS * (size_t) ENC_CHUNK;
        uint8_t *cbuf = malloc(READ_BLOCKS * (size_t) ENC_BLOCK), *ring = malloc(READ_SLOTS * slot_size);
        bool ok = false;

        if (!cbuf || !ring)
                goto out;
        for (unsigned i = 0; i < READ_SLOTS; i++)
                pw.slot[i] = ring + i * slot_size;
        posix_fadvise(rd->in, 0, 0, POSIX_FADV_SEQUENTIAL);
        if (read_full(rd->in, true, header, sizeof(header)) != (ssize_t) sizeof(header))
                goto out;
        if (crypto_secretstream_xchacha20poly1305_init_pull(&ss, header, rd->key) != 0)
                goto out;
        bool final = false;
        for (unsigned i = 0; !final; i = (i + 1) % READ_SLOTS) {
                if (stage_wait(&wr, i) < 0)
                        goto out;
                ssize_t n = read_full(rd->in, true, cbuf, READ_BLOCKS * (size_t) ENC_BLOCK);
                if (n <= 0)
                        goto out;   /* an error, or truncated: no final block */
                uint8_t *buf = pw.slot[i];
                size_t off = 0, len = 0;
                while (off < (size_t) n && !final) {
                        size_t k = OSM_MIN((size_t) ENC_BLOCK, (size_t) n - off);
                        unsigned long long mlen;
                        unsigned char tag;
                        if (k < crypto_secretstream_xchacha20poly1305_ABYTES)
                                goto out;
                        if (crypto_secretstream_xchacha20poly1305_pull(&ss, buf + len, &mlen, &tag, cbuf + off, k,
                                                                        NULL, 0) != 0)
                                goto out;
                        off += k;
                        len += (size_t) mlen;
                        final = tag == crypto_secretstream_xchacha20poly1305_TAG_FINAL;
                        if (!final && k < ENC_BLOCK)
                                goto out;   /* truncated: no final block */
                }
                if (stage_give(&wr, i, len, final) < 0)
                        goto out;
        }
        ok = true;
out:
        stage_end(&wr, !ok);   /* on a failure, what is not in the socket yet stays out */
        sodium_memzero(&ss, sizeof(ss));
        if (ring)
                sodium_memzero(ring, READ_SLOTS * slot_size);
        free(ring);
        free(cbuf);
        close(rd->in);
        close(rd->out);
        sodium_free(rd->key);
        free(rd);
        atomic_fetch_sub(&n_readers, 1);
        return NULL;
}

int osm_store_object_open(osm_store *s, const char *hash, int *out_fd, uint64_t *out_size) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        char path[4096];

        if (!osm_store_hash_valid(hash))
                return -EINVAL;
        int rc = sqlite3_prepare_v2(s->rdb, "SELECT size, enc FROM objects WHERE hash=?1", -1, &st, NULL);
        if (rc != SQLITE_OK)
                return osm_db_errno(s->rdb, rc);
        sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
                return -ENOENT;
        if (rc != SQLITE_ROW)
                return osm_db_errno(s->rdb, rc);
        uint64_t size = (uint64_t) sqlite3_column_int64(st, 0);
        bool enc = sqlite3_column_int(st, 1);
        object_path(s, hash, path, sizeof(path));
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return errno == ENOENT ? -ENOENT : -errno;
        if (!enc) {
                *out_fd = steal_fd(&fd);
                *out_size = size;
                return 0;
        }

        int r = key_load(s, false);
        if (r < 0)
                return r;
        if (atomic_fetch_add(&n_readers, 1) >= MAX_READERS) {
                atomic_fetch_sub(&n_readers, 1);
                return -EBUSY;
        }
        int p[2];
        reader *rd = calloc(1, sizeof(*rd));
        uint8_t *key = osm_secret_alloc(crypto_secretstream_xchacha20poly1305_KEYBYTES);
        if (!rd || !key || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p) < 0) {
                r = rd && key ? -errno : -ENOMEM;
                free(rd);
                sodium_free(key);
                atomic_fetch_sub(&n_readers, 1);
                return r;
        }
        memcpy(key, s->obj_key, crypto_secretstream_xchacha20poly1305_KEYBYTES);
        fcntl(p[1], F_SETFL, O_NONBLOCK);   /* our own end: waits are bounded by poll */
        /* A stream socket pair rather than a pipe: a pipe's reader and writer share one
         * lock held through each whole copy, so the client's reads and our writes wait on
         * each other; a socket's sender and receiver copy at the same time. */
        int sz = READ_SOCK_BUF;   /* as the kernel's wmem_max allows */
        setsockopt(p[1], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
        shutdown(p[0], SHUT_WR);
        shutdown(p[1], SHUT_RD);
        rd->in = steal_fd(&fd);
        rd->out = p[1];
        rd->key = key;
        pthread_attr_t attr;
        pthread_t t;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        r = -pthread_create(&t, &attr, reader_main, rd);
        pthread_attr_destroy(&attr);
        if (r < 0) {
                close(rd->in);
                close(p[0]);
                close(p[1]);
                sodium_free(key);
                free(rd);
                atomic_fetch_sub(&n_readers, 1);
                return r;
        }
        *out_fd = p[0];
        *out_size = size;
        return 0;
}

int osm_store_objects(osm_store *s, json_t **out) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        json_auto_t *arr = json_array();
        if (!arr)
                return -ENOMEM;
        int rc = sqlite3_prepare_v2(s->rdb,
                "SELECT hash, size, refs, pinned, enc, created FROM objects ORDER BY created, hash",
                -1, &st, NULL);
        if (rc != SQLITE_OK)
                return osm_db_errno(s->rdb, rc);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                json_t *o = json_pack("{s:s, s:I, s:I, s:b, s:b, s:I}",
                        "hash", (const char *) sqlite3_column_text(st, 0),
                        "size", (json_int_t) sqlite3_column_int64(st, 1),
                        "refs", (json_int_t) sqlite3_column_int64(st, 2),
                        "pinned", sqlite3_column_int(st, 3),
                        "encrypted", sqlite3_column_int(st, 4),
                        "created", (json_int_t) sqlite3_column_int64(st, 5));
                if (!o || json_array_append_new(arr, o) < 0)
                        return -ENOMEM;
        }
        if (rc != SQLITE_DONE)
                return osm_db_errno(s->rdb, rc);
        *out = steal_pointer(&arr);
        return 0;
}
