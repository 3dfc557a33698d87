/* tls.h: the member transport's TLS 1.3 (OpenSSL): a self-signed certificate made from the
 * room's Ed25519 identity key, and peers authenticated by pinning their public key — no
 * CA, nothing to renew (as Syncthing device ids). Blocking calls with deadlines, for the
 * transport's threads. */
#pragma once

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "osmose/identity.h"

/* Decides whether a peer key may complete a handshake (called during it). */
typedef bool (*osm_btls_allow_fn)(void *arg, const uint8_t pk[OSM_PUBKEY_BYTES]);

typedef struct osm_btls {
        SSL_CTX *server;
        SSL_CTX *client;
        osm_btls_allow_fn allow;   /* for accepted connections */
        void *allow_arg;
} osm_btls;

/* Make both contexts from the identity keypair. Returns 0 or -EIO. */
int osm_btls_init(osm_btls *t, const osm_keypair *id, osm_btls_allow_fn allow, void *allow_arg);
void osm_btls_free(osm_btls *t);

/* A TLS connection over a non-blocking socket. */
typedef struct osm_btls_conn {
        SSL *ssl;
        int fd;
        uint8_t peer[OSM_PUBKEY_BYTES];
} osm_btls_conn;

/* Client side: connect to "host:port" ([v6]:port too) within timeout_ms and complete the
 * handshake; the server's key must equal pin (if not NULL), else allow() must accept it.
 * *why says what failed. Returns 0 or -errno (-EPERM: wrong key). */
int osm_btls_connect(osm_btls *t, const char *address, const uint8_t *pin, int timeout_ms,
                     osm_btls_conn *c, osm_error *err);
/* Server side: handshake on an accepted fd (taken). Returns 0 or -errno. */
int osm_btls_accept(osm_btls *t, int fd, int timeout_ms, osm_btls_conn *c, osm_error *err);
void osm_btls_close(osm_btls_conn *c);

/* Write all of buf / read one '\n'-terminated line (at most max bytes, NUL-terminated,
 * without the newline) before deadline (monotonic µs). 0 or -errno. */
int osm_btls_write(osm_btls_conn *c, const void *buf, size_t len, uint64_t deadline_us);
int osm_btls_read_line(osm_btls_conn *c, char *buf, size_t max, uint64_t deadline_us);

/* Read what has arrived, at most max bytes, waiting until deadline for something:
 * bytes read, 0 at the end of the stream, or -errno. */
int osm_btls_read(osm_btls_conn *c, void *buf, size_t max, uint64_t deadline_us);

/* Copy bytes both ways between the TLS connection and a plain socket until either side
 * closes or *stop becomes true (checked at least every 500 ms). */
void osm_btls_pump(osm_btls_conn *c, int plain_fd, volatile bool *stop);
