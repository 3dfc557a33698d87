/* tap.h: a tiny TAP producer for unit tests (meson runs them with protocol: 'tap'). */
#pragma once

#include <stdbool.h>

void tap_ok(bool cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void tap_skip(const char *why, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Print the plan and return the exit status (0 if all passed). */
int tap_done(void);

#define TAP_OK(cond, ...) tap_ok((cond), __VA_ARGS__)
#define TAP_EQ_INT(a, b, what) \
        tap_ok((long long) (a) == (long long) (b), "%s (got %lld, want %lld)", what, (long long) (a), (long long) (b))
void tap_eq_str(const char *got, const char *want, const char *what);
#define TAP_EQ_STR(a, b, what) tap_eq_str((a), (b), (what))
