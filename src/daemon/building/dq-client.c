/* dq-client.c: our client of dqlite's wire protocol, written by hand because dqlite has no
 * C client library; see dq-client.h. Every length a server sends is checked before use. */
#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon/building/dq-client.h"
#include "osmose/util.h"

#define PROTOCOL_VERSION 1

enum {
        REQ_LEADER = 0, REQ_CLIENT = 1, REQ_OPEN = 3, REQ_EXEC_SQL = 8, REQ_QUERY_SQL = 9,
        REQ_ADD = 12, REQ_ASSIGN = 13, REQ_REMOVE = 14, REQ_CLUSTER = 16, REQ_TRANSFER = 17,
};
enum {
        RES_FAILURE = 0, RES_SERVER = 1, RES_WELCOME = 2, RES_SERVERS = 3, RES_DB = 4,
        RES_RESULT = 6, RES_ROWS = 7, RES_EMPTY = 8,
};
enum { T_INTEGER = 1, T_FLOAT = 2, T_TEXT = 3, T_BLOB = 4, T_NULL = 5, T_UNIXTIME = 9,
       T_ISO8601 = 10, T_BOOLEAN = 11 };

#define ROWS_PART 0xeeeeeeeeeeeeeeeeULL
#define ROWS_DONE 0xffffffffffffffffULL

static size_t pad8(size_t n) { return (n + 7) & ~(size_t) 7; }

static void put64(uint8_t *p, uint64_t v) {
        for (int i = 0; i < 8; i++)
                p[i] = (uint8_t) (v >> (8 * i));
}

static uint64_t get64(const uint8_t *p) {
        uint64_t v = 0;
        for (int i = 0; i < 8; i++)
                v |= (uint64_t) p[i] << (8 * i);
        return v;
}

static uint32_t get32(const uint8_t *p) {
        return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}

/* A read cursor over a body. */
typedef struct cur {
        const uint8_t *p;
        size_t left;
} cur;

static int cur_u64(cur *c, uint64_t *v) {
        if (c->left < 8)
                return -EPROTO;
        *v = get64(c->p);
        c->p += 8;
        c->left -= 8;
        return 0;
}

/* A NUL-terminated string padded to a word; *s points into the body. */
static int cur_text(cur *c, const char **s, size_t *len) {
        const uint8_t *z = memchr(c->p, 0, c->left);
        if (!z)
                return -EPROTO;
        size_t n = (size_t) (z - c->p), used = pad8(n + 1);
        if (used > c->left)
                return -EPROTO;
        *s = (const char *) c->p;
        if (len)
                *len = n;
        c->p += used;
        c->left -= used;
        return 0;
}

static int cur_text_copy(cur *c, char *out, size_t size) {
        const char *s;
        size_t n;
        int r = cur_text(c, &s, &n);
        if (r < 0)
                return r;
        if (n >= size)
                return -EPROTO;
        memcpy(out, s, n + 1);
        return 0;
}

/* ---------- decoding ---------- */

int osm_dq_decode_failure(const uint8_t *b, size_t n, uint64_t *code, char *msg, size_t msg_size) {
        cur c = { b, n };
        const char *s;
        size_t len;
        if (cur_u64(&c, code) < 0 || cur_text(&c, &s, &len) < 0)
                return -EPROTO;
        snprintf(msg, msg_size, "%.*s", (int) OSM_MIN(len, msg_size), s);
        return 0;
}

int osm_dq_decode_server(const uint8_t *b, size_t n, uint64_t *id, char *addr, size_t addr_size) {
        cur c = { b, n };
        if (cur_u64(&c, id) < 0 || cur_text_copy(&c, addr, addr_size) < 0)
                return -EPROTO;
        return 0;
}

int osm_dq_decode_servers(const uint8_t *b, size_t n, osm_dq_node **nodes, size_t *n_nodes) {
        cur c = { b, n };
        uint64_t count;
        *nodes = NULL;
        *n_nodes = 0;
        if (cur_u64(&c, &count) < 0 || count > OSM_DQ_MAX_NODES || count > c.left / 24)
                return -EPROTO;
        osm_dq_node *v = calloc(count ? count : 1, sizeof *v);
        if (!v)
                return -ENOMEM;
        for (uint64_t i = 0; i < count; i++) {
                uint64_t role;
                if (cur_u64(&c, &v[i].id) < 0 || cur_text_copy(&c, v[i].address, sizeof v[i].address) < 0 ||
                    cur_u64(&c, &role) < 0 || role > OSM_DQ_SPARE) {
                        free(v);
                        return -EPROTO;
                }
                v[i].role = (int) role;
        }
        *nodes = v;
        *n_nodes = count;
        return 0;
}

