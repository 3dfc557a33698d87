/* test-wlog.c: instance logs on disk: entries per line and stream, the size bound and
 * rotation, reopening (sequence numbers go on), torn and zero-filled tails, filters. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/workload/wlog.h"
#include "osmose/util.h"
#include "tap.h"

typedef struct acc {
        char text[1 << 16];
        size_t len, n;
        uint64_t first_seq, last_seq;
        int streams[3];
} acc;

static int collect(const wl_log_entry *e, void *ud) {
        acc *a = ud;
        if (!a->n)
                a->first_seq = e->seq;
        a->last_seq = e->seq;
        a->n++;
        a->streams[e->stream]++;
        if (a->len + e->len < sizeof a->text) {
                memcpy(a->text + a->len, e->data, e->len);
                a->len += e->len;
                a->text[a->len] = 0;
        }
        return 0;
}

static uint64_t fsize(int dfd, const char *name) {
        struct stat st;
        return fstatat(dfd, name, &st, 0) == 0 ? (uint64_t) st.st_size : 0;
}

static char dir[] = "/tmp/test-wlog.XXXXXX";
static int dfd = -1;

/* One log through its life: entries, filters, long lines, reopening, torn tails. */
static void test_entries_reopen_torn(void) {
        wl_log *l = NULL;
        TAP_OK(wl_log_open(dfd, "a-1", 64 * 1024, &l) == 0, "open a new log");
        TAP_OK(wl_log_open(dfd, "../x", 1024, &(wl_log *) { NULL }) == -EINVAL, "a name with a slash is refused");
        acc live = { 0 };
        const char *out = "one\ntwo\nthree";
        TAP_OK(wl_log_write(l, WL_LOG_STDOUT, 1000, (const uint8_t *) out, strlen(out), collect, &live) == 0, "write stdout");
        TAP_EQ_INT(live.n, 3, "three entries: two lines and a partial one");
        TAP_OK(wl_log_write(l, WL_LOG_STDERR, 2000, (const uint8_t *) "err\n", 4, NULL, NULL) == 0, "write stderr");
        TAP_OK(wl_log_write(l, 7, 2000, (const uint8_t *) "x", 1, NULL, NULL) == -EINVAL, "an unknown stream is refused");

        acc a = { 0 };
        TAP_OK(wl_log_read(dfd, "a-1", NULL, collect, &a, NULL) == 0, "read it back");
        TAP_EQ_STR(a.text, "one\ntwo\nthreeerr\n", "the bytes as written");
        TAP_EQ_INT(a.streams[WL_LOG_STDOUT], 3, "stdout entries");
        TAP_EQ_INT(a.streams[WL_LOG_STDERR], 1, "stderr entry");

        acc t = { 0 };
        TAP_OK(wl_log_read(dfd, "a-1", &(wl_log_filter) { .tail = 2 }, collect, &t, NULL) == 0 && t.n == 2, "tail 2");
        TAP_EQ_STR(t.text, "threeerr\n", "…the newest two");
        acc s = { 0 };
        wl_log_read(dfd, "a-1", &(wl_log_filter) { .since_us = 1500 }, collect, &s, NULL);
        TAP_EQ_STR(s.text, "err\n", "since: only what came at or after the time");
        acc f = { 0 };
        wl_log_read(dfd, "a-1", &(wl_log_filter) { .after_seq = 3 }, collect, &f, NULL);
        TAP_EQ_INT(f.n, 1, "after_seq skips what a follower has seen");

        /* a long line is split; entries never exceed the maximum */
        _cleanup_free_ uint8_t *big = malloc(WL_LOG_LINE_MAX * 2 + 10);
        memset(big, 'x', WL_LOG_LINE_MAX * 2 + 10);
        acc b = { 0 };
        wl_log_write(l, WL_LOG_STDOUT, 3000, big, WL_LOG_LINE_MAX * 2 + 10, collect, &b);
        TAP_EQ_INT(b.n, 3, "a line of twice the maximum and more makes three entries");

        /* reopen: seq goes on */
        l = wl_log_close(l);
        TAP_OK(wl_log_open(dfd, "a-1", 64 * 1024, &l) == 0, "reopen");
        acc r = { 0 };
        wl_log_write(l, WL_LOG_STDOUT, 4000, (const uint8_t *) "again\n", 6, collect, &r);
        TAP_EQ_INT(r.first_seq, 8, "sequence numbers go on after reopening");
        l = wl_log_close(l);

        /* a torn record and a zero-filled tail are cut off */
        uint64_t before = fsize(dfd, "a-1");
        int fd = openat(dfd, "a-1", O_WRONLY | O_APPEND);
        write(fd, "\x09\0\0\0\0\0\0\0garbage", 15);
        char zeros[100] = { 0 };
        write(fd, zeros, sizeof zeros);
        close(fd);
        acc z = { 0 };
        TAP_OK(wl_log_read(dfd, "a-1", NULL, collect, &z, NULL) == 0 && z.n == 8, "a torn tail is not read as entries");
        TAP_OK(wl_log_open(dfd, "a-1", 64 * 1024, &l) == 0, "reopen after a torn tail");
        TAP_EQ_INT(fsize(dfd, "a-1"), before, "…which cuts it off");
        wl_log_write(l, WL_LOG_STDOUT, 5000, (const uint8_t *) "after\n", 6, NULL, NULL);
        acc z2 = { 0 };
        wl_log_read(dfd, "a-1", NULL, collect, &z2, NULL);
        TAP_OK(z2.n == 9 && strstr(z2.text, "again\nafter\n"), "appends after the cut are read");
        l = wl_log_close(l);
        wl_log_unlink(dfd, "a-1");
}

