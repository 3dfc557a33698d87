/* dl-building.c: the symbol tables of libcrypto, libssl and libdqlite (see dl-building.h). */
#include "daemon/building/dl-building.h"

OSM_DL_CRYPTO_SYMBOLS(OSM_DL_DEFINE_X)
OSM_DL_SSL_SYMBOLS(OSM_DL_DEFINE_X)
OSM_DL_DQLITE_SYMBOLS(OSM_DL_DEFINE_X)

/* libssl3 ships both OpenSSL libraries; libdqlite0 pulls libraft in as its own dependency. */
static osm_dl_lib crypto_lib = { .soname = "libcrypto.so.3", .package = "libssl3" };
static osm_dl_lib ssl_lib = { .soname = "libssl.so.3", .package = "libssl3" };
static osm_dl_lib dqlite_lib = { .soname = "libdqlite.so.0", .package = "libdqlite0" };

int osm_dl_building(osm_error *err) {
        int r = osm_dl_open(&crypto_lib, err, OSM_DL_CRYPTO_SYMBOLS(OSM_DL_SYM_X) NULL);
        if (r >= 0)
                r = osm_dl_open(&ssl_lib, err, OSM_DL_SSL_SYMBOLS(OSM_DL_SYM_X) NULL);
        return r < 0 ? r : osm_dl_open(&dqlite_lib, err, OSM_DL_DQLITE_SYMBOLS(OSM_DL_SYM_X) NULL);
}