int osm_dq_decode_result(const uint8_t *b, size_t n, uint64_t *last_id, uint64_t *changes) {
        cur c = { b, n };
        if (cur_u64(&c, last_id) < 0 || cur_u64(&c, changes) < 0)
                return -EPROTO;
        return 0;
}

/* One value of a row, of the given type, as JSON. */
static int decode_value(cur *c, int type, json_t **out) {
        uint64_t w;
        const char *s;
        size_t len;
        switch (type) {
        case T_INTEGER:
        case T_UNIXTIME:
                if (cur_u64(c, &w) < 0)
                        return -EPROTO;
                *out = json_integer((json_int_t) w);
                break;
        case T_FLOAT: {
                if (cur_u64(c, &w) < 0)
                        return -EPROTO;
                double d;
                memcpy(&d, &w, sizeof d);
                *out = json_real(d);   /* NaN/inf give NULL: refused below */
                break;
        }
        case T_BOOLEAN:
                if (cur_u64(c, &w) < 0)
                        return -EPROTO;
                *out = json_boolean(w != 0);
                break;
        case T_NULL:
                if (cur_u64(c, &w) < 0)
                        return -EPROTO;
                *out = json_null();
                break;
        case T_TEXT:
        case T_ISO8601:
                if (cur_text(c, &s, &len) < 0)
                        return -EPROTO;
                *out = json_stringn(s, len);   /* NULL if not UTF-8 */
                break;
        case T_BLOB: {
                if (cur_u64(c, &w) < 0 || w > c->left || pad8(w) > c->left)
                        return -EPROTO;
                /* Building state holds no blobs; keep them as hex so nothing is lost. */
                if (w > 65536)
                        return -EPROTO;
                char *hex = malloc(w * 2 + 1);
                if (!hex)
                        return -ENOMEM;
                for (size_t i = 0; i < w; i++)
                        snprintf(hex + 2 * i, 3, "%02x", c->p[i]);
                hex[w * 2] = 0;
                *out = json_string(hex);
                free(hex);
                c->p += pad8(w);
                c->left -= pad8(w);
                break;
        }
        default:
                return -EPROTO;
        }
        return *out ? 0 : -EPROTO;
}

int osm_dq_decode_rows(const uint8_t *b, size_t n, json_t **cols, json_t **rows, bool *more) {
        cur c = { b, n };
        uint64_t n_cols;
        if (cur_u64(&c, &n_cols) < 0 || n_cols == 0 || n_cols > OSM_DQ_MAX_COLS)
                return -EPROTO;
        json_t *names = json_array();
        for (uint64_t i = 0; i < n_cols; i++) {
                const char *s;
                size_t len;
                json_t *name;
                if (cur_text(&c, &s, &len) < 0 || !(name = json_stringn(s, len))) {
                        json_decref(names);
                        return -EPROTO;
                }
                json_array_append_new(names, name);
        }
        if (*cols && !json_equal(*cols, names)) {
                json_decref(names);
                return -EPROTO;
        }
        if (!*cols)
                *cols = json_incref(names);
        json_decref(names);
        if (!*rows)
                *rows = json_array();
        size_t header = pad8((n_cols + 1) / 2);
        for (;;) {
                if (c.left < 8)
                        return -EPROTO;
                uint64_t w = get64(c.p);
                if (w == ROWS_DONE || w == ROWS_PART) {
                        *more = w == ROWS_PART;
                        return 0;
                }
                if (json_array_size(*rows) >= OSM_DQ_MAX_ROWS || c.left < header)
                        return -EPROTO;
                const uint8_t *types = c.p;
                c.p += header;
                c.left -= header;
                json_t *row = json_array();
                for (uint64_t i = 0; i < n_cols; i++) {
                        int type = (types[i / 2] >> (i % 2 ? 4 : 0)) & 0x0f;
                        json_t *v = NULL;
                        int r = decode_value(&c, type, &v);
                        if (r < 0) {
                                json_decref(row);
                                return r;
                        }
                        json_array_append_new(row, v);
                }
                json_array_append_new(*rows, row);
        }
}

