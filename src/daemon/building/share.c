/* share.c: bundles by hash between the members of a building (peer-to-peer). A room that
 * keeps a verified bundle records itself as a holder in the replicated table
 * bundle_holders; a room that needs a bundle asks the holders over the member transport
 * ({"op":"bundle","id":ID}) before its origin, one after another in random order, and
 * hands each copy to its caller to verify by the id: a member that sends other bytes is
 * refused and the next one is tried. Only when no member has it, or none served a copy
 * that was taken, does the caller go to the origin — so a building takes about one copy
 * from outside. The serving side streams its kept file, bounded: BLD_SHARE_MAX_UPLOADS
 * at once, one per member, a deadline per chunk and one for the whole transfer.
 *
 * Fetching threads are not the building's own (the channels' thread pool): a guard of
 * this file (g_lock) tells them whether the building is up, counts them, and lets
 * bld_share_stop cut their transfers short and wait for them before the transport goes. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "daemon/building/building-internal.h"
#include "osmose/bundle.h"
#include "osmose/log.h"
#include "osmose/util.h"

#define DIAL_MS          2000
#define HEADER_MS        5000
#define CHUNK            (256 * 1024)
#define IDLE_US          (15 * 1000000ull)   /* no progress this long: the transfer is dropped */
#define BUSY_WAIT_US     400000              /* every holder busy: ask again after this */
#define MAX_FETCHES      8                   /* fetching threads at once */
#define MAX_CANDIDATES   64                  /* holders tried per fetch */

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cond = PTHREAD_COND_INITIALIZER;
static osm_building *g_b;          /* the active building (one daemon per process) */
static unsigned g_users;           /* threads inside osm_building_fetch_bundle / _holds */
static int g_fds[MAX_FETCHES];     /* their transfer sockets, +1 (0: none), cut at stop */

static bool id_ok(const char *id) {
        return id && strlen(id) == OSM_HASH_HEX - 1 && strspn(id, "0123456789abcdef") == OSM_HASH_HEX - 1;
}

static uint64_t max_bundle(osm_building *b) {
        return b->d->cfg.max_bundle_size ? b->d->cfg.max_bundle_size : OSM_BUNDLE_DEFAULT_MAX_SIZE;
}

static uint64_t transfer_us(osm_building *b) {
        return b->d->cfg.fetch_timeout_us ? b->d->cfg.fetch_timeout_us : 300 * 1000000ull;
}

void bld_share_start(osm_building *b) {
        pthread_mutex_lock(&g_lock);
        g_b = b;
        pthread_mutex_unlock(&g_lock);
}

void bld_share_stop(osm_building *b) {
        pthread_mutex_lock(&g_lock);
        if (g_b == b)
                g_b = NULL;
        for (size_t i = 0; i < MAX_FETCHES; i++)
                if (g_fds[i] > 0)
                        shutdown(g_fds[i] - 1, SHUT_RDWR);
        struct timespec dl;
        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_sec += 6;
        while (g_users > 0)
                if (pthread_cond_timedwait(&g_cond, &g_lock, &dl) == ETIMEDOUT)
                        break;
        if (g_users > 0)
                log_warning("building: %u bundle transfer(s) did not stop in time", g_users);
        pthread_mutex_unlock(&g_lock);
}

/* The building, for a thread from outside it; NULL when there is none. */
static osm_building *enter(osm_daemon *d) {
        pthread_mutex_lock(&g_lock);
        osm_building *b = g_b && g_b->d == d ? g_b : NULL;
        if (b)
                g_users++;
        pthread_mutex_unlock(&g_lock);
        return b;
}

static void leave(void) {
        pthread_mutex_lock(&g_lock);
        if (--g_users == 0)
                pthread_cond_broadcast(&g_cond);
        pthread_mutex_unlock(&g_lock);
}

/* A transfer socket bld_share_stop may cut: slot index, or -1 when all are taken. */
static int fd_register(int fd) {
        pthread_mutex_lock(&g_lock);
        int slot = -1;
        for (int i = 0; i < MAX_FETCHES && slot < 0; i++)
                if (g_fds[i] == 0) {
                        g_fds[i] = fd + 1;
                        slot = i;
                }
        pthread_mutex_unlock(&g_lock);
        return slot;
}

static void fd_unregister(int slot) {
        pthread_mutex_lock(&g_lock);
        g_fds[slot] = 0;
        pthread_mutex_unlock(&g_lock);
}

