/* error.c: filling an osm_error (see include/osmose/error.h for the convention). */
#include <stdarg.h>
#include <stdio.h>

#include "osmose/error.h"

int osm_error_set(osm_error *err, int code, int kind, const char *fmt, ...) {
        if (!err)
                return code;
        err->code = code;
        err->kind = kind;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof(err->message), fmt, ap);
        va_end(ap);
        return code;
}