/* ---------- encoding ---------- */

static int param_type(const json_t *v) {
        switch (json_typeof(v)) {
        case JSON_INTEGER: return T_INTEGER;
        case JSON_REAL: return T_FLOAT;
        case JSON_STRING: return T_TEXT;
        case JSON_NULL: return T_NULL;
        case JSON_TRUE:
        case JSON_FALSE: return T_INTEGER;
        default: return -1;
        }
}

size_t osm_dq_params_size(const json_t *params) {
        size_t n = params ? json_array_size(params) : 0;
        size_t size = pad8(1 + n);
        for (size_t i = 0; i < n; i++) {
                const json_t *v = json_array_get(params, i);
                size += json_is_string(v) ? pad8(json_string_length(v) + 1) : 8;
        }
        return size;
}

int osm_dq_encode_params(const json_t *params, uint8_t *buf, size_t size) {
        size_t n = params ? json_array_size(params) : 0;
        if (n > OSM_DQ_MAX_PARAMS || size < osm_dq_params_size(params))
                return -EINVAL;
        memset(buf, 0, size);
        buf[0] = (uint8_t) n;
        size_t off = pad8(1 + n);
        for (size_t i = 0; i < n; i++) {
                const json_t *v = json_array_get(params, i);
                int t = param_type(v);
                if (t < 0)
                        return -EINVAL;
                buf[1 + i] = (uint8_t) t;
                if (json_is_string(v)) {
                        size_t len = json_string_length(v);
                        if (memchr(json_string_value(v), 0, len))
                                return -EINVAL;
                        memcpy(buf + off, json_string_value(v), len);
                        off += pad8(len + 1);
                        continue;
                }
                uint64_t w = 0;
                if (json_is_integer(v))
                        w = (uint64_t) json_integer_value(v);
                else if (json_is_real(v)) {
                        double d = json_real_value(v);
                        memcpy(&w, &d, sizeof w);
                } else if (json_is_true(v))
                        w = 1;
                put64(buf + off, w);
                off += 8;
        }
        return 0;
}

/* ---------- I/O ---------- */

int osm_dq_wait_fd(int fd, short events, uint64_t deadline_us) {
        for (;;) {
                uint64_t now = osm_now_mono_us();
                if (now >= deadline_us)
                        return -ETIMEDOUT;
                struct pollfd p = { .fd = fd, .events = events };
                int r = poll(&p, 1, (int) ((deadline_us - now + 999) / 1000));
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        return -errno;
                if (r > 0)
                        return 0;
        }
}

static int io_all(osm_dq *c, void *buf, size_t len, bool writing, uint64_t deadline_us) {
        uint8_t *p = buf;
        while (len > 0) {
                int r = osm_dq_wait_fd(c->fd, writing ? POLLOUT : POLLIN, deadline_us);
                if (r < 0)
                        return r;
                ssize_t k = writing ? send(c->fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT)
                                    : recv(c->fd, p, len, MSG_DONTWAIT);
                if (k < 0 && (errno == EINTR || errno == EAGAIN))
                        continue;
                if (k < 0)
                        return -errno;
                if (k == 0)
                        return -ECONNRESET;
                p += k;
                len -= (size_t) k;
        }
        return 0;
}

static uint64_t deadline(const osm_dq *c) {
        return osm_now_mono_us() + (uint64_t) c->timeout_ms * 1000;
}

/* Send one request: header + body (already padded to words). */
static int send_request(osm_dq *c, int type, const uint8_t *body, size_t len) {
        if (c->fd < 0)
                return -ENOTCONN;
        uint8_t hdr[8] = { 0 };
        uint32_t words = (uint32_t) (len / 8);
        hdr[0] = (uint8_t) words;
        hdr[1] = (uint8_t) (words >> 8);
        hdr[2] = (uint8_t) (words >> 16);
        hdr[3] = (uint8_t) (words >> 24);
        hdr[4] = (uint8_t) type;
        uint64_t dl = deadline(c);
        int r = io_all(c, hdr, sizeof hdr, true, dl);
        if (r == 0 && len)
                r = io_all(c, (void *) body, len, true, dl);
        return r;
}

/* Receive one response; *body (malloc'd) holds *len bytes. A FAILURE is decoded into c
 * and returned as -EREMOTEIO. */
