/* tls.c: mutual TLS 1.3 between building members, keys pinned (see tls.h). */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon/building/dl-building.h"
#include "daemon/building/dq-client.h"
#include "daemon/building/tls.h"
#include "osmose/util.h"

static int ex_index = -1;   /* SSL ex_data: the expected pin, or NULL (use allow()) */

typedef struct verify_ctx {
        osm_btls *t;
        const uint8_t *pin;
        bool ok;
} verify_ctx;

/* The raw Ed25519 key of a certificate, or -1. */
static int cert_key(X509 *x, uint8_t pk[OSM_PUBKEY_BYTES]) {
        EVP_PKEY *k = sym_X509_get0_pubkey(x);
        size_t len = OSM_PUBKEY_BYTES;
        if (!k || sym_EVP_PKEY_get_id(k) != EVP_PKEY_ED25519 || sym_EVP_PKEY_get_raw_public_key(k, pk, &len) != 1 ||
            len != OSM_PUBKEY_BYTES)
                return -1;
        return 0;
}

/* OpenSSL's chain checks fail on a self-signed certificate by design: the trust decision
 * is the pinned key alone, taken here on the leaf (the only certificate we accept). */
static int verify_cb(int preverify, X509_STORE_CTX *store) {
        SSL *ssl = sym_X509_STORE_CTX_get_ex_data(store, sym_SSL_get_ex_data_X509_STORE_CTX_idx());
        verify_ctx *v = ssl ? sym_SSL_get_ex_data(ssl, ex_index) : NULL;
        if (!v || sym_X509_STORE_CTX_get_error_depth(store) != 0)
                return 0;
        uint8_t pk[OSM_PUBKEY_BYTES];
        X509 *x = sym_X509_STORE_CTX_get_current_cert(store);
        if (!x || cert_key(x, pk) < 0)
                return 0;
        if (v->pin)
                v->ok = sodium_memcmp(pk, v->pin, OSM_PUBKEY_BYTES) == 0;
        else
                v->ok = v->t->allow && v->t->allow(v->t->allow_arg, pk);
        return v->ok;
}

static SSL_CTX *make_ctx(bool server, EVP_PKEY *key, X509 *cert) {
        SSL_CTX *ctx = sym_SSL_CTX_new(server ? sym_TLS_server_method() : sym_TLS_client_method());
        if (!ctx)
                return NULL;
        /* SSL_CTX_set_min_proto_version(), _set_mode() and _set_session_cache_mode() are
         * macros over SSL_CTX_ctrl(), written out to go through the symbol table. */
        sym_SSL_CTX_ctrl(ctx, SSL_CTRL_SET_MIN_PROTO_VERSION, TLS1_3_VERSION, NULL);
        sym_SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION);
        sym_SSL_CTX_ctrl(ctx, SSL_CTRL_MODE, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER, NULL);
        sym_SSL_CTX_ctrl(ctx, SSL_CTRL_SET_SESS_CACHE_MODE, SSL_SESS_CACHE_OFF, NULL);
        if (sym_SSL_CTX_use_certificate(ctx, cert) != 1 || sym_SSL_CTX_use_PrivateKey(ctx, key) != 1 ||
            sym_SSL_CTX_check_private_key(ctx) != 1) {
                sym_SSL_CTX_free(ctx);
                return NULL;
        }
        sym_SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, verify_cb);
        return ctx;
}

