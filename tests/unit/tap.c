/* tap.c: a tiny TAP producer for unit tests. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "tap.h"

static int n_tests, n_failed;

void tap_ok(bool cond, const char *fmt, ...) {
        va_list ap;
        n_tests++;
        if (!cond)
                n_failed++;
        printf("%sok %d - ", cond ? "" : "not ", n_tests);
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        putchar('\n');
        fflush(stdout);
}

void tap_skip(const char *why, const char *fmt, ...) {
        va_list ap;
        n_tests++;
        printf("ok %d - ", n_tests);
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        printf(" # SKIP %s\n", why);
        fflush(stdout);
}

void tap_eq_str(const char *got, const char *want, const char *what) {
        tap_ok(got && want && strcmp(got, want) == 0, "%s (got '%s', want '%s')", what, got ? got : "(null)",
               want ? want : "(null)");
}

int tap_done(void) {
        printf("1..%d\n", n_tests);
        return n_failed ? 1 : 0;
}
