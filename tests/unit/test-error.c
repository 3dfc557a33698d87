/* test-error.c: the error convention's two shapes: osm_error and osm_error_list. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "osmose/error.h"
#include "tap.h"

static void test_set(void) {
        osm_error err = {};
        TAP_EQ_INT(osm_error_set(&err, -EINVAL, 3, "field %s: %d", "x", 7), -EINVAL, "set returns the code");
        TAP_EQ_INT(err.code, -EINVAL, "the code is kept");
        TAP_EQ_INT(err.kind, 3, "the kind is kept");
        TAP_EQ_STR(err.message, "field x: 7", "the message is formatted");
        TAP_EQ_INT(osm_error_set(NULL, -ENOENT, 0, "nobody reads this"), -ENOENT, "a NULL err still returns the code");
}

static void test_message(void) {
        osm_error err = {};
        TAP_EQ_STR(osm_error_message(&err, "fallback"), "fallback", "no message: the fallback");
        TAP_EQ_STR(osm_error_message(NULL, "fallback"), "fallback", "NULL: the fallback");
        osm_error_set(&err, -EIO, 0, "disk");
        TAP_EQ_STR(osm_error_message(&err, "fallback"), "disk", "a message: the message");
}

static void test_truncation(void) {
        char *big = malloc(4 * OSM_ERROR_MAX);
        memset(big, 'a', 4 * OSM_ERROR_MAX - 1);
        big[4 * OSM_ERROR_MAX - 1] = 0;
        osm_error err;
        osm_error_set(&err, -E2BIG, 0, "%s", big);
        TAP_EQ_INT(strlen(err.message), OSM_ERROR_MAX - 1, "a long message is cut, NUL-terminated");
        free(big);
}

static void test_list(void) {
        osm_error_list l = {};
        osm_error_list_add(&l, "f:%d: first", 1);
        osm_error_list_add(&l, "f:%d: second\n", 2);
        osm_error_list_add(NULL, "nobody");
        TAP_EQ_INT(l.n, 2, "two problems counted");
        TAP_EQ_INT(l.n_lines, 2, "two lines kept");
        TAP_EQ_STR(l.lines[0], "f:1: first", "the first line");
        TAP_EQ_STR(l.lines[1], "f:2: second", "a trailing newline is dropped");
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);
        osm_error_list_print(&l, f);
        fclose(f);
        TAP_EQ_STR(text, "f:1: first\nf:2: second\n", "printed one per line");
        free(text);
        osm_error_list_done(&l);
        TAP_OK(l.n == 0 && l.n_lines == 0 && !l.lines, "done empties the list");
        osm_error_list_done(&l);   /* twice is harmless */
}

int main(int argc, char **argv) {
        static const tap_case cases[] = { TAP_CASE(test_set), TAP_CASE(test_message), TAP_CASE(test_truncation),
                                          TAP_CASE(test_list) };
        return tap_run(cases, TAP_N_CASES(cases), argc, argv);
}
