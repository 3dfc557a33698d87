/* dl-systemd.h: libsystemd, opened only when systemd started the daemon ($NOTIFY_SOCKET,
 * $LISTEN_FDS or $WATCHDOG_USEC set): readiness, socket activation, the watchdog. */
#pragma once

#include <systemd/sd-daemon.h>

#include "daemon/dl.h"

#define OSM_DL_SYSTEMD_SYMBOLS(X) X(sd_notify) X(sd_listen_fds) X(sd_is_socket_unix) X(sd_watchdog_enabled)

OSM_DL_SYSTEMD_SYMBOLS(OSM_DL_DECLARE_X)

/* 0, or -EOPNOTSUPP and err naming the package to install. */
int osm_dl_systemd(osm_error *err);
