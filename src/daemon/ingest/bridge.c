/* bridge.c: MQTT ingest on the daemon's loop: one libmosquitto client per bridge, its socket
 * in a uv_poll and its housekeeping on a uv_timer (no mosquitto_loop_start thread), every
 * message stored through the store's group commit, and the QoS 1 acknowledgement held back
 * until the record is durable.
 *
 * Why the acknowledgement can be held back with libmosquitto 2.0: its handle__publish()
 * queues the PUBACK of a QoS 1 message right when it reads the PUBLISH (before or after
 * on_message, depending on the version) and there is no manual-ack API before 2.1. But in
 * "threaded" mode (sym_mosquitto_threaded_set(true): the application owns the threads)
 * packet__queue() never writes by itself; queued packets go out only in
 * sym_mosquitto_loop_write(), which only we call. So the bridge calls loop_write only while no
 * QoS 1 message it read is still waiting for its group commit: every PUBACK in the queue
 * then stands for a durable record. A broken connection drops the queue (mosquitto's
 * reconnect runs packet__cleanup_all()), and the broker redelivers what was not
 * acknowledged. When a record cannot be stored for a reason that may pass (budget, disk),
 * the socket is shut down so that its queued PUBACK never leaves.
 *
 * Redelivery means duplicates: a message stored whose PUBACK did not reach the broker comes
 * again, with the same packet id. Within a run, the keys (topic, packet id, payload) of the
 * last OSM_RING stored messages are compared with the first messages after each reconnect.
 * Across a crash, the in-flight file STATE/ingest/NAME.inflight lists the QoS 1 messages
 * handed to the store and not yet acknowledged (written before the store sees them,
 * truncated once every PUBACK is written); at start each line's record is looked up in the
 * store (collection, exact time, writer — times are unique per bridge) and the keys of those
 * found join the ring. The in-flight file is not fsynced: a daemon crash keeps it (page
 * cache), a power cut may lose it and then a redelivered message can be stored twice. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/ingest/bridge.h"
#include "daemon/ingest/dl-mosquitto.h"
#include "daemon/store/store.h"
#include "osmose/error.h"
#include "osmose/log.h"
#include "osmose/util.h"

#define OSM_RING          4096        /* dedup keys of stored QoS 1 messages kept */
#define MAX_PENDING       512         /* messages handed to the store, not yet durable */
#define READ_BUDGET       256         /* packets read per poll callback */
#define KEEPALIVE_S       30
#define BACKOFF_MIN_MS    250
#define BACKOFF_MAX_MS    30000
#define LOG_EVERY_US      (10 * 1000000)

typedef enum bstate {
        B_RECOVERING, B_RESOLVING, B_CONNECTING, B_CONNECTED, B_BACKOFF, B_STOPPED,
} bstate;

static const char *const state_names[] = {
        [B_RECOVERING] = "recovering", [B_RESOLVING] = "resolving", [B_CONNECTING] = "connecting",
        [B_CONNECTED] = "connected", [B_BACKOFF] = "backoff", [B_STOPPED] = "stopped",
};

typedef struct staged {
        char collection[OSM_STORE_MAX_NAME + 1];
        json_t *body;              /* NULL for an object */
        void *payload;             /* copy, for an object */
        size_t len;
        int qos;
        uint8_t key[16];
        int64_t time_us;
} staged;

struct osm_bridge {
        osm_ingest_def def;
        uv_loop_t *loop;
        osm_store *store;
        char *writer;              /* "ingest:NAME" */
        char *inflight_path;
        int inflight_fd;
        size_t inflight_lines;
        char host[256];
        uint16_t port;
        bool tls;
        char client_id[64];

        struct mosquitto *mosq;
        uv_poll_t *poll;           /* on poll_fd, a dup of mosquitto's socket */
        int poll_fd;
        int poll_events;
        uv_timer_t timer;          /* housekeeping while connected, backoff otherwise */
        uv_getaddrinfo_t *gai;
        bstate state;
        uint64_t backoff_ms;
        bool session_present;
        int refs;                  /* the bridge itself, and each store operation in flight */
        bool freed_handles;

        uint64_t pending_all, pending_q1;
        struct objjob *objq, **objq_tail;   /* binary payloads waiting for an object transfer */
        unsigned obj_inflight;
        staged *stage;
        size_t n_stage, cap_stage;

        uint8_t ring[OSM_RING][16];
        size_t ring_n, ring_pos;
        size_t check_left;         /* messages after a (re)connect compared with the ring */
        size_t recover_left;

