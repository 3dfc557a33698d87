/* transport.c: the member transport (see transport.h): an accept thread, one thread per
 * connection (a TLS handshake, then a proxy or a request), and the dialler. */
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon/building/dq-client.h"
#include "daemon/building/transport.h"
#include "osmose/log.h"
#include "osmose/util.h"

#define MAX_CONNECTIONS   512
#define HANDSHAKE_MS      5000
#define FIRST_LINE_MAX    (64 * 1024)
#define THREAD_STACK      (256 * 1024)

typedef struct conn {
        struct conn *prev, *next;
        osm_bt *t;
        osm_btls_conn tls;
        int fd;          /* accepted socket, until the handshake takes it */
        int plain;       /* the other end of a proxy, or -1 */
        bool outgoing;
} conn;

struct osm_bt {
        osm_btls tls;
        int listen_fd;
        pthread_t acceptor;
        bool acceptor_running;
        volatile bool stopping;
        char node_bind[128];
        char own_address[OSM_DQ_ADDR_MAX];
        osm_bt_handler handler;
        void *handler_arg;

        pthread_mutex_t lock;      /* members, conns, counters */
        pthread_cond_t idle;
        uint8_t (*members)[OSM_PUBKEY_BYTES];
        int64_t *contact_us;       /* per member: wall-clock time of the last authenticated contact */
        size_t n_members;
        bool joins_open;
        conn *conns;
        size_t n_conns;
        osm_bt_counters counters;
};

static bool member_locked(osm_bt *t, const uint8_t key[OSM_PUBKEY_BYTES]) {
        for (size_t i = 0; i < t->n_members; i++)
                if (sodium_memcmp(t->members[i], key, OSM_PUBKEY_BYTES) == 0)
                        return true;
        return false;
}

static long member_index_locked(osm_bt *t, const uint8_t key[OSM_PUBKEY_BYTES]) {
        for (size_t i = 0; i < t->n_members; i++)
                if (sodium_memcmp(t->members[i], key, OSM_PUBKEY_BYTES) == 0)
                        return (long) i;
        return -1;
}

/* A member completed a mutual TLS handshake with us, either way: it is alive. */
static void contact(osm_bt *t, const uint8_t key[OSM_PUBKEY_BYTES]) {
        int64_t now = osm_now_real_us();
        pthread_mutex_lock(&t->lock);
        long i = member_index_locked(t, key);
        if (i >= 0)
                t->contact_us[i] = now;
        pthread_mutex_unlock(&t->lock);
}

int64_t osm_bt_last_contact(osm_bt *t, const uint8_t key[OSM_PUBKEY_BYTES]) {
        if (!t)
                return 0;
        pthread_mutex_lock(&t->lock);
        long i = member_index_locked(t, key);
        int64_t at = i >= 0 ? t->contact_us[i] : 0;
        pthread_mutex_unlock(&t->lock);
        return at;
}

bool osm_bt_is_member(osm_bt *t, const uint8_t key[OSM_PUBKEY_BYTES]) {
        pthread_mutex_lock(&t->lock);
        bool m = member_locked(t, key);
        pthread_mutex_unlock(&t->lock);
        return m;
}

/* The handshake gate for accepted connections: members, and anyone while a join token is
 * outstanding (they may only ask to join, with the token's secret). */
static bool allow_cb(void *arg, const uint8_t pk[OSM_PUBKEY_BYTES]) {
        osm_bt *t = arg;
        pthread_mutex_lock(&t->lock);
        bool ok = t->joins_open || member_locked(t, pk);
        pthread_mutex_unlock(&t->lock);
        return ok;
}

/* Dialled members: only keys in the member set. */
static bool allow_member_cb(void *arg, const uint8_t pk[OSM_PUBKEY_BYTES]) {
        return osm_bt_is_member(arg, pk);
}

