/* fed-api.h: what other subsystems ask of federation (built only with libmicrohttpd:
 * check HAVE_MHD before calling). */
#pragma once

#include <stdint.h>

struct osm_daemon;

/* The answer of a remote to a channel request: err_name NULL and fd (a memfd at offset 0,
 * the caller's to close) with what arrived, authenticated as the remote's; or err_name
 * (io.osmose.NotFound when the remote does not serve it) and message. */
typedef void (*osm_federation_got_fn)(void *userdata, const char *err_name, const char *message, int fd);

/* Ask remote for channel's list (bundle NULL) or a bundle it lists, over the signed and
 * encrypted federation protocol, audited as every request. 0: got is called once, later
 * (also with an error when federation is disabled meanwhile); -ENOTCONN (federation is
 * off), -ENOENT (no remote of that name), -ENOMEM: got is not called. */
int osm_federation_channel_fetch(struct osm_daemon *d, const char *remote, const char *channel, const char *bundle,
                                 osm_federation_got_fn got, void *userdata);
