/* query.c: building queries. The asking room calls every room that shares the collection
 * in parallel over the member transport and merges their answers by time; an answering
 * room serves only collections it shares, reads its store on the loop, and writes what it
 * sends to its audit log (federation's) before a byte leaves. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon/building/building-internal.h"
#include "daemon/store/store.h"
#include "osmose/log.h"
#include "osmose/util.h"
#if HAVE_MHD
#include "daemon/federation/federation.h"
#endif

#define ANSWER_MAX (32u << 20)   /* bytes of one room's answer */
#define MAX_TARGETS 1024

/* ---------- a store query run on the loop for a thread ---------- */

typedef struct loop_query {
        struct loop_query *next;
        osm_building *b;
        char collection[160];
        int64_t since, until;
        uint64_t limit;
        /* the audit entry, for an answer to another room (NULL room: none) */
        char peer_room[OSM_SPACE_ID_LEN + 1], peer_name[80];
        /* results */
        bool done, abandoned;
        int r;
        char *answer;   /* the JSON line to send */
        size_t answer_len;
        json_t *records;  /* for a local query */
} loop_query;

static void loop_query_free(loop_query *q) {
        free(q->answer);
        json_decref(q->records);
        free(q);
}

static void finish(loop_query *q) {
        osm_building *b = q->b;
        pthread_mutex_lock(&b->lock);
        q->done = true;
        bool abandoned = q->abandoned;
        pthread_cond_broadcast(&b->loop_cond);
        pthread_mutex_unlock(&b->lock);
        if (abandoned)
                loop_query_free(q);
}

static void store_cb(int r, json_t *records, const char *cursor, void *ud) {
        loop_query *q = ud;
        osm_building *b = q->b;
        q->r = r;
        if (r == -ENOENT) {   /* shared but empty so far: an empty answer */
                r = q->r = 0;
                records = json_array();
        }
        if (r == 0 && !q->peer_room[0]) {
                q->records = records;
                finish(q);
                return;
        }
        if (r == 0) {
                int64_t n_records = (int64_t) json_array_size(records);
                json_t *o = json_pack("{s:o}", "records", records);
                char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
                json_decref(o);
                size_t n = s ? strlen(s) : 0;
                if (!s || n + 1 > ANSWER_MAX) {
                        free(s);
                        q->r = -E2BIG;
                        finish(q);
                        return;
                }
                s[n] = '\n';
                q->answer = s;
                q->answer_len = n + 1;
#if HAVE_MHD
                /* Durably in the audit before it leaves, as federation does. */
                osm_federation *f = b->d->federation;
                char who[128];
                snprintf(who, sizeof who, "building:%s", q->peer_name);
                fed_audit_entry e = {
                        .time_us = osm_now_real_us(), .remote = who, .peer = q->peer_room, .direction = "response",
                        .kind = "building-query", .collection = q->collection,
                        .records = n_records, .bytes = (int64_t) q->answer_len, .status = "served",
                };
                if (!f || !f->db || fed_db_audit_add(f->db, &e) < 0 || fed_db_commit(f->db) < 0)
                        q->r = -EIO;
#else
                (void) n_records;
                q->r = -ENOTSUP;   /* no audit log in this build: nothing leaves */
#endif
        }
        finish(q);
}

static void run_loop_queries(uv_async_t *a) {
        osm_building *b = a->data;
        pthread_mutex_lock(&b->lock);
        loop_query *list = b->loop_queries;
        b->loop_queries = NULL;
        pthread_mutex_unlock(&b->lock);
        while (list) {
                loop_query *q = list;
                list = q->next;
                osm_store_query_req req = { .collection = q->collection, .since_us = q->since, .until_us = q->until,
                                            .limit = q->limit };
                int r = b->d->store ? osm_store_query(b->d->store, &req, store_cb, q) : -ENOTCONN;
                if (r < 0) {
                        q->r = r;
                        finish(q);
                }
        }
}