static int recv_response(osm_dq *c, int *type, uint8_t **body, size_t *len) {
        uint8_t hdr[8];
        uint64_t dl = deadline(c);
        int r = io_all(c, hdr, sizeof hdr, false, dl);
        if (r < 0)
                return r;
        uint64_t size = (uint64_t) get32(hdr) * 8;
        if (size > OSM_DQ_MAX_BODY)
                return -EPROTO;
        uint8_t *b = malloc(size ? size : 1);
        if (!b)
                return -ENOMEM;
        r = io_all(c, b, size, false, dl);
        if (r < 0) {
                free(b);
                return r;
        }
        *type = hdr[4];
        if (*type == RES_FAILURE) {
                r = osm_dq_decode_failure(b, size, &c->err_code, c->err_msg, sizeof c->err_msg);
                free(b);
                return r < 0 ? r : -EREMOTEIO;
        }
        *body = b;
        *len = size;
        return 0;
}

/* A request whose answer is one response of type want (body freed unless kept). */
static int roundtrip(osm_dq *c, int type, const uint8_t *body, size_t len, int want, uint8_t **resp,
                     size_t *resp_len) {
        c->err_code = 0;
        c->err_msg[0] = 0;
        int r = send_request(c, type, body, len);
        if (r < 0)
                return r;
        int got;
        uint8_t *b = NULL;
        size_t n = 0;
        r = recv_response(c, &got, &b, &n);
        if (r < 0)
                return r;
        if (got != want) {
                free(b);
                return -EPROTO;
        }
        if (resp) {
                *resp = b;
                *resp_len = n;
        } else {
                free(b);
        }
        return 0;
}

int osm_dq_init(osm_dq *c, int fd, int timeout_ms) {
        memset(c, 0, sizeof *c);
        c->fd = fd;
        c->timeout_ms = timeout_ms > 0 ? timeout_ms : 5000;
        uint8_t v[8];
        put64(v, PROTOCOL_VERSION);
        int r = io_all(c, v, sizeof v, true, deadline(c));
        if (r < 0)
                osm_dq_close(c);
        return r;
}

void osm_dq_close(osm_dq *c) {
        c->fd = osm_close(c->fd);
        c->db_open = false;
}

static int u64_request(osm_dq *c, int type, uint64_t v, int want) {
        uint8_t b[8];
        put64(b, v);
        return roundtrip(c, type, b, sizeof b, want, NULL, NULL);
}

int osm_dq_leader(osm_dq *c, uint64_t *id, char *addr, size_t addr_size) {
        uint8_t b[8] = { 0 }, *resp;
        size_t n;
        int r = roundtrip(c, REQ_LEADER, b, sizeof b, RES_SERVER, &resp, &n);
        if (r < 0)
                return r;
        r = osm_dq_decode_server(resp, n, id, addr, addr_size);
        free(resp);
        return r;
}

int osm_dq_client(osm_dq *c, uint64_t id) {
        return u64_request(c, REQ_CLIENT, id, RES_WELCOME);
}

int osm_dq_open(osm_dq *c, const char *name) {
        size_t len = strlen(name);
        if (len > 255)
                return -EINVAL;
        /* text name, uint64 flags, text vfs (unused: empty) */
        size_t size = pad8(len + 1) + 8 + 8;
        uint8_t b[512] = { 0 };
        memcpy(b, name, len);
        uint8_t *resp;
        size_t n;
        int r = roundtrip(c, REQ_OPEN, b, size, RES_DB, &resp, &n);
        if (r < 0)
                return r;
        if (n < 8) {
                free(resp);
                return -EPROTO;
        }
        c->db_id = get32(resp);
        c->db_open = true;
        free(resp);
        return 0;
}

/* Body of EXEC_SQL/QUERY_SQL: uint64 db, text sql, params tuple. */
static int sql_body(osm_dq *c, const char *sql, const json_t *params, uint8_t **out, size_t *out_len) {
        if (!c->db_open)
                return -EBADF;
        if (params && !json_is_array(params))
                return -EINVAL;
        size_t sl = strlen(sql), ps = osm_dq_params_size(params);
        size_t size = 8 + pad8(sl + 1) + ps;
        if (size > OSM_DQ_MAX_BODY)
                return -E2BIG;
        uint8_t *b = calloc(1, size);
        if (!b)
                return -ENOMEM;
        put64(b, c->db_id);
        memcpy(b + 8, sql, sl);
        int r = osm_dq_encode_params(params, b + 8 + pad8(sl + 1), ps);
        if (r < 0) {
                free(b);
                return r;
        }
        *out = b;
        *out_len = size;
        return 0;
}