        int64_t last_time_us;
        /* counters */
        uint64_t messages, bytes, stored, duplicates, reconnects, objects;
        uint64_t refused_topic, refused_size, refused_depth, refused_store;
        char last_error[256];
        int64_t last_error_us, last_message_us, connected_since_us;
        uint64_t last_log_mono, suppressed;
};

static void bridge_unref(osm_bridge *b);
static void start_connect(osm_bridge *b);
static void update_poll(osm_bridge *b);
static void drop_connection(osm_bridge *b, const char *why);

/* --- small helpers --- */

static void set_error(osm_bridge *b, const char *fmt, ...) OSM_PRINTF(2, 3);
static void set_error(osm_bridge *b, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(b->last_error, sizeof b->last_error, fmt, ap);
        va_end(ap);
        b->last_error_us = osm_now_real_us();
}

/* A refused message: counted always, logged at most once per LOG_EVERY_US per bridge. */
static void refused(osm_bridge *b, uint64_t *counter, const char *topic, const char *why) {
        (*counter)++;
        set_error(b, "%.100s: %s", topic, why);
        uint64_t now = osm_now_mono_us();
        if (b->last_log_mono && now - b->last_log_mono < LOG_EVERY_US) {
                b->suppressed++;
                return;
        }
        if (b->suppressed)
                log_warning("ingest %s: refused a message on '%.100s': %s (%" PRIu64 " more refused since the last report)",
                            b->def.name, topic, why, b->suppressed);
        else
                log_warning("ingest %s: refused a message on '%.100s': %s", b->def.name, topic, why);
        b->suppressed = 0;
        b->last_log_mono = now;
}

static bool ring_has(const osm_bridge *b, const uint8_t key[16]) {
        for (size_t i = 0; i < b->ring_n; i++)
                if (memcmp(b->ring[i], key, 16) == 0)
                        return true;
        return false;
}

static void ring_add(osm_bridge *b, const uint8_t key[16]) {
        memcpy(b->ring[b->ring_pos], key, 16);
        b->ring_pos = (b->ring_pos + 1) % OSM_RING;
        if (b->ring_n < OSM_RING)
                b->ring_n++;
}

static int64_t next_time(osm_bridge *b) {
        int64_t t = osm_now_real_us();
        if (t <= b->last_time_us)
                t = b->last_time_us + 1;
        b->last_time_us = t;
        return t;
}

/* --- storing --- */

#define MAX_OBJ_INFLIGHT 2   /* the store takes a few object transfers at a time */

typedef struct objjob {
        struct objjob *next;
        struct put_ctx *c;
        void *payload;
        size_t len;
} objjob;

typedef struct put_ctx {
        osm_bridge *b;
        int qos;
        uint8_t key[16];
        char collection[OSM_STORE_MAX_NAME + 1];
        int64_t time_us;
} put_ctx;

static void op_done(osm_bridge *b, int qos) {
        b->pending_all--;
        if (qos > 0)
                b->pending_q1--;
        update_poll(b);
}

static void put_done(int r, const char *id, int64_t time_us, bool duplicate, void *userdata) {
        put_ctx *c = userdata;
        osm_bridge *b = c->b;
        if (r < 0) {
                b->refused_store++;
                set_error(b, "store: %s", strerror(-r));
                if (c->qos > 0 && r != -ECANCELED)
                        drop_connection(b, "a record could not be stored");
        } else {
                b->stored++;
                if (c->qos > 0)
                        ring_add(b, c->key);
        }
        op_done(b, c->qos);
        free(c);
        bridge_unref(b);
}

static bool retryable(int r) {
        return r == -EDQUOT || r == -ENOSPC || r == -EIO || r == -ENOMEM || r == -EBUSY;
}

/* Hand one record to the store; the context is taken. */
static void submit_record(osm_bridge *b, put_ctx *c, json_t *body) {
        osm_error err = { 0 };
        osm_store_put_req req = {
                .collection = c->collection, .writer = b->writer, .body = body, .time_us = c->time_us,
        };
        b->refs++;
        int r = osm_store_put(b->store, &req, put_done, c, &err);
        const char *why = err.message[0] ? err.message : NULL;
        if (r < 0) {
                if (retryable(r) && c->qos > 0) {
                        b->refused_store++;
                        set_error(b, "store: %s", why ? why : strerror(-r));
                        drop_connection(b, "the store refused a record");
                } else
                        refused(b, r == -EMSGSIZE ? &b->refused_size : &b->refused_store, c->collection,
                                why ? why : strerror(-r));
                op_done(b, c->qos);
                free(c);
                bridge_unref(b);
        }
}

