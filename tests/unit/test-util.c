/* test-util.c: sizes, durations, times, names, atomic files. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "osmose/util.h"
#include "tap.h"

static void test_sizes_and_durations(void) {
        uint64_t v;
        TAP_OK(osm_parse_size("64M", &v) == 0 && v == 64u << 20, "size 64M");
        TAP_OK(osm_parse_size("1g", &v) == 0 && v == 1u << 30, "size 1g");
        TAP_OK(osm_parse_size("512", &v) == 0 && v == 512, "size bare number");
        TAP_OK(osm_parse_size("12Q", &v) == -EINVAL, "size bad suffix refused");
        TAP_OK(osm_parse_size("-1", &v) == -EINVAL, "negative size refused");
        TAP_OK(osm_parse_size("99999999999999999999", &v) == -ERANGE, "huge size refused");
        TAP_OK(osm_parse_size("17179869184G", &v) == -ERANGE, "size overflow after multiplying refused");
        TAP_OK(osm_parse_duration("7d", &v) == 0 && v == 7ull * 86400 * 1000000, "duration 7d");
        TAP_OK(osm_parse_duration("1500ms", &v) == 0 && v == 1500000, "duration 1500ms");
        TAP_OK(osm_parse_duration("30", &v) == 0 && v == 30000000, "bare duration is seconds");
        TAP_OK(osm_parse_duration("h", &v) < 0, "duration without number refused");
}

static void test_times(void) {
        int64_t t, now = 1700000000000000;
        TAP_OK(osm_parse_time("2026-11-21T10:00:00Z", now, &t) == 0 && t == 1795255200000000LL, "RFC 3339 UTC");
        TAP_OK(osm_parse_time("2026-11-21T11:00:00+01:00", now, &t) == 0 && t == 1795255200000000LL, "RFC 3339 offset");
        TAP_OK(osm_parse_time("2026-11-21T10:00:00.25Z", now, &t) == 0 && t == 1795255200250000LL, "RFC 3339 fraction");
        TAP_OK(osm_parse_time("-1h", now, &t) == 0 && t == now - 3600000000LL, "relative -1h");
        TAP_OK(osm_parse_time("now", now, &t) == 0 && t == now, "now");
        TAP_OK(osm_parse_time("1795255200000000", now, &t) == 0 && t == 1795255200000000LL, "epoch microseconds");
        TAP_OK(osm_parse_time("-1h30m", now, &t) == 0 && t == now - 5400000000LL, "relative -1h30m");
        TAP_OK(osm_parse_time("1h30m", now, &t) == 0 && t == now - 5400000000LL, "bare 1h30m means ago too");
        TAP_OK(osm_parse_time("+2d", now, &t) == 0 && t == now + 172800000000LL, "+2d is ahead");
        TAP_OK(osm_parse_time("1h30", now, &t) < 0, "every part of a relative time has its unit");
        TAP_OK(osm_parse_time("-1x", now, &t) < 0, "unknown unit refused");
        TAP_OK(osm_parse_time("-", now, &t) < 0, "a lone sign refused");
        /* now = 2023-11-14T22:13:20Z */
        TAP_OK(osm_parse_time("today", now, &t) == 0 && t == 1699920000000000LL, "today is midnight UTC");
        TAP_OK(osm_parse_time("yesterday", now, &t) == 0 && t == 1699833600000000LL, "yesterday is the midnight before");
        TAP_OK(osm_parse_time("2026-12-02", now, &t) == 0 && t == 1796169600000000LL, "a date is its midnight UTC");
        TAP_OK(osm_parse_time("2026-02-30x", now, &t) < 0, "a date with junk refused");
        TAP_OK(osm_parse_time("2026-13-01", now, &t) < 0, "a date in month 13 refused");
        TAP_OK(osm_parse_time("2026-13-01T00:00:00Z", now, &t) < 0, "month 13 refused");
        TAP_OK(osm_parse_time("2026-11-21T10:00:00", now, &t) < 0, "time without zone refused");
        TAP_OK(osm_parse_time("2026-11-21T10:00:00Zjunk", now, &t) < 0, "trailing junk refused");
        char buf[64];
        TAP_EQ_STR(osm_format_time(1795255200250000LL, buf, sizeof buf), "2026-11-21T10:00:00.250000Z", "format time");
        TAP_OK(osm_parse_time(buf, now, &t) == 0 && t == 1795255200250000LL, "format/parse round trip");
}

