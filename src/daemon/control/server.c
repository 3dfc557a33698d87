/* server.c: the Varlink control server on the libuv loop: accepting clients, framing
 * NUL-terminated messages with fd passing, peer-credential access checks, per-client
 * limits, and dispatch of calls to the subsystems' method tables.
 *
 * Each client has one uv_poll on its raw socket (not a uv_pipe: libuv's pipes can pass
 * only libuv handles, and we need SCM_RIGHTS for arbitrary fds and SO_PEERCRED). A
 * client runs one call at a time, as Varlink requires replies in order; messages that
 * arrive meanwhile stay buffered (bounded) until the call finishes. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "daemon/control/server.h"
#include "osmose/log.h"

#define MAX_ACCEPT_PER_WAKEUP 64
#define READ_CHUNK 65536

typedef struct method_entry {
        const osm_method *m;
        void *userdata;
} method_entry;

typedef struct out_seg {
        struct out_seg *next;
        char *buf;
        size_t len, off;
        int fds[OSM_VARLINK_MAX_FDS];   /* dup'ed; sent with the first byte */
        size_t n_fds;
        bool close_after;               /* close the client once this is sent */
} out_seg;

typedef struct client client;

struct osm_call {
        client *cl;              /* NULL once the client has gone */
        osm_server *srv;
        osm_vl_call msg;
        bool more, oneway;
        bool read_only;          /* its method changes nothing (osm_server_epoch) */
        int fds[OSM_VARLINK_MAX_FDS];
        size_t n_fds;
        void (*cancel)(osm_call *, void *);
        void *cancel_userdata;
        struct ucred cred;
        osm_principal who;
};

struct client {
        client *prev, *next;
        osm_server *srv;
        int fd;
        uv_poll_t poll;
        uv_timer_t timer;
        int poll_events;
        struct ucred cred;
        osm_principal who;
        char *rbuf;
        size_t rlen, rcap;
        int rfds[OSM_VARLINK_MAX_FDS];
        size_t n_rfds;
        size_t rfds_offset;      /* rbuf offset of the first byte that came with rfds */
        out_seg *out_head, *out_tail;
        size_t out_bytes;
        osm_call *call;          /* the call in flight, if any */
        bool dispatching;        /* inside process_input(): do not recurse */
        bool closing;            /* no more reads; close once output is flushed */
        bool draining;           /* error sent, write side shut: discarding input until EOF */
        uint64_t drained;        /* bytes discarded while draining */
        bool close_pending;      /* client_close_soon(): closed at the next loop turn */
        uint64_t closing_since_us;
        bool dead;               /* uv_close issued */
        int handles_open;        /* poll and timer, until their close callbacks ran */
        uint64_t last_activity_us;
};

struct osm_server {
        uv_loop_t *loop;
        int listen_fd;
        uv_poll_t listen_poll;
        uv_timer_t accept_pause;
        uv_timer_t close_timer;   /* runs deferred closes */
        uv_prepare_t turn;        /* counts the loop's turns into epoch */
        uint64_t epoch;
        bool accepting;
        gid_t gid_allowed;
        gid_t reader_gid;
        osm_tenant_resolver tenant_fn;
        void *tenant_userdata;
        osm_server_limits lim;
        client *clients;
        unsigned n_clients;
        unsigned n_calls;
        unsigned n_cancellable;   /* calls with a cancel callback: streams, long polls */
        method_entry *methods;
        size_t n_methods, cap_methods;
        unsigned handles_open;
        bool freeing;
        void (*close_cb)(void *);
        void *close_userdata;
};

static void client_close(client *cl);
static void client_close_soon(client *cl);
static void on_close_timer(uv_timer_t *t);
static void process_input(client *cl);
static void update_poll(client *cl);
static void on_client_poll(uv_poll_t *h, int status, int events);
static void on_listen_poll(uv_poll_t *h, int status, int events);

/* ---------- access policy: the one place that decides who may call what ---------- */

static bool has_gid(const gid_t *gids, size_t n, gid_t gid) {
        for (size_t i = 0; i < n; i++)
                if (gids[i] == gid)
                        return true;
        return false;
}

/* Decide the caller's role once, when it connects. SO_PEERGROUPS (Linux 4.13) reports
 * the supplementary groups the peer had at connect time, race-free, unlike reading
 * /proc/PID/status; the primary group comes with SO_PEERCRED. */
