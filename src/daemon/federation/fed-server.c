/* fed-server.c: libmicrohttpd on the daemon's libuv loop. MHD runs without threads of its
 * own (MHD_USE_EPOLL): its epoll fd sits on a uv_poll, MHD_run() runs when it is readable
 * or when MHD's own timeout (MHD_get_timeout, on a uv_timer) expires. Requests answered
 * later are suspended and resumed (MHD_ALLOW_SUSPEND_RESUME). */
#include <arpa/inet.h>
#include <errno.h>
#include "daemon/dl-mhd.h"
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "fed-http.h"
#include "osmose/util.h"

struct fed_server {
        uv_loop_t *loop;
        struct MHD_Daemon *mhd;
        uv_poll_t *poll;
        uv_timer_t *timer;
        size_t max_body;
        const fed_server_ops *ops;
        void *userdata;
        fed_req *suspended;        /* list of requests waiting for their handler */
        bool stopping;
};

struct fed_req {
        fed_server *srv;
        struct MHD_Connection *conn;
        char method[16];
        char path[256];
        char peer[INET6_ADDRSTRLEN + 8];
        uint8_t *body;
        size_t len, cap;
        bool too_large, refused, completed, suspended, responded;
        struct MHD_Response *response;
        unsigned status;
        void *data;
        fed_req *prev, *next;      /* in srv->suspended while suspended */
};

static void server_run(fed_server *s);

static void on_timer(uv_timer_t *t) {
        server_run(t->data);
}

static void on_poll(uv_poll_t *p, int status, int events) {
        server_run(p->data);
}

/* Run MHD once and arm the timer for its next deadline. */
static void server_run(fed_server *s) {
        if (!s->mhd)
                return;
        sym_MHD_run(s->mhd);
        MHD_UNSIGNED_LONG_LONG ms;
        if (sym_MHD_get_timeout(s->mhd, &ms) == MHD_YES)
                uv_timer_start(s->timer, on_timer, ms > 60000 ? 60000 : ms, 0);
        else
                uv_timer_start(s->timer, on_timer, 60000, 0);
}

static int parse_listen(const char *listen, struct sockaddr_storage *ss, socklen_t *sl) {
        char host[INET6_ADDRSTRLEN + 2];
        const char *colon = strrchr(listen, ':');
        if (!colon || colon == listen)
                return -EINVAL;
        size_t hl = (size_t) (colon - listen);
        if (listen[0] == '[') {
                if (hl < 3 || listen[hl - 1] != ']')
                        return -EINVAL;
                listen++;
                hl -= 2;
        }
        if (hl >= sizeof(host))
                return -EINVAL;
        memcpy(host, listen, hl);
        host[hl] = '\0';
        uint64_t port;
        if (osm_parse_u64(colon + 1, &port) < 0 || port > 65535)
                return -EINVAL;
        struct addrinfo hints = { .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV, .ai_socktype = SOCK_STREAM };
        struct addrinfo *ai = NULL;
        char portbuf[8];
        snprintf(portbuf, sizeof(portbuf), "%u", (unsigned) port);
        if (getaddrinfo(host, portbuf, &hints, &ai) != 0 || !ai)
                return -EINVAL;
        memcpy(ss, ai->ai_addr, ai->ai_addrlen);
        *sl = ai->ai_addrlen;
        freeaddrinfo(ai);
        return 0;
}

int fed_server_check_listen(const char *listen) {
        struct sockaddr_storage ss;
        socklen_t sl;
        return parse_listen(listen, &ss, &sl);
}

static void format_addr(const struct sockaddr *sa, char *buf, size_t size) {
        char host[INET6_ADDRSTRLEN] = "?";
        unsigned port = 0;
        if (sa->sa_family == AF_INET) {
                const struct sockaddr_in *in = (const struct sockaddr_in *) sa;
                inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
                port = ntohs(in->sin_port);
                snprintf(buf, size, "%s:%u", host, port);
        } else if (sa->sa_family == AF_INET6) {
                const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) sa;
                inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
                port = ntohs(in6->sin6_port);
                snprintf(buf, size, "[%s]:%u", host, port);
        } else {
                snprintf(buf, size, "?");
        }
}

static enum MHD_Result queue(fed_req *r) {
        r->responded = true;
        enum MHD_Result ret = sym_MHD_queue_response(r->conn, r->status, r->response);
        sym_MHD_destroy_response(r->response);
        r->response = NULL;
        return ret;
}