static void test_names(void) {
        TAP_OK(osm_name_valid("sensors/temp", 128, true), "collection name with slash");
        TAP_OK(!osm_name_valid("sensors/temp", 128, false), "slash refused when not allowed");
        TAP_OK(!osm_name_valid("sensors/../secret", 128, true), "'..' segment refused");
        TAP_OK(!osm_name_valid("/abs", 128, true), "leading slash refused");
        TAP_OK(!osm_name_valid("a//b", 128, true), "empty segment refused");
        TAP_OK(!osm_name_valid("a\nb", 128, true), "control character refused");
        TAP_OK(!osm_name_valid("abcdef", 5, true), "over-long name refused");
        TAP_OK(!osm_name_valid("", 5, true), "empty name refused");
}

static void test_files(void) {
        char dir[] = "/tmp/osm-test-XXXXXX";
        TAP_OK(mkdtemp(dir) != NULL, "temp dir");
        char path[256];
        snprintf(path, sizeof path, "%s/a/b/c", dir);
        TAP_OK(osm_mkdir_p(path, 0700) == 0, "mkdir -p");
        snprintf(path, sizeof path, "%s/a/file", dir);
        TAP_OK(osm_write_file_atomic(path, "hello", 5, 0600) == 0, "atomic write");
        char *data = NULL;
        size_t len = 0;
        TAP_OK(osm_read_file(path, 100, &data, &len) == 0 && len == 5 && memcmp(data, "hello", 5) == 0, "read back");
        free(data);
        struct stat st;
        TAP_OK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600, "atomic write sets the mode");
        TAP_OK(osm_read_file(path, 3, &data, &len) == -EFBIG, "read_file enforces its limit");
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        TAP_OK(system(cmd) == 0, "cleanup");
}

static void test_windows(void) {
        int a, b;
        TAP_EQ_INT(osm_window_parse("02:00-04:00", &a, &b), 0, "window 02:00-04:00 parses");
        TAP_OK(a == 120 && b == 240, "…as minutes 120-240");
        TAP_OK(osm_window_contains(a, b, 130) && !osm_window_contains(a, b, 240) && !osm_window_contains(a, b, 60),
               "…contains 02:10, not 04:00 nor 01:00");
        TAP_EQ_INT(osm_window_parse("23:00-01:00", &a, &b), 0, "a window across midnight parses");
        TAP_OK(osm_window_contains(a, b, 23 * 60 + 30) && osm_window_contains(a, b, 30) &&
               !osm_window_contains(a, b, 12 * 60), "…contains 23:30 and 00:30, not noon");
        TAP_EQ_INT(osm_window_parse("", &a, &b), 0, "an empty window is the whole day");
        TAP_OK(a < 0 && osm_window_contains(a, b, 700), "…and contains everything");
        TAP_EQ_INT(osm_window_parse("00:00-24:00", &a, &b), 0, "00:00-24:00 parses");
        const char *bad[] = { "2:00-4:00", "02:00-02:00", "25:00-01:00", "02:60-03:00", "02:00-04:00x",
                              "02:00 04:00", "24:30-01:00", "02:00-24:01" };
        for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
                int r = osm_window_parse(bad[k], &a, &b);
                TAP_OK(r == -EINVAL, "window \"%s\" is refused", bad[k]);
        }
}

int main(int argc, char **argv) {
        static const tap_case cases[] = {
                TAP_CASE(test_sizes_and_durations),
                TAP_CASE(test_times),
                TAP_CASE(test_names),
                TAP_CASE(test_files),
                TAP_CASE(test_windows),
        };
        return tap_run(cases, TAP_N_CASES(cases), argc, argv);
}
