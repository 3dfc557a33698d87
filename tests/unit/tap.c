/* tap.c: a tiny TAP producer for unit tests, with named cases run one process each. */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tap.h"

/* The counters live in a shared page so that a case's child counts for the parent, and a
 * child that dies leaves behind how far it got. */
typedef struct tap_counts {
        int tests, failed;
} tap_counts;

static tap_counts local;
unsigned tap_case_timeout_s = TAP_CASE_TIMEOUT_S;
static tap_counts *counts = &local;

void tap_ok(bool cond, const char *fmt, ...) {
        va_list ap;
        counts->tests++;
        if (!cond)
                counts->failed++;
        printf("%sok %d - ", cond ? "" : "not ", counts->tests);
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        putchar('\n');
        fflush(stdout);
}

void tap_skip(const char *why, const char *fmt, ...) {
        va_list ap;
        counts->tests++;
        printf("ok %d - ", counts->tests);
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
        printf("1..%d\n", counts->tests);
        return counts->failed ? 1 : 0;
}

static bool selected(const char *name, int argc, char **argv) {
        if (argc < 2)
                return true;
        for (int i = 1; i < argc; i++)
                if (strcmp(argv[i], name) == 0)
                        return true;
        return false;
}

/* Run one case in a child; false if it failed a check or did not finish. */
static bool run_case(const tap_case *c) {
        int failed_before = counts->failed;
        printf("# case %s\n", c->name);
        fflush(stdout);
        pid_t pid = fork();
        if (pid < 0) {
                tap_ok(false, "case %s: cannot fork", c->name);
                return false;
        }
        if (pid == 0) {
                signal(SIGALRM, SIG_DFL);
                alarm(tap_case_timeout_s);
                c->run();
                fflush(stdout);
                _exit(0);
        }
        int status = 0;
        while (waitpid(pid, &status, 0) < 0)
                ;
        if (WIFSIGNALED(status)) {
                int sig = WTERMSIG(status);
                tap_ok(false, "case %s did not finish: %s%s", c->name, strsignal(sig),
                       sig == SIGALRM ? " (timed out)" : "");
        } else if (WEXITSTATUS(status) != 0)
                tap_ok(false, "case %s exited with status %d", c->name, WEXITSTATUS(status));
        return counts->failed == failed_before;
}

int tap_run(const tap_case *cases, size_t n, int argc, char **argv) {
        counts = mmap(NULL, sizeof(*counts), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (counts == MAP_FAILED) {
                counts = &local;
                tap_ok(false, "cannot map the shared counters");
                return tap_done();
        }
        *counts = local;   /* checks made before tap_run count too */
        size_t ran = 0;
        const char *failed[256];
        size_t n_failed = 0;
        for (size_t i = 0; i < n; i++) {
                if (!selected(cases[i].name, argc, argv))
                        continue;
                ran++;
                if (!run_case(&cases[i]) && n_failed < sizeof(failed) / sizeof(failed[0]))
                        failed[n_failed++] = cases[i].name;
        }
        if (ran == 0)
                tap_ok(false, "no case matches the names given");
        if (n_failed) {
                printf("# failed cases:");
                for (size_t i = 0; i < n_failed; i++)
                        printf(" %s", failed[i]);
                putchar('\n');
        }
        return tap_done();
}