int osm_btls_init(osm_btls *t, const osm_keypair *id, osm_btls_allow_fn allow, void *allow_arg) {
        memset(t, 0, sizeof *t);
        if (osm_dl_building(NULL) < 0)   /* callers load it first to report why */
                return -EOPNOTSUPP;
        t->allow = allow;
        t->allow_arg = allow_arg;
        if (ex_index < 0)
                ex_index = sym_CRYPTO_get_ex_new_index(CRYPTO_EX_INDEX_SSL, 0, NULL, NULL, NULL, NULL);
        /* libsodium's secret key is seed || public key; OpenSSL takes the 32-byte seed. */
        EVP_PKEY *key = sym_EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, id->sk, 32);
        X509 *x = sym_X509_new();
        int rc = -EIO;
        uint8_t pk[OSM_PUBKEY_BYTES];
        size_t len = sizeof pk;
        if (!key || !x || sym_EVP_PKEY_get_raw_public_key(key, pk, &len) != 1 ||
            sodium_memcmp(pk, id->pk, sizeof pk) != 0)
                goto out;
        char cn[OSM_SPACE_ID_LEN + 1];
        osm_space_id(id->pk, cn);
        sym_X509_set_version(x, 2);
        sym_ASN1_INTEGER_set(sym_X509_get_serialNumber(x), 1);
        sym_X509_gmtime_adj(sym_X509_getm_notBefore(x), -86400);
        sym_X509_time_adj_ex(sym_X509_getm_notAfter(x), 36500, 0, NULL);   /* pinned keys do not expire */
        X509_NAME *name = sym_X509_get_subject_name(x);
        sym_X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *) cn, -1, -1, 0);
        sym_X509_set_issuer_name(x, name);
        if (sym_X509_set_pubkey(x, key) != 1 || sym_X509_sign(x, key, NULL) <= 0)
                goto out;
        t->server = make_ctx(true, key, x);
        t->client = make_ctx(false, key, x);
        if (t->server && t->client)
                rc = 0;
out:
        sym_EVP_PKEY_free(key);
        sym_X509_free(x);
        if (rc < 0)
                osm_btls_free(t);
        return rc;
}

void osm_btls_free(osm_btls *t) {
        if (!t->server && !t->client)
                return;   /* never set up (OpenSSL may not even be loaded) */
        sym_SSL_CTX_free(t->server);
        sym_SSL_CTX_free(t->client);
        t->server = t->client = NULL;
}

/* Wait for what OpenSSL asked for after a call returned r. 0 to retry, or -errno. */
static int ssl_wait(osm_btls_conn *c, int r, uint64_t deadline_us) {
        int e = sym_SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_WANT_READ)
                return osm_dq_wait_fd(c->fd, POLLIN, deadline_us);
        if (e == SSL_ERROR_WANT_WRITE)
                return osm_dq_wait_fd(c->fd, POLLOUT, deadline_us);
        if (e == SSL_ERROR_ZERO_RETURN)
                return -ECONNRESET;
        return -EPROTO;
}

static int handshake(osm_btls *t, osm_btls_conn *c, bool server, const uint8_t *pin, int timeout_ms,
                     osm_error *err) {
        uint64_t dl = osm_now_mono_us() + (uint64_t) timeout_ms * 1000;
        verify_ctx v = { .t = t, .pin = pin };
        c->ssl = sym_SSL_new(server ? t->server : t->client);
        if (!c->ssl || sym_SSL_set_fd(c->ssl, c->fd) != 1)
                return osm_error_set(err, -ENOMEM, 0, "out of memory");
        sym_SSL_set_ex_data(c->ssl, ex_index, &v);
        int r;
        for (;;) {
                r = server ? sym_SSL_accept(c->ssl) : sym_SSL_connect(c->ssl);
                if (r == 1)
                        break;
                int w = ssl_wait(c, r, dl);
                if (w < 0) {
                        sym_ERR_clear_error();
                        sym_SSL_set_ex_data(c->ssl, ex_index, NULL);
                        if (w == -ETIMEDOUT)
                                return osm_error_set(err, w, 0, "TLS handshake timed out");
                        return osm_error_set(err, v.ok ? -EPROTO : -EPERM, 0, "%s",
                                             v.ok || sym_SSL_get_verify_result(c->ssl) == X509_V_OK
                                                     ? "TLS handshake failed"
                                                     : "peer key not accepted");
                }
        }
        sym_SSL_set_ex_data(c->ssl, ex_index, NULL);
        /* The decision was taken in verify_cb; check again on what the handshake kept. */
        X509 *peer = sym_SSL_get1_peer_certificate(c->ssl);
        int k = peer ? cert_key(peer, c->peer) : -1;
        sym_X509_free(peer);
        if (k < 0 || !v.ok || sym_SSL_version(c->ssl) != TLS1_3_VERSION)
                return osm_error_set(err, -EPERM, 0, "peer key not accepted");
        return 0;
}

