/* sd-daemon.h: the three service-manager protocols osmosed speaks with systemd —
 * readiness and watchdog notification ($NOTIFY_SOCKET), socket activation ($LISTEN_FDS)
 * and the watchdog interval ($WATCHDOG_USEC) — spoken directly, without libsystemd.
 *
 * Written by hand on purpose: systemd declares these protocols stable and independently
 * reimplementable (its Interface Portability and Stability chart; sd_notify(3), "Notes",
 * gives a standalone implementation and recommends it to daemons that need nothing else
 * of libsystemd). libsystemd would bring gcrypt, lz4, zstd and lzma with it: about 1.1 MiB
 * resident in a daemon whose whole budget is 6 MiB (bench/footprint.sh). */
#pragma once

#include <stdint.h>

/* The first fd systemd passes (SD_LISTEN_FDS_START). */
#define OSM_SD_LISTEN_FDS_START 3

/* Send one notification ("READY=1", "WATCHDOG=1", "STOPPING=1", "STATUS=…") to
 * $NOTIFY_SOCKET (a path or an abstract "@name"). 1 sent, 0 no socket set, < 0 -errno. */
int osm_sd_notify(const char *state);

/* The number of fds systemd passed us ($LISTEN_PID is ours, $LISTEN_FDS), 0 if none; the
 * variables are unset so that children do not inherit them, and the fds made close-on-exec.
 * < 0: -errno (a malformed variable). */
int osm_sd_listen_fds(void);

/* Is fd a listening AF_UNIX socket of this type? 1 yes, 0 no, < 0 -errno. */
int osm_sd_is_listening_unix(int fd, int type);

/* The watchdog interval in µs when systemd asks for pings ($WATCHDOG_USEC, and
 * $WATCHDOG_PID is ours when set), else 0. */
uint64_t osm_sd_watchdog_usec(void);
