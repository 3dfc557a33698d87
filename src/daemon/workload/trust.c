/* trust.c: the publisher keys whose bundles may be installed: one file per key in state/trust/. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"
#include "daemon/building/building.h"
#include "daemon/workload/wl.h"
#include "osmose/log.h"

/* A key file is named by the key's canonical text (URL-safe base64, no padding, which
 * has no '/'), so a key is trusted iff that file exists. Decoding and re-encoding the
 * operator's text gives the canonical form and refuses anything else. */
int wl_trust_canonical(const char *text, char out[OSM_PUBKEY_B64]) {
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

/* Was wl installed as signed by a trusted key that is no longer trusted (trust rm)? Such
 * a workload stays installed, is flagged by List and does not run unless asked to. */
bool wl_signer_untrusted(osm_workloads *w, const wl_workload *wl) {
        uint8_t pk[OSM_PUBKEY_BYTES];
        if (!wl->verified || !wl->signer || osm_pubkey_decode(wl->signer, pk) < 0)
                return false;
#if HAVE_BUILDING
        if (osm_building_trusts(w->d, wl->signer))
                return false;   /* trusted building-wide, as install accepts */
#endif
        return wl_trust_is_trusted(w, pk) == 0;
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

/* Trust key (canonical text). 0 (also when it was trusted already), -EBUSY when
 * WL_MAX_TRUSTED keys are trusted, or another negative errno. */
int wl_trust_add(osm_workloads *w, const char *key) {
        uint8_t pk[OSM_PUBKEY_BYTES];
        osm_pubkey_decode(key, pk);
        if (wl_trust_is_trusted(w, pk) == 1)
                return 0;
        if (count_keys(w) >= WL_MAX_TRUSTED)
                return -EBUSY;
        _cleanup_free_ char *path = NULL, *text = NULL;
        if (asprintf(&path, "%s/%s", w->trust_dir, key) < 0 || asprintf(&text, "%s\n", key) < 0)
                return -ENOMEM;
        int r = osm_write_file_atomic(path, text, strlen(text), 0600);
        if (r < 0)
                return r;
        log_notice("trusting publisher key %s", key);
        return 0;
}

/* The trusted keys: [{public_key, added}] (added: the file's mtime in µs). */
json_t *wl_trust_list(osm_workloads *w) {
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
        return arr;
}

/* Stop trusting key (canonical text). 0, -ENOENT when it was not trusted, or negative. */
int wl_trust_remove(osm_workloads *w, const char *key) {
        _cleanup_free_ char *path = NULL;
        if (asprintf(&path, "%s/%s", w->trust_dir, key) < 0)
                return -ENOMEM;
        if (unlink(path) < 0)
                return -errno;
        log_notice("no longer trusting publisher key %s", key);
        return 0;
}
