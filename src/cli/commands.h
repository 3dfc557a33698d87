/* commands.h: every osmosectl command; each group lives in its own cmd-GROUP.c. */
#pragma once

#include "cli/output.h"

/* cmd-status.c */
int cmd_status(osm_ctl *ctl, int argc, char **argv);
int cmd_reload(osm_ctl *ctl, int argc, char **argv);
int cmd_call(osm_ctl *ctl, int argc, char **argv);

/* cmd-federation.c */
int cmd_federation(osm_ctl *ctl, int argc, char **argv);
int cmd_remote(osm_ctl *ctl, int argc, char **argv);
int cmd_share(osm_ctl *ctl, int argc, char **argv);
int cmd_unshare(osm_ctl *ctl, int argc, char **argv);
int cmd_audit(osm_ctl *ctl, int argc, char **argv);

/* cmd-bundle.c */
int cmd_keygen(osm_ctl *ctl, int argc, char **argv);
int cmd_bundle(osm_ctl *ctl, int argc, char **argv);

/* cmd-workload.c */
int cmd_trust(osm_ctl *ctl, int argc, char **argv);
int cmd_install(osm_ctl *ctl, int argc, char **argv);
int cmd_workloads(osm_ctl *ctl, int argc, char **argv);
int cmd_remove(osm_ctl *ctl, int argc, char **argv);
int cmd_grant(osm_ctl *ctl, int argc, char **argv);
int cmd_revoke(osm_ctl *ctl, int argc, char **argv);
/* cmd-instance.c */
int cmd_run(osm_ctl *ctl, int argc, char **argv);
int cmd_ps(osm_ctl *ctl, int argc, char **argv);
int cmd_logs(osm_ctl *ctl, int argc, char **argv);
int cmd_stop(osm_ctl *ctl, int argc, char **argv);
int cmd_stats(osm_ctl *ctl, int argc, char **argv);
int cmd_enable(osm_ctl *ctl, int argc, char **argv);
int cmd_disable(osm_ctl *ctl, int argc, char **argv);
/* cmd-store.c */
int cmd_put(osm_ctl *ctl, int argc, char **argv);
int cmd_query(osm_ctl *ctl, int argc, char **argv);
int cmd_collections(osm_ctl *ctl, int argc, char **argv);
int cmd_retention(osm_ctl *ctl, int argc, char **argv);
int cmd_delete(osm_ctl *ctl, int argc, char **argv);
/* cmd-object.c */
int cmd_object(osm_ctl *ctl, int argc, char **argv);
/* cmd-discovery.c */
int cmd_peers(osm_ctl *ctl, int argc, char **argv);
int cmd_peer(osm_ctl *ctl, int argc, char **argv);
int cmd_services(osm_ctl *ctl, int argc, char **argv);
/* cmd-tenant.c */
int cmd_tenant(osm_ctl *ctl, int argc, char **argv);
int cmd_usage(osm_ctl *ctl, int argc, char **argv);
/* cmd-channel.c */
int cmd_channel(osm_ctl *ctl, int argc, char **argv);
int cmd_follow(osm_ctl *ctl, int argc, char **argv);
int cmd_unfollow(osm_ctl *ctl, int argc, char **argv);
int cmd_pin(osm_ctl *ctl, int argc, char **argv);
int cmd_unpin(osm_ctl *ctl, int argc, char **argv);
int cmd_upgrade(osm_ctl *ctl, int argc, char **argv);
int cmd_import(osm_ctl *ctl, int argc, char **argv);
int cmd_rollout(osm_ctl *ctl, int argc, char **argv);
/* For 'workloads': add "channel" (the follow) to each workload; the CHANNEL cell. */
void osm_ctl_annotate_channels(osm_ctl *ctl, json_t *workloads);
const char *osm_ctl_channel_cell(json_t *w, char *buf, size_t size);
/* 64 lowercase hex digits: a bundle id where a workload name could stand. */
bool osm_ctl_is_bundle_id(const char *s);
/* cmd-building.c */
int cmd_building(osm_ctl *ctl, int argc, char **argv);
/* cmd-ingest.c */
int cmd_ingest(osm_ctl *ctl, int argc, char **argv);