static void submit_object(osm_bridge *b, put_ctx *c, void *payload, size_t len);

static void object_next(osm_bridge *b) {
        b->obj_inflight--;
        while (b->objq && b->obj_inflight < MAX_OBJ_INFLIGHT) {
                objjob *j = b->objq;
                if (!(b->objq = j->next))
                        b->objq_tail = &b->objq;
                submit_object(b, j->c, j->payload, j->len);
                free(j);
        }
}

static void object_done(int r, const char *hash, uint64_t size, bool created, void *userdata) {
        put_ctx *c = userdata;
        osm_bridge *b = c->b;
        object_next(b);
        if (r < 0 || !b->store) {
                b->refused_store++;
                set_error(b, "object store: %s", strerror(r < 0 ? -r : ECANCELED));
                if (c->qos > 0 && r != -ECANCELED && b->store)
                        drop_connection(b, "an object could not be stored");
                op_done(b, c->qos);
                free(c);
                bridge_unref(b);
                return;
        }
        b->objects++;
        json_t *body = json_pack("{s:s, s:I}", "object", hash, "size", (json_int_t) size);
        submit_record(b, c, body);   /* takes a reference of its own */
        json_decref(body);
        bridge_unref(b);             /* the object transfer's */
}

/* Store payload (taken) as an object, then its record; queued behind MAX_OBJ_INFLIGHT. */
static void submit_object(osm_bridge *b, put_ctx *c, void *payload, size_t len) {
        if (b->obj_inflight >= MAX_OBJ_INFLIGHT && b->store) {
                objjob *j = calloc(1, sizeof *j);
                if (j) {
                        j->c = c;
                        j->payload = payload;
                        j->len = len;
                        *b->objq_tail = j;
                        b->objq_tail = &j->next;
                        return;
                }
        }
        int fd = b->store ? memfd_create("osmose-ingest", MFD_CLOEXEC) : -1;
        if (fd < 0 && !b->store)
                errno = ECANCELED;
        int r = fd < 0 ? -errno : osm_write_all(fd, payload, len);
        if (r == 0 && lseek(fd, 0, SEEK_SET) < 0)
                r = -errno;
        if (r == 0) {
                b->refs++;
                b->obj_inflight++;
                r = osm_store_object_put_fd(b->store, steal_fd(&fd), false, object_done, c);
                if (r == 0) {
                        free(payload);
                        return;
                }
                b->obj_inflight--;
                b->refs--;
        }
        free(payload);
        osm_close(fd);
        b->refused_store++;
        set_error(b, "object store: %s", strerror(-r));
        if (c->qos > 0)
                drop_connection(b, "an object could not be stored");
        op_done(b, c->qos);
        free(c);
}

/* Append the in-flight lines of the staged QoS 1 messages (one write), then hand all
 * staged messages to the store. */
static void flush_stage(osm_bridge *b) {
        if (b->n_stage == 0)
                return;
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        for (size_t i = 0; f && i < b->n_stage; i++) {
                staged *s = &b->stage[i];
                if (s->qos == 0)
                        continue;
                osm_ingest_intent in = { .time_us = s->time_us };
                memcpy(in.key, s->key, 16);
                snprintf(in.collection, sizeof in.collection, "%s", s->collection);
                char line[256];
                size_t n = osm_ingest_intent_format(&in, line, sizeof line);
                fwrite(line, 1, n, f);
                b->inflight_lines++;
        }
        if (f)
                fclose(f);
        if (len > 0 && b->inflight_fd >= 0) {
                int r = osm_write_all(b->inflight_fd, buf, len);
                if (r < 0)
                        set_error(b, "in-flight file: %s", strerror(-r));
        }
        free(buf);
        for (size_t i = 0; i < b->n_stage; i++) {
                staged *s = &b->stage[i];
                put_ctx *c = calloc(1, sizeof *c);
                if (!c) {
                        b->refused_store++;
                        op_done(b, s->qos);
                        if (s->qos)
                                drop_connection(b, "out of memory");
                } else {
                        c->b = b;
                        c->qos = s->qos;
                        memcpy(c->key, s->key, 16);
                        memcpy(c->collection, s->collection, sizeof c->collection);
                        c->time_us = s->time_us;
                        if (s->body)
                                submit_record(b, c, s->body);
                        else
                                submit_object(b, c, steal_pointer(&s->payload), s->len);
                }
                json_decref(s->body);
                free(s->payload);
        }
        b->n_stage = 0;
}

