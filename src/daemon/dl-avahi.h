/* dl-avahi.h: libavahi-client, opened when discovery is first switched on. It links
 * libdbus, and Debian's libdbus links libsystemd with libgcrypt, lz4, zstd and lzma:
 * about 1.2 MiB resident that a room with discovery off does not pay. libavahi-common
 * (string lists, name checks, error texts: small, no dependencies) stays linked, since
 * the checks of publications and browse types run while discovery is off too. */
#pragma once

#include <avahi-client/client.h>
#include <avahi-client/lookup.h>
#include <avahi-client/publish.h>

#include "daemon/dl.h"

#define OSM_DL_AVAHI_SYMBOLS(X)                                                                  \
        X(avahi_client_new) X(avahi_client_free) X(avahi_client_errno)                            \
        X(avahi_entry_group_new) X(avahi_entry_group_free) X(avahi_entry_group_reset)             \
        X(avahi_entry_group_is_empty) X(avahi_entry_group_commit)                                 \
        X(avahi_entry_group_add_service_strlst) X(avahi_entry_group_get_client)                   \
        X(avahi_service_resolver_new) X(avahi_service_resolver_free)                              \
        X(avahi_service_resolver_get_client) X(avahi_service_browser_new)                         \
        X(avahi_service_browser_free) X(avahi_service_browser_get_client)                         \
        X(avahi_service_type_browser_new) X(avahi_service_type_browser_free)                      \
        X(avahi_service_type_browser_get_client)

OSM_DL_AVAHI_SYMBOLS(OSM_DL_DECLARE_X)

/* 0, or -EOPNOTSUPP and err naming the package to install. */
int osm_dl_avahi(osm_error *err);
