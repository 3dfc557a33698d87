/* iface-channels.c: the io.osmose.Channel methods: Follow, Unfollow, Pin, Unpin, List,
 * Upgrade, Import (a USB stick), Run (a kept bundle by id). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "daemon/channels/ch.h"
#include "daemon/workload/workloads.h"
#include "osmose/log.h"
#include "osmose/manifest.h"

#define IMPORT_MAX_CHANNELS 256
#define IMPORT_MAX_BUNDLES  4096

static bool name_ok(osm_call *call, const char *name) {
        if (osm_name_valid(name, OSM_MANIFEST_MAX_NAME, false))
                return true;
        osm_call_invalid_param(call, "name");   /* a workload name: 1-48 of A-Z a-z 0-9 . _ - */
        return false;
}

static void busy(osm_call *call, int r) {
        if (r == -EBUSY)
                osm_call_errorf(call, OSM_E_BUSY, "a check or upgrade is running; try again when it is done");
        else
                osm_call_errorf(call, OSM_E_INTERNAL_ERROR, "%s", strerror(-r));
}

/* Follow NAME SOURCE: SOURCE is a directory or base URL holding NAME.channel, or names a
 * .channel file itself (then the channel is that file's name). */
static void method_follow(osm_call *call, json_t *params, void *userdata) {
        osm_channels *c = userdata;
        const char *name = json_string_value(json_object_get(params, "name"));
        const char *source = json_string_value(json_object_get(params, "source"));
        if (!name_ok(call, name))
                return;
        if (ch_source_check(source, NULL) < 0) {
                osm_call_invalid_param(call, "source");
                return;
        }
        _cleanup_free_ char *base = strdup(source), *channel = NULL;
        if (!base) {
                osm_call_errorf(call, OSM_E_INTERNAL_ERROR, "out of memory");
                return;
        }
        size_t len = strlen(base);
        while (len > 1 && base[len - 1] == '/')
                base[--len] = 0;
        const char *suffix = ".channel";
        if (len > strlen(suffix) && strcmp(base + len - strlen(suffix), suffix) == 0) {
                char *slash = strrchr(base, '/');
                base[len - strlen(suffix)] = 0;
                channel = strdup(slash + 1);
                *slash = 0;
                if (!*base || (strchr(base, ':') && strlen(base) <= strlen("https://"))) {
                        osm_call_invalid_param(call, "source");   /* no directory before the name */
                        return;
                }
        } else
                channel = strdup(name);
        if (!channel || !osm_name_valid(channel, OSM_CHANNEL_MAX_NAME, false)) {
                osm_call_invalid_param(call, "source");   /* the channel's name is not valid */
                return;
        }
        if (!ch_find(c, name)) {
                size_t n = 0;
                for (ch_follow *f = c->follows; f; f = f->next)
                        n++;
                if (n >= CH_MAX_FOLLOWS) {
                        osm_call_errorf(call, OSM_E_BUSY, "already %d followed workloads", CH_MAX_FOLLOWS);
                        return;
                }
        }
        if (c->batch) {
                busy(call, -EBUSY);
                return;
        }
        bool building = json_is_true(json_object_get(params, "building"));
        const char *canary = json_string_value(json_object_get(params, "canary"));
        json_int_t batch = json_integer_value(json_object_get(params, "batch"));
        if ((canary || json_object_get(params, "batch")) && !building) {
                osm_call_invalid_param(call, canary ? "canary" : "batch");   /* for a building-wide follow only */
                return;
        }
        if (building && !ch_building_active(c)) {
                osm_call_errorf(call, OSM_E_NOT_AVAILABLE, "this room is not in a building");
                return;
        }
        if (canary && (strlen(canary) > 128 || !osm_text_line_ok(canary))) {
                osm_call_invalid_param(call, "canary");   /* a room's name */
                return;
        }
        if (json_object_get(params, "batch") && (batch < 1 || batch > 1024)) {
                osm_call_invalid_param(call, "batch");   /* from 1 to 1024 rooms */
                return;
        }
        ch_follow *prev = ch_find(c, name);
        _cleanup_free_ char *old_source = prev ? strdup(prev->source) : NULL;
        _cleanup_free_ char *old_channel = prev ? strdup(prev->channel) : NULL;
        if ((prev && (!old_source || !old_channel)) || !ch_follow_add(c, name, base, channel)) {
                osm_call_errorf(call, OSM_E_INTERNAL_ERROR, "recording the follow failed");
                return;
        }
        if (building)
                ch_follow_set_building(c, ch_find(c, name), true, canary, batch ? batch : 1);
        log_info("channels: %s follows channel %s from %s", name, channel, base);
        int r = ch_batch_follow(c, call, name, old_source, old_channel);
        if (r < 0)
                busy(call, r);
}

