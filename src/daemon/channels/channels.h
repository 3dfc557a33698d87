/* channels.h: the channels subsystem (d->channels): workloads that follow signed lists of
 * versions, pins, upgrades with a health check and rollback, kept bundles. */
#pragma once

struct osm_channels;
struct osm_subsystem;
extern const struct osm_subsystem osm_channels_subsystem;