static int tcp_connect(const char *address, uint64_t deadline_us, osm_error *err) {
        char host[256], port[16];
        const char *colon = strrchr(address, ':');
        if (!colon || colon == address || strlen(colon + 1) >= sizeof port || (size_t) (colon - address) >= sizeof host)
                return osm_error_set(err, -EINVAL, 0, "address is not HOST:PORT");
        size_t hl = (size_t) (colon - address);
        const char *h = address;
        if (address[0] == '[' && hl >= 2 && address[hl - 1] == ']') {
                h++;
                hl -= 2;
        }
        memcpy(host, h, hl);
        host[hl] = 0;
        strcpy(port, colon + 1);
        struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV }, *res = NULL;
        if (getaddrinfo(host, port, &hints, &res) != 0 || !res)
                return osm_error_set(err, -EHOSTUNREACH, 0, "cannot resolve the address");
        int r = -ECONNREFUSED;
        for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
                int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
                if (fd < 0) {
                        r = -errno;
                        continue;
                }
                int one = 1;
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 ||
                    (errno == EINPROGRESS && osm_dq_wait_fd(fd, POLLOUT, deadline_us) == 0)) {
                        int so_err = 0;
                        socklen_t el = sizeof so_err;
                        getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_err, &el);
                        if (so_err == 0) {
                                freeaddrinfo(res);
                                return fd;
                        }
                        r = -so_err;
                } else {
                        r = errno == EINPROGRESS ? -ETIMEDOUT : -errno;
                }
                close(fd);
        }
        freeaddrinfo(res);
        return osm_error_set(err, r, 0, "%s", r == -ETIMEDOUT ? "connection timed out" : "cannot connect");
}

int osm_btls_connect(osm_btls *t, const char *address, const uint8_t *pin, int timeout_ms,
                     osm_btls_conn *c, osm_error *err) {
        memset(c, 0, sizeof *c);
        c->fd = tcp_connect(address, osm_now_mono_us() + (uint64_t) timeout_ms * 1000, err);
        if (c->fd < 0)
                return c->fd;
        int r = handshake(t, c, false, pin, timeout_ms, err);
        if (r < 0)
                osm_btls_close(c);
        return r;
}

int osm_btls_accept(osm_btls *t, int fd, int timeout_ms, osm_btls_conn *c, osm_error *err) {
        memset(c, 0, sizeof *c);
        c->fd = fd;
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        int r = handshake(t, c, true, NULL, timeout_ms, err);
        if (r < 0)
                osm_btls_close(c);
        return r;
}

void osm_btls_close(osm_btls_conn *c) {
        if (c->ssl) {
                sym_SSL_shutdown(c->ssl);   /* best effort: the socket is non-blocking */
                sym_SSL_free(c->ssl);
                c->ssl = NULL;
        }
        c->fd = osm_close(c->fd);
        if (sym_ERR_clear_error)
                sym_ERR_clear_error();
}

int osm_btls_write(osm_btls_conn *c, const void *buf, size_t len, uint64_t deadline_us) {
        const uint8_t *p = buf;
        while (len > 0) {
                int r = sym_SSL_write(c->ssl, p, (int) OSM_MIN(len, 1u << 20));
                if (r > 0) {
                        p += r;
                        len -= (size_t) r;
                        continue;
                }
                int w = ssl_wait(c, r, deadline_us);
                if (w < 0)
                        return w;
        }
        return 0;
}

