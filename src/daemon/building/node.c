/* node.c: embedding libdqlite's node (it runs its own thread and libuv loop). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/building/dl-building.h"
#include "daemon/building/node.h"
#include "osmose/util.h"

struct osm_bnode {
        dqlite_node *node;
};

/* Snapshot every 512 entries and keep 256 behind it: the raft log on disk stays a few
 * small segments (gateways run on SD cards) while a lagging member can still catch up
 * from the log instead of a snapshot. */
#define SNAPSHOT_THRESHOLD 512
#define SNAPSHOT_TRAILING  768

/* The recovery runs on the node that then starts, not on a node of its own: libdqlite
 * (src/server.c, 1.11 as before and after) frees what dqlite_node_create set up only in the
 * node's loop thread as it stops (stop_cb → raft_close → raftCloseCb → raft_uv_close, the
 * loop closed after), never for a node that did not start ("TODO: properly handle closing
 * the dqlite server without running it" in dqlite__init). A node made only to recover and
 * then destroyed left raft_init's, raft_uv_init's and uv_loop_init's memory behind
 * (LeakSanitizer: 2,370 bytes at exit after every `building recover`). */
static int recover(dqlite_node *node, const osm_bnode_opts *o, osm_error *err) {
        dqlite_node_info *infos = calloc((size_t) o->n_recover, sizeof *infos);
        if (!infos)
                return osm_error_set(err, -ENOMEM, 0, "out of memory");
        for (int i = 0; i < o->n_recover; i++) {
                infos[i].id = o->recover_ids[i];
                infos[i].address = o->recover_addresses[i];
        }
        int rv = sym_dqlite_node_recover(node, infos, o->n_recover);
        free(infos);
        if (rv != 0)
                return osm_error_set(err, -EPROTO, 0, "dqlite_node_recover: %s", sym_dqlite_node_errmsg(node));
        return 0;
}

int osm_bnode_start(const osm_bnode_opts *o, osm_bnode **out, osm_error *err) {
        osm_error why = {};
        int rv = osm_dl_building(&why);
        if (rv < 0)
                return osm_error_set(err, -EOPNOTSUPP, 0, "%s", why.message);
        osm_bnode *n = calloc(1, sizeof *n);
        if (!n)
                return osm_error_set(err, -ENOMEM, 0, "out of memory");
        rv = osm_mkdir_p(o->dir, 0700);
        if (rv < 0) {
                osm_error_set(err, rv, 0, "cannot create %s: %s", o->dir, strerror(-rv));
                free(n);
                return rv;
        }
        rv = sym_dqlite_node_create(o->id, o->address, o->dir, &n->node);
        if (rv != 0) {
                osm_error_set(err, -EIO, 0, "dqlite_node_create: %s",
                              n->node ? sym_dqlite_node_errmsg(n->node) : "out of memory");
                goto fail;
        }
        /* before the bind: a node that is not started does not close its listener */
        if (o->n_recover > 0 && (rv = recover(n->node, o, err)) < 0)
                goto fail;
        if ((rv = sym_dqlite_node_set_bind_address(n->node, o->bind)) != 0) {
                osm_error_set(err, -EIO, 0, "cannot bind %s: %s", o->bind, sym_dqlite_node_errmsg(n->node));
                goto fail;
        }
        if (o->connect && (rv = sym_dqlite_node_set_connect_func(n->node, o->connect, o->connect_arg)) != 0) {
                osm_error_set(err, -EIO, 0, "dqlite_node_set_connect_func failed (%d)", rv);
                goto fail;
        }
        if (o->latency_ms && (rv = sym_dqlite_node_set_network_latency_ms(n->node, o->latency_ms)) != 0) {
                osm_error_set(err, -EIO, 0, "network latency %u ms refused (%d)", o->latency_ms, rv);
                goto fail;
        }
        sym_dqlite_node_set_snapshot_params(n->node, SNAPSHOT_THRESHOLD, SNAPSHOT_TRAILING);
        if ((rv = sym_dqlite_node_start(n->node)) != 0) {
                osm_error_set(err, -EIO, 0, "dqlite_node_start: %s", sym_dqlite_node_errmsg(n->node));
                goto fail;
        }
        *out = n;
        return 0;
fail:
        if (n->node)
                sym_dqlite_node_destroy(n->node);
        free(n);
        return rv < 0 ? rv : -EIO;
}

void osm_bnode_stop(osm_bnode *n) {
        if (!n)
                return;
        sym_dqlite_node_stop(n->node);
        sym_dqlite_node_destroy(n->node);
        free(n);
}
