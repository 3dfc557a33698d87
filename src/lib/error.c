/* error.c: filling an osm_error or an osm_error_list (see include/osmose/error.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

void osm_error_list_add(osm_error_list *l, const char *fmt, ...) {
        if (!l)
                return;
        l->n++;
        char *line = NULL;
        va_list ap;
        va_start(ap, fmt);
        int k = vasprintf(&line, fmt, ap);
        va_end(ap);
        if (k < 0)
                return;
        if (k > 0 && line[k - 1] == '\n')
                line[k - 1] = 0;   /* one line each: a caller's trailing newline is not part of it */
        char **lines = realloc(l->lines, (l->n_lines + 1) * sizeof *lines);
        if (!lines) {
                free(line);
                return;
        }
        lines[l->n_lines++] = line;
        l->lines = lines;
}

void osm_error_list_print(const osm_error_list *l, FILE *f) {
        for (size_t i = 0; l && i < l->n_lines; i++)
                fprintf(f, "%s\n", l->lines[i]);
}

void osm_error_list_done(osm_error_list *l) {
        if (!l)
                return;
        for (size_t i = 0; i < l->n_lines; i++)
                free(l->lines[i]);
        free(l->lines);
        memset(l, 0, sizeof *l);
}