void bld_query_init(osm_building *b) {
        uv_async_init(b->d->loop, &b->loop_async, run_loop_queries);
        b->loop_async.data = b;
        pthread_cond_init(&b->loop_cond, NULL);
}

void bld_query_close(osm_building *b, uv_close_cb cb) {
        uv_close((uv_handle_t *) &b->loop_async, cb);
}

/* From a thread: queue q for the loop and wait for it until deadline. 0, or -ETIMEDOUT
 * (q then belongs to the loop, which frees it). */
static int loop_query_wait(osm_building *b, loop_query *q, uint64_t deadline_us) {
        pthread_mutex_lock(&b->lock);
        q->next = b->loop_queries;
        b->loop_queries = q;
        pthread_mutex_unlock(&b->lock);
        uv_async_send(&b->loop_async);
        pthread_mutex_lock(&b->lock);
        while (!q->done) {
                uint64_t now = osm_now_mono_us();
                if (now >= deadline_us)
                        break;
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                uint64_t wait = deadline_us - now;
                ts.tv_sec += (time_t) (wait / 1000000);
                ts.tv_nsec += (long) (wait % 1000000) * 1000;
                if (ts.tv_nsec >= 1000000000) {
                        ts.tv_sec++;
                        ts.tv_nsec -= 1000000000;
                }
                pthread_cond_timedwait(&b->loop_cond, &b->lock, &ts);
        }
        bool done = q->done;
        if (!done)
                q->abandoned = true;
        pthread_mutex_unlock(&b->lock);
        return done ? 0 : -ETIMEDOUT;
}

static int64_t opt_time(json_t *v, int64_t dflt) {
        return json_is_integer(v) ? json_integer_value(v) : dflt;
}

static bool shares_locked(osm_building *b, const char *coll) {
        size_t i;
        json_t *s;
        json_array_foreach(b->shares_copy, i, s)
                if (strcmp(json_string_value(json_object_get(s, "room")) ?: "", b->d->space_id) == 0 &&
                    strcmp(json_string_value(json_object_get(s, "collection")) ?: "", coll) == 0)
                        return true;
        return false;
}

static const char *member_name_locked(osm_building *b, const char *room) {
        size_t i;
        json_t *m;
        json_array_foreach(b->members_copy, i, m)
                if (strcmp(json_string_value(json_object_get(m, "room")) ?: "", room) == 0)
                        return json_string_value(json_object_get(m, "name"));
        return NULL;
}

void bld_answer_error(osm_btls_conn *c, const char *error, const char *msg) {
        json_t *o = json_pack("{s:s,s:s}", "error", error, "message", msg);
        char *s = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        if (s) {
                size_t n = strlen(s);
                s[n] = '\n';
                osm_btls_write(c, s, n + 1, osm_now_mono_us() + 2000000);
                free(s);
        }
}

/* ---------- answering (a transport thread; the peer is a member) ---------- */