/* --- libmosquitto callbacks (all run inside our loop_read/loop_write/loop_misc calls) --- */

static void on_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *m) {
        osm_bridge *b = obj;
        size_t len = m->payloadlen > 0 ? (size_t) m->payloadlen : 0;
        osm_error why;   /* per message: read only after a refusal, which fills it */
        b->messages++;
        b->bytes += len;
        b->last_message_us = osm_now_real_us();

        uint8_t key[16];
        int qos = m->qos > 0 ? 1 : 0;
        if (qos) {
                osm_ingest_key(m->topic, m->mid, m->payload, len, key);
                if (b->check_left > 0) {
                        b->check_left--;
                        if (ring_has(b, key)) {
                                b->duplicates++;
                                return;   /* stored before; its PUBACK is in the queue */
                        }
                }
        }
        if (b->n_stage == b->cap_stage) {
                size_t cap = b->cap_stage ? 2 * b->cap_stage : 64;
                staged *n = realloc(b->stage, cap * sizeof *n);
                if (!n) {
                        refused(b, &b->refused_store, m->topic, "out of memory");
                        if (qos)
                                drop_connection(b, "out of memory");
                        return;
                }
                b->stage = n;
                b->cap_stage = cap;
        }
        staged *s = &b->stage[b->n_stage];
        memset(s, 0, sizeof *s);
        if (osm_ingest_collection(b->def.into, m->topic, strlen(m->topic), s->collection, sizeof s->collection,
                                  &why) < 0) {
                refused(b, &b->refused_topic, m->topic, why.message);
                return;
        }
        osm_ingest_kind kind;
        int r = osm_ingest_payload(m->payload, len, b->def.max_payload, &kind, &s->body, &why);
        if (r < 0) {
                refused(b, r == -ELOOP ? &b->refused_depth : r == -EMSGSIZE ? &b->refused_size : &b->refused_store,
                        m->topic, r == -ENOMEM ? strerror(-r) : why.message);
                return;
        }
        if (kind == OSM_INGEST_OBJECT) {
                if (!(s->payload = malloc(len))) {
                        refused(b, &b->refused_store, m->topic, "out of memory");
                        return;
                }
                memcpy(s->payload, m->payload, len);
                s->len = len;
        }
        s->qos = qos;
        if (qos)
                memcpy(s->key, key, 16);
        s->time_us = next_time(b);
        b->n_stage++;
        b->pending_all++;
        b->pending_q1 += (uint64_t) qos;
}

static void on_connect(struct mosquitto *mosq, void *obj, int rc, int flags) {
        osm_bridge *b = obj;
        if (rc != 0) {
                set_error(b, "broker refused the connection: %s", sym_mosquitto_connack_string(rc));
                log_warning("ingest %s: %s", b->def.name, b->last_error);
                drop_connection(b, NULL);
                return;
        }
        b->state = B_CONNECTED;
        b->backoff_ms = 0;
        b->connected_since_us = osm_now_real_us();
        b->session_present = flags & 1;
        b->check_left = OSM_RING;
        log_info("ingest %s: connected to %s:%u%s", b->def.name, b->host, b->port,
                 b->session_present ? " (session resumed)" : "");
        /* Subscribing again on a resumed session would make the broker resend retained
         * messages (MQTT 3.1.1 §3.3.1.3): subscribe only for a new session. */
        if (!b->session_present) {
                int r = sym_mosquitto_subscribe_multiple(mosq, NULL, (int) b->def.n_topics, b->def.topics, b->def.qos, 0, NULL);
                if (r != MOSQ_ERR_SUCCESS) {
                        set_error(b, "subscribe: %s", sym_mosquitto_strerror(r));
                        drop_connection(b, NULL);
                }
        }
}

static void on_subscribe(struct mosquitto *mosq, void *obj, int mid, int n, const int *granted) {
        osm_bridge *b = obj;
        for (int i = 0; i < n; i++)
                if (granted[i] > 2)
                        set_error(b, "broker refused the subscription to '%s'",
                                  (size_t) i < b->def.n_topics ? b->def.topics[i] : "?");
}

static void on_disconnect(struct mosquitto *mosq, void *obj, int rc) {
        osm_bridge *b = obj;
        if (b->state == B_CONNECTED || b->state == B_CONNECTING) {
                if (rc != 0 && !b->last_error[0])
                        set_error(b, "connection lost: %s", sym_mosquitto_strerror(rc));
                drop_connection(b, NULL);
        }
}

/* --- the socket on the loop --- */

