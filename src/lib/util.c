/* util.c: small helpers shared by all of Osmose: I/O, files, time, sizes, names. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "osmose/util.h"

int osm_close(int fd) {
        if (fd >= 0)
                close(fd);
        return -1;
}

int osm_write_all(int fd, const void *buf, size_t len) {
        const char *p = buf;
        while (len > 0) {
                ssize_t n = write(fd, p, len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += n;
                len -= (size_t) n;
        }
        return 0;
}

int osm_read_all(int fd, void *buf, size_t len) {
        char *p = buf;
        while (len > 0) {
                ssize_t n = read(fd, p, len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        return -EIO;   /* short file */
                p += n;
                len -= (size_t) n;
        }
        return 0;
}

int osm_read_file(const char *path, size_t max, char **out, size_t *out_len) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        /* Read up to max + 1 bytes: one more than allowed tells that the file is too big. */
        size_t cap = OSM_MIN((size_t) 4096, max + 1), len = 0;
        _cleanup_free_ char *buf = malloc(cap + 1);
        if (!buf)
                return -ENOMEM;
        for (;;) {
                if (len == cap) {
                        if (cap > max)
                                return -EFBIG;
                        cap = OSM_MIN(cap * 2, max + 1);
                        char *nb = realloc(buf, cap + 1);
                        if (!nb)
                                return -ENOMEM;
                        buf = nb;
                }
                ssize_t n = read(fd, buf + len, cap - len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;
                len += (size_t) n;
        }
        buf[len] = 0;
        *out = steal_pointer(&buf);
        if (out_len)
                *out_len = len;
        return 0;
}

int osm_fsync_parent(const char *path) {
        _cleanup_free_ char *dir = strdup(path);
        if (!dir)
                return -ENOMEM;
        char *slash = strrchr(dir, '/');
        if (!slash)
                strcpy(dir, ".");
        else if (slash == dir)
                dir[1] = 0;
        else
                *slash = 0;
        _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return -errno;
        return fsync(dfd) < 0 ? -errno : 0;
}

/* Temp file in the same directory, fsync, rename (with flags for renameat2), fsync the
 * directory: after a crash there is either the old state or the whole new file. */
static int write_file_durably(const char *path, const void *data, size_t len, mode_t mode, unsigned rename_flags) {
        size_t n = strlen(path);
        _cleanup_free_ char *tmp = malloc(n + 16);
        if (!tmp)
                return -ENOMEM;
        snprintf(tmp, n + 16, "%s.tmpXXXXXX", path);
        _cleanup_close_ int fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0)
                return -errno;
        int r = 0;
        if (fchmod(fd, mode) < 0 || (r = osm_write_all(fd, data, len)) < 0 || fsync(fd) < 0 ||
            renameat2(AT_FDCWD, tmp, AT_FDCWD, path, rename_flags) < 0) {
                r = r < 0 ? r : -errno;
                unlink(tmp);
                return r;
        }
        return osm_fsync_parent(path);
}

int osm_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode) {
        return write_file_durably(path, data, len, mode, 0);
}

int osm_write_file_new(const char *path, const void *data, size_t len, mode_t mode) {
        return write_file_durably(path, data, len, mode, RENAME_NOREPLACE);
}

/* Free a NULL-terminated array of strings and the array. NULL is fine. */
void osm_strv_free(char **v) {
        if (!v)
                return;
        for (char **p = v; *p; p++)
                free(*p);
        free(v);
}

