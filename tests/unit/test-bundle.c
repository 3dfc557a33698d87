/* test-bundle.c: bundle build/copy/verify/unpack, tampering, and hostile archives. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "osmose/bundle.h"
#include "osmose/manifest.h"
#include "tap.h"

static char tmp[64];

static void write_file(const char *rel, const char *text, mode_t mode) {
        char p[256];
        snprintf(p, sizeof p, "%s/%s", tmp, rel);
        int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
        if (fd >= 0) {
                osm_write_all(fd, text, strlen(text));
                fchmod(fd, mode);
                close(fd);
        }
}

static int mkd(const char *rel) {
        char p[256];
        snprintf(p, sizeof p, "%s/%s", tmp, rel);
        return mkdir(p, 0755);
}

/* Build tmp/src into a memfd; returns the fd (offset at the end) or -1. */
static int build(const osm_keypair *kp, osm_bundle_info *info, char *err) {
        char dir[128];
        snprintf(dir, sizeof dir, "%s/src", tmp);
        int fd = memfd_create("bundle", MFD_CLOEXEC);
        osm_error e;
        if (osm_bundle_build(dir, fd, kp, info, &e) < 0) {
                snprintf(err, 512, "%s", e.message);
                close(fd);
                return -1;
        }
        return fd;
}

/* osm_bundle_unpack with its message in err (512 bytes). */
static int unpack(int fd, int dirfd, char **m, size_t *ml, bool *hr, char *err) {
        osm_error e;
        int r = osm_bundle_unpack(fd, dirfd, m, ml, hr, &e);
        if (r < 0)
                snprintf(err, 512, "%s", e.message);
        return r;
}

/* Copy fd (from 0) the way the daemon does; returns the copy or -1. */
static int copy(int fd, osm_bundle_info *info, char *err) {
        int out = memfd_create("copy", MFD_CLOEXEC);
        lseek(fd, 0, SEEK_SET);
        osm_error e;
        if (osm_bundle_copy(fd, out, 1 << 20, info, &e) < 0) {
                snprintf(err, 512, "%s", e.message);
                close(out);
                return -1;
        }
        return out;
}

/* Flip one byte at off. */
static void flip(int fd, off_t off) {
        uint8_t b;
        if (pread(fd, &b, 1, off) == 1) {
                b ^= 0x20;
                if (pwrite(fd, &b, 1, off) != 1)
                        abort();
        }
}

static off_t find(int fd, const char *needle) {
        struct stat st;
        fstat(fd, &st);
        char *buf = malloc((size_t) st.st_size);
        off_t r = -1;
        if (pread(fd, buf, (size_t) st.st_size, 0) == st.st_size) {
                char *p = memmem(buf, (size_t) st.st_size, needle, strlen(needle));
                r = p ? p - buf : -1;
        }
        free(buf);
        return r;
}

/* ---- hand-made (hostile) bundles ---- */
typedef struct { char type; const char *path; const char *data; } hent;

static void le(uint8_t *p, uint64_t v, size_t n) {
        for (size_t i = 0; i < n; i++)
                p[i] = (uint8_t) (v >> (8 * i));
}

static int craft(const hent *e, size_t n, const char *trailer) {
        int fd = memfd_create("craft", MFD_CLOEXEC);
        uint8_t h[OSM_BUNDLE_HEADER_SIZE] = { 0 };
        memcpy(h, OSM_BUNDLE_MAGIC, 8);
        osm_write_all(fd, h, sizeof h);
        const char *man = "{\"name\":\"evil\",\"version\":1,\"entrypoint\":[\"/x\"]}";
        uint8_t b[8];
        le(b, strlen(man), 4);
        osm_write_all(fd, b, 4);
        osm_write_all(fd, man, strlen(man));
        b[0] = 1;
        osm_write_all(fd, b, 1);
        le(b, n, 4);
        osm_write_all(fd, b, 4);
        for (size_t i = 0; i < n; i++) {
                b[0] = (uint8_t) e[i].type;
                osm_write_all(fd, b, 1);
                le(b, strlen(e[i].path), 2);
                osm_write_all(fd, b, 2);
                osm_write_all(fd, e[i].path, strlen(e[i].path));
                size_t dl = e[i].data ? strlen(e[i].data) : 0;
                le(b, dl, 8);
                osm_write_all(fd, b, 8);
                if (dl)
                        osm_write_all(fd, e[i].data, dl);
        }
        if (trailer)
                osm_write_all(fd, trailer, strlen(trailer));
        return fd;
}