static void poll_closed(uv_handle_t *h) {
        int *fd = h->data;
        osm_close(*fd);
        free(fd);
        free(h);
}

static void stop_poll(osm_bridge *b) {
        if (!b->poll)
                return;
        int *fd = malloc(sizeof *fd);
        if (fd)
                *fd = b->poll_fd;
        else
                osm_close(b->poll_fd);
        b->poll->data = fd;
        uv_close((uv_handle_t *) b->poll, fd ? poll_closed : (uv_close_cb) free);
        b->poll = NULL;
        b->poll_fd = -1;
        b->poll_events = 0;
}

static void backoff_fire(uv_timer_t *t);
static void misc_fire(uv_timer_t *t);

/* Leave the connection: its queued packets (PUBACKs of records not durable) never leave;
 * try again after a backoff. */
static void drop_connection(osm_bridge *b, const char *why) {
        if (b->state == B_STOPPED || b->state == B_BACKOFF)
                return;
        if (why)
                log_warning("ingest %s: dropping the connection: %s", b->def.name, why);
        int fd = sym_mosquitto_socket(b->mosq);
        if (fd >= 0)
                shutdown(fd, SHUT_RDWR);
        stop_poll(b);
        /* The socket and the queue stay with libmosquitto until the reconnect, which closes
         * the one and empties the other (packet__cleanup_all). */
        b->state = B_BACKOFF;
        b->reconnects++;
        b->backoff_ms = b->backoff_ms ? OSM_MIN(b->backoff_ms * 2, BACKOFF_MAX_MS) : BACKOFF_MIN_MS;
        uv_timer_start(&b->timer, backoff_fire, b->backoff_ms, 0);
}

static void handle_rc(osm_bridge *b, int rc, const char *what) {
        if (rc == MOSQ_ERR_SUCCESS || b->state == B_BACKOFF)
                return;   /* already left (e.g. CONNACK refused): keep that error */
        if (rc == MOSQ_ERR_ERRNO)
                set_error(b, "%s: %s", what, strerror(errno));
        else if (rc != MOSQ_ERR_NO_CONN || !b->last_error[0])
                set_error(b, "%s: %s", what, sym_mosquitto_strerror(rc));
        drop_connection(b, NULL);
}

static void poll_cb(uv_poll_t *p, int status, int events) {
        osm_bridge *b = p->data;
        if (status < 0) {
                set_error(b, "poll: %s", uv_strerror(status));
                drop_connection(b, NULL);
                return;
        }
        if (events & UV_READABLE) {
                for (int i = 0; i < READ_BUDGET && b->poll && b->pending_all < MAX_PENDING; i++) {
                        errno = 0;
                        int rc = sym_mosquitto_loop_read(b->mosq, 1);
                        if (rc != MOSQ_ERR_SUCCESS) {
                                flush_stage(b);
                                handle_rc(b, rc, "read");
                                return;
                        }
                        if (errno == EAGAIN || errno == EWOULDBLOCK)
                                break;
                }
                flush_stage(b);
        }
        if (b->poll && (events & UV_WRITABLE) && b->pending_q1 == 0) {
                int rc = sym_mosquitto_loop_write(b->mosq, 1);
                if (rc != MOSQ_ERR_SUCCESS) {
                        handle_rc(b, rc, "write");
                        return;
                }
                /* Every PUBACK written: the in-flight lines are done with. */
                if (!sym_mosquitto_want_write(b->mosq) && b->pending_q1 == 0 && b->inflight_lines > 0 &&
                    b->inflight_fd >= 0 && ftruncate(b->inflight_fd, 0) == 0)
                        b->inflight_lines = 0;
        }
        update_poll(b);
}

/* Read while the store keeps up; write only while no QoS 1 message waits for its commit. */
static void update_poll(osm_bridge *b) {
        if (!b->poll)
                return;
        int ev = 0;
        if (b->pending_all < MAX_PENDING)
                ev |= UV_READABLE;
        if (b->pending_q1 == 0 && sym_mosquitto_want_write(b->mosq))
                ev |= UV_WRITABLE;
        if (ev == b->poll_events)
                return;
        b->poll_events = ev;
        uv_poll_start(b->poll, ev, poll_cb);
}

static void misc_fire(uv_timer_t *t) {
        osm_bridge *b = t->data;
        if (b->state != B_CONNECTED && b->state != B_CONNECTING)
                return;
        int rc = sym_mosquitto_loop_misc(b->mosq);
        if (rc != MOSQ_ERR_SUCCESS) {
                handle_rc(b, rc, "keepalive");
                return;
        }
        update_poll(b);
}

