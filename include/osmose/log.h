/* log.h: the daemon's logger: stderr lines with syslog priority prefixes ("<6>…") for journald. */
#pragma once

#include <stdarg.h>
#include <syslog.h>

#include "osmose/util.h"

/* Messages above this priority (numerically greater) are dropped. Default LOG_INFO. */
void osm_log_set_level(int level);
int osm_log_get_level(void);
/* Parse "debug", "info", "notice", "warning", "err"/"error", "crit". Returns level or -EINVAL. */
int osm_log_parse_level(const char *s);

void osm_log(int prio, const char *fmt, ...) OSM_PRINTF(2, 3);
void osm_logv(int prio, const char *fmt, va_list ap) OSM_PRINTF(2, 0);

#define log_debug(...)   osm_log(LOG_DEBUG, __VA_ARGS__)
#define log_info(...)    osm_log(LOG_INFO, __VA_ARGS__)
#define log_notice(...)  osm_log(LOG_NOTICE, __VA_ARGS__)
#define log_warning(...) osm_log(LOG_WARNING, __VA_ARGS__)
#define log_error(...)   osm_log(LOG_ERR, __VA_ARGS__)