int osm_btls_read_line(osm_btls_conn *c, char *buf, size_t max, uint64_t deadline_us) {
        size_t n = 0;
        /* Byte by byte from OpenSSL's buffer: lines are small and rare (one per exchange),
         * and nothing past the newline may be consumed (a proxied stream may follow). */
        while (n + 1 < max) {
                char ch;
                int r = sym_SSL_read(c->ssl, &ch, 1);
                if (r == 1) {
                        if (ch == '\n') {
                                buf[n] = 0;
                                return 0;
                        }
                        buf[n++] = ch;
                        continue;
                }
                int w = ssl_wait(c, r, deadline_us);
                if (w < 0)
                        return w;
        }
        return -EMSGSIZE;
}

int osm_btls_read(osm_btls_conn *c, void *buf, size_t max, uint64_t deadline_us) {
        for (;;) {
                int r = sym_SSL_read(c->ssl, buf, (int) OSM_MIN(max, 1u << 20));
                if (r > 0)
                        return r;
                if (sym_SSL_get_error(c->ssl, r) == SSL_ERROR_ZERO_RETURN)
                        return 0;
                int w = ssl_wait(c, r, deadline_us);
                if (w < 0)
                        return w;
        }
}

/* After SSL_read/SSL_write returned r <= 0: add what OpenSSL waits for to *ev and return
 * true, or false if the connection is over. */
static bool ssl_want(SSL *ssl, int r, short *ev) {
        int e = sym_SSL_get_error(ssl, r);
        if (e == SSL_ERROR_WANT_READ)
                *ev |= POLLIN;
        else if (e == SSL_ERROR_WANT_WRITE)
                *ev |= POLLOUT;
        else
                return false;
        return true;
}

void osm_btls_pump(osm_btls_conn *c, int pfd, volatile bool *stop) {
        uint8_t up[16384], down[16384];   /* up: plain -> TLS; down: TLS -> plain */
        size_t up_len = 0, up_off = 0, down_len = 0, down_off = 0;
        fcntl(pfd, F_SETFL, fcntl(pfd, F_GETFL) | O_NONBLOCK);
        while (!*stop) {
                bool progress = false;
                short tls_ev = 0, plain_ev = 0;
                if (down_len == 0) {
                        int r = sym_SSL_read(c->ssl, down, sizeof down);
                        if (r > 0) {
                                down_len = (size_t) r;
                                down_off = 0;
                                progress = true;
                        } else if (!ssl_want(c->ssl, r, &tls_ev)) {
                                break;
                        }
                }
                if (down_len > 0) {
                        ssize_t k = send(pfd, down + down_off, down_len - down_off, MSG_NOSIGNAL);
                        if (k > 0) {
                                down_off += (size_t) k;
                                if (down_off == down_len)
                                        down_len = 0;
                                progress = true;
                        } else if (k < 0 && (errno == EAGAIN || errno == EINTR)) {
                                plain_ev |= POLLOUT;
                        } else {
                                break;
                        }
                }
                if (up_len == 0) {
                        ssize_t k = recv(pfd, up, sizeof up, 0);
                        if (k > 0) {
                                up_len = (size_t) k;
                                up_off = 0;
                                progress = true;
                        } else if (k < 0 && (errno == EAGAIN || errno == EINTR)) {
                                plain_ev |= POLLIN;
                        } else {
                                break;
                        }
                }
                if (up_len > 0) {
                        int r = sym_SSL_write(c->ssl, up + up_off, (int) (up_len - up_off));
                        if (r > 0) {
                                up_off += (size_t) r;
                                if (up_off == up_len)
                                        up_len = 0;
                                progress = true;
                        } else if (!ssl_want(c->ssl, r, &tls_ev)) {
                                break;
                        }
                }
                if (progress)
                        continue;
                struct pollfd p[2] = { { .fd = c->fd, .events = tls_ev }, { .fd = pfd, .events = plain_ev } };
                int r = poll(p, 2, 500);
                if (r < 0 && errno != EINTR)
                        break;
                if ((p[0].revents | p[1].revents) & (POLLERR | POLLNVAL))
                        break;
                /* POLLHUP with data still readable is handled by the reads returning 0. */
        }
        sym_ERR_clear_error();
}
