/* dl-avahi.c: libavahi-client's symbol table (see dl-avahi.h). */
#include "daemon/dl-avahi.h"

OSM_DL_AVAHI_SYMBOLS(OSM_DL_DEFINE_X)

static osm_dl_lib avahi_lib = { .soname = "libavahi-client.so.3", .package = "libavahi-client3" };

int osm_dl_avahi(osm_error *err) {
        return osm_dl_open(&avahi_lib, err, OSM_DL_AVAHI_SYMBOLS(OSM_DL_SYM_X) NULL);
}
