/* fuzz-wlog.c: an instance's log file as the daemon finds it on disk after a crash, a power
 * cut or a hostile edit: reading it (all, a tail, since a time), reopening it for appending
 * (which cuts off a torn tail) and appending to it must never crash or read out of bounds. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/workload/wlog.h"

static int count(const wl_log_entry *e, void *userdata) {
        size_t *n = userdata;
        /* touch every byte the entry claims, so that ASan sees an overrun */
        volatile uint8_t sum = 0;
        for (size_t k = 0; k < e->len; k++)
                sum += e->data[k];
        (void) sum;
        (*n)++;
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static int dfd = -1;
        if (dfd < 0) {
                char dir[] = "/tmp/fuzz-wlog.XXXXXX";
                if (!mkdtemp(dir))
                        return 0;
                dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (dfd < 0)
                        return 0;
        }
        /* the first half is the current file, the second the rotated one */
        size_t half = size / 2;
        const char *names[] = { "x", "x.1" };
        const uint8_t *parts[] = { data, data + half };
        size_t lens[] = { half, size - half };
        for (int k = 0; k < 2; k++) {
                int fd = openat(dfd, names[k], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
                if (fd < 0)
                        return 0;
                if (write(fd, parts[k], lens[k]) < 0) {
                        close(fd);
                        return 0;
                }
                close(fd);
        }
        size_t n = 0;
        uint64_t first = 0;
        wl_log_read(dfd, "x", NULL, count, &n, &first);
        wl_log_read(dfd, "x", &(wl_log_filter) { .tail = 3 }, count, &n, NULL);
        wl_log_read(dfd, "x", &(wl_log_filter) { .since_us = size ? (int64_t) data[0] << 40 : 0, .after_seq = 2 },
                    count, &n, NULL);
        wl_log *l = NULL;
        if (wl_log_open(dfd, "x", 4096 + size, &l) == 0) {
                wl_log_write(l, WL_LOG_STDERR, 1, data, size > 9000 ? 9000 : size, count, &n);
                wl_log_close(l);
                wl_log_read(dfd, "x", NULL, count, &n, NULL);
        }
        wl_log_unlink(dfd, "x");
        return 0;
}
