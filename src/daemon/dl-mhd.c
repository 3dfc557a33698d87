/* dl-mhd.c: libmicrohttpd's symbol table (see dl-mhd.h). */
#include "daemon/dl-mhd.h"

OSM_DL_MHD_SYMBOLS(OSM_DL_DEFINE_X)

static osm_dl_lib mhd_lib = { .soname = "libmicrohttpd.so.12", .package = "libmicrohttpd12" };

int osm_dl_mhd(osm_error *err) {
        return osm_dl_open(&mhd_lib, err, OSM_DL_MHD_SYMBOLS(OSM_DL_SYM_X) NULL);
}
