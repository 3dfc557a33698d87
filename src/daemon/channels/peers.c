/* peers.c: bundles by hash from the members of the building before the origin. The
 * building (building/share.c) finds the members that keep a bundle and carries their
 * copies; this file verifies each by the bundle's id and size and keeps it, exactly as a
 * copy from the origin is kept (ch_keep_bundle), and records the bundles this room keeps
 * so that the other members ask it in turn. */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "build-config.h"
#include "daemon/channels/ch.h"
#include "osmose/log.h"
#if HAVE_BUILDING
#include "daemon/building/building.h"

typedef struct take_ctx {
        osm_channels *c;
        const char *id;
} take_ctx;

static int take(void *arg, int fd, uint64_t size, osm_error *err) {
        take_ctx *t = arg;
        const char *err_name = NULL;
        char got[OSM_HASH_HEX];
        return ch_keep_bundle(t->c, fd, t->id, size, got, &err_name, err);
}

int ch_fetch_from_peers(osm_channels *c, const char *id, uint64_t size) {
        if (!c->d->cfg.channels_peers)
                return -ENOENT;
        take_ctx t = { .c = c, .id = id };
        if (osm_building_fetch_bundle(c->d, id, size, c->bundles_dir, take, &t) < 0)
                return -ENOENT;
        int fd = ch_open_kept(c, id);
        if (fd < 0)
                return -ENOENT;
        struct stat st;
        ch_peers_announce(c, id, fstat(fd, &st) == 0 ? (uint64_t) st.st_size : size);
        return fd;
}

void ch_peers_announce(osm_channels *c, const char *id, uint64_t size) {
        osm_building_holds(c->d, id, size);
}

#else   /* !HAVE_BUILDING */

int ch_fetch_from_peers(osm_channels *c, const char *id, uint64_t size) {
        return -ENOENT;
}

void ch_peers_announce(osm_channels *c, const char *id, uint64_t size) {
}
#endif
