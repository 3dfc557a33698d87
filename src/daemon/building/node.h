/* node.h: the embedded dqlite node — its own thread and loop, bound to an abstract Unix
 * socket, dialling other members through a connect function we give it. */
#pragma once

#include <stdint.h>

#include "osmose/error.h"

typedef struct osm_bnode osm_bnode;

/* How the node reaches another node's address: returns 0 and a connected, blocking fd in
 * *fd (the node owns it), or non-zero. Runs in one of dqlite's threads. */
typedef int (*osm_bnode_connect_fn)(void *arg, const char *address, int *fd);

typedef struct osm_bnode_opts {
        uint64_t id;              /* 1 bootstraps a new cluster on an empty directory */
        const char *address;      /* the address the other members know this node by */
        const char *bind;         /* "@name": the abstract socket the node listens on */
        const char *dir;          /* its data directory (raft log, snapshots) */
        unsigned latency_ms;      /* heartbeat 1.5×, election timeout 15× this */
        osm_bnode_connect_fn connect;
        void *connect_arg;
        /* dqlite's recovery, if n_recover > 0: before it starts, rewrite the raft
         * configuration in dir to exactly these nodes (all voters). Run on one node only,
         * whose directory the others then copy. */
        const uint64_t *recover_ids;
        const char *const *recover_addresses;
        int n_recover;
} osm_bnode_opts;

/* Create (recover) and start a node. On failure err says why: -EIO, -EOPNOTSUPP, -ENOMEM,
 * or -EPROTO when the recovery itself failed (dir is then as it was). */
int osm_bnode_start(const osm_bnode_opts *o, osm_bnode **out, osm_error *err);
/* Stop (waits for its thread) and free. NULL is fine. */
void osm_bnode_stop(osm_bnode *n);
