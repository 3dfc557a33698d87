/* fed-client.c: libcurl's multi interface on the daemon's libuv loop: curl tells which
 * sockets to watch (CURLMOPT_SOCKETFUNCTION → uv_poll) and when to wake it
 * (CURLMOPT_TIMERFUNCTION → uv_timer); the loop never blocks on a transfer. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fed-http.h"
#include "osmose/util.h"

struct fed_client {
        uv_loop_t *loop;
        CURLM *multi;
        uv_timer_t *timer;
        fed_call *calls;
        uint64_t connections;
};

struct fed_call {
        fed_client *client;
        CURL *easy;
        struct curl_slist *headers;
        uint8_t *body;
        uint8_t *resp;
        size_t resp_len, resp_max;
        bool resp_overflow;
        fed_call_cb cb;
        void *userdata;
        fed_call *prev, *next;
};

typedef struct sock_ctx {
        uv_poll_t poll;
        curl_socket_t fd;
        fed_client *client;
} sock_ctx;

static void check_done(fed_client *c);

static void close_free(uv_handle_t *h) {
        free(h->data == NULL ? (void *) h : h->data);
}

static void on_sock(uv_poll_t *p, int status, int events) {
        sock_ctx *ctx = p->data;
        fed_client *c = ctx->client;
        int flags = 0;
        if (status < 0)
                flags = CURL_CSELECT_ERR;
        if (events & UV_READABLE)
                flags |= CURL_CSELECT_IN;
        if (events & UV_WRITABLE)
                flags |= CURL_CSELECT_OUT;
        int running;
        sym_curl_multi_socket_action(c->multi, ctx->fd, flags, &running);
        check_done(c);
}

static void on_timer(uv_timer_t *t) {
        fed_client *c = t->data;
        int running;
        sym_curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
        check_done(c);
}

static int socket_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp) {
        fed_client *c = userp;
        sock_ctx *ctx = socketp;
        if (what == CURL_POLL_REMOVE) {
                if (ctx) {
                        uv_poll_stop(&ctx->poll);
                        uv_close((uv_handle_t *) &ctx->poll, close_free);
                        sym_curl_multi_assign(c->multi, s, NULL);
                }
                return 0;
        }
        if (!ctx) {
                ctx = calloc(1, sizeof(*ctx));
                if (!ctx)
                        return -1;
                ctx->fd = s;
                ctx->client = c;
                if (uv_poll_init_socket(c->loop, &ctx->poll, s) < 0) {
                        free(ctx);
                        return -1;
                }
                ctx->poll.data = ctx;
                sym_curl_multi_assign(c->multi, s, ctx);
        }
        int events = 0;
        if (what & CURL_POLL_IN)
                events |= UV_READABLE;
        if (what & CURL_POLL_OUT)
                events |= UV_WRITABLE;
        uv_poll_start(&ctx->poll, events, on_sock);
        return 0;
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp) {
        fed_client *c = userp;
        if (timeout_ms < 0)
                uv_timer_stop(c->timer);
        else
                uv_timer_start(c->timer, on_timer, (uint64_t) timeout_ms, 0);
        return 0;
}

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *userdata) {
        fed_call *call = userdata;
        size_t n = size * nmemb;
        if (call->resp_len + n > call->resp_max) {
                call->resp_overflow = true;
                return 0;   /* makes curl fail the transfer with CURLE_WRITE_ERROR */
        }
        uint8_t *b = realloc(call->resp, call->resp_len + n + 1);
        if (!b)
                return 0;
        call->resp = b;
        memcpy(b + call->resp_len, ptr, n);
        call->resp_len += n;
        b[call->resp_len] = '\0';
        return n;
}

/* Count every outbound connection: the status counters prove what federation opened. */
static curl_socket_t open_cb(void *clientp, curlsocktype purpose, struct curl_sockaddr *addr) {
        fed_client *c = clientp;
        c->connections++;
        return socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
}

static void call_free(fed_call *call) {
        fed_client *c = call->client;
        if (call->prev)
                call->prev->next = call->next;
        else
                c->calls = call->next;
        if (call->next)
                call->next->prev = call->prev;
        sym_curl_multi_remove_handle(c->multi, call->easy);
        sym_curl_easy_cleanup(call->easy);
        sym_curl_slist_free_all(call->headers);
        free(call->body);
        free(call->resp);
        free(call);
}

static int curl_errno(CURLcode rc) {
        switch (rc) {
        case CURLE_COULDNT_CONNECT:
                return -ECONNREFUSED;
        case CURLE_OPERATION_TIMEDOUT:
                return -ETIMEDOUT;
        case CURLE_COULDNT_RESOLVE_HOST:
                return -EHOSTUNREACH;
        case CURLE_FILESIZE_EXCEEDED:
                return -EMSGSIZE;
        default:
                return -EIO;
        }
}