static void begin_session(osm_bridge *b, const char *addr) {
        b->state = B_CONNECTING;
        int rc = sym_mosquitto_connect_async(b->mosq, addr, b->port, KEEPALIVE_S);
        if (rc != MOSQ_ERR_SUCCESS) {
                handle_rc(b, rc, "connect");
                return;
        }
        int fd = sym_mosquitto_socket(b->mosq);
        int pfd = fd >= 0 ? fcntl(fd, F_DUPFD_CLOEXEC, 3) : -1;
        b->poll = pfd >= 0 ? malloc(sizeof *b->poll) : NULL;
        if (!b->poll || uv_poll_init(b->loop, b->poll, pfd) < 0) {
                free(b->poll);
                b->poll = NULL;
                osm_close(pfd);
                set_error(b, "cannot watch the socket");
                b->state = B_CONNECTING;
                drop_connection(b, NULL);
                return;
        }
        b->poll->data = b;
        b->poll_fd = pfd;
        b->poll_events = 0;
        b->state = B_CONNECTING;
        update_poll(b);
        uv_timer_start(&b->timer, misc_fire, 1000, 1000);
}

static void resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
        osm_bridge *b = req->data;
        free(req);
        b->gai = NULL;
        if (b->state == B_STOPPED) {
                uv_freeaddrinfo(res);
                bridge_unref(b);
                return;
        }
        char addr[64] = "";
        if (status == 0 && res)
                uv_ip_name(res->ai_addr, addr, sizeof addr);
        uv_freeaddrinfo(res);
        bridge_unref(b);
        if (!addr[0]) {
                set_error(b, "cannot resolve %s: %s", b->host, status < 0 ? uv_strerror(status) : "no address");
                b->state = B_CONNECTING;
                drop_connection(b, NULL);
                return;
        }
        begin_session(b, addr);
}

static void start_connect(osm_bridge *b) {
        if (b->state == B_STOPPED)
                return;
        /* TLS checks the certificate against the name, so libmosquitto gets the name (and
         * resolves it itself); for plain MQTT the name is resolved on the thread pool. */
        if (b->tls) {
                begin_session(b, b->host);
                return;
        }
        b->gai = malloc(sizeof *b->gai);
        if (!b->gai) {
                b->state = B_CONNECTING;
                drop_connection(b, NULL);
                return;
        }
        b->gai->data = b;
        b->state = B_RESOLVING;
        b->refs++;
        struct addrinfo hints = { .ai_socktype = SOCK_STREAM };
        int r = uv_getaddrinfo(b->loop, b->gai, resolved, b->host, NULL, &hints);
        if (r < 0) {
                free(b->gai);
                b->gai = NULL;
                b->refs--;
                set_error(b, "cannot resolve %s: %s", b->host, uv_strerror(r));
                b->state = B_CONNECTING;
                drop_connection(b, NULL);
        }
}

static void backoff_fire(uv_timer_t *t) {
        start_connect(t->data);
}

/* --- recovery of the in-flight file --- */

typedef struct recover_ctx {
        osm_bridge *b;
        uint8_t key[16];
        int64_t time_us;
} recover_ctx;

static void recover_step_done(osm_bridge *b) {
        if (--b->recover_left == 0 && b->state == B_RECOVERING) {
                log_info("ingest %s: %zu message(s) stored before a restart will not be stored again", b->def.name,
                         b->ring_n);
                start_connect(b);
        }
}

static void recover_found(int r, json_t *records, const char *cursor, void *userdata) {
        recover_ctx *c = userdata;
        osm_bridge *b = c->b;
        size_t i;
        json_t *rec;
        json_array_foreach(records, i, rec) {
                const char *w = json_string_value(json_object_get(rec, "writer"));
                if (w && strcmp(w, b->writer) == 0 && json_integer_value(json_object_get(rec, "time")) == c->time_us) {
                        ring_add(b, c->key);
                        break;
                }
        }
        json_decref(records);
        free(c);
        recover_step_done(b);
        bridge_unref(b);
}