void bld_handle_query(osm_building *b, osm_btls_conn *c, json_t *req) {
        const char *coll = json_string_value(json_object_get(req, "collection"));
        char room[OSM_SPACE_ID_LEN + 1];
        osm_space_id(c->peer, room);
        if (!coll || !osm_name_valid(coll, 128, true)) {
                bld_answer_error(c, "InvalidParameter", "collection: not a collection name");
                return;
        }
        loop_query *q = calloc(1, sizeof *q);
        if (!q)
                return;
        pthread_mutex_lock(&b->lock);
        bool shared = shares_locked(b, coll);
        const char *name = member_name_locked(b, room);
        snprintf(q->peer_name, sizeof q->peer_name, "%s", name ? name : room);
        if (!shared)
                b->counters.queries_refused++;
        pthread_mutex_unlock(&b->lock);
        if (!shared) {
                free(q);
                log_info("building: refused a query of '%s' from %s: not shared", coll, room);
                bld_answer_error(c, "NotShared", "this room does not share that collection");
                return;
        }
        q->b = b;
        snprintf(q->collection, sizeof q->collection, "%s", coll);
        snprintf(q->peer_room, sizeof q->peer_room, "%s", room);
        q->since = opt_time(json_object_get(req, "since"), INT64_MIN);
        q->until = opt_time(json_object_get(req, "until"), INT64_MAX);
        json_int_t limit = json_integer_value(json_object_get(req, "limit"));
        q->limit = limit > 0 && limit <= OSM_STORE_PAGE_RECORDS ? (uint64_t) limit : OSM_STORE_PAGE_RECORDS;
        uint64_t dl = osm_now_mono_us() + b->d->cfg.building_query_timeout_us;
        if (loop_query_wait(b, q, dl) < 0) {
                bld_answer_error(c, "Timeout", "the store did not answer in time");
                return;
        }
        if (q->r < 0) {
                bld_answer_error(c, "Error", q->r == -ENOTSUP ? "this room keeps no audit log: it answers no query"
                                        : q->r == -EIO ? "cannot write the audit log" : strerror(-q->r));
        } else {
                osm_btls_write(c, q->answer, q->answer_len, osm_now_mono_us() + b->d->cfg.building_query_timeout_us);
                pthread_mutex_lock(&b->lock);
                b->counters.queries_served++;
                pthread_mutex_unlock(&b->lock);
        }
        loop_query_free(q);
}

/* ---------- asking (the worker, one thread per room) ---------- */

typedef struct ask {
        osm_building *b;
        json_t *member;          /* borrowed from the job */
        json_t *req;             /* borrowed */
        uint64_t deadline_us;
        pthread_t th;
        bool started;
        const char *status;
        char message[200];
        json_t *records;
} ask;

static void *ask_main(void *arg) {
        ask *a = arg;
        osm_building *b = a->b;
        const char *room = json_string_value(json_object_get(a->member, "room"));
        if (strcmp(room, b->d->space_id) == 0) {
                /* This room: its own store, nothing leaves. */
                loop_query *q = calloc(1, sizeof *q);
                if (!q)
                        return NULL;
                q->b = b;
                snprintf(q->collection, sizeof q->collection, "%s", json_string_value(json_object_get(a->req, "collection")));
                q->since = opt_time(json_object_get(a->req, "since"), INT64_MIN);
                q->until = opt_time(json_object_get(a->req, "until"), INT64_MAX);
                q->limit = (uint64_t) json_integer_value(json_object_get(a->req, "limit"));
                if (loop_query_wait(b, q, a->deadline_us) < 0) {
                        a->status = "timeout";
                        return NULL;
                }
                if (q->r < 0) {
                        a->status = "error";
                        snprintf(a->message, sizeof a->message, "%s", strerror(-q->r));
                } else {
                        a->status = "answered";
                        a->records = json_incref(q->records);
                }
                loop_query_free(q);
                return NULL;
        }
        uint8_t pk[OSM_PUBKEY_BYTES];
        if (osm_pubkey_decode(json_string_value(json_object_get(a->member, "key")), pk) < 0) {
                a->status = "error";
                return NULL;
        }
        uint64_t now = osm_now_mono_us();
        int ms = a->deadline_us > now ? (int) ((a->deadline_us - now) / 1000) : 0;
        osm_btls_conn c = { .fd = -1 };
        osm_error why = {};
        if (ms <= 0 || osm_bt_dial(b->bt, json_string_value(json_object_get(a->member, "address")), pk, ms, &c, &why) < 0) {
                a->status = ms <= 0 || why.code == -ETIMEDOUT ? "timeout" : "unreachable";
                snprintf(a->message, sizeof a->message, "%.199s", why.message);
                return NULL;
        }
        char *s = json_dumps(a->req, JSON_COMPACT);
        int r = -ENOMEM;
        if (s) {
                size_t n = strlen(s);
                s[n] = '\n';
                r = osm_btls_write(&c, s, n + 1, a->deadline_us);
                free(s);
        }
        char *line = r == 0 ? malloc(ANSWER_MAX) : NULL;
        json_t *o = NULL;
        if (line && (r = osm_btls_read_line(&c, line, ANSWER_MAX, a->deadline_us)) == 0)
                o = json_loads(line, 0, NULL);
        free(line);
        osm_btls_close(&c);
        if (!o) {
                a->status = r == -ETIMEDOUT ? "timeout" : "error";
                snprintf(a->message, sizeof a->message, "%s", r < 0 ? strerror(-r) : "not a query answer");
        } else if (json_object_get(o, "error")) {
                a->status = strcmp(json_string_value(json_object_get(o, "error")) ?: "", "NotShared") == 0 ? "refused" : "error";
                snprintf(a->message, sizeof a->message, "%s", json_string_value(json_object_get(o, "message")) ?: "");
        } else if (!json_is_array(json_object_get(o, "records"))) {
                a->status = "error";
                snprintf(a->message, sizeof a->message, "not a query answer");
        } else {
                a->status = "answered";
                a->records = json_incref(json_object_get(o, "records"));
        }
        json_decref(o);
        return NULL;
}

