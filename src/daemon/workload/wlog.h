/* wlog.h: an instance's log on disk: timestamped stdout and stderr lines in two rotating
 * files (NAME and NAME.1 in the logs directory), kept across daemon restarts. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define WL_LOG_LINE_MAX 4096      /* a longer line is kept as several entries */

enum { WL_LOG_STDOUT = 1, WL_LOG_STDERR = 2 };

/* One entry: a line with its newline, or a part of a line (the rest of a read that did
 * not end with a newline, or a piece of a line longer than WL_LOG_LINE_MAX). The bytes
 * are exactly what the program wrote; joining the data of all entries gives its output. */
typedef struct wl_log_entry {
        uint64_t seq;             /* 1, 2, 3 … per instance, across restarts of the daemon */
        int64_t time_us;          /* when the daemon read it, µs since the epoch */
        int stream;               /* WL_LOG_STDOUT or WL_LOG_STDERR */
        const uint8_t *data;      /* borrowed for the callback's duration */
        size_t len;               /* 1 … WL_LOG_LINE_MAX */
} wl_log_entry;

/* Called for each entry; a non-zero return stops the walk and is returned. */
typedef int (*wl_log_fn)(const wl_log_entry *e, void *userdata);

typedef struct wl_log wl_log;

/* Open (or create) the log NAME under dirfd for appending. cap bounds both files
 * together: once the current one would pass cap/2 it becomes NAME.1 (replacing the
 * previous NAME.1). A torn record at the end (a crash in mid-write) is cut off.
 * Returns 0 or -errno. */
int wl_log_open(int dirfd, const char *name, uint64_t cap, wl_log **out);
wl_log *wl_log_close(wl_log *l);   /* NULL-safe; returns NULL */

/* Append what a program wrote to stream (n bytes read at time_us), split into entries;
 * fn (may be NULL) sees each entry once it is written. Returns 0, or -errno if the
 * write failed (the bytes are then lost; the log stays readable). */
int wl_log_write(wl_log *l, int stream, int64_t time_us, const uint8_t *data, size_t n,
                 wl_log_fn fn, void *userdata);

/* What to read: entries with seq > after_seq and time_us >= since_us (0: all), then only
 * the last tail of them (0: all). */
typedef struct wl_log_filter {
        uint64_t after_seq;
        int64_t since_us;
        size_t tail;
} wl_log_filter;

/* Walk the entries of log NAME under dirfd, oldest first (NAME.1, then NAME). *first
 * (may be NULL) gets the seq of the oldest entry still kept (0 when there is none), so
 * first - 1 entries were dropped by rotation. Returns 0, what fn returned, or -errno
 * (-ENOENT: there is no such log). */
int wl_log_read(int dirfd, const char *name, const wl_log_filter *f, wl_log_fn fn, void *userdata,
                uint64_t *first);

/* Delete log NAME (both files). 0 or -errno. */
int wl_log_unlink(int dirfd, const char *name);
