/* dl-mhd.h: libmicrohttpd, opened on first use (federation enable). */
#pragma once

#include <microhttpd.h>

#include "daemon/dl.h"

#define OSM_DL_MHD_SYMBOLS(X)                                                                    \
        X(MHD_start_daemon) X(MHD_stop_daemon) X(MHD_run) X(MHD_get_timeout)                      \
        X(MHD_get_daemon_info) X(MHD_get_connection_info) X(MHD_lookup_connection_value)          \
        X(MHD_suspend_connection) X(MHD_resume_connection) X(MHD_queue_response)                  \
        X(MHD_create_response_from_buffer)                                                        \
        X(MHD_create_response_from_buffer_with_free_callback) X(MHD_add_response_header)          \
        X(MHD_destroy_response)

OSM_DL_MHD_SYMBOLS(OSM_DL_DECLARE_X)

/* 0, or -EOPNOTSUPP and err naming the package to install. */
int osm_dl_mhd(osm_error *err);
