/* client.c: a blocking Varlink client over a Unix socket, with fd passing; the wire is
 * owned here so that osmosectl's commands only make calls. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "build-config.h"
#include "osmose/client.h"

/* Replies may be larger than calls (a query's records); still bounded. */
#define CLIENT_MAX_REPLY (64u * 1024u * 1024u)

struct osm_client {
        int fd;
        char *buf;          /* received bytes not yet consumed */
        size_t len, cap;
        size_t lent;        /* the first bytes of buf: a reply osm_client_call_text lent out */
        int fds[OSM_VARLINK_MAX_FDS];   /* fds received and not yet handed out */
        size_t n_fds;
};

const char *osm_client_default_socket(const char *explicit_path) {
        if (explicit_path && *explicit_path)
                return explicit_path;
        const char *e = getenv("OSMOSE_SOCKET");
        if (e && *e)
                return e;
        return OSM_RUNDIR "/osmosed.sock";
}

int osm_client_connect(const char *path, osm_client **out) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        if (strlen(path) >= sizeof sa.sun_path)
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *) &sa, sizeof sa) < 0)
                return -errno;
        osm_client *c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        c->fd = steal_fd(&fd);
        *out = c;
        return 0;
}

static void drop_fds(osm_client *c) {
        for (size_t i = 0; i < c->n_fds; i++)
                close(c->fds[i]);
        c->n_fds = 0;
}

osm_client *osm_client_free(osm_client *c) {
        if (!c)
                return NULL;
        drop_fds(c);
        osm_close(c->fd);
        free(c->buf);
        free(c);
        return NULL;
}

int osm_client_fd(osm_client *c) { return c->fd; }

void osm_client_error_clear(osm_client_error *e) {
        if (!e)
                return;
        free(e->name);
        json_decref(e->parameters);
        memset(e, 0, sizeof *e);
}

static int transport_error(osm_client_error *err, int r, const char *what) {
        if (err) {
                osm_client_error_clear(err);
                snprintf(err->message, sizeof err->message, "%s: %s", what, strerror(-r));
        }
        return r;
}

static int send_msg(osm_client *c, const char *buf, size_t len, const int *fds, size_t n_fds) {
        size_t off = 0;
        while (off < len) {
                /* fds ride along with the first byte of the message */
                ssize_t n = osm_vl_sendmsg(c->fd, buf + off, len - off, fds, off == 0 ? n_fds : 0, 0);
                if (n == -EINTR)
                        continue;
                if (n < 0)
                        return (int) n;
                off += (size_t) n;
        }
        return 0;
}

static void consume(osm_client *c, size_t n) {
        memmove(c->buf, c->buf + n, c->len - n);
        c->len -= n;
}

