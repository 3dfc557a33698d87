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
