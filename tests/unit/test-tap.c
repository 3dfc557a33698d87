/* test-tap.c: named cases in tap.c: a case that fails, crashes or hangs is reported by
 * name, and the cases after it still run. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tap.h"

static void case_passes(void) {
        TAP_OK(true, "a check that holds");
}

static void case_fails(void) {
        TAP_OK(false, "a check that does not hold");
        TAP_OK(true, "a check after it in the same case");
}

static void case_crashes(void) {
        TAP_OK(true, "a check before the crash");
        abort();   /* not a SIGSEGV: a sanitizer build would turn that into an exit status */
}

static void case_after(void) {
        TAP_OK(true, "the last case ran");
}

static int inner(int argc, char **argv) {
        static const tap_case cases[] = {
                TAP_CASE(case_passes),
                TAP_CASE(case_fails),
                TAP_CASE(case_crashes),
                TAP_CASE(case_after),
        };
        return tap_run(cases, TAP_N_CASES(cases), argc, argv);
}

/* Run this program's inner cases (with extra as the names to run) and capture stdout. */
static int run_inner(const char *self, const char *extra, char *out, size_t size) {
        char cmd[4200];
        /* Cross-built and run through meson's exe_wrapper (qemu-user), the program cannot
         * exec itself directly: run it through the same wrapper. */
        const char *wrapper = getenv("MESON_EXE_WRAPPER");
        snprintf(cmd, sizeof(cmd), "%s '%s' inner %s 2>/dev/null", wrapper ? wrapper : "", self, extra);
        FILE *p = popen(cmd, "r");
        if (!p)
                return -1;
        size_t n = fread(out, 1, size - 1, p);
        out[n] = 0;
        int st = pclose(p);
        return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int main(int argc, char **argv) {
        if (argc > 1 && strcmp(argv[1], "inner") == 0)
                return inner(argc - 1, argv + 1);
        static char out[16384];
        int st = run_inner(argv[0], "", out, sizeof(out));
        TAP_EQ_INT(st, 1, "a run with a failing case exits 1");
        TAP_OK(strstr(out, "# case case_fails\nnot ok 2 - a check that does not hold\nok 3 - a check after it") != NULL,
               "a failed check is reported and its case goes on");
        TAP_OK(strstr(out, "ok 4 - a check before the crash\nnot ok 5 - case case_crashes ") != NULL,
               "a crashing case is reported by name, after the checks it made");
        TAP_OK(strstr(out, "# case case_after\nok 6 - the last case ran") != NULL, "the case after a crash still runs");
        TAP_OK(strstr(out, "# failed cases: case_fails case_crashes\n") != NULL, "the failed cases are listed by name");
        TAP_OK(strstr(out, "\n1..6\n") != NULL, "the plan counts every check of every case");

        st = run_inner(argv[0], "case_passes case_after", out, sizeof(out));
        TAP_EQ_INT(st, 0, "running only named cases: the others do not run");
        TAP_OK(strstr(out, "case_fails") == NULL && strstr(out, "\n1..2\n") != NULL, "…and the plan counts only theirs");
        st = run_inner(argv[0], "no_such_case", out, sizeof(out));
        TAP_EQ_INT(st, 1, "a name that matches no case fails");
        return tap_done();
}