#define SHARE_COUNT(b, field, n) do { pthread_mutex_lock(&(b)->lock); (b)->share.field += (n); \
                                      pthread_mutex_unlock(&(b)->lock); } while (0)

void bld_share_status(osm_building *b, json_t *counters) {
        pthread_mutex_lock(&b->lock);
        bld_share_counters k = b->share;
        size_t holders = json_array_size(b->holders_copy);
        pthread_mutex_unlock(&b->lock);
        json_object_set_new(counters, "bundle_holders", json_integer((json_int_t) holders));
        json_object_set_new(counters, "bundles_served", json_integer((json_int_t) k.served));
        json_object_set_new(counters, "bundle_bytes_served", json_integer((json_int_t) k.bytes_served));
        json_object_set_new(counters, "bundles_fetched", json_integer((json_int_t) k.fetched));
        json_object_set_new(counters, "bundle_bytes_fetched", json_integer((json_int_t) k.bytes_fetched));
        json_object_set_new(counters, "bundles_refused", json_integer((json_int_t) k.refused));
        json_object_set_new(counters, "bundle_requests_busy", json_integer((json_int_t) k.busy));
        json_object_set_new(counters, "bundle_fetches_failed", json_integer((json_int_t) k.failed));
}

/* ---------- serving (a transport thread; the peer is a member) ---------- */

/* One transfer per member, BLD_SHARE_MAX_UPLOADS in all: true when a slot was taken. */
static bool upload_begin(osm_building *b, const uint8_t peer[OSM_PUBKEY_BYTES]) {
        pthread_mutex_lock(&b->lock);
        bool ok = b->n_uploads < BLD_SHARE_MAX_UPLOADS;
        for (unsigned i = 0; ok && i < b->n_uploads; i++)
                ok = sodium_memcmp(b->uploads[i], peer, OSM_PUBKEY_BYTES) != 0;
        if (ok)
                memcpy(b->uploads[b->n_uploads++], peer, OSM_PUBKEY_BYTES);
        pthread_mutex_unlock(&b->lock);
        return ok;
}

static void upload_end(osm_building *b, const uint8_t peer[OSM_PUBKEY_BYTES]) {
        pthread_mutex_lock(&b->lock);
        for (unsigned i = 0; i < b->n_uploads; i++)
                if (sodium_memcmp(b->uploads[i], peer, OSM_PUBKEY_BYTES) == 0) {
                        memmove(b->uploads[i], b->uploads[b->n_uploads - 1], OSM_PUBKEY_BYTES);
                        b->n_uploads--;
                        break;
                }
        pthread_mutex_unlock(&b->lock);
}

/* The kept bundle id of the channels subsystem (state/channels/bundles/ID: verified by
 * its id when it was kept). fd and its size, or -errno. */
static int open_kept(osm_building *b, const char *id, uint64_t *size) {
        char p[4400];
        snprintf(p, sizeof p, "%s/channels/bundles/%s", b->d->cfg.state_dir, id);
        int fd = open(p, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
        struct stat st;
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t) st.st_size > max_bundle(b)) {
                close(fd);
                return -EINVAL;
        }
        *size = (uint64_t) st.st_size;
        return fd;
}