/* Read the in-flight file; look each line's record up; connect when all answered. */
static void recover(osm_bridge *b) {
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        b->state = B_RECOVERING;
        b->recover_left = 1;   /* held until every query is queued */
        int r = osm_read_file(b->inflight_path, 4 * 1024 * 1024, &text, &len);
        if (r < 0 && r != -ENOENT)
                log_warning("ingest %s: cannot read %s: %s", b->def.name, b->inflight_path, strerror(-r));
        for (size_t pos = 0; text && pos < len;) {
                const char *nl = memchr(text + pos, '\n', len - pos);
                size_t ll = nl ? (size_t) (nl - (text + pos)) : len - pos;
                osm_ingest_intent in;
                if (osm_ingest_intent_parse(text + pos, ll, &in) == 0) {
                        b->inflight_lines++;
                        if (in.time_us > b->last_time_us)
                                b->last_time_us = in.time_us;
                        recover_ctx *c = calloc(1, sizeof *c);
                        osm_store_query_req q = {
                                .collection = in.collection, .since_us = in.time_us, .until_us = in.time_us + 1,
                                .limit = 16,
                        };
                        if (c) {
                                c->b = b;
                                memcpy(c->key, in.key, 16);
                                c->time_us = in.time_us;
                                b->refs++;
                                b->recover_left++;
                                if (osm_store_query(b->store, &q, recover_found, c) < 0) {
                                        b->refs--;
                                        b->recover_left--;
                                        free(c);
                                }
                        }
                }
                pos += ll + 1;
        }
        recover_step_done(b);
}

/* --- life --- */

static int read_password(const char *path, char *buf, size_t size, osm_error *err) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        struct stat st;
        if (fd < 0)
                return osm_error_set(err, -errno, 0, "cannot open the password file");
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
                return osm_error_set(err, -EINVAL, 0, "the password file is not a regular file");
        if (st.st_mode & 077)
                return osm_error_set(err, -EPERM, 0, "the password file is readable by others (chmod 0600)");
        if (st.st_uid != 0 && st.st_uid != geteuid())
                return osm_error_set(err, -EPERM, 0, "the password file is owned by another user");
        ssize_t n = read(fd, buf, size - 1);
        if (n < 0)
                return osm_error_set(err, -errno, 0, "cannot read the password file");
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
                n--;
        buf[n] = 0;
        return 0;
}