static ch_follow *followed(osm_channels *c, osm_call *call, const char *name) {
        if (!name_ok(call, name))
                return NULL;
        ch_follow *f = ch_find(c, name);
        if (!f)
                osm_call_errorf(call, OSM_E_NOT_FOUND, "%s does not follow a channel (osmosectl follow %s SOURCE)",
                                name, name);
        return f;
}

static void method_unfollow(osm_call *call, json_t *params, void *userdata) {
        osm_channels *c = userdata;
        const char *name = json_string_value(json_object_get(params, "name"));
        if (!followed(c, call, name))
                return;
        if (c->batch) {
                busy(call, -EBUSY);
                return;
        }
        if (ch_follow_remove(c, name) < 0) {
                osm_call_errorf(call, OSM_E_INTERNAL_ERROR, "removing the follow failed");
                return;
        }
        log_info("channels: %s no longer follows a channel", name);
        osm_call_reply(call, NULL, false);
}

static void method_pin(osm_call *call, json_t *params, void *userdata) {
        osm_channels *c = userdata;
        bool pin = strcmp(osm_call_method(call), OSM_M_CHANNEL_PIN) == 0;
        const char *name = json_string_value(json_object_get(params, "name"));
        ch_follow *f = followed(c, call, name);
        if (!f)
                return;
        json_int_t v = pin ? json_integer_value(json_object_get(params, "version")) : 0;
        if (pin && (v < 1 || v > OSM_MANIFEST_MAX_VERSION)) {
                osm_call_invalid_param(call, "version");   /* an integer from 1 to 2^53 */
                return;
        }
        if (ch_follow_set_pin(c, f, v) < 0) {
                osm_call_errorf(call, OSM_E_INTERNAL_ERROR, "saving the pin failed");
                return;
        }
        if (pin)
                log_info("channels: %s pinned to version %lld", name, (long long) v);
        else
                log_info("channels: %s unpinned; it follows channel %s again", name, f->channel);
        json_t *fj = ch_follow_json(c, f);
        osm_call_reply(call, pin ? osm_reply_channel_pin(fj) : osm_reply_channel_unpin(fj), false);
}

static void method_list(osm_call *call, json_t *params, void *userdata) {
        osm_channels *c = userdata;
        json_t *a = json_array();
        /* follows is newest-first; list by name */
        size_t n = 0;
        for (ch_follow *f = c->follows; f; f = f->next)
                n++;
        _cleanup_free_ ch_follow **v = calloc(n + 1, sizeof *v);
        if (!v) {
                json_decref(a);
                osm_call_errorf(call, OSM_E_INTERNAL_ERROR, "out of memory");
                return;
        }
        n = 0;
        for (ch_follow *f = c->follows; f; f = f->next)
                v[n++] = f;
        for (size_t i = 1; i < n; i++)
                for (size_t k = i; k > 0 && strcmp(v[k - 1]->name, v[k]->name) > 0; k--) {
                        ch_follow *t = v[k];
                        v[k] = v[k - 1];
                        v[k - 1] = t;
                }
        for (size_t i = 0; i < n; i++)
                json_array_append_new(a, ch_follow_json(c, v[i]));
        osm_call_reply(call, osm_reply_channel_list(a), false);
}

static void method_upgrade(osm_call *call, json_t *params, void *userdata) {
        osm_channels *c = userdata;
        const char *name = json_string_value(json_object_get(params, "name"));
        if (name && !followed(c, call, name))
                return;
        int r = ch_batch_start(c, call, name, json_is_true(json_object_get(params, "check")));
        if (r < 0)
                busy(call, r);
}