void bld_handle_bundle(osm_building *b, osm_btls_conn *c, json_t *req) {
        const char *id = json_string_value(json_object_get(req, "id"));
        char room[OSM_SPACE_ID_LEN + 1];
        osm_space_id(c->peer, room);
        if (!id_ok(id)) {
                bld_answer_error(c, "InvalidParameter", "id: not a bundle id (64 lowercase hex digits)");
                return;
        }
        if (!upload_begin(b, c->peer)) {
                SHARE_COUNT(b, busy, 1);
                bld_answer_error(c, "Busy", "this room is sending as many bundles as it may at once; ask another or later");
                return;
        }
        uint64_t size = 0;
        _cleanup_close_ int fd = open_kept(b, id, &size);
        if (fd < 0) {
                upload_end(b, c->peer);
                bld_answer_error(c, "NotFound", "this room does not keep that bundle");
                return;
        }
        char head[64];
        int n = snprintf(head, sizeof head, "{\"size\":%llu}\n", (unsigned long long) size);
        uint64_t start = osm_now_mono_us(), end = start + transfer_us(b), sent = 0;
        uint8_t *buf = malloc(CHUNK);
        int r = buf ? osm_btls_write(c, head, (size_t) n, start + IDLE_US) : -ENOMEM;
        while (r == 0 && sent < size) {
                ssize_t k = pread(fd, buf, (size_t) OSM_MIN((uint64_t) CHUNK, size - sent), (off_t) sent);
                if (k <= 0) {
                        r = k < 0 ? -errno : -EIO;   /* the file shrank: the member sees a short copy */
                        break;
                }
                uint64_t now = osm_now_mono_us();
                if (now >= end) {
                        r = -ETIMEDOUT;
                        break;
                }
                r = osm_btls_write(c, buf, (size_t) k, OSM_MIN(end, now + IDLE_US));
                if (r == 0)
                        sent += (uint64_t) k;
        }
        free(buf);
        upload_end(b, c->peer);
        pthread_mutex_lock(&b->lock);
        b->share.bytes_served += sent;
        if (r == 0)
                b->share.served++;
        pthread_mutex_unlock(&b->lock);
        if (r == 0)
                log_info("building: sent bundle %.12s… (%llu bytes) to %s", id, (unsigned long long) size, room);
        else
                log_info("building: sending bundle %.12s… to %s stopped after %llu bytes: %s", id, room,
                         (unsigned long long) sent, strerror(-r));
}

/* ---------- fetching (a thread from outside the building) ---------- */

typedef struct candidate {
        char room[OSM_SPACE_ID_LEN + 1];
        char name[80];
        char address[OSM_DQ_ADDR_MAX];
        uint8_t key[OSM_PUBKEY_BYTES];
        bool done;   /* tried: failed, refused, or did not have it */
} candidate;

/* The rooms that keep id: asked of the leader (a room that took it a moment ago is in the
 * table before it reports its health), else from the last copy of the state. */
static json_t *holder_rooms(osm_building *b, const char *id) {
        osm_dq c;
        json_t *rooms = json_array(), *cols = NULL, *rows = NULL, *params = json_pack("[s]", id);
        size_t i;
        json_t *h;
        if (bld_dial_leader(b, &c, DIAL_MS, NULL, NULL, NULL) == 0) {
                int r = osm_dq_query(&c, "SELECT room FROM bundle_holders WHERE bundle = ?", params, &cols, &rows);
                osm_dq_close(&c);
                json_decref(params);
                json_decref(cols);
                if (r == 0) {
                        json_array_foreach(rows, i, h)
                                json_array_append(rooms, json_array_get(h, 0));
                        json_decref(rows);
                        return rooms;
                }
        } else {
                json_decref(params);
        }
        pthread_mutex_lock(&b->lock);
        json_array_foreach(b->holders_copy, i, h)
                if (strcmp(json_string_value(json_object_get(h, "bundle")) ?: "", id) == 0)
                        json_array_append(rooms, json_object_get(h, "room"));
        pthread_mutex_unlock(&b->lock);
        return rooms;
}

/* The members other than this room that keep id and are not already in list[0..n):
 * appended. Returns the new count. */
static size_t holders_of(osm_building *b, const char *id, candidate *list, size_t n) {
        json_t *rooms = holder_rooms(b, id);
        pthread_mutex_lock(&b->lock);
        size_t i, k;
        json_t *h, *m;
        json_array_foreach(rooms, i, h) {
                const char *room = json_string_value(h);
                if (n >= MAX_CANDIDATES || !room || strcmp(room, b->d->space_id) == 0)
                        continue;
                bool known = false;
                for (k = 0; k < n && !known; k++)
                        known = strcmp(list[k].room, room) == 0;
                if (known)
                        continue;
                json_array_foreach(b->members_copy, k, m) {
                        const char *mr = json_string_value(json_object_get(m, "room"));
                        const char *a = json_string_value(json_object_get(m, "address"));
                        const char *nm = json_string_value(json_object_get(m, "name"));
                        if (!mr || strcmp(mr, room) != 0 || !a || strlen(a) >= sizeof list[n].address ||
                            strlen(room) >= sizeof list[n].room ||
                            osm_pubkey_decode(json_string_value(json_object_get(m, "key")), list[n].key) < 0)
                                continue;
                        candidate *c = &list[n++];
                        snprintf(c->room, sizeof c->room, "%s", room);
                        snprintf(c->name, sizeof c->name, "%s", nm ? nm : room);
                        snprintf(c->address, sizeof c->address, "%s", a);
                        c->done = false;
                        break;
                }
        }
        pthread_mutex_unlock(&b->lock);
        json_decref(rooms);
        return n;
}