void osm_bt_set_members(osm_bt *t, const uint8_t (*keys)[OSM_PUBKEY_BYTES], size_t n) {
        if (n > OSM_BT_MAX_MEMBERS)
                n = OSM_BT_MAX_MEMBERS;
        uint8_t (*copy)[OSM_PUBKEY_BYTES] = malloc((n ? n : 1) * OSM_PUBKEY_BYTES);
        int64_t *at = calloc(n ? n : 1, sizeof *at);
        if (!copy || !at) {
                free(copy);
                free(at);
                return;
        }
        memcpy(copy, keys, n * OSM_PUBKEY_BYTES);
        pthread_mutex_lock(&t->lock);
        for (size_t i = 0; i < n; i++) {   /* members that stay keep their last contact */
                long k = member_index_locked(t, copy[i]);
                if (k >= 0)
                        at[i] = t->contact_us[k];
        }
        free(t->members);
        free(t->contact_us);
        t->members = copy;
        t->contact_us = at;
        t->n_members = n;
        pthread_mutex_unlock(&t->lock);
}

void osm_bt_add_member(osm_bt *t, const uint8_t key[OSM_PUBKEY_BYTES]) {
        pthread_mutex_lock(&t->lock);
        if (!member_locked(t, key) && t->n_members < OSM_BT_MAX_MEMBERS) {
                void *m = realloc(t->members, (t->n_members + 1) * OSM_PUBKEY_BYTES);
                if (m)
                        t->members = m;
                int64_t *at = m ? realloc(t->contact_us, (t->n_members + 1) * sizeof *at) : NULL;
                if (at) {
                        t->contact_us = at;
                        at[t->n_members] = 0;
                        memcpy(t->members[t->n_members++], key, OSM_PUBKEY_BYTES);
                }
        }
        pthread_mutex_unlock(&t->lock);
}

void osm_bt_set_joins_open(osm_bt *t, bool open) {
        pthread_mutex_lock(&t->lock);
        t->joins_open = open;
        pthread_mutex_unlock(&t->lock);
}

void osm_bt_set_own_address(osm_bt *t, const char *address) {
        pthread_mutex_lock(&t->lock);
        snprintf(t->own_address, sizeof t->own_address, "%s", address);
        pthread_mutex_unlock(&t->lock);
}

osm_bt_counters osm_bt_get_counters(osm_bt *t) {
        pthread_mutex_lock(&t->lock);
        osm_bt_counters c = t->counters;
        pthread_mutex_unlock(&t->lock);
        return c;
}

#define COUNT(t, field) do { pthread_mutex_lock(&(t)->lock); (t)->counters.field++; pthread_mutex_unlock(&(t)->lock); } while (0)

/* ---------- connection threads ---------- */

static int conn_register(osm_bt *t, conn *c) {
        pthread_mutex_lock(&t->lock);
        if (t->stopping || t->n_conns >= MAX_CONNECTIONS) {
                pthread_mutex_unlock(&t->lock);
                return -EBUSY;
        }
        c->next = t->conns;
        if (t->conns)
                t->conns->prev = c;
        t->conns = c;
        t->n_conns++;
        pthread_mutex_unlock(&t->lock);
        return 0;
}

static void conn_free(conn *c) {
        osm_bt *t = c->t;
        pthread_mutex_lock(&t->lock);
        if (c->prev)
                c->prev->next = c->next;
        else
                t->conns = c->next;
        if (c->next)
                c->next->prev = c->prev;
        if (--t->n_conns == 0)
                pthread_cond_broadcast(&t->idle);
        pthread_mutex_unlock(&t->lock);
        osm_btls_close(&c->tls);
        osm_close(c->fd);
        osm_close(c->plain);
        free(c);
}

static int spawn(void *(*fn)(void *), void *arg) {
        pthread_attr_t a;
        pthread_t th;
        pthread_attr_init(&a);
        pthread_attr_setstacksize(&a, THREAD_STACK);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        int r = pthread_create(&th, &a, fn, arg);
        pthread_attr_destroy(&a);
        return -r;
}