static void compute_principal(osm_server *s, int fd, const struct ucred *cr, osm_principal *who) {
        memset(who, 0, sizeof *who);
        if (s->gid_allowed == OSM_SERVER_ANY_PEER || cr->uid == 0 || cr->uid == geteuid()) {
                who->operator = true;
                return;
        }
        gid_t gids[257];
        socklen_t len = sizeof gids - sizeof gids[0];
        size_t n = 0;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, gids, &len) == 0)
                n = len / sizeof(gid_t);
        gids[n++] = cr->gid;
        if (s->gid_allowed != (gid_t) -1 && has_gid(gids, n, s->gid_allowed)) {
                who->operator = true;
                return;
        }
        who->reader = s->reader_gid != (gid_t) -1 && has_gid(gids, n, s->reader_gid);
        if (s->tenant_fn && s->tenant_fn(s->tenant_userdata, gids, n, who->tenant) < 0)
                who->tenant[0] = '\0';
}

static bool call_allowed(const osm_principal *who, osm_access a) {
        switch (a) {
        case OSM_ACCESS_PUBLIC: return true;
        case OSM_ACCESS_MONITOR: return who->operator || who->reader || who->tenant[0];
        case OSM_ACCESS_TENANT: return who->operator || who->tenant[0];
        case OSM_ACCESS_READ:
        case OSM_ACCESS_WRITE: return who->operator;
        }
        return false;
}

/* ---------- output ---------- */

static void seg_free(out_seg *sg) {
        for (size_t i = 0; i < sg->n_fds; i++)
                close(sg->fds[i]);
        free(sg->buf);
        free(sg);
}

/* After a final error reply: shut our write side and discard what the peer still sends
 * until it closes (or a deadline). Closing at once with unread input would make the
 * kernel send RST, and the peer could lose the error reply that explains why. */
static void start_draining(client *cl) {
        cl->draining = true;
        cl->last_activity_us = osm_now_mono_us();
        shutdown(cl->fd, SHUT_WR);
        update_poll(cl);
}

static int drain_input(client *cl) {
        char buf[16384];
        for (int i = 0; i < 16; i++) {
                ssize_t n = recv(cl->fd, buf, sizeof buf, MSG_DONTWAIT);
                if (n == 0)
                        return -ECONNRESET;
                if (n < 0)
                        return errno == EAGAIN || errno == EINTR ? 0 : -errno;
                cl->drained += (uint64_t) n;
                if (cl->drained > 64u * 1024 * 1024)
                        return -EMSGSIZE;
        }
        return 0;
}

/* Write as much queued output as the socket takes. Returns 0, or -errno on a fatal
 * error (the client is then closed by the caller). */
static int flush_output(client *cl) {
        while (cl->out_head) {
                out_seg *sg = cl->out_head;
                /* fds ride along with the first byte of their message */
                size_t nf = sg->off == 0 ? sg->n_fds : 0;
                ssize_t n = osm_vl_sendmsg(cl->fd, sg->buf + sg->off, sg->len - sg->off, sg->fds, nf, MSG_DONTWAIT);
                if (n < 0) {
                        if (n == -EINTR)
                                continue;
                        if (n == -EAGAIN)
                                break;
                        return (int) n;
                }
                if (sg->off == 0)
                        for (size_t i = 0; i < sg->n_fds; i++)
                                sg->fds[i] = osm_close(sg->fds[i]);
                sg->n_fds = 0;
                sg->off += (size_t) n;
                cl->out_bytes -= (size_t) n;
                if (sg->off < sg->len)
                        break;
                bool close_after = sg->close_after;
                cl->out_head = sg->next;
                if (!cl->out_head)
                        cl->out_tail = NULL;
                seg_free(sg);
                if (close_after) {
                        start_draining(cl);
                        return 0;
                }
        }
        if (!cl->dead)
                update_poll(cl);
        return 0;
}

/* Queue one framed message (buf includes its NUL; ownership taken), of which the first
 * sent bytes already went (without fds), and try to send the rest. */
