/* dl-building.h: OpenSSL (libssl, libcrypto) and libdqlite (raft through it), opened when
 * the room is in a building (at start when its state says it is a member, or at
 * `building create`/`join`), so a room outside any building maps none of them. The symbol
 * tables follow dl.h; OpenSSL macros are listed by the function they expand to
 * (SSL_CTX_set_mode → SSL_CTX_ctrl, EVP_PKEY_id → EVP_PKEY_get_id, SSL_get_ex_new_index
 * → CRYPTO_get_ex_new_index). */
#pragma once

#include <dqlite.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "daemon/dl.h"

#define OSM_DL_CRYPTO_SYMBOLS(X)                                                                 \
        X(CRYPTO_get_ex_new_index) X(ERR_clear_error) X(EVP_PKEY_get_id)                          \
        X(EVP_PKEY_get_raw_public_key) X(EVP_PKEY_new_raw_private_key) X(EVP_PKEY_free)           \
        X(ASN1_INTEGER_set) X(X509_new) X(X509_free) X(X509_get0_pubkey) X(X509_set_version)      \
        X(X509_get_serialNumber) X(X509_gmtime_adj) X(X509_time_adj_ex) X(X509_getm_notBefore)    \
        X(X509_getm_notAfter) X(X509_get_subject_name) X(X509_NAME_add_entry_by_txt)              \
        X(X509_set_issuer_name) X(X509_set_pubkey) X(X509_sign) X(X509_STORE_CTX_get_ex_data)     \
        X(X509_STORE_CTX_get_error_depth) X(X509_STORE_CTX_get_current_cert)
#define OSM_DL_SSL_SYMBOLS(X)                                                                    \
        X(TLS_server_method) X(TLS_client_method) X(SSL_CTX_new) X(SSL_CTX_free) X(SSL_CTX_ctrl)  \
        X(SSL_CTX_set_options) X(SSL_CTX_use_certificate) X(SSL_CTX_use_PrivateKey)               \
        X(SSL_CTX_check_private_key) X(SSL_CTX_set_verify) X(SSL_get_ex_data_X509_STORE_CTX_idx)  \
        X(SSL_get_ex_data) X(SSL_set_ex_data) X(SSL_new) X(SSL_free) X(SSL_set_fd) X(SSL_accept)  \
        X(SSL_connect) X(SSL_shutdown) X(SSL_read) X(SSL_write) X(SSL_get_error)                  \
        X(SSL_get_verify_result) X(SSL_get1_peer_certificate) X(SSL_version)
#define OSM_DL_DQLITE_SYMBOLS(X)                                                                 \
        X(dqlite_node_create) X(dqlite_node_destroy) X(dqlite_node_errmsg)                        \
        X(dqlite_node_set_bind_address) X(dqlite_node_set_connect_func)                           \
        X(dqlite_node_set_network_latency_ms) X(dqlite_node_set_snapshot_params)                  \
        X(dqlite_node_start) X(dqlite_node_stop) X(dqlite_node_recover)

OSM_DL_CRYPTO_SYMBOLS(OSM_DL_DECLARE_X)
OSM_DL_SSL_SYMBOLS(OSM_DL_DECLARE_X)
OSM_DL_DQLITE_SYMBOLS(OSM_DL_DECLARE_X)

/* All three libraries. 0, or -EOPNOTSUPP and err naming the package to install. */
int osm_dl_building(osm_error *err);