void fed_req_respond(fed_req *r, unsigned status, const char *content_type, uint8_t *body, size_t len) {
        if (r->response || r->responded) {
                free(body);
                return;
        }
        r->response = sym_MHD_create_response_from_buffer_with_free_callback(len, body ?: (uint8_t *) "", body ? free : NULL);
        if (!r->response) {
                free(body);
                r->response = sym_MHD_create_response_from_buffer(0, (void *) "", MHD_RESPMEM_PERSISTENT);
                status = 500;
                if (!r->response)
                        return;   /* MHD closes the connection */
        }
        if (content_type)
                sym_MHD_add_response_header(r->response, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
        r->status = status;
        if (r->suspended) {
                r->suspended = false;
                if (r->prev)
                        r->prev->next = r->next;
                else
                        r->srv->suspended = r->next;
                if (r->next)
                        r->next->prev = r->prev;
                r->prev = r->next = NULL;
                sym_MHD_resume_connection(r->conn);
                /* MHD picks the resumed connection up on its next run. */
                uv_timer_start(r->srv->timer, on_timer, 0, 0);
        }
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls) {
        fed_server *s = cls;
        fed_req *r = *con_cls;

        if (!r) {
                r = calloc(1, sizeof(*r));
                if (!r)
                        return MHD_NO;
                r->srv = s;
                r->conn = conn;
                *con_cls = r;
                snprintf(r->method, sizeof(r->method), "%s", method);
                if (strlen(url) >= sizeof(r->path))
                        snprintf(r->path, sizeof(r->path), "/too-long");
                else
                        snprintf(r->path, sizeof(r->path), "%s", url);
                const union MHD_ConnectionInfo *ci = sym_MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
                if (ci && ci->client_addr)
                        format_addr(ci->client_addr, r->peer, sizeof(r->peer));
                else
                        snprintf(r->peer, sizeof(r->peer), "?");
                const char *cl = sym_MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
                uint64_t clen = 0;
                if (cl && (osm_parse_u64(cl, &clen) < 0 || clen > s->max_body))
                        r->too_large = true;
                if (s->ops->begin(r, s->userdata) != 0) {
                        r->refused = true;
                        if (r->response)
                                return queue(r);
                        return MHD_NO;
                }
                return MHD_YES;
        }

        if (*upload_data_size > 0) {
                size_t n = *upload_data_size;
                *upload_data_size = 0;
                if (r->refused || r->too_large)
                        return MHD_YES;
                if (r->len + n > s->max_body) {
                        r->too_large = true;
                        free(r->body);
                        r->body = NULL;
                        r->len = r->cap = 0;
                        return MHD_YES;
                }
                if (r->len + n > r->cap) {
                        size_t cap = OSM_MAX(r->cap * 2, r->len + n);
                        cap = OSM_MIN(cap, s->max_body);
                        uint8_t *b = realloc(r->body, cap);
                        if (!b)
                                return MHD_NO;
                        r->body = b;
                        r->cap = cap;
                }
                memcpy(r->body + r->len, upload_data, n);
                r->len += n;
                return MHD_YES;
        }

        /* The body is complete (or we were resumed). */
        if (r->response)
                return queue(r);
        if (r->responded || r->refused)
                return MHD_NO;
        if (!r->completed) {
                r->completed = true;
                s->ops->complete(r, s->userdata);
                if (r->response)
                        return queue(r);
        }
        if (!r->suspended) {
                r->suspended = true;
                r->next = s->suspended;
                if (s->suspended)
                        s->suspended->prev = r;
                s->suspended = r;
                sym_MHD_suspend_connection(conn);
        }
        return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
        fed_server *s = cls;
        fed_req *r = *con_cls;
        if (!r)
                return;
        *con_cls = NULL;
        if (!r->responded && !r->refused && r->completed)
                s->ops->gone(r, s->userdata);
        if (r->response)
                sym_MHD_destroy_response(r->response);
        free(r->body);
        free(r);
}

static void close_free(uv_handle_t *h) {
        free(h);
}

int fed_http_load(osm_error *err) {
        int r = osm_dl_curl(err);
        return r < 0 ? r : osm_dl_mhd(err);
}

int fed_server_start(uv_loop_t *loop, const char *listen_addr, size_t max_body,
                     const fed_server_ops *ops, void *userdata, fed_server **out,
                     char *bound, size_t bound_size, osm_error *err) {
        int r = osm_dl_mhd(err);
        if (r < 0)
                return r;
        struct sockaddr_storage ss;
        socklen_t sl;
        if (parse_listen(listen_addr, &ss, &sl) < 0) {
                return osm_error_set(err, -EINVAL, 0, "listen address must be ADDR:PORT or [ADDR6]:PORT with a numeric address");
        }
        _cleanup_close_ int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
                return osm_error_set(err, -errno, 0, "cannot create the listening socket");
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (ss.ss_family == AF_INET6)
                setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
        if (bind(fd, (struct sockaddr *) &ss, sl) < 0) {
                return osm_error_set(err, -errno, 0, "%s", errno == EADDRINUSE ? "address already in use" : "cannot bind the listening socket");
        }
        if (listen(fd, 64) < 0) {
                return osm_error_set(err, -errno, 0, "cannot listen");
        }
        sl = sizeof(ss);
        getsockname(fd, (struct sockaddr *) &ss, &sl);
        format_addr((struct sockaddr *) &ss, bound, bound_size);

        fed_server *s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->loop = loop;
        s->max_body = max_body;
        s->ops = ops;
        s->userdata = userdata;
        /* No MHD_USE_ERROR_LOG: MHD's own messages would bypass our logger; every refusal
         * is logged by federation.c instead. */
        s->mhd = sym_MHD_start_daemon(MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME, 0, NULL, NULL,
                                  on_request, s,
                                  MHD_OPTION_LISTEN_SOCKET, (MHD_socket) fd,
                                  MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                                  MHD_OPTION_CONNECTION_LIMIT, (unsigned int) 64,
                                  MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned int) 16,
                                  MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int) 30,
                                  MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t) (64 * 1024),
                                  MHD_OPTION_END);
        if (!s->mhd) {
                free(s);
                return osm_error_set(err, -EIO, 0, "libmicrohttpd refused to start");
        }
        fd = -1;   /* MHD owns it now and closes it when stopped */

        const union MHD_DaemonInfo *info = sym_MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_EPOLL_FD);
        s->poll = calloc(1, sizeof(*s->poll));
        s->timer = calloc(1, sizeof(*s->timer));
        if (!info || !s->poll || !s->timer || uv_poll_init(loop, s->poll, info->epoll_fd) < 0) {
                sym_MHD_stop_daemon(s->mhd);
                free(s->poll);
                free(s->timer);
                free(s);
                return osm_error_set(err, -EIO, 0, "cannot watch libmicrohttpd's epoll fd");
        }
        uv_timer_init(loop, s->timer);
        s->poll->data = s;
        s->timer->data = s;
        uv_poll_start(s->poll, UV_READABLE, on_poll);
        uv_timer_start(s->timer, on_timer, 0, 0);
        *out = s;
        return 0;
}