int osm_mkdir_p(const char *path, mode_t mode) {
        _cleanup_free_ char *p = strdup(path);
        if (!p)
                return -ENOMEM;
        for (char *s = p + 1; *s; s++) {
                if (*s != '/')
                        continue;
                *s = 0;
                if (mkdir(p, mode) < 0 && errno != EEXIST)
                        return -errno;
                *s = '/';
        }
        if (mkdir(p, mode) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

uint64_t osm_now_mono_us(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

int64_t osm_now_real_us(void) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

const char *osm_format_bytes(uint64_t n, char *buf, size_t size) {
        static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
        double v = (double) n;
        size_t u = 0;
        while (v >= 1024.0 && u + 1 < OSM_ARRAY_SIZE(units)) {
                v /= 1024.0;
                u++;
        }
        if (u == 0)
                snprintf(buf, size, "%" PRIu64 " B", n);
        else
                snprintf(buf, size, "%.1f %s", v, units[u]);
        return buf;
}

int osm_parse_u64(const char *s, uint64_t *out) {
        if (!s || !*s || !isdigit((unsigned char) *s))
                return -EINVAL;
        errno = 0;
        char *end;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno == ERANGE)
                return -ERANGE;
        if (*end)
                return -EINVAL;
        *out = v;
        return 0;
}

int osm_parse_i64(const char *s, int64_t *out) {
        if (!s || !*s)
                return -EINVAL;
        errno = 0;
        char *end;
        long long v = strtoll(s, &end, 10);
        if (errno == ERANGE)
                return -ERANGE;
        if (end == s || *end)
                return -EINVAL;
        *out = v;
        return 0;
}

/* Split "123abc" into number and suffix; the suffix selects a multiplier. */
static int parse_with_suffix(const char *s, const char *const *suffixes, const uint64_t *mult,
                             size_t n, uint64_t *out) {
        if (!s || !isdigit((unsigned char) *s))
                return -EINVAL;
        errno = 0;
        char *end;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno == ERANGE)
                return -ERANGE;
        for (size_t i = 0; i < n; i++) {
                if (strcasecmp(end, suffixes[i]) == 0) {
                        if (mult[i] && v > UINT64_MAX / mult[i])
                                return -ERANGE;
                        *out = v * mult[i];
                        return 0;
                }
        }
        return -EINVAL;
}

int osm_parse_size(const char *s, uint64_t *out) {
        static const char *const suf[] = { "", "b", "k", "kb", "kib", "m", "mb", "mib",
                                           "g", "gb", "gib", "t", "tb", "tib" };
        static const uint64_t mul[] = { 1, 1, 1ull << 10, 1ull << 10, 1ull << 10, 1ull << 20,
                                        1ull << 20, 1ull << 20, 1ull << 30, 1ull << 30,
                                        1ull << 30, 1ull << 40, 1ull << 40, 1ull << 40 };
        return parse_with_suffix(s, suf, mul, OSM_ARRAY_SIZE(suf), out);
}

int osm_parse_duration(const char *s, uint64_t *out_us) {
        static const char *const suf[] = { "", "us", "ms", "s", "m", "min", "h", "d", "w" };
        static const uint64_t mul[] = { 1000000ull, 1ull, 1000ull, 1000000ull, 60000000ull,
                                        60000000ull, 3600000000ull, 86400000000ull,
                                        604800000000ull };
        return parse_with_suffix(s, suf, mul, OSM_ARRAY_SIZE(suf), out_us);
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm):
 * timegm() would do, but it depends on the TZ database being sane and is not in POSIX. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
        y -= m <= 2;
        const int64_t era = (y >= 0 ? y : y - 399) / 400;
        const unsigned yoe = (unsigned) (y - era * 400);
        const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
        const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        return era * 146097 + (int64_t) doe - 719468;
}

/* RFC 3339 has no parser in libc (strptime ignores offsets and fractions), so this
 * small one reads exactly "YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)". */
static int parse_rfc3339(const char *s, int64_t *out) {
        unsigned Y, M, D, h, m, sec;
        int n = 0;
        if (sscanf(s, "%4u-%2u-%2u%*1[Tt ]%2u:%2u:%2u%n", &Y, &M, &D, &h, &m, &sec, &n) != 6 || n != 19)
                return -EINVAL;
        if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60)
                return -EINVAL;
        const char *p = s + n;
        int64_t frac_us = 0;
        if (*p == '.') {
                p++;
                int digits = 0;
                while (isdigit((unsigned char) *p)) {
                        if (digits < 6) {
                                frac_us = frac_us * 10 + (*p - '0');
                                digits++;
                        }
                        p++;
                }
                if (digits == 0)
                        return -EINVAL;
                while (digits++ < 6)
                        frac_us *= 10;
        }
        int64_t offset = 0;
        if (*p == 'Z' || *p == 'z') {
                p++;
        } else if (*p == '+' || *p == '-') {
                unsigned oh, om;
                int k = 0;
                if (sscanf(p + 1, "%2u:%2u%n", &oh, &om, &k) != 2 || k != 5 || oh > 23 || om > 59)
                        return -EINVAL;
                offset = (int64_t) (oh * 60 + om) * 60;
                if (*p == '-')
                        offset = -offset;
                p += 1 + k;
        } else {
                return -EINVAL;
        }
        if (*p)
                return -EINVAL;
        int64_t secs = days_from_civil(Y, M, D) * 86400 + h * 3600 + m * 60 + sec - offset;
        *out = secs * 1000000 + frac_us;
        return 0;
}

/* "1h30m", "90s", "2d12h": one or more NUMBER UNIT parts, each with its unit. */
static int parse_compound_duration(const char *s, uint64_t *out_us) {
        uint64_t total = 0;
        if (!*s)
                return -EINVAL;
        while (*s) {
                size_t digits = strspn(s, "0123456789"), letters = strspn(s + digits, "abcdefghijklmnopqrstuvwxyz");
                char part[32];
                uint64_t v;
                if (digits == 0 || letters == 0 || digits + letters >= sizeof part)
                        return -EINVAL;
                memcpy(part, s, digits + letters);
                part[digits + letters] = 0;
                if (osm_parse_duration(part, &v) < 0 || v > INT64_MAX / 4 - total)
                        return -EINVAL;
                total += v;
                s += digits + letters;
        }
        *out_us = total;
        return 0;
}