/* Read until a whole message is buffered; returns its length (without NUL). */
static ssize_t recv_msg(osm_client *c) {
        if (c->lent) {   /* the text lent out ends its loan with the next read */
                consume(c, c->lent);
                c->lent = 0;
        }
        for (size_t seen = 0;;) {   /* bytes before seen were looked at: no NUL there */
                char *nul = c->len > seen ? memchr(c->buf + seen, 0, c->len - seen) : NULL;
                if (nul)
                        return nul - c->buf;
                seen = c->len;
                if (c->len >= CLIENT_MAX_REPLY)
                        return -EMSGSIZE;
                if (c->cap - c->len < 65536) {
                        size_t ncap = c->cap ? c->cap * 2 : 131072;
                        char *nb = realloc(c->buf, ncap);
                        if (!nb)
                                return -ENOMEM;
                        c->buf = nb;
                        c->cap = ncap;
                }
                /* Asleep in poll(2), not in recvmsg: a reader asleep in recvmsg is woken each
                 * time the daemon reads what this client sent (the kernel tells the socket's
                 * every sleeper that it can be written to again), poll only by what it waits
                 * for. That wake-up cost the daemon a cross-CPU interrupt each call. */
                struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
                if (poll(&pfd, 1, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                int in[OSM_VARLINK_MAX_FDS];
                size_t k = 0;
                bool truncated = false;
                ssize_t n = osm_vl_recvmsg(c->fd, c->buf + c->len, c->cap - c->len, 0, in, &k, &truncated);
                if (n == -EINTR)
                        continue;
                if (n < 0)
                        return n;
                for (size_t i = 0; i < k; i++) {
                        if (c->n_fds < OSM_VARLINK_MAX_FDS)
                                c->fds[c->n_fds++] = in[i];
                        else
                                close(in[i]);
                }
                if (truncated)
                        return -EMSGSIZE;
                if (n == 0)
                        return -ECONNRESET;
                c->len += (size_t) n;
        }
}

/* Read one reply; on an error reply fills err and returns -EREMOTEIO. */
static int read_reply(osm_client *c, osm_vl_reply *r, osm_client_error *err) {
        ssize_t n = recv_msg(c);
        if (n < 0)
                return transport_error(err, (int) n, n == -ECONNRESET ? "connection closed by the daemon"
                                                                       : "receiving reply");
        osm_error why;   /* filled by a failure, read only then */
        int k = osm_vl_parse_reply(c->buf, (size_t) n, r, &why);
        consume(c, (size_t) n + 1);
        if (k < 0) {
                if (err) {
                        osm_client_error_clear(err);
                        snprintf(err->message, sizeof err->message, "bad reply from the daemon: %.200s", why.message);
                }
                return -EBADMSG;
        }
        if (r->error) {
                if (err) {
                        osm_client_error_clear(err);
                        err->name = strdup(r->error);
                        err->parameters = json_incref(r->parameters);
                        json_t *m = json_object_get(r->parameters, "message");
                        json_t *p = json_object_get(r->parameters, "parameter");
                        if (json_is_string(m))
                                snprintf(err->message, sizeof err->message, "%s", json_string_value(m));
                        else if (json_is_string(p))
                                snprintf(err->message, sizeof err->message, "invalid parameter '%s'",
                                         json_string_value(p));
                        else
                                snprintf(err->message, sizeof err->message, "%s", r->error);
                }
                osm_vl_reply_done(r);
                return -EREMOTEIO;
        }
        return 0;
}

/* Read the reply to the call sent last (fds with it as for osm_client_call). */
static int reply_of_call(osm_client *c, json_t **reply, int *reply_fds, size_t *n_reply_fds, osm_client_error *err) {
        osm_vl_reply rep;
        int r = read_reply(c, &rep, err);
        if (r < 0) {
                drop_fds(c);
                return r;
        }
        if (reply_fds && n_reply_fds) {
                size_t k = OSM_MIN(*n_reply_fds, c->n_fds);
                memcpy(reply_fds, c->fds, k * sizeof(int));
                memmove(c->fds, c->fds + k, (c->n_fds - k) * sizeof(int));
                c->n_fds -= k;
                *n_reply_fds = k;
        }
        drop_fds(c);
        if (reply)
                *reply = json_incref(rep.parameters);
        osm_vl_reply_done(&rep);
        return 0;
}

/* Send msg (a formatted call, len bytes with its NUL). */
static int send_call_msg(osm_client *c, const char *msg, size_t len, const int *fds, size_t n_fds,
                         osm_client_error *err) {
        if (!msg)
                return transport_error(err, -ENOMEM, "formatting call");
        int r = send_msg(c, msg, len, fds, n_fds);
        if (r < 0)
                return transport_error(err, r, "sending call");
        drop_fds(c);
        return 0;
}

/* Send msg and read its reply. */
static int call_msg(osm_client *c, const char *msg, size_t len, const int *fds, size_t n_fds,
                    json_t **reply, int *reply_fds, size_t *n_reply_fds, osm_client_error *err) {
        int r = send_call_msg(c, msg, len, fds, n_fds, err);
        return r < 0 ? r : reply_of_call(c, reply, reply_fds, n_reply_fds, err);
}

int osm_client_call(osm_client *c, const char *method, json_t *params,
                    const int *fds, size_t n_fds,
                    json_t **reply, int *reply_fds, size_t *n_reply_fds,
                    osm_client_error *err) {
        size_t len = 0;
        _cleanup_free_ char *msg = osm_vl_format_call(method, params, false, false, &len);
        return call_msg(c, msg, len, fds, n_fds, reply, reply_fds, n_reply_fds, err);
}

int osm_client_call_raw(osm_client *c, const char *method, const char *params, size_t params_len,
                        json_t **reply, osm_client_error *err) {
        int r = osm_client_send_raw(c, method, params, params_len, err);
        return r < 0 ? r : osm_client_read_reply(c, reply, err);
}

int osm_client_send_raw(osm_client *c, const char *method, const char *params, size_t params_len,
                        osm_client_error *err) {
        size_t len = 0;
        _cleanup_free_ char *msg = osm_vl_format_call_raw(method, params, params_len, &len);
        return send_call_msg(c, msg, len, NULL, 0, err);
}

int osm_client_read_reply(osm_client *c, json_t **reply, osm_client_error *err) {
        return reply_of_call(c, reply, NULL, NULL, err);
}

/* Format and send a call without fds. */
static int send_call(osm_client *c, const char *method, json_t *params, bool more, osm_client_error *err) {
        size_t len;
        _cleanup_free_ char *msg = osm_vl_format_call(method, params, more, false, &len);
        if (!msg)
                return transport_error(err, -ENOMEM, "formatting call");
        int r = send_msg(c, msg, len, NULL, 0);
        if (r < 0)
                return transport_error(err, r, "sending call");
        return 0;
}

int osm_client_call_text(osm_client *c, const char *method, json_t *params, const char **text, size_t *len,
                         osm_client_error *err) {
        int r = send_call(c, method, params, false, err);
        if (r < 0)
                return r;
        ssize_t k = recv_msg(c);
        drop_fds(c);
        if (k < 0)
                return transport_error(err, (int) k, k == -ECONNRESET ? "connection closed by the daemon"
                                                                       : "receiving reply");
        *text = c->buf;
        *len = (size_t) k;
        c->lent = (size_t) k + 1;
        return 0;
}

int osm_client_start_more(osm_client *c, const char *method, json_t *params, osm_client_error *err) {
        return send_call(c, method, params, true, err);
}

int osm_client_call_more(osm_client *c, const char *method, json_t *params,
                         osm_client_stream_cb cb, void *userdata, osm_client_error *err) {
        int r = osm_client_start_more(c, method, params, err);
        if (r < 0)
                return r;
        return osm_client_read_more(c, cb, userdata, err);
}

int osm_client_read_more(osm_client *c, osm_client_stream_cb cb, void *userdata, osm_client_error *err) {
        int r;
        for (;;) {
                osm_vl_reply rep;
                r = read_reply(c, &rep, err);
                drop_fds(c);
                if (r < 0)
                        return r;
                bool cont = rep.continues;
                r = cb(rep.parameters, cont, userdata);
                osm_vl_reply_done(&rep);
                if (r != 0)
                        return r;
                if (!cont)
                        return 0;
        }
}