static int by_time(const void *x, const void *y) {
        json_t *const *a = x, *const *b = y;
        json_int_t ta = json_integer_value(json_object_get(*a, "time")), tb = json_integer_value(json_object_get(*b, "time"));
        if (ta != tb)
                return ta < tb ? -1 : 1;
        return strcmp(json_string_value(json_object_get(*a, "room")) ?: "", json_string_value(json_object_get(*b, "room")) ?: "");
}

/* Of members (rows of the members table), those whose room shares coll by shares (rows of
 * room and collection) and, if only is given, whose room id or name it is; in the order of
 * shares. A new array. */
static json_t *targets_of(json_t *shares, json_t *members, const char *coll, const char *only) {
        json_t *targets = json_array(), *s, *m;
        size_t i, k;
        json_array_foreach(shares, i, s) {
                const char *room = json_string_value(json_object_get(s, "room"));
                if (!room || strcmp(json_string_value(json_object_get(s, "collection")) ?: "", coll) != 0)
                        continue;
                json_array_foreach(members, k, m) {
                        if (strcmp(json_string_value(json_object_get(m, "room")) ?: "", room) != 0)
                                continue;
                        if (!only || strcmp(only, room) == 0 ||
                            strcmp(only, json_string_value(json_object_get(m, "name")) ?: "") == 0)
                                json_array_append(targets, m);
                        break;
                }
        }
        return targets;
}

/* Who is asked, as the leader has it now (read your writes across rooms): a share made a
 * moment ago in another room reaches this room's copy of the state only at its next
 * refresh, up to a second later, and a query routed from the copy left that room out — or
 * refused a --room query for it ("room 'room-C' does not share"). The leader applies every
 * committed entry before it answers a read (dqlite's barrier), so a share whose call has
 * returned is seen. Without an answer from the leader (no quorum, or a stale copy the loop
 * told us not to wait for), the last copy's list: a stale copy still names them. */
static json_t *query_targets(osm_building *b, const char *coll, const char *only, bool from_leader) {
        json_t *shares = NULL, *members = NULL;
        osm_dq *c = from_leader ? bld_leader(b, NULL) : NULL;
        if (c) {
                json_t *params = json_pack("[s]", coll);
                if (bld_query_objects(c, "SELECT room, collection FROM shares WHERE collection = ? ORDER BY room", params,
                                      &shares) < 0 ||
                    bld_query_objects(c, "SELECT room, name, key, node_id, address FROM members", NULL, &members) < 0) {
                        bld_leader_drop(b);
                        json_decref(shares);
                        shares = NULL;
                }
                json_decref(params);
        }
        if (!shares) {
                pthread_mutex_lock(&b->lock);
                json_t *t = targets_of(b->shares_copy, b->members_copy, coll, only);
                pthread_mutex_unlock(&b->lock);
                return t;
        }
        json_t *t = targets_of(shares, members, coll, only);
        json_decref(shares);
        json_decref(members);
        return t;
}

