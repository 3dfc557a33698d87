/* trust.c: the publisher keys whose bundles may be installed: one file per key in state/trust/. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "daemon/workload/wl.h"
#include "osmose/log.h"

/* A key file is named by the key's canonical text (URL-safe base64, no padding, which
 * has no '/'), so a key is trusted iff that file exists. Decoding and re-encoding the
 * operator's text gives the canonical form and refuses anything else. */
static int canonical(const char *text, char out[OSM_PUBKEY_B64]) {
        uint8_t pk[OSM_PUBKEY_BYTES];
        if (!text || osm_pubkey_decode(text, pk) < 0)
                return -EINVAL;
        osm_pubkey_encode(pk, out);
        return 0;
}

int wl_trust_is_trusted(osm_workloads *w, const uint8_t pk[OSM_PUBKEY_BYTES]) {
        char name[OSM_PUBKEY_B64];
        osm_pubkey_encode(pk, name);
        _cleanup_free_ char *path = NULL;
        if (asprintf(&path, "%s/%s", w->trust_dir, name) < 0)
                return -ENOMEM;
        struct stat st;
        if (lstat(path, &st) == 0 && S_ISREG(st.st_mode))
                return 1;
        return 0;
}

static size_t count_keys(osm_workloads *w) {
        size_t n = 0;
        DIR *d = opendir(w->trust_dir);
        if (!d)
                return 0;
        struct dirent *de;
        while ((de = readdir(d)))
                if (de->d_name[0] != '.')
                        n++;
        closedir(d);
        return n;
}

static void method_add(osm_call *call, json_t *params, void *userdata) {
        osm_workloads *w = userdata;
        char key[OSM_PUBKEY_B64];
        if (canonical(json_string_value(json_object_get(params, "public_key")), key) < 0) {
                osm_call_errorf(call, OSM_ERR_INVALID_PARAMETER,
                                "public_key: expected an Ed25519 public key in URL-safe base64 (43 characters)");
                return;
        }
        uint8_t pk[OSM_PUBKEY_BYTES];
        osm_pubkey_decode(key, pk);
        if (wl_trust_is_trusted(w, pk) == 1) {
                osm_call_reply(call, NULL, false);
                return;
        }
        if (count_keys(w) >= WL_MAX_TRUSTED) {
                osm_call_errorf(call, OSM_ERR_BUSY, "already %d trusted keys; remove one first", WL_MAX_TRUSTED);
                return;
        }
        _cleanup_free_ char *path = NULL, *text = NULL;
        if (asprintf(&path, "%s/%s", w->trust_dir, key) < 0 || asprintf(&text, "%s\n", key) < 0) {
                osm_call_errorf(call, OSM_ERR_INTERNAL, "out of memory");
                return;
        }
        int r = osm_write_file_atomic(path, text, strlen(text), 0600);
        if (r < 0) {
                osm_call_errorf(call, OSM_ERR_INTERNAL, "saving the key: %s", strerror(-r));
                return;
        }
        log_notice("trusting publisher key %s", key);
        osm_call_reply(call, NULL, false);
}

static void method_list(osm_call *call, json_t *params, void *userdata) {
        osm_workloads *w = userdata;
        json_t *arr = json_array();
        DIR *d = opendir(w->trust_dir);
        if (d) {
                struct dirent *de;
                while ((de = readdir(d))) {
                        uint8_t pk[OSM_PUBKEY_BYTES];
                        struct stat st;
                        if (de->d_name[0] == '.' || osm_pubkey_decode(de->d_name, pk) < 0 ||
                            fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
                                continue;
                        json_int_t added = (json_int_t) st.st_mtim.tv_sec * 1000000 + st.st_mtim.tv_nsec / 1000;
                        json_array_append_new(arr, json_pack("{s:s, s:I}", "public_key", de->d_name,
                                                             "added", added));
                }
                closedir(d);
        }
        osm_call_reply(call, json_pack("{s:o}", "keys", arr), false);
}

static void method_remove(osm_call *call, json_t *params, void *userdata) {
        osm_workloads *w = userdata;
        char key[OSM_PUBKEY_B64];
        if (canonical(json_string_value(json_object_get(params, "public_key")), key) < 0) {
                osm_call_errorf(call, OSM_ERR_INVALID_PARAMETER,
                                "public_key: expected an Ed25519 public key in URL-safe base64 (43 characters)");
                return;
        }
        _cleanup_free_ char *path = NULL;
        if (asprintf(&path, "%s/%s", w->trust_dir, key) < 0) {
                osm_call_errorf(call, OSM_ERR_INTERNAL, "out of memory");
                return;
        }
        if (unlink(path) < 0) {
                if (errno == ENOENT)
                        osm_call_errorf(call, OSM_ERR_NOT_FOUND, "key %s is not trusted", key);
                else
                        osm_call_errorf(call, OSM_ERR_INTERNAL, "removing the key: %m");
                return;
        }
        log_notice("no longer trusting publisher key %s", key);
        osm_call_reply(call, NULL, false);
}

const osm_method wl_trust_methods[] = {
        { "io.osmose.Workload.TrustAdd", method_add, OSM_ACCESS_WRITE },
        { "io.osmose.Workload.TrustList", method_list, OSM_ACCESS_READ },
        { "io.osmose.Workload.TrustRemove", method_remove, OSM_ACCESS_WRITE },
};
const size_t wl_n_trust_methods = OSM_ARRAY_SIZE(wl_trust_methods);
