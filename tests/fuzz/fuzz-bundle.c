/* fuzz-bundle.c: the bundle reader — header, copy-and-hash, structure check, and unpacking
 * into a scratch directory (which must never be escaped). */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "osmose/bundle.h"
#include "osmose/manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Remove everything under dirfd (the scratch tree holds only what unpack made). */
static void empty_dir(int dirfd) {
        /* a new open file description: a dup would share the offset of the last readdir */
        int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
        if (!d) {
                osm_close(fd);
                return;
        }
        struct dirent *de;
        while ((de = readdir(d))) {
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                if (unlinkat(dirfd, de->d_name, 0) < 0) {
                        int sub = openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                        if (sub >= 0) {
                                empty_dir(sub);
                                close(sub);
                        }
                        unlinkat(dirfd, de->d_name, AT_REMOVEDIR);
                }
        }
        closedir(d);
}

static char path[64];

static void remove_scratch(void) {
        rmdir(path);   /* emptied after every input */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static int scratch = -1;
        if (scratch < 0) {
                snprintf(path, sizeof path, "/tmp/osm-fuzz-bundle-%d", (int) getpid());
                mkdir(path, 0700);
                atexit(remove_scratch);
                scratch = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (scratch < 0)
                        return 0;
        }
        int in = memfd_create("bundle-in", MFD_CLOEXEC);
        int copy = memfd_create("bundle-copy", MFD_CLOEXEC);
        if (in < 0 || copy < 0 || osm_write_all(in, data, size) < 0 || lseek(in, 0, SEEK_SET) < 0)
                goto out;
        osm_bundle_info info;
        osm_error err;
        if (osm_bundle_copy(in, copy, 1u << 20, &info, &err) < 0)
                goto out;
        (void) osm_bundle_verify_signature(&info);
        char *mtext = NULL;
        size_t mlen = 0;
        bool has_rootfs = false;
        /* structure only, then for real into the scratch dir */
        if (osm_bundle_unpack(copy, -1, &mtext, &mlen, &has_rootfs, &err) == 0) {
                osm_manifest *m = NULL;
                if (osm_manifest_parse(mtext, mlen, &m, &err) == 0)
                        osm_manifest_free(m);
                free(mtext);
                mtext = NULL;
                if (osm_bundle_unpack(copy, scratch, &mtext, &mlen, &has_rootfs, &err) == 0)
                        free(mtext);
        }
        empty_dir(scratch);
out:
        osm_close(in);
        osm_close(copy);
        return 0;
}
