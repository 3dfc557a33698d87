/* tap.h: a tiny TAP producer for unit tests (meson runs them with protocol: 'tap'). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

void tap_ok(bool cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void tap_skip(const char *why, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Print the plan and return the exit status (0 if all passed). */
int tap_done(void);

#define TAP_OK(cond, ...) tap_ok((cond), __VA_ARGS__)
#define TAP_EQ_INT(a, b, what) \
        tap_ok((long long) (a) == (long long) (b), "%s (got %lld, want %lld)", what, (long long) (a), (long long) (b))
void tap_eq_str(const char *got, const char *want, const char *what);
#define TAP_EQ_STR(a, b, what) tap_eq_str((a), (b), (what))

/* --- named cases ---
 * A test file lists its cases in a table and hands it to tap_run():
 *
 *     static void test_signing(void) { TAP_OK(…); … }
 *     static void test_nonce_cache(void) { … }
 *     int main(int argc, char **argv) {
 *             static const tap_case cases[] = { TAP_CASE(test_signing), TAP_CASE(test_nonce_cache) };
 *             return tap_run(cases, TAP_N_CASES(cases), argc, argv);
 *     }
 *
 * Each case runs in a child process of its own (state set up before tap_run is
 * inherited), so a case that fails a check, crashes, aborts or hangs is reported by its
 * name and every other case still runs. `test-x NAME…` runs only the cases named.
 * Make secret keys inside the case, not before tap_run: identity.c marks them
 * MADV_WIPEONFORK, so a child would see them zeroed. */
typedef struct tap_case {
        const char *name;
        void (*run)(void);
} tap_case;

#define TAP_CASE(fn) { #fn, fn }
#define TAP_N_CASES(t) (sizeof(t) / sizeof((t)[0]))
#define TAP_CASE_TIMEOUT_S 60   /* a case still running after this is killed and fails */
extern unsigned tap_case_timeout_s;   /* that timeout; a file whose cases take longer sets it */

/* Run the cases (those named in argv[1…], else all), print the plan and a list of the
 * cases that failed; return the exit status. */
int tap_run(const tap_case *cases, size_t n, int argc, char **argv);