static void check_done(fed_client *c) {
        CURLMsg *msg;
        int left;
        while ((msg = sym_curl_multi_info_read(c->multi, &left))) {
                if (msg->msg != CURLMSG_DONE)
                        continue;
                fed_call *call = NULL;
                sym_curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &call);
                if (!call)
                        continue;
                CURLcode rc = msg->data.result;
                long status = 0;
                curl_off_t up = 0;
                long req_size = 0;
                sym_curl_easy_getinfo(call->easy, CURLINFO_RESPONSE_CODE, &status);
                sym_curl_easy_getinfo(call->easy, CURLINFO_SIZE_UPLOAD_T, &up);
                sym_curl_easy_getinfo(call->easy, CURLINFO_REQUEST_SIZE, &req_size);
                int r = rc == CURLE_OK ? 0 : call->resp_overflow ? -EMSGSIZE : curl_errno(rc);
                fed_call_cb cb = call->cb;
                void *ud = call->userdata;
                /* Detach before the callback: it may start new calls or free the client. */
                call->cb = NULL;
                cb(r, status, call->resp, call->resp_len, (uint64_t) up + (uint64_t) req_size, ud);
                call_free(call);
        }
}

int fed_client_new(uv_loop_t *loop, fed_client **out) {
        if (osm_dl_curl(NULL) < 0)
                return -EOPNOTSUPP;
        fed_client *c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->loop = loop;
        c->timer = calloc(1, sizeof(*c->timer));
        c->multi = sym_curl_multi_init();
        if (!c->timer || !c->multi) {
                if (c->multi)
                        sym_curl_multi_cleanup(c->multi);
                free(c->timer);
                free(c);
                return -ENOMEM;
        }
        uv_timer_init(loop, c->timer);
        c->timer->data = c;
        sym_curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
        sym_curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
        sym_curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
        sym_curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
        sym_curl_multi_setopt(c->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 4L);
        *out = c;
        return 0;
}

void fed_client_free(fed_client *c) {
        if (!c)
                return;
        while (c->calls)
                call_free(c->calls);
        sym_curl_multi_cleanup(c->multi);
        /* The timer's data must not point at c once c is gone. */
        c->timer->data = NULL;
        uv_timer_stop(c->timer);
        uv_close((uv_handle_t *) c->timer, close_free);
        free(c);
}

int fed_client_post(fed_client *c, const char *url, struct curl_slist *headers, uint8_t *body,
                    size_t len, size_t max_response, fed_call_cb cb, void *userdata, fed_call **out) {
        fed_call *call = calloc(1, sizeof(*call));
        if (!call) {
                sym_curl_slist_free_all(headers);
                free(body);
                return -ENOMEM;
        }
        call->client = c;
        call->headers = headers;
        call->body = body;
        call->resp_max = max_response;
        call->cb = cb;
        call->userdata = userdata;
        call->easy = sym_curl_easy_init();
        if (!call->easy) {
                sym_curl_slist_free_all(headers);
                free(body);
                free(call);
                return -ENOMEM;
        }
        CURL *e = call->easy;
        sym_curl_easy_setopt(e, CURLOPT_URL, url);
        sym_curl_easy_setopt(e, CURLOPT_PRIVATE, call);
        sym_curl_easy_setopt(e, CURLOPT_POST, 1L);
        sym_curl_easy_setopt(e, CURLOPT_POSTFIELDS, (char *) body);
        sym_curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) len);
        sym_curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
        sym_curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
        sym_curl_easy_setopt(e, CURLOPT_WRITEDATA, call);
        sym_curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_cb);
        sym_curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, c);
        /* Data goes only where the operator paired: no redirects, no proxy picked up from
         * the environment, http(s) only. */
        sym_curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
        sym_curl_easy_setopt(e, CURLOPT_PROXY, "");
        sym_curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
        sym_curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        sym_curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
        sym_curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 30000L);
        /* A cut link leaves a kept-alive connection silent rather than refused: give up on
         * a transfer that moved nothing for 10 s, and retry on a fresh connection. */
        sym_curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
        sym_curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, 10L);
        sym_curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t) max_response);
        sym_curl_easy_setopt(e, CURLOPT_USERAGENT, "osmosed-federation");
        if (sym_curl_multi_add_handle(c->multi, e) != CURLM_OK) {
                call->cb = NULL;
                call->prev = NULL;
                call->next = c->calls;   /* so call_free can unlink it */
                if (c->calls)
                        c->calls->prev = call;
                c->calls = call;
                call_free(call);
                return -EIO;
        }
        call->next = c->calls;
        if (c->calls)
                c->calls->prev = call;
        c->calls = call;
        if (out)
                *out = call;
        return 0;
}

void fed_call_cancel(fed_call *call) {
        if (call)
                call_free(call);
}

uint64_t fed_client_connections(const fed_client *c) {
        return c ? c->connections : 0;
}