static void test_bound_and_unlink(void) {
        wl_log *l = NULL;
        /* the bound: both files together stay within cap; the newest are kept */
        uint64_t cap = 20000;
        TAP_OK(wl_log_open(dfd, "b-2", cap, &l) == 0, "open a small log");
        for (int k = 0; k < 5000; k++) {
                char line[32];
                int n = snprintf(line, sizeof line, "line %d\n", k);
                wl_log_write(l, k % 2 ? WL_LOG_STDERR : WL_LOG_STDOUT, 10000 + k, (const uint8_t *) line, (size_t) n,
                             NULL, NULL);
        }
        uint64_t total = fsize(dfd, "b-2") + fsize(dfd, "b-2.1");
        TAP_OK(total <= cap, "both files stay within the bound (%llu <= %llu)", (unsigned long long) total,
               (unsigned long long) cap);
        TAP_OK(total >= cap / 2, "…and keep at least half of it (%llu)", (unsigned long long) total);
        acc k = { 0 };
        uint64_t first = 0;
        wl_log_read(dfd, "b-2", NULL, collect, &k, &first);
        TAP_EQ_INT(k.last_seq, 5000, "the newest entry is kept");
        TAP_OK(first > 1 && first == k.first_seq, "first tells how many were dropped (%llu)", (unsigned long long) first);
        TAP_OK(strstr(k.text, "line 4999\n") != NULL, "…with its text");
        l = wl_log_close(l);

        TAP_OK(wl_log_unlink(dfd, "b-2") == 0, "unlink");
        TAP_OK(wl_log_read(dfd, "b-2", NULL, collect, &k, NULL) == -ENOENT, "…both files are gone");
}

int main(int argc, char **argv) {
        if (!mkdtemp(dir))
                return 1;
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        static const tap_case cases[] = {
                TAP_CASE(test_entries_reopen_torn),
                TAP_CASE(test_bound_and_unlink),
        };
        int r = tap_run(cases, TAP_N_CASES(cases), argc, argv);
        wl_log_unlink(dfd, "a-1");
        wl_log_unlink(dfd, "b-2");
        close(dfd);
        rmdir(dir);
        return r;
}
