/* dl-nl.c: the symbol tables of libnl-3 and libnl-route-3 (see dl-nl.h). */
#include "daemon/dl-nl.h"

OSM_DL_NL_SYMBOLS(OSM_DL_DEFINE_X)
OSM_DL_NL_ROUTE_SYMBOLS(OSM_DL_DEFINE_X)

static osm_dl_lib nl_lib = { .soname = "libnl-3.so.200", .package = "libnl-3-200" };
static osm_dl_lib nl_route_lib = { .soname = "libnl-route-3.so.200", .package = "libnl-route-3-200" };

int osm_dl_nl(osm_error *err) {
        int r = osm_dl_open(&nl_lib, err, OSM_DL_NL_SYMBOLS(OSM_DL_SYM_X) NULL);
        return r < 0 ? r : osm_dl_open(&nl_route_lib, err, OSM_DL_NL_ROUTE_SYMBOLS(OSM_DL_SYM_X) NULL);
}