static void *accepted_main(void *arg) {
        conn *c = arg;
        osm_bt *t = c->t;
        osm_error why = {};
        int fd = steal_fd(&c->fd);
        int r = osm_btls_accept(&t->tls, fd, HANDSHAKE_MS, &c->tls, &why);
        if (r < 0) {
                COUNT(t, refused_handshake);
                log_info("building: refused a connection: %s", why.message);
                conn_free(c);
                return NULL;
        }
        char *line = malloc(FIRST_LINE_MAX);
        json_t *req = NULL;
        const char *op = NULL;
        if (line && osm_btls_read_line(&c->tls, line, FIRST_LINE_MAX,
                                       osm_now_mono_us() + HANDSHAKE_MS * 1000ull) == 0)
                req = json_loads(line, JSON_REJECT_DUPLICATES, NULL);
        free(line);
        if (req)
                op = json_string_value(json_object_get(req, "op"));
        bool member = osm_bt_is_member(t, c->tls.peer);
        if (member)
                contact(t, c->tls.peer);
        if (!op) {
                COUNT(t, refused_handshake);
        } else if (!member && strcmp(op, "join") != 0) {
                /* Past the handshake while joins are open, but not a member: join only. */
                COUNT(t, refused_non_member);
                char pk[OSM_PUBKEY_B64];
                osm_pubkey_encode(c->tls.peer, pk);
                log_notice("building: refused '%s' from a non-member (key %s)", op, pk);
                static const char msg[] = "{\"error\":\"NotMember\",\"message\":\"this key is not a member of the building\"}\n";
                osm_btls_write(&c->tls, msg, sizeof msg - 1, osm_now_mono_us() + 1000000);
        } else if (strcmp(op, "dqlite") == 0) {
                c->plain = osm_dq_connect_abstract(t->node_bind);
                if (c->plain >= 0) {
                        COUNT(t, proxied);
                        osm_btls_pump(&c->tls, c->plain, &t->stopping);
                }
        } else {
                t->handler(t->handler_arg, &c->tls, op, req);
        }
        json_decref(req);
        conn_free(c);
        return NULL;
}

static void *acceptor_main(void *arg) {
        osm_bt *t = arg;
        while (!t->stopping) {
                int fd = accept4(t->listen_fd, NULL, NULL, SOCK_CLOEXEC);
                if (fd < 0) {
                        if (errno == EINTR || errno == ECONNABORTED)
                                continue;
                        if (t->stopping || errno == EINVAL || errno == EBADF)
                                break;
                        usleep(100000);   /* EMFILE and friends: do not spin */
                        continue;
                }
                conn *c = calloc(1, sizeof *c);
                if (!c) {
                        close(fd);
                        continue;
                }
                c->t = t;
                c->fd = fd;
                c->plain = -1;
                c->tls.fd = -1;
                if (conn_register(t, c) < 0) {
                        close(fd);
                        free(c);
                        continue;
                }
                COUNT(t, accepted);
                if (spawn(accepted_main, c) < 0)
                        conn_free(c);
        }
        return NULL;
}

/* ---------- dialling ---------- */

int osm_bt_dial(osm_bt *t, const char *address, const uint8_t *pin, int timeout_ms, osm_btls_conn *c,
                osm_error *err) {
        /* Dialled peers are checked against the member set (or the pin), never "joins open". */
        osm_btls dialler = t->tls;
        dialler.allow = allow_member_cb;
        dialler.allow_arg = t;
        int r = osm_btls_connect(&dialler, address, pin, timeout_ms, c, err);
        if (r < 0) {
                COUNT(t, dial_failed);
        } else {
                COUNT(t, dialled);
                contact(t, c->peer);
        }
        return r;
}

static void *outgoing_main(void *arg) {
        conn *c = arg;
        osm_btls_pump(&c->tls, c->plain, &c->t->stopping);
        conn_free(c);
        return NULL;
}

int osm_bt_connect_node(void *arg, const char *address, int *out) {
        return osm_bt_connect_node_within(arg, address, 2000, out);
}

int osm_bt_connect_node_within(osm_bt *t, const char *address, int timeout_ms, int *out) {
        char own[OSM_DQ_ADDR_MAX];
        pthread_mutex_lock(&t->lock);
        snprintf(own, sizeof own, "%s", t->own_address);
        pthread_mutex_unlock(&t->lock);
        if (address[0] == '@' || strcmp(address, own) == 0) {
                int fd = osm_dq_connect_abstract(address[0] == '@' ? address : t->node_bind);
                if (fd < 0)
                        return 1;
                *out = fd;
                return 0;
        }
        conn *c = calloc(1, sizeof *c);
        if (!c)
                return 1;
        c->t = t;
        c->fd = c->plain = -1;
        c->outgoing = true;
        osm_error why = {};
        if (osm_bt_dial(t, address, NULL, timeout_ms, &c->tls, &why) < 0) {
                log_debug("building: cannot reach %s: %s", address, why.message);
                free(c);
                return 1;
        }
        static const char hello[] = "{\"op\":\"dqlite\"}\n";
        int sp[2];
        if (osm_btls_write(&c->tls, hello, sizeof hello - 1, osm_now_mono_us() + 2000000) < 0 ||
            socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0) {
                osm_btls_close(&c->tls);
                free(c);
                return 1;
        }
        c->plain = sp[1];
        if (conn_register(t, c) < 0) {
                osm_btls_close(&c->tls);
                close(sp[0]);
                close(sp[1]);
                free(c);
                return 1;
        }
        if (spawn(outgoing_main, c) < 0) {
                conn_free(c);
                close(sp[0]);
                return 1;
        }
        *out = sp[0];   /* blocking, as dqlite expects */
        return 0;
}

