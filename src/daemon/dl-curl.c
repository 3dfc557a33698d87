/* dl-curl.c: libcurl's symbol table (see dl-curl.h). */
#include "daemon/dl-curl.h"

OSM_DL_CURL_SYMBOLS(OSM_DL_DEFINE_X)

/* libcurl's global state, before any handle exists; osm_dl_open runs this under its lock,
 * so it is also done once when a fetch thread and the loop race for it. */
static int curl_init(void) {
        return sym_curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

static osm_dl_lib curl_lib = { .soname = "libcurl.so.4", .package = "libcurl4", .init = curl_init };

int osm_dl_curl(osm_error *err) {
        return osm_dl_open(&curl_lib, err, OSM_DL_CURL_SYMBOLS(OSM_DL_SYM_X) NULL);
}