static int queue_output_rest(client *cl, char *buf, size_t len, size_t sent, const int *fds, size_t n_fds,
                             bool close_after) {
        if (cl->dead || (cl->closing && !close_after)) {
                free(buf);
                return -ECONNRESET;
        }
        out_seg *sg = calloc(1, sizeof *sg);
        if (!sg) {
                free(buf);
                return -ENOMEM;
        }
        sg->buf = buf;
        sg->len = len;
        sg->off = sent;
        sg->close_after = close_after;
        for (size_t i = 0; i < n_fds && i < OSM_VARLINK_MAX_FDS; i++) {
                int d = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
                if (d < 0) {
                        seg_free(sg);
                        return -errno;
                }
                sg->fds[sg->n_fds++] = d;
        }
        if (cl->out_tail)
                cl->out_tail->next = sg;
        else
                cl->out_head = sg;
        cl->out_tail = sg;
        cl->out_bytes += len - sent;
        if (cl->out_bytes > cl->srv->lim.max_buffered) {
                /* A client that does not read its replies (or a stream it cannot keep
                 * up with) must not make the daemon buffer without bound. */
                log_warning("control: dropping client pid %d: %zu reply bytes unread",
                            (int) cl->cred.pid, cl->out_bytes);
                client_close_soon(cl);
                return -ECONNRESET;
        }
        int r = flush_output(cl);
        if (r < 0) {
                client_close_soon(cl);
                return -ECONNRESET;
        }
        return 0;
}

static int queue_output(client *cl, char *buf, size_t len, const int *fds, size_t n_fds, bool close_after) {
        return queue_output_rest(cl, buf, len, 0, fds, n_fds, close_after);
}

/* A reply of params serialized already (the GetStatus text many monitors share), with
 * nothing queued before it: sent from that text in one sendmsg of three pieces, without
 * copying it into a frame of its own (the copy and its allocations were a quarter of
 * what such a call cost the daemon, callgrind). What the socket does not take at once is
 * framed and queued as any reply. */
static int reply_text_now(client *cl, const char *text, size_t text_len, bool continues) {
        struct iovec iov[3];
        size_t len = osm_vl_reply_iov(text, text_len, continues, iov);
        ssize_t n = 0;
        if (!cl->out_head && !cl->dead && !cl->closing) {
                n = osm_vl_sendmsgv(cl->fd, iov, 3, NULL, 0, MSG_DONTWAIT);
                if (n == (ssize_t) len)
                        return 0;
                if (n == -EAGAIN || n == -EINTR) {
                        n = 0;
                } else if (n < 0) {
                        client_close_soon(cl);
                        return -ECONNRESET;
                }
        }
        size_t flen;
        char *buf = osm_vl_format_reply_raw(text, text_len, continues, &flen);
        if (!buf) {
                if (n > 0)   /* half a message went: the stream cannot go on */
                        client_close_soon(cl);
                return -ENOMEM;
        }
        return queue_output_rest(cl, buf, flen, (size_t) n, NULL, 0, false);
}

/* Close a client from the loop, not from inside the current call stack: queue_output()
 * runs inside handlers' replies, and closing there would run cancel callbacks (and free
 * calls) underneath the handler that is replying. */
static void client_close_soon(client *cl) {
        if (cl->dead || cl->close_pending)
                return;
        cl->close_pending = true;
        cl->closing = true;
        uv_poll_stop(&cl->poll);
        cl->poll_events = 0;
        uv_timer_start(&cl->srv->close_timer, on_close_timer, 0, 0);
}

static void send_error_and_close(client *cl, const char *error, json_t *params) {
        size_t len;
        char *buf = osm_vl_format_error(error, params, &len);
        json_decref(params);
        if (!buf) {
                client_close(cl);
                return;
        }
        cl->closing = true;
        cl->closing_since_us = osm_now_mono_us();
        queue_output(cl, buf, len, NULL, 0, true);
}

/* ---------- calls ---------- */

static void call_free(osm_call *c) {
        if (!c->read_only)
                c->srv->epoch++;
        if (c->cancel)
                c->srv->n_cancellable--;
        for (size_t i = 0; i < c->n_fds; i++)
                close(c->fds[i]);
        osm_vl_call_done(&c->msg);
        c->srv->n_calls--;
        free(c);
}

static void call_finished(osm_call *c) {
        client *cl = c->cl;
        call_free(c);
        if (!cl)
                return;
        cl->call = NULL;
        cl->last_activity_us = osm_now_mono_us();
        if (!cl->dispatching && !cl->dead)
                process_input(cl);
}

bool osm_call_more(const osm_call *c) { return c->more; }
const struct ucred *osm_call_cred(const osm_call *c) { return &c->cred; }
const osm_principal *osm_call_principal(const osm_call *c) { return &c->who; }
const char *osm_call_tenant(const osm_call *c) {
        return !c->who.operator && c->who.tenant[0] ? c->who.tenant : NULL;
}