int osm_parse_time(const char *s, int64_t now_us, int64_t *out_us) {
        static const int64_t day_us = INT64_C(86400000000);
        if (!s || !*s)
                return -EINVAL;
        if (strcmp(s, "now") == 0) {
                *out_us = now_us;
                return 0;
        }
        if (strcmp(s, "today") == 0 || strcmp(s, "yesterday") == 0) {
                int64_t midnight = now_us - ((now_us % day_us) + day_us) % day_us;
                *out_us = s[0] == 't' ? midnight : midnight - day_us;
                return 0;
        }
        /* A relative time; a bare duration ("1h", as 'query --since 1h' reads) is in the past. */
        bool sign = s[0] == '-' || s[0] == '+';
        uint64_t d;
        if (isdigit((unsigned char) s[sign]) && strpbrk(s + sign, "abcdefghijklmnopqrstuvwxyz") &&
            !strchr(s + sign, '-') && !strchr(s + sign, ':')) {
                if (parse_compound_duration(s + sign, &d) < 0)
                        return -EINVAL;
                *out_us = s[0] == '+' ? now_us + (int64_t) d : now_us - (int64_t) d;
                return 0;
        }
        if (sign)
                return -EINVAL;
        /* a date alone: its midnight, UTC */
        unsigned Y, M, D;
        int n = 0;
        if (strlen(s) == 10 && sscanf(s, "%4u-%2u-%2u%n", &Y, &M, &D, &n) == 3 && n == 10) {
                if (M < 1 || M > 12 || D < 1 || D > 31)
                        return -EINVAL;
                *out_us = days_from_civil(Y, M, D) * day_us;
                return 0;
        }
        if (strchr(s, '-') == NULL) {
                int64_t v;
                if (osm_parse_i64(s, &v) < 0)
                        return -EINVAL;
                *out_us = v;
                return 0;
        }
        return parse_rfc3339(s, out_us);
}

const char *osm_format_time(int64_t us, char *buf, size_t size) {
        time_t secs = (time_t) (us / 1000000);
        long frac = (long) (us % 1000000);
        if (frac < 0) {
                frac += 1000000;
                secs--;
        }
        struct tm tm;
        if (!gmtime_r(&secs, &tm)) {
                snprintf(buf, size, "@%lld", (long long) us);
                return buf;
        }
        char base[32];
        strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(buf, size, "%s.%06ldZ", base, frac);
        return buf;
}

bool osm_name_valid(const char *name, size_t max, bool allow_slash) {
        if (!name)
                return false;
        size_t len = strlen(name);
        if (len == 0 || len > max)
                return false;
        const char *seg = name;
        for (const char *p = name;; p++) {
                if (*p == '/' || *p == 0) {
                        size_t sl = (size_t) (p - seg);
                        if (sl == 0 || (sl == 1 && seg[0] == '.') || (sl == 2 && seg[0] == '.' && seg[1] == '.'))
                                return false;
                        if (*p == 0)
                                return true;
                        if (!allow_slash)
                                return false;
                        seg = p + 1;
                        continue;
                }
                unsigned char c = (unsigned char) *p;
                if (!(isalnum(c) || c == '.' || c == '_' || c == '-'))
                        return false;
        }
}

bool osm_text_line_ok(const char *s) {
        for (const unsigned char *p = (const unsigned char *) s; *p; p++)
                if (*p < 0x20 || *p == 0x7f)
                        return false;
        return true;
}

int osm_window_parse(const char *s, int *start_min, int *end_min) {
        int a = -1, b = -1;
        if (s && *s) {
                unsigned h1, m1, h2, m2;
                int n = 0;
                if (sscanf(s, "%2u:%2u-%2u:%2u%n", &h1, &m1, &h2, &m2, &n) != 4 || s[n] || h1 > 23 || h2 > 24 ||
                    m1 > 59 || m2 > 59 || (h2 == 24 && m2) || strlen(s) != 11)
                        return -EINVAL;
                a = (int) (h1 * 60 + m1);
                b = (int) (h2 * 60 + m2);
                if (a == b)
                        return -EINVAL;
        }
        if (start_min)
                *start_min = a;
        if (end_min)
                *end_min = b;
        return 0;
}

bool osm_window_contains(int start_min, int end_min, int m) {
        if (start_min < 0)
                return true;
        if (start_min < end_min)
                return m >= start_min && m < end_min;
        return m >= start_min || m < end_min;   /* wraps midnight */
}
