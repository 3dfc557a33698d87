/* util.h: cleanup attributes, ownership helpers and small utilities shared by all of Osmose. */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#define OSM_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define OSM_MIN(a, b) ((a) < (b) ? (a) : (b))
#define OSM_MAX(a, b) ((a) > (b) ? (a) : (b))
#define OSM_UNUSED __attribute__((unused))
#define OSM_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define OSM_NORETURN __attribute__((noreturn))

/* Hand ownership of *p to the caller: returns it and leaves NULL behind. */
#define steal_pointer(pp) \
        ({ __typeof__(*(pp)) _tmp = *(pp); *(pp) = NULL; _tmp; })
/* The same for file descriptors: returns the fd and leaves -1 behind. */
static inline int steal_fd(int *fd) { int r = *fd; *fd = -1; return r; }

static inline void osm_freep(void *p) { free(*(void **) p); }
static inline void osm_closep(int *fd) {
        if (*fd >= 0) {
                int saved = errno;
                close(*fd);
                errno = saved;
        }
}

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _cleanup_free_ _cleanup_(osm_freep)
#define _cleanup_close_ _cleanup_(osm_closep)

/* Define a cleanup helper for a type whose destructor takes the pointer. */
#define OSM_DEFINE_CLEANUP(type, func)                       \
        static inline void func##p(type *p) {                \
                if (*p)                                      \
                        func(*p);                            \
        }

/* Close fd if >= 0; always returns -1 so callers can write fd = osm_close(fd). */
int osm_close(int fd);

/* Read/write all of a buffer, retrying on EINTR; return 0 or -errno. */
int osm_write_all(int fd, const void *buf, size_t len);
int osm_read_all(int fd, void *buf, size_t len);

/* Read a whole (small) file up to max bytes; *out is NUL-terminated, owned by caller. */
int osm_read_file(const char *path, size_t max, char **out, size_t *out_len);

/* Atomically replace path with data: temp file in the same directory, fsync, rename,
 * fsync the directory. The file gets mode `mode`. Returns 0 or -errno. */
int osm_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode);

/* fsync the directory that holds path (after creating or renaming path). 0 or -errno. */
int osm_fsync_parent(const char *path);

/* The same, but never replacing an existing path: -EEXIST if there is one. */
int osm_write_file_new(const char *path, const void *data, size_t len, mode_t mode);

/* Free a NULL-terminated array of strings and the array. NULL is fine. */
void osm_strv_free(char **v);

/* mkdir -p with mode for the components it creates. Returns 0 or -errno. */
int osm_mkdir_p(const char *path, mode_t mode);

/* Monotonic and real time in microseconds. */
uint64_t osm_now_mono_us(void);
int64_t osm_now_real_us(void);

/* Format n bytes as "12.3 MiB" into buf (>= 16 bytes). Returns buf. */
const char *osm_format_bytes(uint64_t n, char *buf, size_t size);

/* Parse "10", "4k", "64M", "1G" (binary units) into bytes. Returns 0 or -EINVAL/-ERANGE. */
int osm_parse_size(const char *s, uint64_t *out);

/* Parse a duration "30", "30s", "5m", "2h", "7d", "1500ms" into microseconds.
 * A bare number means seconds. Returns 0 or -EINVAL/-ERANGE. */
int osm_parse_duration(const char *s, uint64_t *out_us);

/* Parse a point in time: RFC 3339 ("2026-11-21T10:00:00Z", fractional seconds and
 * offsets allowed), a date "2026-11-21" (its midnight, UTC), a time relative to now_us
 * ("-1h30m" and "1h30m" alike mean that long ago, "+2h" that long ahead; units us, ms, s,
 * m, min, h, d, w), "now", "today" and "yesterday" (midnight, UTC), or an integer number
 * of microseconds since the epoch. Returns 0 or -EINVAL. */
int osm_parse_time(const char *s, int64_t now_us, int64_t *out_us);

/* Format microseconds since the epoch as RFC 3339 UTC with microseconds. */
const char *osm_format_time(int64_t us, char *buf, size_t size);

/* strtoull/strtoll with full validation. Returns 0 or -EINVAL/-ERANGE. */
int osm_parse_u64(const char *s, uint64_t *out);
int osm_parse_i64(const char *s, int64_t *out);

/* Is name a valid collection/workload style name: 1..max bytes of [A-Za-z0-9._-]
 * segments separated by '/', no empty, "." or ".." segment, no leading '/'. */
bool osm_name_valid(const char *name, size_t max, bool allow_slash);

/* A daily window "HH:MM-HH:MM" (may wrap midnight: "23:00-01:00") as minutes of the day;
 * NULL or "" is the whole day (both -1). Returns 0 or -EINVAL. */
int osm_window_parse(const char *s, int *start_min, int *end_min);
/* Is minute m of the day (0..1439) inside the window [start, end)? Whole day if start < 0. */
bool osm_window_contains(int start_min, int end_min, int m);

/* One line of text: no control characters (UTF-8 is fine; the caller checks validity). */
bool osm_text_line_ok(const char *s);

