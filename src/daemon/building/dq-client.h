/* dq-client.h: a small client of dqlite's wire protocol (version 1): what osmosed needs to
 * run its building state — LEADER, CLIENT, OPEN, EXEC_SQL, QUERY_SQL, ADD, ASSIGN, REMOVE,
 * TRANSFER, CLUSTER. dqlite ships no C client (only go-dqlite), so this speaks the
 * protocol described in dqlite's doc/protocol.md and src/{request,response,tuple}.h.
 *
 * A client is blocking, with a deadline per call: run it in a thread (the libuv pool, a
 * transport thread), never on the daemon's loop. Parameters and rows travel as JSON:
 * integers, reals, strings, null and booleans (stored as integers). */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Roles, as dqlite numbers them. */
enum { OSM_DQ_VOTER = 0, OSM_DQ_STANDBY = 1, OSM_DQ_SPARE = 2 };

/* dqlite error codes we look at: SQLITE_BUSY-like "not leader" and lost quorum. */
#define OSM_DQ_ERR_NOT_LEADER 10250   /* SQLITE_IOERR_NOT_LEADER */
#define OSM_DQ_ERR_LEADERSHIP_LOST 10506 /* SQLITE_IOERR_LEADERSHIP_LOST */

/* Limits on what a server may send us. */
#define OSM_DQ_MAX_BODY   (16u << 20)
#define OSM_DQ_MAX_ROWS   100000u
#define OSM_DQ_MAX_COLS   64u
#define OSM_DQ_MAX_NODES  1024u
#define OSM_DQ_MAX_PARAMS 255u
#define OSM_DQ_ADDR_MAX   256

typedef struct osm_dq_node {
        uint64_t id;
        char address[OSM_DQ_ADDR_MAX];
        int role;
} osm_dq_node;

typedef struct osm_dq {
        int fd;
        int timeout_ms;
        uint32_t db_id;
        bool db_open;
        uint64_t err_code;        /* of the last FAILURE response */
        char err_msg[256];
} osm_dq;

/* ---- message coding (no I/O; what the fuzz harness drives) ---- */

/* Decode a response body of the given type. Each returns 0, or -EPROTO for a malformed
 * or oversized body, or -EREMOTEIO for a FAILURE response (code and message filled in). */
int osm_dq_decode_failure(const uint8_t *b, size_t n, uint64_t *code, char *msg, size_t msg_size);
int osm_dq_decode_server(const uint8_t *b, size_t n, uint64_t *id, char *addr, size_t addr_size);
int osm_dq_decode_servers(const uint8_t *b, size_t n, osm_dq_node **nodes, size_t *n_nodes);
int osm_dq_decode_result(const uint8_t *b, size_t n, uint64_t *last_id, uint64_t *changes);
/* One batch of rows: appends to *rows (a JSON array of arrays, created if NULL) and sets
 * *cols (created if NULL; checked equal on later batches). *more is true if the server
 * will send another batch. */
int osm_dq_decode_rows(const uint8_t *b, size_t n, json_t **cols, json_t **rows, bool *more);
/* Encode a tuple of parameters (JSON array) into buf (at least osm_dq_params_size()). */
size_t osm_dq_params_size(const json_t *params);
int osm_dq_encode_params(const json_t *params, uint8_t *buf, size_t size);

/* ---- a connection ---- */

/* Take fd (connected to a node or to a proxy of one), send the handshake. The client owns
 * fd from then on, even on failure. Returns 0 or -errno. */
int osm_dq_init(osm_dq *c, int fd, int timeout_ms);
void osm_dq_close(osm_dq *c);

/* Each call returns 0 or -errno: -ETIMEDOUT, -EPROTO, -ECONNRESET, or -EREMOTEIO when the
 * node answered with a failure (c->err_code and c->err_msg say which). */
int osm_dq_leader(osm_dq *c, uint64_t *id, char *addr, size_t addr_size);
int osm_dq_client(osm_dq *c, uint64_t id);
int osm_dq_open(osm_dq *c, const char *name);
/* sql may hold several statements for exec (without parameters). params: JSON array or NULL. */
int osm_dq_exec(osm_dq *c, const char *sql, const json_t *params, uint64_t *last_id, uint64_t *changes);
/* *cols: array of column names; *rows: array of arrays. Both owned by the caller. */
int osm_dq_query(osm_dq *c, const char *sql, const json_t *params, json_t **cols, json_t **rows);
int osm_dq_add(osm_dq *c, uint64_t id, const char *address);
int osm_dq_assign(osm_dq *c, uint64_t id, int role);
int osm_dq_remove(osm_dq *c, uint64_t id);
int osm_dq_transfer(osm_dq *c, uint64_t id);
/* The cluster's nodes with their roles; *nodes freed by the caller. */
int osm_dq_cluster(osm_dq *c, osm_dq_node **nodes, size_t *n);

/* poll() fd for events until deadline_us (monotonic): 0, -ETIMEDOUT or -errno. Shared by
 * the member transport's TLS. */
int osm_dq_wait_fd(int fd, short events, uint64_t deadline_us);

/* Connect to an abstract Unix socket named "@name". Returns an fd or -errno. */
int osm_dq_connect_abstract(const char *address);
const char *osm_dq_role_name(int role);
