/* channels.h: the channels subsystem (d->channels): workloads that follow signed lists of
 * versions, pins, upgrades with a health check and rollback, kept bundles. */
#pragma once

struct osm_channels;
struct osm_subsystem;
extern const struct osm_subsystem osm_channels_subsystem;

#include <stddef.h>
#include <stdint.h>

struct osm_daemon;
/* What federation serves of a channel shared with a remote (share --channel): the newest
 * list of it this space accepted (following it) or imported, as it was signed (*text
 * malloc'd); a bundle that list names, kept here (*fd at offset 0). 0, or -ENOENT. */
int osm_channels_served_list(struct osm_daemon *d, const char *channel, char **text, size_t *len);
int osm_channels_served_bundle(struct osm_daemon *d, const char *channel, const char *bundle, int *fd,
                               uint64_t *size);
