/* log.c: the daemon's logger: one line per message on stderr, "<prio>text", for journald. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "osmose/log.h"

static int max_level = LOG_INFO;

void osm_log_set_level(int level) { max_level = level; }
int osm_log_get_level(void) { return max_level; }

int osm_log_parse_level(const char *s) {
        static const struct { const char *name; int level; } names[] = {
                { "debug", LOG_DEBUG }, { "info", LOG_INFO }, { "notice", LOG_NOTICE },
                { "warning", LOG_WARNING }, { "err", LOG_ERR }, { "error", LOG_ERR },
                { "crit", LOG_CRIT },
        };
        for (size_t i = 0; i < OSM_ARRAY_SIZE(names); i++)
                if (strcasecmp(s, names[i].name) == 0)
                        return names[i].level;
        return -EINVAL;
}

void osm_logv(int prio, const char *fmt, va_list ap) {
        if (prio > max_level)
                return;
        int saved = errno;
        char line[2048];
        int n = snprintf(line, sizeof line, "<%d>", prio);
        vsnprintf(line + n, sizeof line - (size_t) n, fmt, ap);
        /* One write per line so that concurrent writers do not interleave, and control
         * characters from peers cannot forge extra journal lines. */
        size_t len = strlen(line);
        for (size_t i = (size_t) n; i < len; i++)
                if ((unsigned char) line[i] < 0x20)
                        line[i] = ' ';
        line[len++] = '\n';
        (void) !write(STDERR_FILENO, line, len);
        errno = saved;
}

void osm_log(int prio, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        osm_logv(prio, fmt, ap);
        va_end(ap);
}