/* ---- Import -------------------------------------------------------------------------------- */

typedef struct import_doc {
        char *file;
        char *text;
        size_t len;
        osm_channel *ch;
        const char *err_name;
        char err[512];
} import_doc;

typedef struct import_job {
        uv_work_t work;
        osm_channels *c;
        osm_call *call;
        char *path;
        import_doc *docs;
        size_t n_docs;
        json_t *bundles;          /* ids kept */
        json_t *refused;          /* {item, error_name, message} */
        const char *err_name;
        char err[512];
} import_job;

static void refuse(json_t *refused, const char *item, const char *err_name, const char *msg) {
        json_array_append_new(refused, json_pack("{s:s, s:s, s:s}", "item", item, "error_name", err_name,
                                                 "message", msg));
}

static bool hex_name(const char *s) {
        uint8_t h[OSM_HASH_BYTES];
        return osm_hash_parse(s, h) == 0 && strspn(s, "0123456789abcdef") == strlen(s);
}

static void import_work(uv_work_t *req) {
        import_job *j = req->data;
        osm_channels *c = j->c;
        DIR *d = opendir(j->path);
        if (!d) {
                j->err_name = OSM_E_CHANNEL_FETCH_FAILED;
                snprintf(j->err, sizeof j->err, "%s: %m", j->path);
                return;
        }
        j->docs = calloc(IMPORT_MAX_CHANNELS, sizeof *j->docs);
        struct dirent *de;
        while (j->docs && (de = readdir(d))) {
                size_t l = strlen(de->d_name);
                if (l <= 8 || strcmp(de->d_name + l - 8, ".channel") != 0 || de->d_name[0] == '.')
                        continue;
                if (j->n_docs == IMPORT_MAX_CHANNELS) {
                        refuse(j->refused, de->d_name, OSM_E_BUSY, "more than 256 channels on one medium");
                        continue;
                }
                import_doc *doc = &j->docs[j->n_docs++];
                doc->file = strdup(de->d_name);
                _cleanup_free_ char *p = NULL;
                if (asprintf(&p, "%s/%s", j->path, de->d_name) < 0 || !doc->file) {
                        doc->err_name = OSM_E_INTERNAL_ERROR;
                        snprintf(doc->err, sizeof doc->err, "out of memory");
                        continue;
                }
                int r = osm_read_file(p, OSM_CHANNEL_MAX_SIZE + 1, &doc->text, &doc->len);
                if (r < 0) {
                        doc->err_name = OSM_E_CHANNEL_FETCH_FAILED;
                        snprintf(doc->err, sizeof doc->err, "%s: %s", p, strerror(-r));
                        continue;
                }
                osm_error why = {};
                r = osm_channel_parse(doc->text, doc->len, &doc->ch, &why);
                if (r < 0) {
                        doc->err_name = OSM_E_CHANNEL_BAD_CHANNEL;
                        snprintf(doc->err, sizeof doc->err, "%s: %.383s", de->d_name, why.message);
                } else if (strlen(de->d_name) - 8 != strlen(doc->ch->name) ||
                           strncmp(de->d_name, doc->ch->name, strlen(doc->ch->name)) != 0) {
                        doc->err_name = OSM_E_CHANNEL_BAD_CHANNEL;
                        snprintf(doc->err, sizeof doc->err, "%s holds the list of channel %s", de->d_name,
                                 doc->ch->name);
                }
        }
        closedir(d);

        /* Every bundle whose contents hash to its file name is kept; install judges its
         * signature later, as always. */
        _cleanup_free_ char *bdir = NULL;
        if (asprintf(&bdir, "%s/bundles", j->path) < 0 || !(d = opendir(bdir)))
                return;
        size_t n = 0;
        while ((de = readdir(d))) {
                if (!hex_name(de->d_name))
                        continue;
                if (++n > IMPORT_MAX_BUNDLES) {
                        refuse(j->refused, de->d_name, OSM_E_BUSY, "more than 4096 bundles on one medium");
                        break;
                }
                int kept = ch_open_kept(c, de->d_name);
                if (kept >= 0) {
                        close(kept);
                        json_array_append_new(j->bundles, json_string(de->d_name));
                        continue;
                }
                _cleanup_close_ int fd = openat(dirfd(d), de->d_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
                struct stat st;
                const char *en = NULL;
                char id[OSM_HASH_HEX];
                osm_error err;
                if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
                        refuse(j->refused, de->d_name, OSM_E_CHANNEL_FETCH_FAILED, "not a readable regular file");
                        continue;
                }
                if (ch_keep_bundle(c, fd, de->d_name, (uint64_t) st.st_size, id, &en, &err) < 0) {
                        refuse(j->refused, de->d_name, en, err.message);
                } else {
                        json_array_append_new(j->bundles, json_string(id));
                        ch_peers_announce(c, id, (uint64_t) st.st_size);
                }
        }
        closedir(d);
}