void osm_server_set_roles(osm_server *s, gid_t reader_gid, osm_tenant_resolver fn, void *userdata) {
        s->reader_gid = reader_gid;
        s->tenant_fn = fn;
        s->tenant_userdata = userdata;
}
const char *osm_call_method(const osm_call *c) { return c->msg.method; }
size_t osm_call_n_fds(const osm_call *c) { return c->n_fds; }
bool osm_call_alive(const osm_call *c) { return c->cl && !c->cl->dead && !c->cl->closing; }

int osm_call_take_fd(osm_call *c, size_t idx) {
        if (idx >= c->n_fds || c->fds[idx] < 0)
                return -1;
        return steal_fd(&c->fds[idx]);
}

void osm_call_set_cancel(osm_call *c, void (*cancel)(osm_call *, void *), void *userdata) {
        if (!c->cancel && cancel)
                c->srv->n_cancellable++;
        else if (c->cancel && !cancel)
                c->srv->n_cancellable--;
        c->cancel = cancel;
        c->cancel_userdata = userdata;
}

/* A reply of params (a tree, consumed) or of text (params serialized already). */
static int reply(osm_call *c, json_t *params, const char *text, size_t text_len, bool continues,
                 const int *fds, size_t n_fds) {
        int r = 0;
        if (continues && !c->more) {
                log_error("control: %s replied with continues to a call without more", c->msg.method);
                continues = false;
        }
        if (!continues)
                osm_call_set_cancel(c, NULL, NULL);   /* finishing: nothing left to cancel */
        if (!c->cl) {
                r = -ECONNRESET;
        } else if (!c->oneway && text && n_fds == 0) {
                r = reply_text_now(c->cl, text, text_len, continues);
        } else if (!c->oneway) {
                size_t len;
                char *buf = text ? osm_vl_format_reply_raw(text, text_len, continues, &len)
                                 : osm_vl_format_reply(params, continues, &len);
                r = buf ? queue_output(c->cl, buf, len, fds, n_fds, false) : -ENOMEM;
        }
        json_decref(params);
        if (!continues)
                call_finished(c);
        return r;
}

int osm_call_reply_fds(osm_call *c, json_t *params, bool continues, const int *fds, size_t n_fds) {
        return reply(c, params, NULL, 0, continues, fds, n_fds);
}

int osm_call_reply_text(osm_call *c, const char *params, size_t len, bool continues) {
        return reply(c, NULL, params, len, continues, NULL, 0);
}

int osm_call_reply(osm_call *c, json_t *params, bool continues) {
        return osm_call_reply_fds(c, params, continues, NULL, 0);
}

int osm_call_error(osm_call *c, const char *error, json_t *params) {
        int r = 0;
        osm_call_set_cancel(c, NULL, NULL);
        if (!c->cl) {
                r = -ECONNRESET;
        } else if (!c->oneway) {
                size_t len;
                char *buf = osm_vl_format_error(error, params, &len);
                r = buf ? queue_output(c->cl, buf, len, NULL, 0, false) : -ENOMEM;
        }
        json_decref(params);
        call_finished(c);
        return r;
}

int osm_call_invalid_param(osm_call *c, const char *parameter) {
        return osm_call_fail(c, osm_error_varlink_invalid_parameter(parameter));
}

int osm_call_fail(osm_call *c, osm_vl_error e) {
        return osm_call_error(c, e.name, e.params);
}

