/* fed-http.h: the HTTP ends of federation on the daemon's libuv loop: a libmicrohttpd
 * server driven without threads of its own, and a libcurl multi client driven by
 * uv_poll/uv_timer. Neither knows about signatures or payloads; fed-serve.c and fed-push.c do. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "daemon/dl-curl.h"
#include "osmose/error.h"

/* Open libcurl and libmicrohttpd, on first use (dl.c): 0, or -EOPNOTSUPP with err naming
 * the missing package. fed_server_start and fed_client_new call it too. */
int fed_http_load(osm_error *err);

/* --- server --- */
typedef struct fed_server fed_server;
typedef struct fed_req fed_req;

typedef struct fed_server_ops {
        /* Headers are in: return 0 to read the body, or respond with fed_req_respond()
         * and return non-zero (the body is then discarded). */
        int (*begin)(fed_req *r, void *userdata);
        /* The whole body is in: the handler responds now or later with fed_req_respond(). */
        void (*complete)(fed_req *r, void *userdata);
        /* The connection ended before a response: drop every reference to r. */
        void (*gone)(fed_req *r, void *userdata);
} fed_server_ops;

/* Parse "ADDR:PORT" / "[ADDR6]:PORT" (numeric only) and start serving on it. max_body:
 * bytes accepted in a request body (beyond: the too_large flag and the body is dropped).
 * *bound receives the address actually bound ("127.0.0.1:34567"). 0 or -errno, with err saying what failed. */
int fed_server_start(uv_loop_t *loop, const char *listen, size_t max_body,
                     const fed_server_ops *ops, void *userdata, fed_server **out,
                     char *bound, size_t bound_size, osm_error *err);
/* Is listen a valid "ADDR:PORT"? 0 or -EINVAL. */
int fed_server_check_listen(const char *listen);
/* Stop at once: pending requests get no response (gone runs for each), the listening
 * socket and every connection close. */
void fed_server_stop(fed_server *s);

const char *fed_req_method(const fed_req *r);
const char *fed_req_path(const fed_req *r);
const char *fed_req_header(const fed_req *r, const char *name);   /* NULL if absent */
const char *fed_req_peer(const fed_req *r);                         /* "addr:port" */
const uint8_t *fed_req_body(const fed_req *r, size_t *len);
bool fed_req_too_large(const fed_req *r);
void fed_req_set_data(fed_req *r, void *data);
void *fed_req_data(const fed_req *r);
/* Respond (once). body is stolen (malloc'd, may be NULL with len 0). */
void fed_req_respond(fed_req *r, unsigned status, const char *content_type, uint8_t *body, size_t len);

/* --- client --- */
typedef struct fed_client fed_client;
typedef struct fed_call fed_call;

/* r: 0 (a response arrived, status holds its HTTP status) or -errno (transport: -ECONNREFUSED,
 * -ETIMEDOUT, -EMSGSIZE response too big, -EIO other). body borrowed for the callback.
 * sent: bytes that left (request line, headers and body as curl counted them). */
typedef void (*fed_call_cb)(int r, long status, const uint8_t *body, size_t len, uint64_t sent,
                            void *userdata);

int fed_client_new(uv_loop_t *loop, fed_client **out);
/* Abort every call (no callbacks) and free the client; handles close asynchronously. */
void fed_client_free(fed_client *c);
/* POST body (stolen) to url with headers (stolen). The response is limited to max_response
 * bytes. Returns 0 and *out (may be NULL) or -errno; cb runs exactly once unless cancelled. */
int fed_client_post(fed_client *c, const char *url, struct curl_slist *headers, uint8_t *body,
                    size_t len, size_t max_response, fed_call_cb cb, void *userdata, fed_call **out);
void fed_call_cancel(fed_call *call);
/* Outbound TCP connections the client opened. */
uint64_t fed_client_connections(const fed_client *c);