static void import_free(import_job *j) {
        for (size_t i = 0; i < j->n_docs; i++) {
                free(j->docs[i].file);
                free(j->docs[i].text);
                osm_channel_free(j->docs[i].ch);
        }
        free(j->docs);
        free(j->path);
        json_decref(j->bundles);
        json_decref(j->refused);
        osm_channels *c = j->c;
        free(j);
        ch_unref(c);
}

static void import_cancel(osm_call *call, void *userdata) {
        ((import_job *) userdata)->call = NULL;
}

static void import_after(uv_work_t *req, int status) {
        import_job *j = req->data;
        osm_channels *c = j->c;
        if (c->stopped || !j->call) {
                import_free(j);
                return;
        }
        osm_call_set_cancel(j->call, NULL, NULL);
        if (j->err_name) {
                osm_call_errorf_name(j->call, j->err_name, "%s", j->err);
                import_free(j);
                return;
        }
        json_t *accepted = json_array();
        for (size_t i = 0; i < j->n_docs; i++) {
                import_doc *doc = &j->docs[i];
                if (!doc->err_name) {
                        char signer[OSM_PUBKEY_B64];
                        osm_pubkey_encode(doc->ch->signer, signer);
                        int t = osm_workloads_trusted(c->d->workloads, doc->ch->signer);
                        int64_t newest;
                        const char *e;
                        osm_error why = {};
                        if (t != 1) {
                                doc->err_name = OSM_E_CHANNEL_UNTRUSTED;
                                snprintf(doc->err, sizeof doc->err, "channel %s is signed by %s, which is not a "
                                         "trusted key", doc->ch->name, signer);
                        } else if (doc->ch->expires && ch_clock_trusted(c) &&
                                   osm_now_real_us() / 1000000 > doc->ch->expires) {
                                doc->err_name = OSM_E_CHANNEL_EXPIRED;
                                snprintf(doc->err, sizeof doc->err, "channel %s has expired", doc->ch->name);
                        } else if ((e = ch_seen_check(c, doc->ch, &newest, &why))) {
                                doc->err_name = e;
                                snprintf(doc->err, sizeof doc->err, "%s", why.message);
                        } else {
                                _cleanup_free_ char *dir = NULL, *p = NULL;
                                int r = -ENOMEM;
                                if (asprintf(&dir, "%s/imported", c->dir) >= 0 &&
                                    asprintf(&p, "%s/%s.channel", dir, doc->ch->name) >= 0 &&
                                    (r = osm_mkdir_p(dir, 0700)) == 0)
                                        r = osm_write_file_atomic(p, doc->text, doc->len, 0600);
                                if (r < 0) {
                                        doc->err_name = OSM_E_INTERNAL_ERROR;
                                        snprintf(doc->err, sizeof doc->err, "keeping %s: %s", doc->file, strerror(-r));
                                }
                        }
                }
                if (doc->err_name)
                        refuse(j->refused, doc->file, doc->err_name, doc->err);
                else {
                        json_array_append_new(accepted, json_string(doc->ch->name));
                        log_notice("channels: imported channel %s (sequence %lld) from %s", doc->ch->name,
                                   (long long) doc->ch->sequence, j->path);
                }
        }
        size_t i;
        json_t *r;
        json_array_foreach(j->refused, i, r)
                log_warning("channels: import from %s: %s refused: %s", j->path,
                            json_string_value(json_object_get(r, "item")),
                            json_string_value(json_object_get(r, "message")));
        osm_call_reply(j->call, json_pack("{s:o, s:O, s:O}", "channels", accepted, "bundles", j->bundles,
                                          "refused", j->refused), false);
        import_free(j);
}

