/* source.c: where lists and bundles come from — a directory (a USB stick, a mounted
 * share), an http(s) URL, or a paired remote (remote:NAME, fetched over federation on the
 * loop by upgrade.c, then judged here like the others) — and the kept bundles, each
 * verified by its id on arrival. Everything here runs on the thread pool, except
 * ch_source_check, ch_source_remote and the served lists. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "daemon/channels/ch.h"
#include "daemon/fetch.h"
#include "osmose/bundle.h"
#include "osmose/log.h"

const char *ch_source_remote(const char *source) {
        return strncmp(source, CH_REMOTE_PREFIX, strlen(CH_REMOTE_PREFIX)) == 0 ? source + strlen(CH_REMOTE_PREFIX)
                                                                                 : NULL;
}

int ch_source_check(const char *source, osm_error *err) {
        if (!source || !*source)
                return osm_error_set(err, -EINVAL, 0, "source: empty");
        if (strlen(source) > CH_MAX_SOURCE)
                return osm_error_set(err, -EINVAL, 0, "source: longer than %d bytes", CH_MAX_SOURCE);
        const char *remote = ch_source_remote(source);
        if (remote) {
                if (!osm_name_valid(remote, CH_MAX_REMOTE_NAME, false))
                        return osm_error_set(err, -EINVAL, 0, "source: remote:NAME with the name of a paired remote");
                return 0;
        }
        if (strncmp(source, "http://", 7) == 0 || strncmp(source, "https://", 8) == 0) {
                if (!osm_fetch_url_ok(source, CH_MAX_SOURCE))
                        return osm_error_set(err, -EINVAL, 0, "source: a URL without spaces or control characters");
                return 0;
        }
        if (source[0] != '/')
                return osm_error_set(err, -EINVAL, 0, "source: expected an absolute directory or an "
                                  "http(s) URL");
        if (!osm_text_line_ok(source))
                return osm_error_set(err, -EINVAL, 0, "source: control characters in the path");
        return 0;
}

static bool is_url(const char *source) {
        return strncmp(source, "http://", 7) == 0 || strncmp(source, "https://", 8) == 0;
}

static uint64_t max_bundle(osm_channels *c) {
        return c->d->cfg.max_bundle_size ? c->d->cfg.max_bundle_size : OSM_BUNDLE_DEFAULT_MAX_SIZE;
}

/* source/rel as a file: open it (a directory source) or fetch it into a private file
 * (a URL). Returns an fd at offset 0, or -errno with err set (-EFBIG: more than max). */
