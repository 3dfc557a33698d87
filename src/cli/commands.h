/* commands.h: every osmosectl command; each group lives in its own cmd-GROUP.c. */
#pragma once

#include "cli/output.h"

/* cmd-status.c */
int cmd_status(osm_ctl *ctl, int argc, char **argv);
int cmd_reload(osm_ctl *ctl, int argc, char **argv);
int cmd_call(osm_ctl *ctl, int argc, char **argv);