enum { TRY_TAKEN, TRY_BUSY, TRY_FAILED, TRY_REFUSED };

bld_answer bld_share_parse_answer(const char *line, uint64_t want, uint64_t max, uint64_t *size, char *why,
                                  size_t why_size) {
        json_t *o = json_loads(line, JSON_REJECT_DUPLICATES, NULL);
        const char *e = json_string_value(json_object_get(o, "error"));
        json_t *sz = json_object_get(o, "size");
        bld_answer a = BLD_ANSWER_SENDS;
        *size = 0;
        if (why_size)
                why[0] = 0;
        if (e) {
                a = strcmp(e, "Busy") == 0 ? BLD_ANSWER_BUSY : BLD_ANSWER_FAILED;
                snprintf(why, why_size, "%s", json_string_value(json_object_get(o, "message")) ?: e);
        } else if (!json_is_integer(sz) || json_integer_value(sz) <= 0 || (uint64_t) json_integer_value(sz) > max ||
                   (want && (uint64_t) json_integer_value(sz) != want)) {
                a = BLD_ANSWER_REFUSED;
                snprintf(why, why_size, "it offers %s bytes, not the %llu of the bundle",
                         json_is_integer(sz) ? "another number of" : "an unknown number of", (unsigned long long) want);
        } else {
                *size = (uint64_t) json_integer_value(sz);
        }
        json_decref(o);
        return a;
}