static void method_import(osm_call *call, json_t *params, void *userdata) {
        osm_channels *c = userdata;
        const char *path = json_string_value(json_object_get(params, "path"));
        if (ch_source_check(path, NULL) < 0 || path[0] != '/') {
                osm_call_invalid_param(call, "path");   /* an absolute directory */
                return;
        }
        import_job *j = calloc(1, sizeof *j);
        if (!j || !(j->path = strdup(path)) || !(j->bundles = json_array()) || !(j->refused = json_array())) {
                if (j) {
                        free(j->path);
                        json_decref(j->bundles);
                        free(j);
                }
                osm_call_errorf(call, OSM_E_INTERNAL_ERROR, "out of memory");
                return;
        }
        j->c = c;
        j->call = call;
        j->work.data = j;
        c->refs++;
        int r = uv_queue_work(c->d->loop, &j->work, import_work, import_after);
        if (r < 0) {
                osm_call_errorf(call, OSM_E_INTERNAL_ERROR, "uv_queue_work: %s", uv_strerror(r));
                import_free(j);
                return;
        }
        osm_call_set_cancel(call, import_cancel, j);
}

/* ---- Run a kept bundle by id -------------------------------------------------------------- */

typedef struct run_job {
        osm_channels *c;
        osm_call *call;
        char id[OSM_HASH_HEX];
        json_t *args;
        bool install_only;
        uv_work_t work;           /* fetching it from building members */
        int fd;
} run_job;

static void run_free(run_job *j) {
        json_decref(j->args);
        osm_channels *c = j->c;
        free(j);
        ch_unref(c);
}

static void run_start(osm_channels *c, osm_call *call, const char *name, json_t *args, bool install_only) {
        char *inst = NULL;
        int64_t version = 0;
        char cur[OSM_HASH_HEX];
        osm_workloads_current(c->d->workloads, name, &version, cur);
        if (install_only) {
                osm_call_reply(call, json_pack("{s:s, s:I}", "name", name, "version", (json_int_t) version), false);
                return;
        }
        osm_error why = {};
        int r = osm_workloads_start(c->d->workloads, name, args, false, &inst, &why);
        if (r < 0) {
                if (r == -ENOENT)
                        osm_call_errorf(call, OSM_E_NOT_FOUND, "%s", why.message);
                else
                        osm_call_errorf(call, OSM_E_WORKLOAD_SPAWN_FAILED, "%s", why.message);
                return;
        }
        osm_call_reply(call, json_pack("{s:s, s:I, s:s}", "name", name, "version", (json_int_t) version,
                                       "instance", inst), false);
        free(inst);
}

static void run_cancel(osm_call *call, void *userdata) {
        ((run_job *) userdata)->call = NULL;
}

static void on_run_installed(void *userdata, const char *error_name, const char *message) {
        run_job *j = userdata;
        if (j->c->stopped || !j->call) {
                run_free(j);
                return;
        }
        osm_call_set_cancel(j->call, NULL, NULL);
        const char *name = error_name ? NULL : osm_workloads_name_of_bundle(j->c->d->workloads, j->id);
        if (error_name)
                osm_call_errorf_name(j->call, error_name, "%s", message);
        else if (!name)
                osm_call_errorf(j->call, OSM_E_INTERNAL_ERROR, "bundle %s was installed but is not found", j->id);
        else
                run_start(j->c, j->call, name, j->args, j->install_only);
        run_free(j);
}

/* Install the bundle in fd (taken) and run it; the call is answered when it is. */
static void run_install(run_job *j, int fd) {
        osm_channels *c = j->c;
        char source[128];
        snprintf(source, sizeof source, "run %s", j->id);
        int r = osm_workloads_install_file(c->d->workloads, fd, NULL, j->id, false, source, on_run_installed, j);
        if (r < 0) {
                osm_call *call = j->call;
                run_free(j);
                if (!call)
                        return;
                osm_call_set_cancel(call, NULL, NULL);
                if (r == -EBUSY)
                        osm_call_errorf(call, OSM_E_BUSY, "another install is in progress; try again");
                else
                        osm_call_errorf(call, OSM_E_INTERNAL_ERROR, "starting the install: %s", strerror(-r));
        }
}