int osm_call_errorf_name(osm_call *c, const char *error, const char *fmt, ...) {
        char msg[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        return osm_call_error(c, error, json_pack("{s:s}", "message", msg));
}

static const method_entry *find_handler(osm_server *s, const char *name) {
        for (size_t i = 0; i < s->n_methods; i++)
                if (strcmp(s->methods[i].m->name, name) == 0)
                        return &s->methods[i];
        return NULL;
}

/* Route one parsed call. Errors that concern only this call are replied; the client
 * stays connected. */
static void dispatch(client *cl, osm_vl_call *msg, const int *fds, size_t n_fds) {
        osm_server *s = cl->srv;
        osm_call *c = calloc(1, sizeof *c);
        if (!c) {
                for (size_t i = 0; i < n_fds; i++)
                        close(fds[i]);
                osm_vl_call_done(msg);
                send_error_and_close(cl, OSM_E_INTERNAL_ERROR, json_pack("{s:s}", "message", "out of memory"));
                return;
        }
        memcpy(c->fds, fds, n_fds * sizeof(int));
        c->n_fds = n_fds;
        s->n_calls++;
        c->srv = s;
        c->cl = cl;
        c->msg = *msg;
        c->more = msg->more;
        c->oneway = msg->oneway;
        c->cred = cl->cred;
        c->who = cl->who;
        cl->call = c;

        const char *name = msg->method;
        char iface[256];
        const char *member;
        if (msg->upgrade) {
                osm_call_errorf(c, OSM_E_INVALID_MESSAGE, "protocol upgrades are not supported");
                return;
        }
        if (!osm_vl_split_method(name, iface, sizeof iface, &member)) {
                osm_call_fail(c, osm_error_varlink_method_not_found(name));
                return;
        }
        if (!osm_vl_find_interface(iface)) {
                osm_call_fail(c, osm_error_varlink_interface_not_found(iface));
                return;
        }
        const osm_vl_method *def = osm_vl_find_method(name);
        if (!def) {
                osm_call_fail(c, osm_error_varlink_method_not_found(name));
                return;
        }
        const method_entry *h = find_handler(s, name);
        if (!h) {
                osm_call_fail(c, osm_error_varlink_method_not_implemented(name));
                return;
        }
        c->read_only = h->m->read_only;
        if (!c->read_only)
                s->epoch++;
        if (!call_allowed(&cl->who, h->m->access)) {
                log_notice("control: denied %s to uid %u (pid %d)", name, (unsigned) cl->cred.uid,
                           (int) cl->cred.pid);
                if (cl->who.tenant[0] || cl->who.reader)
                        osm_call_errorf(c, OSM_E_PERMISSION_DENIED,
                                        "uid %u may not call %s: it is for operators (root and the group '%s')",
                                        (unsigned) cl->cred.uid, name, "osmose");
                else
                        osm_call_errorf(c, OSM_E_PERMISSION_DENIED,
                                        "uid %u may not call %s: only root and the group '%s' may",
                                        (unsigned) cl->cred.uid, name, "osmose");
                return;
        }
        const char *bad = NULL;
        if (osm_vl_check_params(def, c->msg.parameters, &bad) < 0) {
                osm_call_invalid_param(c, bad);
                return;
        }
        h->m->fn(c, c->msg.parameters, h->userdata);
}

/* Handle every complete message buffered, one call at a time. */
static void process_input(client *cl) {
        osm_server *s = cl->srv;
        cl->dispatching = true;
        while (!cl->dead && !cl->closing && !cl->call) {
                char *nul = cl->rlen ? memchr(cl->rbuf, 0, cl->rlen) : NULL;
                if (!nul) {
                        if (cl->rlen > s->lim.max_message) {
                                log_warning("control: client pid %d sent a message over %zu bytes",
                                            (int) cl->cred.pid, s->lim.max_message);
                                send_error_and_close(cl, OSM_E_MESSAGE_TOO_LARGE,
                                                     json_pack("{s:I}", "limit", (json_int_t) s->lim.max_message));
                        }
                        break;
                }
                size_t len = (size_t) (nul - cl->rbuf);
                if (len > s->lim.max_message) {
                        send_error_and_close(cl, OSM_E_MESSAGE_TOO_LARGE,
                                             json_pack("{s:I}", "limit", (json_int_t) s->lim.max_message));
                        break;
                }
                osm_vl_call msg;
                osm_error err;   /* read only after a failure, which fills it */
                int r = osm_vl_parse_call(cl->rbuf, len, &msg, &err);
                memmove(cl->rbuf, nul + 1, cl->rlen - len - 1);
                cl->rlen -= len + 1;
                /* fds belong to the message whose bytes they arrived with (the sender
                 * attaches them to its message's first byte). */
                int fds[OSM_VARLINK_MAX_FDS];
                size_t n_fds = 0;
                if (cl->n_rfds > 0) {
                        if (cl->rfds_offset <= len) {
                                memcpy(fds, cl->rfds, cl->n_rfds * sizeof(int));
                                n_fds = cl->n_rfds;
                                cl->n_rfds = 0;
                        } else {
                                cl->rfds_offset -= len + 1;
                        }
                }
                if (r < 0) {
                        /* Varlink: a message that is not a call ends the connection, after
                         * telling the peer why. */
                        log_notice("control: client pid %d sent an invalid message: %s", (int) cl->cred.pid,
                                   err.message);
                        send_error_and_close(cl, OSM_E_INVALID_MESSAGE, json_pack("{s:s}", "message", err.message));
                        break;
                }
                dispatch(cl, &msg, fds, n_fds);
        }
        cl->dispatching = false;
        if (!cl->dead)
                update_poll(cl);
}

/* ---------- input ---------- */

static int read_input(client *cl) {
        osm_server *s = cl->srv;
        size_t limit = s->lim.max_message + 1;   /* one message plus its NUL */
        if (cl->rlen >= limit)
                return 0;   /* full: wait until the call in flight consumes it */
        if (cl->rcap - cl->rlen < READ_CHUNK && cl->rcap < limit) {
                size_t ncap = OSM_MIN(OSM_MAX(cl->rcap * 2, (size_t) READ_CHUNK), limit);
                char *nb = realloc(cl->rbuf, ncap);
                if (!nb)
                        return -ENOMEM;
                cl->rbuf = nb;
                cl->rcap = ncap;
        }
        int in[OSM_VARLINK_MAX_FDS];
        size_t k = 0;
        bool too_many = false;
        ssize_t n = osm_vl_recvmsg(cl->fd, cl->rbuf + cl->rlen, cl->rcap - cl->rlen, MSG_DONTWAIT, in, &k, &too_many);
        if (n < 0)
                return n == -EAGAIN || n == -EINTR ? 0 : (int) n;
        if (k > 0) {
                /* One batch of fds at a time: a second batch before the first was claimed
                 * by its message would make the attribution ambiguous. */
                if (cl->n_rfds > 0) {
                        for (size_t i = 0; i < k; i++)
                                close(in[i]);
                        too_many = true;
                } else {
                        memcpy(cl->rfds, in, k * sizeof(int));
                        cl->n_rfds = k;
                        cl->rfds_offset = cl->rlen;
                }
        }
        if (too_many)
                return -E2BIG;
        if (n == 0)
                return -ECONNRESET;
        cl->rlen += (size_t) n;
        cl->last_activity_us = osm_now_mono_us();
        return 1;
}

static void update_poll(client *cl) {
        if (cl->close_pending)
                return;
        bool full = cl->rlen >= cl->srv->lim.max_message + 1;
        /* EPOLLRDHUP is level-triggered: with a full buffer we could not read the EOF it
         * announces and would spin; such a client is noticed at its next write instead. */
        int ev = full && !cl->draining ? 0 : UV_DISCONNECT;
        if (cl->draining)
                ev |= UV_READABLE;
        if (!cl->closing && !full)
                ev |= UV_READABLE;
        if (cl->out_head)
                ev |= UV_WRITABLE;
        if (ev != cl->poll_events) {
                cl->poll_events = ev;
                /* libuv stores the callback on every start (NULL would be called) */
                uv_poll_start(&cl->poll, ev, on_client_poll);
        }
}

static void on_client_poll(uv_poll_t *h, int status, int events) {
        client *cl = h->data;
        if (status < 0 && status != UV_EBADF) {
                client_close(cl);
                return;
        }
        if (events & UV_WRITABLE) {
                if (flush_output(cl) < 0) {
                        client_close(cl);
                        return;
                }
                if (cl->dead)
                        return;
        }
        if (cl->draining) {
                if (drain_input(cl) < 0)
                        client_close(cl);
                return;
        }
        if (events & (UV_READABLE | UV_DISCONNECT)) {
                int r = read_input(cl);
                if (r == -E2BIG) {
                        send_error_and_close(cl, OSM_E_INVALID_MESSAGE,
                                             json_pack("{s:s}", "message", "too many file descriptors"));
                        return;
                }
                if (r < 0) {
                        client_close(cl);
                        return;
                }
                if (r > 0 && !cl->dispatching)
                        process_input(cl);
        }
}

/* ---------- timeouts ---------- */

static void on_client_timer(uv_timer_t *t) {
        client *cl = t->data;
        osm_server *s = cl->srv;
        uint64_t now = osm_now_mono_us();
        uint64_t quiet_ms = (now - cl->last_activity_us) / 1000;
        if (cl->draining && quiet_ms >= 1000) {
                client_close(cl);
                return;
        }
        /* A client told to go that does not read its last reply holds a slot: not for long. */
        if (cl->closing && !cl->close_pending && (now - cl->closing_since_us) / 1000 >= 5000) {
                client_close(cl);
                return;
        }
        if (cl->call || cl->closing)
                return;   /* a call in flight (a stream may be quiet for long) */
        uint64_t limit = cl->rlen > 0 ? s->lim.partial_timeout_ms : s->lim.idle_timeout_ms;
        if (limit && quiet_ms >= limit) {
                log_info("control: dropping client pid %d: %s for %llu ms", (int) cl->cred.pid,
                         cl->rlen > 0 ? "half a message stalled" : "idle", (unsigned long long) quiet_ms);
                client_close(cl);
        }
}

/* ---------- client lifetime ---------- */

static void on_close_timer(uv_timer_t *t) {
        osm_server *s = t->data;
        client *cl = s->clients;
        while (cl) {
                client *next = cl->next;
                if (cl->close_pending)
                        client_close(cl);
                cl = next;
        }
}

static void server_handle_closed(osm_server *s) {
        s->handles_open--;
        if (s->freeing && s->handles_open == 0) {
                void (*cb)(void *) = s->close_cb;
                void *ud = s->close_userdata;
                free(s->methods);
                free(s);
                if (cb)
                        cb(ud);
        }
}

static void on_client_handle_closed(uv_handle_t *h) {
        client *cl = h->data;
        osm_server *s = cl->srv;
        /* The fd may be closed only once libuv no longer polls it. */
        if (h == (uv_handle_t *) &cl->poll)
                cl->fd = osm_close(cl->fd);
        if (--cl->handles_open == 0)
                free(cl);
        server_handle_closed(s);
}

static void client_close(client *cl) {
        if (cl->dead)
                return;
        cl->dead = true;
        osm_server *s = cl->srv;
        if (cl->prev)
                cl->prev->next = cl->next;
        else
                s->clients = cl->next;
        if (cl->next)
                cl->next->prev = cl->prev;
        s->n_clients--;
        osm_call *c = cl->call;
        cl->call = NULL;
        if (c) {
                c->cl = NULL;
                if (c->cancel) {
                        c->cancel(c, c->cancel_userdata);
                        call_free(c);
                }
                /* else: the handler still holds the call; its reply frees it. */
        }
        for (size_t i = 0; i < cl->n_rfds; i++)
                close(cl->rfds[i]);
        cl->n_rfds = 0;
        while (cl->out_head) {
                out_seg *sg = cl->out_head;
                cl->out_head = sg->next;
                seg_free(sg);
        }
        free(cl->rbuf);
        cl->rbuf = NULL;
        uv_close((uv_handle_t *) &cl->poll, on_client_handle_closed);
        uv_close((uv_handle_t *) &cl->timer, on_client_handle_closed);
}

static void reject_busy(int fd) {
        size_t len;
        json_t *p = json_pack("{s:s}", "message", "too many clients; try again later");
        char *buf = osm_vl_format_error(OSM_E_BUSY, p, &len);
        json_decref(p);
        if (buf)
                (void) !send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        free(buf);
        close(fd);
}

/* At the connection limit, make room by dropping the client that has been idle longest
 * (no call in flight, nothing half-sent): clients that connect and hold a slot cannot
 * lock everyone else out, while streams and calls in progress are never cut. */
static bool evict_idle(osm_server *s) {
        client *victim = NULL;
        for (client *cl = s->clients; cl; cl = cl->next) {
                if (cl->call && !cl->closing)
                        continue;
                /* clients already on their way out first, then the longest idle */
                if (!victim || (cl->closing && !victim->closing) ||
                    (cl->closing == victim->closing && cl->last_activity_us < victim->last_activity_us))
                        victim = cl;
        }
        if (!victim)
                return false;
        log_info("control: at %u clients; dropping the longest idle (pid %d)", s->n_clients, (int) victim->cred.pid);
        client_close(victim);
        return true;
}

static void on_accept_pause(uv_timer_t *t) {
        osm_server *s = t->data;
        if (s->accepting)
                uv_poll_start(&s->listen_poll, UV_READABLE, on_listen_poll);
}

static void on_listen_poll(uv_poll_t *h, int status, int events) {
        osm_server *s = h->data;
        if (status < 0 || !s->accepting)
                return;
        for (int i = 0; i < MAX_ACCEPT_PER_WAKEUP; i++) {
                int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
                if (fd < 0) {
                        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                                /* Out of fds: stop accepting for a moment instead of spinning. */
                                log_warning("control: cannot accept: %s; pausing 100 ms", strerror(errno));
                                uv_poll_stop(&s->listen_poll);
                                uv_timer_start(&s->accept_pause, on_accept_pause, 100, 0);
                        }
                        return;
                }
                if (s->n_clients >= s->lim.max_connections && !evict_idle(s)) {
                        reject_busy(fd);
                        continue;
                }
                client *cl = calloc(1, sizeof *cl);
                struct ucred cr;
                socklen_t len = sizeof cr;
                if (!cl || getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0) {
                        free(cl);
                        close(fd);
                        continue;
                }
                cl->srv = s;
                cl->fd = fd;
                cl->cred = cr;
                compute_principal(s, fd, &cr, &cl->who);
                cl->last_activity_us = osm_now_mono_us();
                uv_poll_init(s->loop, &cl->poll, fd);
                uv_timer_init(s->loop, &cl->timer);
                cl->poll.data = cl;
                cl->timer.data = cl;
                s->handles_open += 2;
                cl->handles_open = 2;
                cl->next = s->clients;
                if (s->clients)
                        s->clients->prev = cl;
                s->clients = cl;
                s->n_clients++;
                cl->poll_events = UV_READABLE | UV_DISCONNECT;
                uv_poll_start(&cl->poll, cl->poll_events, on_client_poll);
                uint64_t tick = OSM_MAX(OSM_MIN(s->lim.partial_timeout_ms, s->lim.idle_timeout_ms) / 4, 50);
                uv_timer_start(&cl->timer, on_client_timer, tick, tick);
        }
}