/* Ask one member for id and hand its copy to take. */
static int try_member(osm_building *b, candidate *m, const char *id, uint64_t want, const char *tmp_dir,
                      osm_building_take_fn take, void *arg, uint64_t deadline) {
        osm_btls_conn c = { .fd = -1 };
        osm_error why = {};
        if (osm_bt_dial(b->bt, m->address, m->key, DIAL_MS, &c, &why) < 0) {
                log_info("building: bundle %.12s…: cannot reach %s: %s", id, m->name, why.message);
                return TRY_FAILED;
        }
        int slot = fd_register(c.fd);
        int result = TRY_FAILED;
        char line[512], err[512] = "";
        _cleanup_close_ int out = -1;
        uint64_t got = 0, size = 0;
        int r = -ENOMEM;
        if (slot < 0) {
                osm_btls_close(&c);
                return TRY_BUSY;   /* as many transfers as this room allows: later */
        }
        char req[128];
        int n = snprintf(req, sizeof req, "{\"op\":\"bundle\",\"id\":\"%s\"}\n", id);
        uint64_t now = osm_now_mono_us();
        if ((r = osm_btls_write(&c, req, (size_t) n, now + HEADER_MS * 1000ull)) < 0 ||
            (r = osm_btls_read_line(&c, line, sizeof line, now + HEADER_MS * 1000ull)) < 0) {
                snprintf(err, sizeof err, "no answer: %s", strerror(-r));
                goto done;
        }
        switch (bld_share_parse_answer(line, want, max_bundle(b), &size, err, sizeof err)) {
        case BLD_ANSWER_SENDS:
                break;
        case BLD_ANSWER_BUSY:
                result = TRY_BUSY;
                goto done;
        case BLD_ANSWER_FAILED:
                result = TRY_FAILED;
                goto done;
        case BLD_ANSWER_REFUSED:
                result = TRY_REFUSED;
                goto done;
        }
        out = open(tmp_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        if (out < 0) {
                snprintf(err, sizeof err, "a temporary file in %s: %m", tmp_dir);
                goto done;
        }
        uint8_t *buf = malloc(CHUNK);
        r = buf ? 0 : -ENOMEM;
        while (r == 0 && got < size) {
                now = osm_now_mono_us();
                if (now >= deadline) {
                        r = -ETIMEDOUT;
                        break;
                }
                int k = osm_btls_read(&c, buf, (size_t) OSM_MIN((uint64_t) CHUNK, size - got), OSM_MIN(deadline, now + IDLE_US));
                if (k <= 0) {
                        r = k < 0 ? k : -ECONNRESET;
                        break;
                }
                if ((r = osm_write_all(out, buf, (size_t) k)) < 0)
                        break;
                got += (uint64_t) k;
        }
        free(buf);
        if (r < 0) {
                snprintf(err, sizeof err, "after %llu of %llu bytes: %s", (unsigned long long) got,
                         (unsigned long long) size, strerror(-r));
                goto done;
        }
        if (lseek(out, 0, SEEK_SET) < 0) {
                snprintf(err, sizeof err, "lseek: %m");
                goto done;
        }
        if (take(arg, out, size, &why) == 0) {   /* why is still empty: the dial went well */
                result = TRY_TAKEN;
        } else {
                result = TRY_REFUSED;
                snprintf(err, sizeof err, "%s", why.message);
        }
done:
        fd_unregister(slot);
        osm_btls_close(&c);
        pthread_mutex_lock(&b->lock);
        b->share.bytes_fetched += got;
        b->share.fetched += result == TRY_TAKEN;
        b->share.refused += result == TRY_REFUSED;
        b->share.failed += result == TRY_FAILED;
        pthread_mutex_unlock(&b->lock);
        if (result == TRY_TAKEN)
                log_info("building: bundle %.12s… (%llu bytes) from member %s", id, (unsigned long long) size, m->name);
        else if (result == TRY_REFUSED)
                log_warning("building: bundle %.12s… from member %s refused: %s", id, m->name, err);
        else if (result == TRY_FAILED)
                log_info("building: bundle %.12s… from member %s: %s", id, m->name, err);
        return result;
}

int osm_building_fetch_bundle(osm_daemon *d, const char *id, uint64_t size, const char *tmp_dir,
                              osm_building_take_fn take, void *arg) {
        if (!id_ok(id))
                return -EINVAL;
        osm_building *b = enter(d);
        if (!b)
                return -ENOTCONN;
        candidate *list = calloc(MAX_CANDIDATES, sizeof *list);
        size_t n = 0;
        int rc = -ENOENT;
        uint64_t deadline = osm_now_mono_us() + transfer_us(b);
        bool cut = false;
        while (list && !cut && osm_now_mono_us() < deadline) {
                n = holders_of(b, id, list, n);
                size_t n_open = 0, order[MAX_CANDIDATES];
                for (size_t i = 0; i < n; i++)
                        if (!list[i].done)
                                order[n_open++] = i;
                if (n_open == 0)
                        break;   /* nobody (else) has it: the origin */
                for (size_t i = n_open; i > 1; i--) {   /* random order: spread the load */
                        size_t k = randombytes_uniform((uint32_t) i);
                        size_t t = order[i - 1];
                        order[i - 1] = order[k];
                        order[k] = t;
                }
                for (size_t i = 0; i < n_open && rc < 0; i++) {
                        candidate *m = &list[order[i]];
                        int t = try_member(b, m, id, size, tmp_dir, take, arg, deadline);
                        if (t == TRY_TAKEN)
                                rc = 0;
                        else if (t != TRY_BUSY)
                                m->done = true;
                        pthread_mutex_lock(&g_lock);
                        cut = g_b != b;   /* the building is stopping */
                        pthread_mutex_unlock(&g_lock);
                        if (cut)
                                break;
                }
                if (rc == 0)
                        break;
                /* Every holder left is busy: more rooms keep it soon (those it is being sent
                 * to now); ask again. */
                bool any_busy = false;
                for (size_t i = 0; i < n; i++)
                        any_busy |= !list[i].done;
                if (any_busy && !cut)
                        usleep(BUSY_WAIT_US + randombytes_uniform(BUSY_WAIT_US));
        }
        free(list);
        leave();
        return rc;
}

/* ---------- who keeps what ---------- */

static void holds_work(osm_building *b, bld_job *j) {
        if (bld_exec(b, j, BLD_HOLDERS_SCHEMA_SQL, NULL) == 0)
                bld_exec(b, j, "INSERT OR REPLACE INTO bundle_holders (bundle, room, size, time) VALUES (?, ?, ?, ?)",
                         j->in);
}

static void holds_done(osm_building *b, bld_job *j) {
        if (j->error)
                log_notice("building: cannot record that this room keeps a bundle: %s", j->msg);
}

void osm_building_holds(osm_daemon *d, const char *id, uint64_t size) {
        if (!id_ok(id))
                return;
        osm_building *b = enter(d);
        if (!b)
                return;
        bld_job *j = bld_job_new(holds_work, holds_done, NULL,
                                 json_pack("[s,s,I,I]", id, d->space_id, (json_int_t) size, (json_int_t) osm_now_real_us()));
        if (j)
                bld_submit(b, j);
        leave();
}
