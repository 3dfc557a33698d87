/* dl-mosquitto.c: the symbol table of libmosquitto (see dl-mosquitto.h). */
#include "daemon/ingest/dl-mosquitto.h"

OSM_DL_MOSQUITTO_SYMBOLS(OSM_DL_DEFINE_X)

static int init(void) {
        return sym_mosquitto_lib_init() == MOSQ_ERR_SUCCESS ? 0 : -1;
}

static osm_dl_lib mosquitto_lib = { .soname = "libmosquitto.so.1", .package = "libmosquitto1", .init = init };

int osm_dl_mosquitto(osm_error *err) {
        return osm_dl_open(&mosquitto_lib, err, OSM_DL_MOSQUITTO_SYMBOLS(OSM_DL_SYM_X) NULL);
}