/* ---------- server ---------- */

static void on_turn(uv_prepare_t *p) {
        ((osm_server *) p->data)->epoch++;
}

uint64_t osm_server_epoch(const osm_server *s) { return s->epoch; }

int osm_server_new(uv_loop_t *loop, int listen_fd, gid_t gid_allowed,
                   const osm_server_limits *limits, osm_server **out) {
        osm_server *s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        s->loop = loop;
        s->listen_fd = listen_fd;
        s->gid_allowed = gid_allowed;
        s->reader_gid = (gid_t) -1;
        s->lim = *limits;
        s->accepting = true;
        int r = uv_poll_init(loop, &s->listen_poll, listen_fd);
        if (r < 0) {
                free(s);
                return r;
        }
        uv_timer_init(loop, &s->accept_pause);
        uv_timer_init(loop, &s->close_timer);
        uv_prepare_init(loop, &s->turn);
        s->turn.data = s;
        uv_prepare_start(&s->turn, on_turn);
        uv_unref((uv_handle_t *) &s->turn);
        s->listen_poll.data = s;
        s->accept_pause.data = s;
        s->close_timer.data = s;
        s->handles_open = 4;
        uv_poll_start(&s->listen_poll, UV_READABLE, on_listen_poll);
        *out = s;
        return 0;
}