static int open_from(osm_channels *c, const char *source, const char *rel, uint64_t max, osm_error *err) {
        _cleanup_free_ char *p = NULL;
        if (asprintf(&p, "%s%s%s", source, source[strlen(source) - 1] == '/' ? "" : "/", rel) < 0)
                return osm_error_set(err, -ENOMEM, 0, "out of memory");
        if (!is_url(source)) {
                int fd = open(p, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
                struct stat st;
                if (fd < 0 || fstat(fd, &st) < 0) {
                        int r = osm_error_set(err, -errno, 0, "%s: %m", p);
                        osm_close(fd);
                        return r;
                }
                if (!S_ISREG(st.st_mode)) {
                        close(fd);
                        return osm_error_set(err, -EINVAL, 0, "%s: not a regular file", p);
                }
                if ((uint64_t) st.st_size > max) {
                        close(fd);
                        return osm_error_set(err, -EFBIG, 0, "%s: larger than %llu bytes", p,
                                          (unsigned long long) max - 1);
                }
                return fd;
        }
        int fd = open(c->bundles_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        if (fd < 0)
                return osm_error_set(err, -errno, 0, "a temporary file in %s: %m", c->bundles_dir);
        osm_fetch_opts o = { .max_size = max, .timeout_us = c->d->cfg.fetch_timeout_us, .abort_flag = &c->abort };
        int r = osm_fetch_url(p, fd, &o, err);
        if (r == 0 && lseek(fd, 0, SEEK_SET) < 0)
                r = osm_error_set(err, -errno, 0, "lseek: %m");
        if (r < 0) {
                close(fd);
                return r;
        }
        return fd;
}

int ch_fetch_channel(osm_channels *c, const char *source, const char *channel, osm_channel **out,
                     char **text_out, const char **err_name, osm_error *err) {
        _cleanup_free_ char *rel = NULL;
        if (asprintf(&rel, "%s.channel", channel) < 0) {
                *err_name = OSM_E_INTERNAL_ERROR;
                return osm_error_set(err, -ENOMEM, 0, "out of memory");
        }
        _cleanup_close_ int fd = open_from(c, source, rel, OSM_CHANNEL_MAX_SIZE + 1, err);
        if (fd < 0) {
                *err_name = fd == -EFBIG ? OSM_E_CHANNEL_BAD_CHANNEL : OSM_E_CHANNEL_FETCH_FAILED;
                return -EIO;
        }
        return ch_read_channel(fd, rel, out, text_out, err_name, err);
}

int ch_read_channel(int fd, const char *rel, osm_channel **out, char **text_out, const char **err_name,
                    osm_error *err) {
        _cleanup_free_ char *text = malloc(OSM_CHANNEL_MAX_SIZE + 1);
        size_t len = 0;
        if (!text) {
                *err_name = OSM_E_INTERNAL_ERROR;
                return osm_error_set(err, -ENOMEM, 0, "out of memory");
        }
        for (;;) {
                ssize_t n = read(fd, text + len, OSM_CHANNEL_MAX_SIZE + 1 - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        *err_name = OSM_E_CHANNEL_FETCH_FAILED;
                        return osm_error_set(err, -errno, 0, "reading %s: %m", rel);
                }
                if (n == 0)
                        break;
                len += (size_t) n;
                if (len > OSM_CHANNEL_MAX_SIZE) {
                        *err_name = OSM_E_CHANNEL_BAD_CHANNEL;
                        return osm_error_set(err, -EFBIG, 0, "%s: larger than %u bytes", rel, OSM_CHANNEL_MAX_SIZE);
                }
        }
        osm_error why = {};
        int r = osm_channel_parse(text, len, out, &why);
        if (r < 0) {
                *err_name = r == -ENOMEM ? OSM_E_INTERNAL_ERROR : OSM_E_CHANNEL_BAD_CHANNEL;
                return osm_error_set(err, r, 0, "%s: %s", rel, why.message);
        }
        if (text_out) {
                text[len] = 0;
                *text_out = steal_pointer(&text);
        }
        return 0;
}

int ch_open_kept(osm_channels *c, const char *id) {
        _cleanup_free_ char *p = NULL;
        if (asprintf(&p, "%s/%s", c->bundles_dir, id) < 0)
                return -ENOMEM;
        int fd = open(p, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        return fd < 0 ? -errno : fd;
}

int ch_keep_bundle(osm_channels *c, int src_fd, const char *want_id, uint64_t want_size, char id_out[OSM_HASH_HEX],
                   const char **err_name, osm_error *err) {
        _cleanup_free_ char *tmp = NULL, *final = NULL;
        if (asprintf(&tmp, "%s/.tmp-XXXXXX", c->bundles_dir) < 0) {
                *err_name = OSM_E_INTERNAL_ERROR;
                return osm_error_set(err, -1, 0, "out of memory");
        }
        _cleanup_close_ int fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0) {
                *err_name = OSM_E_INTERNAL_ERROR;
                return osm_error_set(err, -1, 0, "a temporary file in %s: %m", c->bundles_dir);
        }
        osm_bundle_info info;
        osm_error why = {};
        uint64_t max = want_size ? want_size : max_bundle(c);
        int r = osm_bundle_copy(src_fd, fd, max, &info, &why);
        if (r < 0) {
                unlink(tmp);
                if (want_id && r == -EFBIG) {
                        *err_name = OSM_E_CHANNEL_HASH_MISMATCH;
                        return osm_error_set(err, -1, 0, "bundle %s: more than the %llu bytes the list "
                                          "says: not the bundle it names", want_id, (unsigned long long) want_size);
                }
                *err_name = want_id ? OSM_E_CHANNEL_HASH_MISMATCH : OSM_E_CHANNEL_BAD_CHANNEL;
                return osm_error_set(err, -1, 0, "bundle%s%s: %s", want_id ? " " : "", want_id ? want_id : "", why.message);
        }
        osm_hash_hex(info.id, id_out);
        if (want_id && (strcmp(id_out, want_id) != 0 || info.size != want_size)) {
                unlink(tmp);
                *err_name = OSM_E_CHANNEL_HASH_MISMATCH;
                if (strcmp(id_out, want_id) != 0)
                        return osm_error_set(err, -1, 0, "the list names bundle %s, but what arrived is "
                                          "bundle %s: refused", want_id, id_out);
                return osm_error_set(err, -1, 0, "bundle %s: %llu bytes arrived, the list says %llu: refused",
                                  want_id, (unsigned long long) info.size, (unsigned long long) want_size);
        }
        if (asprintf(&final, "%s/%s", c->bundles_dir, id_out) < 0 || fsync(fd) < 0 || rename(tmp, final) < 0) {
                unlink(tmp);
                *err_name = OSM_E_INTERNAL_ERROR;
                return osm_error_set(err, -1, 0, "keeping bundle %s: %m", id_out);
        }
        (void) osm_fsync_parent(final);
        return 0;
}

int ch_fetch_bundle(osm_channels *c, const char *source, const char *id, uint64_t size,
                    const char **err_name, osm_error *err) {
        int fd = ch_open_kept(c, id);
        if (fd >= 0)
                return fd;   /* verified when it was kept */
        if ((fd = ch_fetch_from_peers(c, id, size)) >= 0)
                return fd;   /* from a building member, verified on arrival */
        _cleanup_free_ char *rel = NULL;
        if (asprintf(&rel, "bundles/%s", id) < 0) {
                *err_name = OSM_E_INTERNAL_ERROR;
                osm_error_set(err, -1, 0, "out of memory");
                return -1;
        }
        /* One byte over what the list says is enough to tell it is the wrong file. */
        _cleanup_close_ int src = open_from(c, source, rel, size + 1, err);
        if (src == -EFBIG) {
                *err_name = OSM_E_CHANNEL_HASH_MISMATCH;
                osm_error_set(err, -1, 0, "bundle %s: more than the %llu bytes the list says: not the "
                           "bundle it names", id, (unsigned long long) size);
                return -1;
        }
        if (src < 0) {
                *err_name = OSM_E_CHANNEL_FETCH_FAILED;
                return -1;
        }
        char got[OSM_HASH_HEX];
        if (ch_keep_bundle(c, src, id, size, got, err_name, err) < 0)
                return -1;
        ch_peers_announce(c, id, size);
        fd = ch_open_kept(c, id);
        if (fd < 0) {
                *err_name = OSM_E_INTERNAL_ERROR;
                osm_error_set(err, -1, 0, "opening kept bundle %s: %s", id, strerror(-fd));
        }
        return fd;
}

/* ---- what a remote may be served (share --channel, in federation) ---------------------------- */

void ch_keep_list(osm_channels *c, const char *channel, const char *text) {
        _cleanup_free_ char *dir = NULL, *p = NULL;
        if (asprintf(&dir, "%s/lists", c->dir) < 0 || asprintf(&p, "%s/%s.channel", dir, channel) < 0)
                return;
        int r = osm_mkdir_p(dir, 0700);
        if (r == 0)
                r = osm_write_file_atomic(p, text, strlen(text), 0600);
        if (r < 0)
                log_warning("channels: keeping the list of %s: %s", channel, strerror(-r));
}

/* The newer (by sequence) of the list this space accepted and the one it imported. */
static int served(osm_channels *c, const char *channel, osm_channel **ch_out, char **text_out, size_t *len_out) {
        const char *dirs[] = { "lists", "imported" };
        osm_channel *best = NULL;
        char *best_text = NULL;
        for (size_t i = 0; i < OSM_ARRAY_SIZE(dirs); i++) {
                _cleanup_free_ char *p = NULL, *text = NULL;
                size_t len = 0;
                osm_channel *ch = NULL;
                if (asprintf(&p, "%s/%s/%s.channel", c->dir, dirs[i], channel) < 0 ||
                    osm_read_file(p, OSM_CHANNEL_MAX_SIZE + 1, &text, &len) < 0 ||
                    osm_channel_parse(text, len, &ch, NULL) < 0)
                        continue;
                if (strcmp(ch->name, channel) != 0 || (best && best->sequence >= ch->sequence)) {
                        osm_channel_free(ch);
                        continue;
                }
                osm_channel_free(best);
                free(best_text);
                best = ch;
                best_text = steal_pointer(&text);
                if (len_out)
                        *len_out = len;
        }
        if (!best)
                return -ENOENT;
        if (ch_out)
                *ch_out = best;
        else
                osm_channel_free(best);
        if (text_out)
                *text_out = best_text;
        else
                free(best_text);
        return 0;
}

int osm_channels_served_list(osm_daemon *d, const char *channel, char **text, size_t *len) {
        return d->channels ? served(d->channels, channel, NULL, text, len) : -ENOENT;
}

int osm_channels_served_bundle(osm_daemon *d, const char *channel, const char *bundle, int *fd, uint64_t *size) {
        _cleanup_channel_ osm_channel *ch = NULL;
        if (!d->channels || served(d->channels, channel, &ch, NULL, NULL) < 0 || !osm_channel_find_bundle(ch, bundle))
                return -ENOENT;   /* only what a list shared with the remote names */
        int k = ch_open_kept(d->channels, bundle);
        struct stat st;
        if (k < 0)
                return -ENOENT;
        if (fstat(k, &st) < 0 || !S_ISREG(st.st_mode)) {
                close(k);
                return -ENOENT;
        }
        *fd = k;
        *size = (uint64_t) st.st_size;
        return 0;
}