int osm_bridge_new(uv_loop_t *loop, osm_store *store, const char *state_dir, const char *space_id,
                   const osm_ingest_def *def, osm_bridge **out, osm_error *err) {
        osm_bridge *b = calloc(1, sizeof *b);
        int r;
        if (!b)
                return -ENOMEM;
        b->loop = loop;
        b->store = store;
        b->inflight_fd = -1;
        b->poll_fd = -1;
        b->refs = 1;
        b->state = B_STOPPED;
        b->objq_tail = &b->objq;
        if ((r = osm_ingest_def_copy(&b->def, def)) < 0) {
                free(b);
                return r;
        }
        uv_timer_init(loop, &b->timer);
        b->timer.data = b;
        if (osm_ingest_parse_url(def->url, b->host, sizeof b->host, &b->port, &b->tls) < 0) {
                r = osm_error_set(err, -EINVAL, 0, "bad broker URL");
                goto fail;
        }
        if (def->ca_file)
                b->tls = true;
        snprintf(b->client_id, sizeof b->client_id, "osmose-%.12s-%s", space_id, def->name);
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/ingest", state_dir);
        if (asprintf(&b->writer, "ingest:%s", def->name) < 0 ||
            asprintf(&b->inflight_path, "%s/%s.inflight", dir, def->name) < 0) {
                r = -ENOMEM;
                goto fail;
        }
        if ((r = osm_mkdir_p(dir, 0700)) < 0) {
                osm_error_set(err, r, 0, "cannot make STATE/ingest");
                goto fail;
        }
        b->inflight_fd = open(b->inflight_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (b->inflight_fd < 0) {
                r = osm_error_set(err, -errno, 0, "cannot open the in-flight file");
                goto fail;
        }
        /* clean_session = false: the broker keeps the subscription and what we have not
         * acknowledged while we are away, and redelivers it. */
        if ((r = osm_dl_mosquitto(err)) < 0)   /* opened by the first bridge */
                goto fail;
        b->mosq = sym_mosquitto_new(b->client_id, false, b);
        if (!b->mosq) {
                r = osm_error_set(err, -errno ? -errno : -ENOMEM, 0, "mosquitto_new failed");
                goto fail;
        }
        sym_mosquitto_threaded_set(b->mosq, true);   /* see the top of this file */
        sym_mosquitto_int_option(b->mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
        sym_mosquitto_connect_with_flags_callback_set(b->mosq, on_connect);
        sym_mosquitto_disconnect_callback_set(b->mosq, on_disconnect);
        sym_mosquitto_message_callback_set(b->mosq, on_message);
        sym_mosquitto_subscribe_callback_set(b->mosq, on_subscribe);
        if (def->username) {
                char pw[1024] = "";
                if (def->password_file && (r = read_password(def->password_file, pw, sizeof pw, err)) < 0) {
                        sodium_memzero(pw, sizeof pw);
                        goto fail;
                }
                int rc = sym_mosquitto_username_pw_set(b->mosq, def->username, def->password_file ? pw : NULL);
                sodium_memzero(pw, sizeof pw);
                if (rc != MOSQ_ERR_SUCCESS) {
                        r = osm_error_set(err, -EINVAL, 0, "cannot set the credentials");
                        goto fail;
                }
        }
        if (b->tls) {
                int rc = sym_mosquitto_tls_set(b->mosq, def->ca_file, def->ca_file ? NULL : "/etc/ssl/certs", NULL, NULL, NULL);
                if (rc != MOSQ_ERR_SUCCESS) {
                        r = osm_error_set(err, -EINVAL, 0, "cannot use the CA file");
                        goto fail;
                }
        }
        *out = b;
        return 0;
fail:
        osm_bridge_free(b);
        return r;
}

void osm_bridge_start(osm_bridge *b) {
        recover(b);
}

static void timer_closed(uv_handle_t *h) {
        bridge_unref(h->data);
}

static void bridge_unref(osm_bridge *b) {
        if (--b->refs > 0)
                return;
        for (size_t i = 0; i < b->n_stage; i++) {
                json_decref(b->stage[i].body);
                free(b->stage[i].payload);
        }
        free(b->stage);
        if (b->mosq)
                sym_mosquitto_destroy(b->mosq);
        osm_close(b->inflight_fd);
        free(b->writer);
        free(b->inflight_path);
        osm_ingest_def_clear(&b->def);
        free(b);
}

osm_bridge *osm_bridge_free(osm_bridge *b) {
        if (!b)
                return NULL;
        /* Stop without writing what is queued: the broker redelivers whatever was not
         * acknowledged, and the in-flight file tells the next start what is stored. */
        bstate was = b->state;
        b->state = B_STOPPED;
        if (b->mosq && (was == B_CONNECTED || was == B_CONNECTING)) {
                int fd = sym_mosquitto_socket(b->mosq);
                if (fd >= 0)
                        shutdown(fd, SHUT_RDWR);
        }
        stop_poll(b);
        if (b->gai)
                uv_cancel((uv_req_t *) b->gai);
        b->store = NULL;
        while (b->objq) {
                objjob *j = b->objq;
                b->objq = j->next;
                free(j->payload);
                free(j->c);
                b->pending_all--;
                free(j);
        }
        b->objq_tail = &b->objq;
        b->refs++;   /* released when the timer is closed */
        uv_close((uv_handle_t *) &b->timer, timer_closed);
        bridge_unref(b);
        return NULL;
}

const char *osm_bridge_name(const osm_bridge *b) {
        return b->def.name;
}

const osm_ingest_def *osm_bridge_def(const osm_bridge *b) {
        return &b->def;
}

bool osm_bridge_connected(const osm_bridge *b) {
        return b->state == B_CONNECTED;
}

json_t *osm_bridge_json(const osm_bridge *b) {
        json_t *o = osm_ingest_def_json(&b->def);
        if (!o)
                return NULL;
        json_t *refused = json_pack("{s:I, s:I, s:I, s:I}", "invalid_topic", (json_int_t) b->refused_topic,
                                    "too_large", (json_int_t) b->refused_size, "too_deep", (json_int_t) b->refused_depth,
                                    "store", (json_int_t) b->refused_store);
        json_object_update_new(o, json_pack("{s:s, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o}",
                                            "state", state_names[b->state], "session_present", b->session_present,
                                            "messages", (json_int_t) b->messages, "bytes", (json_int_t) b->bytes,
                                            "stored", (json_int_t) b->stored, "objects", (json_int_t) b->objects,
                                            "duplicates", (json_int_t) b->duplicates,
                                            "reconnects", (json_int_t) b->reconnects,
                                            "pending", (json_int_t) b->pending_all, "refused", refused));
        if (b->last_error[0])
                json_object_set_new(o, "last_error", json_string(b->last_error));
        if (b->last_error_us)
                json_object_set_new(o, "last_error_time", json_integer(b->last_error_us));
        if (b->last_message_us)
                json_object_set_new(o, "last_message", json_integer(b->last_message_us));
        if (b->state == B_CONNECTED)
                json_object_set_new(o, "connected_since", json_integer(b->connected_since_us));
        return o;
}