/* ---------- start, stop ---------- */

int osm_bt_start(const osm_keypair *id, unsigned port, const char *node_bind, const char *own_address,
                 osm_bt_handler handler, void *arg, osm_bt **out, osm_error *err) {
        osm_bt *t = calloc(1, sizeof *t);
        if (!t)
                return osm_error_set(err, -ENOMEM, 0, "out of memory");
        t->listen_fd = -1;
        pthread_mutex_init(&t->lock, NULL);
        pthread_cond_init(&t->idle, NULL);
        snprintf(t->node_bind, sizeof t->node_bind, "%s", node_bind);
        snprintf(t->own_address, sizeof t->own_address, "%s", own_address ? own_address : "");
        t->handler = handler;
        t->handler_arg = arg;
        if (osm_btls_init(&t->tls, id, allow_cb, t) < 0) {
                osm_bt_stop(t);
                return osm_error_set(err, -EIO, 0, "cannot set up TLS with the identity key");
        }
        int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int zero = 0, one = 1;
        struct sockaddr_in6 sa = { .sin6_family = AF_INET6, .sin6_port = htons((uint16_t) port),
                                   .sin6_addr = in6addr_any };
        if (fd >= 0) {
                setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
                setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        }
        if (fd < 0 || bind(fd, (struct sockaddr *) &sa, sizeof sa) < 0 || listen(fd, 128) < 0) {
                int r = -errno;
                osm_error_set(err, r, 0, "cannot listen on port %u: %s", port, strerror(-r));
                osm_close(fd);
                osm_bt_stop(t);
                return r;
        }
        t->listen_fd = fd;
        if (pthread_create(&t->acceptor, NULL, acceptor_main, t) != 0) {
                osm_bt_stop(t);
                return osm_error_set(err, -EAGAIN, 0, "cannot start the accept thread");
        }
        t->acceptor_running = true;
        *out = t;
        return 0;
}

void osm_bt_stop(osm_bt *t) {
        if (!t)
                return;
        t->stopping = true;
        if (t->listen_fd >= 0)
                shutdown(t->listen_fd, SHUT_RDWR);   /* wakes accept() */
        if (t->acceptor_running)
                pthread_join(t->acceptor, NULL);
        t->listen_fd = osm_close(t->listen_fd);
        pthread_mutex_lock(&t->lock);
        for (conn *c = t->conns; c; c = c->next) {
                if (c->tls.fd >= 0)
                        shutdown(c->tls.fd, SHUT_RDWR);
                if (c->fd >= 0)
                        shutdown(c->fd, SHUT_RDWR);
                if (c->plain >= 0)
                        shutdown(c->plain, SHUT_RDWR);
        }
        /* Pumps notice 'stopping' within 500 ms; handshakes and requests time out. */
        struct timespec dl;
        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_sec += 6;
        while (t->n_conns > 0)
                if (pthread_cond_timedwait(&t->idle, &t->lock, &dl) == ETIMEDOUT)
                        break;
        bool leftover = t->n_conns > 0;
        pthread_mutex_unlock(&t->lock);
        if (leftover) {
                /* A thread still uses t: leak it rather than free memory under it. */
                log_warning("building: %zu member connection(s) did not close in time", t->n_conns);
                return;
        }
        osm_btls_free(&t->tls);
        free(t->members);
        free(t->contact_us);
        pthread_mutex_destroy(&t->lock);
        pthread_cond_destroy(&t->idle);
        free(t);
}