void bld_query_work(osm_building *b, bld_job *j) {
        const char *coll = json_string_value(json_object_get(j->in, "collection"));
        const char *only = json_string_value(json_object_get(j->in, "room"));
        json_t *targets = query_targets(b, coll, only, json_is_true(json_object_get(j->in, "from_leader")));
        size_t n = json_array_size(targets);
        if (n == 0) {
                json_decref(targets);
                j->error = OSM_E_BUILDING_NOT_SHARED;
                if (only)
                        snprintf(j->msg, sizeof j->msg, "room '%s' does not share '%s'", only, coll);
                else
                        snprintf(j->msg, sizeof j->msg, "no room shares '%s'", coll);
                return;
        }
        if (n > MAX_TARGETS)
                n = MAX_TARGETS;
        json_int_t limit = json_integer_value(json_object_get(j->in, "limit"));
        json_t *req = json_pack("{s:s,s:O,s:O?,s:O?,s:I}", "op", "query", "collection", json_object_get(j->in, "collection"),
                                "since", json_object_get(j->in, "since"), "until", json_object_get(j->in, "until"),
                                "limit", limit);
        ask *asks = calloc(n ? n : 1, sizeof *asks);
        uint64_t deadline = osm_now_mono_us() + b->d->cfg.building_query_timeout_us;
        for (size_t i = 0; i < n; i++) {
                asks[i] = (ask) { .b = b, .member = json_array_get(targets, i), .req = req, .deadline_us = deadline,
                                  .status = "error" };
                pthread_attr_t at;
                pthread_attr_init(&at);
                pthread_attr_setstacksize(&at, 256 * 1024);
                asks[i].started = pthread_create(&asks[i].th, &at, ask_main, &asks[i]) == 0;
                pthread_attr_destroy(&at);
        }
        json_t *all = json_array(), *rooms = json_array();
        size_t missing = 0;
        for (size_t i = 0; i < n; i++) {
                if (asks[i].started)
                        pthread_join(asks[i].th, NULL);   /* each is bounded by the deadline */
                json_t *m = asks[i].member;
                const char *st = asks[i].status;
                missing += strcmp(st, "timeout") == 0 || strcmp(st, "unreachable") == 0;
                json_t *rec;
                size_t k;
                json_array_foreach(asks[i].records, k, rec) {
                        if (!json_is_object(rec))
                                continue;
                        json_t *e = json_pack("{s:O,s:O,s:O,s:O,s:O,s:O,s:O}", "room", json_object_get(m, "room"),
                                              "room_name", json_object_get(m, "name"), "id", json_object_get(rec, "id"),
                                              "collection", json_object_get(rec, "collection"), "time",
                                              json_object_get(rec, "time"), "writer", json_object_get(rec, "writer"),
                                              "body", json_object_get(rec, "body"));
                        if (e)
                                json_array_append_new(all, e);
                }
                json_array_append_new(rooms, json_pack("{s:O,s:O,s:s,s:I,s:s?}", "room", json_object_get(m, "room"),
                                                       "name", json_object_get(m, "name"), "status", st, "records",
                                                       (json_int_t) json_array_size(asks[i].records), "message",
                                                       asks[i].message[0] ? asks[i].message : NULL));
                json_decref(asks[i].records);
        }
        free(asks);
        json_decref(req);
        /* merge by time, then keep the first limit */
        size_t total = json_array_size(all);
        json_t **v = calloc(total ? total : 1, sizeof *v);
        for (size_t i = 0; i < total; i++)
                v[i] = json_array_get(all, i);
        qsort(v, total, sizeof *v, by_time);
        json_t *records = json_array();
        for (size_t i = 0; i < total && (json_int_t) i < limit; i++)
                json_array_append(records, v[i]);
        free(v);
        json_decref(all);
        json_decref(targets);
        j->out = json_pack("{s:o,s:o,s:I}", "records", records, "rooms", rooms, "missing", (json_int_t) missing);
}
