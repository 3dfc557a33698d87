/* transport.h: the member transport — a TCP listener taking mutual TLS from members only,
 * proxying dqlite's traffic to the node's abstract socket (LXD's way) and handing other
 * requests (join, query) to the building; and the dialler dqlite and our client use to
 * reach other members. Threads of its own; never the daemon's loop. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "daemon/building/tls.h"

typedef struct osm_bt osm_bt;

/* A request other than "dqlite" on an accepted connection: op is the first line (JSON),
 * already parsed; the handler answers on c and returns. Runs in the connection's thread. */
typedef void (*osm_bt_handler)(void *arg, osm_btls_conn *c, const char *op, void *request_json);

typedef struct osm_bt_counters {
        uint64_t accepted, refused_handshake, refused_non_member, proxied, dialled, dial_failed;
} osm_bt_counters;

#define OSM_BT_MAX_MEMBERS 1024

/* Start listening on port (all addresses, IPv4 and IPv6). node_bind: "@name" of the local
 * dqlite node; own_address: this room's member address (dialled locally). */
int osm_bt_start(const osm_keypair *id, unsigned port, const char *node_bind, const char *own_address,
                 osm_bt_handler handler, void *arg, osm_bt **out, osm_error *err);
/* Stop: no new connections; open ones are shut down; waits for the threads (bounded). */
void osm_bt_stop(osm_bt *t);

/* The member keys (replaces the set). While joins are open, a key not in the set may
 * complete a handshake but can only ask to join. */
void osm_bt_set_members(osm_bt *t, const uint8_t (*keys)[OSM_PUBKEY_BYTES], size_t n);
void osm_bt_add_member(osm_bt *t, const uint8_t key[OSM_PUBKEY_BYTES]);
bool osm_bt_is_member(osm_bt *t, const uint8_t key[OSM_PUBKEY_BYTES]);
void osm_bt_set_joins_open(osm_bt *t, bool open);
void osm_bt_set_own_address(osm_bt *t, const char *address);

/* Dial a member: TLS, its key pinned (pin) or any member's. 0 or -errno. */
int osm_bt_dial(osm_bt *t, const char *address, const uint8_t *pin, int timeout_ms, osm_btls_conn *c,
                osm_error *err);
/* dqlite's connect function (and our client's): an fd to the node at address — the local
 * node's socket for our own address, else a socket pair proxied over TLS. */
int osm_bt_connect_node(void *t, const char *address, int *fd);
/* The same, with a timeout for reaching another member. */
int osm_bt_connect_node_within(osm_bt *t, const char *address, int timeout_ms, int *fd);

osm_bt_counters osm_bt_get_counters(osm_bt *t);

/* When a member last completed a mutual TLS handshake with this room, dialled or accepted
 * (wall clock, microseconds; 0: not since the transport started). How reachability is
 * judged: not from the age of a replicated row. */
int64_t osm_bt_last_contact(osm_bt *t, const uint8_t key[OSM_PUBKEY_BYTES]);
