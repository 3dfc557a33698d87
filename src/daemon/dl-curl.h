/* dl-curl.h: libcurl, opened on first use (federation enable, install from a URL). */
#pragma once

#include <curl/curl.h>

#include "daemon/dl.h"

#define OSM_DL_CURL_SYMBOLS(X)                                                                   \
        X(curl_global_init) X(curl_easy_init) X(curl_easy_cleanup) X(curl_easy_setopt)            \
        X(curl_easy_getinfo) X(curl_easy_perform) X(curl_easy_strerror) X(curl_multi_init)        \
        X(curl_multi_cleanup) X(curl_multi_setopt) X(curl_multi_add_handle)                       \
        X(curl_multi_remove_handle) X(curl_multi_assign) X(curl_multi_socket_action)              \
        X(curl_multi_info_read) X(curl_slist_append) X(curl_slist_free_all)

OSM_DL_CURL_SYMBOLS(OSM_DL_DECLARE_X)

/* Load libcurl and initialise its global state (once, whichever thread comes first).
 * 0, or -EOPNOTSUPP and err naming the package to install. */
int osm_dl_curl(osm_error *err);