static int scratch(void) {
        static int k;
        char p[128];
        snprintf(p, sizeof p, "%s/out%d", tmp, k++);
        mkdir(p, 0755);
        return open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

static void hostile(const hent *e, size_t n, const char *trailer, const char *what) {
        int fd = craft(e, n, trailer);
        int dfd = scratch();
        char err[512] = "", *m = NULL;
        size_t ml;
        bool hr;
        int r1 = unpack(fd, -1, &m, &ml, &hr, err);
        free(m);
        m = NULL;
        int r2 = unpack(fd, dfd, &m, &ml, &hr, err);
        free(m);
        tap_ok(r1 < 0 && r2 < 0, "%s: refused (%s)", what, err);
        close(dfd);
        close(fd);
}

/* The source directory every case builds from (made before the cases, on disk). */
static void make_source(void) {
        mkd("src");
        mkd("src/rootfs");
        mkd("src/rootfs/bin");
        mkd("src/rootfs/etc");
        mkd("src/rootfs/proc");
        write_file("src/manifest.json", "{\"name\":\"hello\",\"version\":2,\"entrypoint\":[\"/bin/hello\"]}", 0644);
        write_file("src/rootfs/bin/hello", "#!/bin/sh\necho hello\n", 0755);
        write_file("src/rootfs/etc/greeting", "bonjour", 0600);
        char lp[256];
        snprintf(lp, sizeof lp, "%s/src/rootfs/etc/link", tmp);
        symlink("greeting", lp);
}

static void test_sign_unpack_tamper(void) {
        osm_keypair kp = { 0 }, other = { 0 };
        osm_keypair_generate(&kp);
        osm_keypair_generate(&other);
        osm_bundle_info info, info2, cinfo;
        char err[512];
        int fd = build(&kp, &info, err);
        TAP_OK(fd >= 0, "a signed bundle builds");
        int fd2 = build(&kp, &info2, err);
        TAP_OK(memcmp(info.id, info2.id, OSM_HASH_BYTES) == 0, "the same directory gives the same id");
        int c = copy(fd, &cinfo, err);
        TAP_OK(c >= 0 && memcmp(cinfo.id, info.id, OSM_HASH_BYTES) == 0, "copying recomputes the same id");
        TAP_EQ_INT(osm_bundle_verify_signature(&cinfo), 0, "the signature verifies");
        TAP_OK(memcmp(cinfo.pubkey, kp.pk, OSM_PUBKEY_BYTES) == 0, "the header names the signer");
        memcpy(cinfo.pubkey, other.pk, OSM_PUBKEY_BYTES);
        TAP_EQ_INT(osm_bundle_verify_signature(&cinfo), -EBADMSG, "another key does not verify it");

        /* unpack */
        int dfd = scratch();
        char *m = NULL;
        size_t ml = 0;
        bool hr = false;
        int r = unpack(c, dfd, &m, &ml, &hr, err);
        TAP_EQ_INT(r, 0, "it unpacks");
        TAP_OK(hr, "it has a rootfs");
        TAP_OK(m && strstr(m, "\"hello\""), "the manifest comes back");
        free(m);
        struct stat st;
        TAP_OK(fstatat(dfd, "bin/hello", &st, 0) == 0 && (st.st_mode & 07777) == 0755, "an executable is 0755");
        TAP_OK(fstatat(dfd, "etc/greeting", &st, 0) == 0 && (st.st_mode & 07777) == 0644, "a file is 0644");
        char tgt[64] = "";
        TAP_OK(readlinkat(dfd, "etc/link", tgt, sizeof tgt - 1) == 8 && strcmp(tgt, "greeting") == 0, "a symlink");
        TAP_OK(fstatat(dfd, "proc", &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode), "an empty reserved dir");
        close(dfd);
        close(c);

        /* tampering: the manifest, a rootfs file */
        off_t off = find(fd, "\"hello\"");
        flip(fd, off + 1);
        c = copy(fd, &cinfo, err);
        TAP_EQ_INT(osm_bundle_verify_signature(&cinfo), -EBADMSG, "a tampered manifest fails the signature");
        close(c);
        flip(fd, off + 1);
        off = find(fd, "bonjour");
        flip(fd, off);
        c = copy(fd, &cinfo, err);
        TAP_EQ_INT(osm_bundle_verify_signature(&cinfo), -EBADMSG, "a tampered rootfs file fails the signature");
        close(c);
        flip(fd, off);
        c = copy(fd, &cinfo, err);
        TAP_EQ_INT(osm_bundle_verify_signature(&cinfo), 0, "restored, it verifies again");
        close(c);

        /* unsigned */
        int u = build(NULL, &info2, err);
        c = copy(u, &cinfo, err);
        TAP_EQ_INT(osm_bundle_verify_signature(&cinfo), -ENOKEY, "an unsigned bundle says so");
        TAP_OK(memcmp(cinfo.id, info.id, OSM_HASH_BYTES) == 0, "the id does not depend on the signature");
        close(c);
        close(u);
        /* a header that claims a signature but is unsigned, and a bad magic */
        flip(fd, 8);   /* flags */
        c = copy(fd, &cinfo, err);
        TAP_OK(c < 0, "an unsigned header carrying a key is refused (%s)", err);
        flip(fd, 8);
        flip(fd, 0);
        c = copy(fd, &cinfo, err);
        TAP_OK(c < 0 && strstr(err, "magic"), "a bad magic is refused");
        flip(fd, 0);
        /* size limit */
        int big = memfd_create("big", MFD_CLOEXEC);
        lseek(fd, 0, SEEK_SET);
        r = osm_bundle_copy(fd, big, 200, &cinfo, NULL);
        TAP_EQ_INT(r, -EFBIG, "the size limit holds");
        close(big);
        close(fd);
        close(fd2);
        osm_keypair_clear(&kp);
        osm_keypair_clear(&other);
}

static void test_builder_refusals(void) {
        osm_bundle_info info;
        char err[512], lp[256];
        snprintf(lp, sizeof lp, "%s/src/rootfs/etc/link", tmp);
        /* the builder refuses what the format cannot say */
        write_file("src/rootfs/bin/su", "x", 04755);
        chmod(lp, 0);   /* no-op on the symlink itself */
        snprintf(lp, sizeof lp, "%s/src/rootfs/bin/su", tmp);
        chmod(lp, 04755);
        TAP_OK(build(NULL, &info, err) < 0 && strstr(err, "setuid"), "a setuid file is refused (%s)", err);
        unlink(lp);
        snprintf(lp, sizeof lp, "%s/src/rootfs/bin/fifo", tmp);
        mkfifo(lp, 0644);
        TAP_OK(build(NULL, &info, err) < 0 && strstr(err, "fifo"), "a fifo is refused (%s)", err);
        unlink(lp);
        snprintf(lp, sizeof lp, "%s/src/rootfs/dev", tmp);
        symlink("/etc", lp);
        TAP_OK(build(NULL, &info, err) < 0 && strstr(err, "mounts over"), "a symlink where /dev goes is refused");
        unlink(lp);
        write_file("src/manifest.json", "{\"name\":\"hello\",\"version\":2,\"entrypoint\":[\"/bin/hello\"],\"x\":1}", 0644);
        TAP_OK(build(NULL, &info, err) < 0 && strstr(err, "x: unknown field"), "a bad manifest is refused at build (%s)", err);
}

static void test_hostile_archives(void) {
        char err[512];
        char *m = NULL;
        size_t ml = 0;
        bool hr = false;
        /* hostile archives */
        hent dotdot[] = { { 'f', "../escape", "x" } };
        hostile(dotdot, 1, NULL, "a .. path");
        hent abs[] = { { 'f', "/etc/passwd", "x" } };
        hostile(abs, 1, NULL, "an absolute path");
        hent mid[] = { { 'd', "a", NULL }, { 'f', "a/../../x", "x" } };
        hostile(mid, 2, NULL, "a .. inside a path");
        hent orphan[] = { { 'f', "a/b", "x" } };
        hostile(orphan, 1, NULL, "a file whose directory is not declared");
        hent through[] = { { 'l', "a", "/etc" }, { 'f', "a/passwd", "x" } };
        hostile(through, 2, NULL, "a file written through a symlink");
        hent order[] = { { 'f', "b", "x" }, { 'f', "a", "y" } };
        hostile(order, 2, NULL, "entries out of order");
        hent dup[] = { { 'f', "a", "x" }, { 'f', "a", "y" } };
        hostile(dup, 2, NULL, "a duplicated entry");
        hent reserved[] = { { 'l', "proc", "/" } };
        hostile(reserved, 1, NULL, "a symlink at /proc");
        hent under[] = { { 'd', "run", NULL }, { 'f', "run/x", "x" } };
        hostile(under, 2, NULL, "a file under /run");
        hent badtype[] = { { 'c', "dev0", NULL } };
        hostile(badtype, 1, NULL, "a device entry");
        hent dirsize[] = { { 'd', "a", "xx" } };
        hostile(dirsize, 1, NULL, "a directory with a size");
        hent ok1[] = { { 'd', "a", NULL }, { 'f', "a-b", "x" }, { 'f', "a/c", "y" } };
        hostile(ok1, 3, "junk", "garbage after the last entry");
        hent ctl[] = { { 'f', "a\nb", "x" } };
        hostile(ctl, 1, NULL, "a control character in a name");
        /* and a well-formed hand-made one unpacks, in depth-first order */
        hent good[] = { { 'd', "a", NULL }, { 'f', "a/c", "y" }, { 'f', "a-b", "x" }, { 'l', "l", "/abs/ok" } };
        int fd = craft(good, 4, NULL);
        int dfd = scratch();
        int r = unpack(fd, dfd, &m, &ml, &hr, err);
        TAP_EQ_INT(r, 0, "a hand-made bundle in canonical order unpacks");
        free(m);
        close(dfd);
        close(fd);
}

int main(int argc, char **argv) {
        osm_crypto_init();
        snprintf(tmp, sizeof tmp, "/tmp/osm-test-bundle-XXXXXX");
        if (!mkdtemp(tmp))
                return 1;
        make_source();
        static const tap_case cases[] = {
                TAP_CASE(test_sign_unpack_tamper),
                TAP_CASE(test_builder_refusals),
                TAP_CASE(test_hostile_archives),
        };
        int r = tap_run(cases, TAP_N_CASES(cases), argc, argv);
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
        if (system(cmd) != 0)
                return 1;
        return r;
}