int osm_dq_exec(osm_dq *c, const char *sql, const json_t *params, uint64_t *last_id, uint64_t *changes) {
        uint8_t *b, *resp;
        size_t len, n;
        int r = sql_body(c, sql, params, &b, &len);
        if (r < 0)
                return r;
        r = roundtrip(c, REQ_EXEC_SQL, b, len, RES_RESULT, &resp, &n);
        free(b);
        if (r < 0)
                return r;
        uint64_t li, ch;
        r = osm_dq_decode_result(resp, n, &li, &ch);
        free(resp);
        if (r == 0 && last_id)
                *last_id = li;
        if (r == 0 && changes)
                *changes = ch;
        return r;
}

int osm_dq_query(osm_dq *c, const char *sql, const json_t *params, json_t **cols, json_t **rows) {
        uint8_t *b;
        size_t len;
        *cols = *rows = NULL;
        c->err_code = 0;
        c->err_msg[0] = 0;
        int r = sql_body(c, sql, params, &b, &len);
        if (r < 0)
                return r;
        r = send_request(c, REQ_QUERY_SQL, b, len);
        free(b);
        bool more = true;
        while (r == 0 && more) {
                int type;
                uint8_t *resp;
                size_t n;
                r = recv_response(c, &type, &resp, &n);
                if (r < 0)
                        break;
                r = type == RES_ROWS ? osm_dq_decode_rows(resp, n, cols, rows, &more) : -EPROTO;
                free(resp);
        }
        if (r < 0) {
                json_decref(*cols);
                json_decref(*rows);
                *cols = *rows = NULL;
                /* A half-read result set leaves the stream unusable. */
                if (r != -EREMOTEIO)
                        osm_dq_close(c);
        }
        return r;
}

int osm_dq_add(osm_dq *c, uint64_t id, const char *address) {
        size_t len = strlen(address);
        if (len >= OSM_DQ_ADDR_MAX)
                return -EINVAL;
        uint8_t b[8 + OSM_DQ_ADDR_MAX + 8] = { 0 };
        put64(b, id);
        memcpy(b + 8, address, len);
        return roundtrip(c, REQ_ADD, b, 8 + pad8(len + 1), RES_EMPTY, NULL, NULL);
}

int osm_dq_assign(osm_dq *c, uint64_t id, int role) {
        uint8_t b[16];
        put64(b, id);
        put64(b + 8, (uint64_t) role);
        return roundtrip(c, REQ_ASSIGN, b, sizeof b, RES_EMPTY, NULL, NULL);
}

int osm_dq_remove(osm_dq *c, uint64_t id) {
        return u64_request(c, REQ_REMOVE, id, RES_EMPTY);
}

int osm_dq_transfer(osm_dq *c, uint64_t id) {
        return u64_request(c, REQ_TRANSFER, id, RES_EMPTY);
}

int osm_dq_cluster(osm_dq *c, osm_dq_node **nodes, size_t *n_nodes) {
        uint8_t b[8], *resp;
        size_t n;
        put64(b, 1);   /* format 1: id, address and role */
        int r = roundtrip(c, REQ_CLUSTER, b, sizeof b, RES_SERVERS, &resp, &n);
        if (r < 0)
                return r;
        r = osm_dq_decode_servers(resp, n, nodes, n_nodes);
        free(resp);
        return r;
}

int osm_dq_connect_abstract(const char *address) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        size_t len = strlen(address);
        if (address[0] != '@' || len < 2 || len > sizeof sa.sun_path)
                return -EINVAL;
        memcpy(sa.sun_path + 1, address + 1, len - 1);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *) &sa, (socklen_t) (offsetof(struct sockaddr_un, sun_path) + len)) < 0) {
                int r = -errno;
                close(fd);
                return r;
        }
        return fd;
}

const char *osm_dq_role_name(int role) {
        switch (role) {
        case OSM_DQ_VOTER: return "voter";
        case OSM_DQ_STANDBY: return "standby";
        case OSM_DQ_SPARE: return "spare";
        }
        return "unknown";
}