void fed_server_stop(fed_server *s) {
        if (!s)
                return;
        s->stopping = true;
        /* Resume what is suspended so MHD can close it; the handlers hear "gone". */
        while (s->suspended) {
                fed_req *r = s->suspended;
                s->suspended = r->next;
                r->suspended = false;
                r->prev = r->next = NULL;
                sym_MHD_resume_connection(r->conn);
        }
        uv_poll_stop(s->poll);
        uv_close((uv_handle_t *) s->poll, close_free);
        uv_close((uv_handle_t *) s->timer, close_free);
        struct MHD_Daemon *mhd = s->mhd;
        s->mhd = NULL;
        sym_MHD_stop_daemon(mhd);
        free(s);
}

const char *fed_req_method(const fed_req *r) { return r->method; }
const char *fed_req_path(const fed_req *r) { return r->path; }
const char *fed_req_peer(const fed_req *r) { return r->peer; }
bool fed_req_too_large(const fed_req *r) { return r->too_large; }
void fed_req_set_data(fed_req *r, void *data) { r->data = data; }
void *fed_req_data(const fed_req *r) { return r->data; }

const char *fed_req_header(const fed_req *r, const char *name) {
        return sym_MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const uint8_t *fed_req_body(const fed_req *r, size_t *len) {
        *len = r->len;
        return r->body;
}