int osm_server_add_methods(osm_server *s, const osm_method *table, size_t n, void *userdata) {
        for (size_t i = 0; i < n; i++) {
                if (!osm_vl_find_method(table[i].name))
                        return -ENOENT;
                if (find_handler(s, table[i].name))
                        return -EEXIST;
        }
        if (s->n_methods + n > s->cap_methods) {
                size_t ncap = OSM_MAX(s->cap_methods * 2, s->n_methods + n);
                method_entry *nm = realloc(s->methods, ncap * sizeof *nm);
                if (!nm)
                        return -ENOMEM;
                s->methods = nm;
                s->cap_methods = ncap;
        }
        for (size_t i = 0; i < n; i++)
                s->methods[s->n_methods++] = (method_entry) { &table[i], userdata };
        return 0;
}

void osm_server_set_limits(osm_server *s, const osm_server_limits *limits) { s->lim = *limits; }
unsigned osm_server_in_flight(osm_server *s) { return s->n_calls - s->n_cancellable; }
unsigned osm_server_n_clients(osm_server *s) { return s->n_clients; }

static void on_listen_closed(uv_handle_t *h) {
        server_handle_closed(h->data);
}

void osm_server_stop_accepting(osm_server *s) {
        if (!s->accepting)
                return;
        s->accepting = false;
        uv_poll_stop(&s->listen_poll);
        uv_timer_stop(&s->accept_pause);
        close(s->listen_fd);
        s->listen_fd = -1;
}

void osm_server_free(osm_server *s, void (*close_cb)(void *), void *userdata) {
        osm_server_stop_accepting(s);
        s->freeing = true;
        s->close_cb = close_cb;
        s->close_userdata = userdata;
        while (s->clients)
                client_close(s->clients);
        uv_close((uv_handle_t *) &s->listen_poll, on_listen_closed);
        uv_close((uv_handle_t *) &s->accept_pause, on_listen_closed);
        uv_close((uv_handle_t *) &s->close_timer, on_listen_closed);
        uv_close((uv_handle_t *) &s->turn, on_listen_closed);
}