static void run_fetch_work(uv_work_t *req) {
        run_job *j = req->data;
        j->fd = ch_fetch_from_peers(j->c, j->id, 0);
}

static void run_fetch_after(uv_work_t *req, int status) {
        run_job *j = req->data;
        int fd = steal_fd(&j->fd);
        if (j->c->stopped || !j->call) {
                osm_close(fd);
                run_free(j);
                return;
        }
        if (fd < 0) {
                osm_call_set_cancel(j->call, NULL, NULL);
                osm_call_errorf(j->call, OSM_E_NOT_FOUND, "bundle %s is neither installed nor kept here, and no "
                                "member of the building served it (osmosectl import DIR, or follow a channel "
                                "that lists it)", j->id);
                run_free(j);
                return;
        }
        run_install(j, fd);
}

static void method_run(osm_call *call, json_t *params, void *userdata) {
        osm_channels *c = userdata;
        const char *id = json_string_value(json_object_get(params, "bundle"));
        json_t *args = json_object_get(params, "args");
        if (!id || !hex_name(id)) {
                osm_call_invalid_param(call, "bundle");   /* a bundle id: 64 lowercase hex digits */
                return;
        }
        const char *name = osm_workloads_name_of_bundle(c->d->workloads, id);
        bool install_only = json_is_true(json_object_get(params, "install_only"));
        if (name) {
                run_start(c, call, name, args, install_only);
                return;
        }
        int fd = ch_open_kept(c, id);
        bool peers = fd < 0 && ch_building_active(c) && c->d->cfg.channels_peers;
        if (fd < 0 && !peers) {
                osm_call_errorf(call, OSM_E_NOT_FOUND, "bundle %s is neither installed nor kept here "
                                "(osmosectl import DIR, or follow a channel that lists it)", id);
                return;
        }
        run_job *j = calloc(1, sizeof *j);
        if (!j) {
                osm_close(fd);
                osm_call_errorf(call, OSM_E_INTERNAL_ERROR, "out of memory");
                return;
        }
        j->c = c;
        j->call = call;
        memcpy(j->id, id, sizeof j->id);
        j->args = json_incref(args);
        j->install_only = install_only;
        j->fd = -1;
        c->refs++;
        osm_call_set_cancel(call, run_cancel, j);
        if (fd >= 0) {
                run_install(j, fd);
                return;
        }
        /* Not kept here: ask the building's members that keep it (verified by its id). */
        j->work.data = j;
        int r = uv_queue_work(c->d->loop, &j->work, run_fetch_work, run_fetch_after);
        if (r < 0) {
                osm_call_set_cancel(call, NULL, NULL);
                osm_call_errorf(call, OSM_E_INTERNAL_ERROR, "uv_queue_work: %s", uv_strerror(r));
                run_free(j);
        }
}

const osm_method ch_methods[] = {
        { OSM_M_CHANNEL_FOLLOW, method_follow, OSM_ACCESS_WRITE },
        { OSM_M_CHANNEL_UNFOLLOW, method_unfollow, OSM_ACCESS_WRITE },
        { OSM_M_CHANNEL_PIN, method_pin, OSM_ACCESS_WRITE },
        { OSM_M_CHANNEL_UNPIN, method_pin, OSM_ACCESS_WRITE },
        { OSM_M_CHANNEL_LIST, method_list, OSM_ACCESS_READ },
        { OSM_M_CHANNEL_UPGRADE, method_upgrade, OSM_ACCESS_WRITE },
        { OSM_M_CHANNEL_IMPORT, method_import, OSM_ACCESS_WRITE },
        { OSM_M_CHANNEL_RUN, method_run, OSM_ACCESS_WRITE },
};
const size_t ch_n_methods = OSM_ARRAY_SIZE(ch_methods);
