/* fetch.c: HTTP(S) GET into a file with libcurl (see fetch.h). libcurl is opened, and its
 * global state initialised, on the first fetch (dl-curl.c). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "build-config.h"
#include "daemon/dl-curl.h"
#include "daemon/fetch.h"
#include "osmose/util.h"

#define FETCH_CONNECT_TIMEOUT_S 15

typedef struct sink {
        int fd;
        uint64_t written, max;
        int error;
        const int *abort_flag;
} sink;

static size_t on_data(char *data, size_t size, size_t nmemb, void *userdata) {
        sink *s = userdata;
        size_t n = size * nmemb;
        if (s->written + n > s->max) {
                s->error = -EFBIG;
                return 0;
        }
        int r = osm_write_all(s->fd, data, n);
        if (r < 0) {
                s->error = r;
                return 0;
        }
        s->written += n;
        return n;
}

/* Abort when asked (curl calls this about once a second and on every chunk). */
static int on_progress(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow) {
        sink *s = userdata;
        if (s->abort_flag && __atomic_load_n(s->abort_flag, __ATOMIC_RELAXED)) {
                s->error = -ECANCELED;
                return 1;
        }
        return 0;
}

int osm_fetch_url_ok(const char *u, size_t max) {
        if (!u || strlen(u) > max || (strncmp(u, "http://", 7) != 0 && strncmp(u, "https://", 8) != 0))
                return 0;
        for (const unsigned char *p = (const unsigned char *) u; *p; p++)
                if (*p <= 0x20 || *p == 0x7f)
                        return 0;
        return 1;
}

int osm_fetch_url(const char *url, int fd, const osm_fetch_opts *o, osm_error *err) {
        int r = osm_dl_curl(err);
        if (r < 0)
                return r;
        CURL *c = sym_curl_easy_init();
        if (!c)
                return osm_error_set(err, -ENOMEM, 0, "curl_easy_init failed");
        char curl_err[CURL_ERROR_SIZE] = "";
        sink s = { .fd = fd, .max = o->max_size, .abort_flag = o->abort_flag };
        sym_curl_easy_setopt(c, CURLOPT_URL, url);
        sym_curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
        sym_curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
        sym_curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
        sym_curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
        sym_curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        sym_curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
        sym_curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long) OSM_MAX(o->timeout_us / 1000, 1000u));
        sym_curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, (long) FETCH_CONNECT_TIMEOUT_S);
        sym_curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t) o->max_size);
        sym_curl_easy_setopt(c, CURLOPT_USERAGENT, "osmosed/" OSM_VERSION);
        sym_curl_easy_setopt(c, CURLOPT_ERRORBUFFER, curl_err);
        sym_curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
        sym_curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
        sym_curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
        sym_curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
        sym_curl_easy_setopt(c, CURLOPT_XFERINFODATA, &s);
        CURLcode rc = sym_curl_easy_perform(c);
        sym_curl_easy_cleanup(c);
        if (o->bytes)
                *o->bytes = s.written;
        if (rc == CURLE_OK)
                return 0;
        if (s.error == -EFBIG || rc == CURLE_FILESIZE_EXCEEDED)
                return osm_error_set(err, -EFBIG, 0, "%s: larger than the limit of %llu bytes", url,
                                     (unsigned long long) o->max_size);
        if (s.error == -ECANCELED)
                return osm_error_set(err, -ECANCELED, 0, "%s: cancelled", url);
        return osm_error_set(err, s.error < 0 ? s.error : -EIO, 0, "%s: %s", url,
                             curl_err[0] ? curl_err : sym_curl_easy_strerror(rc));
}
