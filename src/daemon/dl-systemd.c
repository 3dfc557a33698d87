/* dl-systemd.c: libsystemd's symbol table (see dl-systemd.h). */
#include "daemon/dl-systemd.h"

OSM_DL_SYSTEMD_SYMBOLS(OSM_DL_DEFINE_X)

static osm_dl_lib systemd_lib = { .soname = "libsystemd.so.0", .package = "libsystemd0" };

int osm_dl_systemd(osm_error *err) {
        return osm_dl_open(&systemd_lib, err, OSM_DL_SYSTEMD_SYMBOLS(OSM_DL_SYM_X) NULL);
}
