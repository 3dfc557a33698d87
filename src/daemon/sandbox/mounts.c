/* mounts.c: the list of setup steps (mounts, directories, files) the sandbox's child runs to build its root. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "osmose/util.h"
#include "daemon/sandbox/sandbox-internal.h"

static int ops_push(op **ops, size_t *n, size_t *cap, op o) {
        if (*n == *cap) {
                size_t nc = *cap ? *cap * 2 : 64;
                op *p = realloc(*ops, nc * sizeof(op));
                if (!p)
                        return -ENOMEM;
                *ops = p;
                *cap = nc;
        }
        (*ops)[(*n)++] = o;
        return 0;
}

void osm_sb_ops_free(op *ops, size_t n) {
        for (size_t i = 0; i < n; i++) {
                free(ops[i].src);
                free(ops[i].dst);
                free(ops[i].data);
        }
        free(ops);
}

static char *dupcat(const char *a, const char *b) {
        char *s = NULL;
        return asprintf(&s, "%s%s", a, b ? b : "") < 0 ? NULL : s;
}

/* Add a step; dst is a path inside the sandbox ("/proc"), src a host path or content. */
static void add(builder *b, op_kind k, const char *src, const char *dst, const char *fstype,
                unsigned long flags, const char *data, mode_t mode, bool optional, const char *shown) {
        if (b->err)
                return;
        op o = { .kind = k, .optional = optional, .flags = flags, .mode = mode, .fstype = fstype, .shown = shown };
        o.dst = dupcat(b->root, dst);
        o.src = src ? strdup(src) : NULL;
        o.data = data ? strdup(data) : NULL;
        if (!o.dst || (src && !o.src) || (data && !o.data)) {
                free(o.dst);
                free(o.src);
                free(o.data);
                b->err = -ENOMEM;
                return;
        }
        if (ops_push(&b->ops, &b->n, &b->cap, o) < 0) {
                free(o.dst);
                free(o.src);
                free(o.data);
                b->err = -ENOMEM;
        }
}

/* mkdir -p of the parents of path (inside), then the path itself as a dir or file. */
static void add_mountpoint(builder *b, const char *path, bool dir) {
        char buf[4096];
        snprintf(buf, sizeof(buf), "%s", path);
        for (char *p = buf + 1; *p; p++)
                if (*p == '/') {
                        *p = 0;
                        add(b, OP_MKDIR, NULL, buf, NULL, 0, NULL, 0755, false, "mkdir");
                        *p = '/';
                }
        add(b, dir ? OP_MKDIR : OP_MKFILE, NULL, buf, NULL, 0, NULL, dir ? 0755 : 0644, false,
            dir ? "mkdir" : "create mount point");
}

bool osm_sb_inside_path_ok(const char *p) {
        if (!p || p[0] != '/' || p[1] == 0 || strlen(p) > 1024)
                return false;
        for (const char *s = p; *s; s++)
                if (*s == '/' && (s[1] == '/' || (s[1] == '.' && (s[2] == '/' || s[2] == 0)) ||
                                  (s[1] == '.' && s[2] == '.' && (s[3] == '/' || s[3] == 0))))
                        return false;
        return p[strlen(p) - 1] != '/';
}

bool osm_sb_name_ok(const char *n) {
        size_t l = n ? strlen(n) : 0;
        if (l == 0 || l > 64 || strcmp(n, ".") == 0 || strcmp(n, "..") == 0)
                return false;
        for (size_t i = 0; i < l; i++)
                if (!((n[i] >= 'a' && n[i] <= 'z') || (n[i] >= 'A' && n[i] <= 'Z') ||
                      (n[i] >= '0' && n[i] <= '9') || n[i] == '.' || n[i] == '_' || n[i] == '-'))
                        return false;
        return true;
}

/* The mount points every root needs: made in the minimal root, or in the skeleton that
 * is laid over a bundle's rootfs. */
static void add_skeleton_dirs(builder *b) {
        static const char *const dirs[] = { "/proc", "/dev", "/tmp", "/data", "/run", "/etc" };
        for (size_t i = 0; i < OSM_ARRAY_SIZE(dirs); i++)
                add(b, OP_MKDIR, NULL, dirs[i], NULL, 0, NULL, 0755, false, "mkdir");
}

static void add_bind_points(builder *b, const osm_sandbox_spec *spec, const struct stat *bind_st) {
        for (size_t i = 0; i < spec->n_binds; i++)
                add_mountpoint(b, spec->binds[i].target, S_ISDIR(bind_st[i].st_mode));
}

/* /proc, read-only where it reaches kernel knobs, masked where it shows what a workload
 * has no business reading. */
static void add_proc(builder *b) {
        add(b, OP_MOUNT, "proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, 0, false,
            "mount /proc");
        /* Read-only where a process could otherwise reach kernel knobs (they belong to
         * host root and are not writable from the user namespace anyway). */
        static const char *const proc_ro[] = { "/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus" };
        for (size_t i = 0; i < OSM_ARRAY_SIZE(proc_ro); i++) {
                _cleanup_free_ char *src = dupcat(b->root, proc_ro[i]);
                if (!src) {
                        b->err = -ENOMEM;
                        return;
                }
                add(b, OP_BIND, src, proc_ro[i], NULL, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, 0,
                    true, "protect /proc");
        }

        /* Kernel information a workload has no business reading: /dev/null over the
         * files, an empty read-only tmpfs over the directories (as other runtimes do). */
        static const char *const proc_null[] = { "/proc/kcore", "/proc/keys", "/proc/timer_list",
                                                 "/proc/sched_debug", "/proc/latency_stats", "/proc/kallsyms" };
        for (size_t i = 0; i < OSM_ARRAY_SIZE(proc_null); i++)
                add(b, OP_BIND, "/dev/null", proc_null[i], NULL, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL,
                    0, true, "mask /proc");
        static const char *const proc_dirs[] = { "/proc/acpi", "/proc/scsi", "/proc/asound" };
        for (size_t i = 0; i < OSM_ARRAY_SIZE(proc_dirs); i++)
                add(b, OP_MOUNT, "tmpfs", proc_dirs[i], "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                    "size=0", 0, true, "mask /proc");
}

/* /dev: a small tmpfs with the harmless nodes bind-mounted from the host (mknod is
 * refused in a user namespace) and a private devpts. Left writable: the granted devices
 * and /dev/shm come with the launch's own steps, then it is made read-only. */
static void add_dev(builder *b) {
        add(b, OP_MOUNT, "tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=64k", 0, false,
            "mount /dev");
        static const char *const nodes[] = { "/dev/null", "/dev/zero", "/dev/full", "/dev/random",
                                             "/dev/urandom", "/dev/tty" };
        for (size_t i = 0; i < OSM_ARRAY_SIZE(nodes); i++) {
                add(b, OP_MKFILE, NULL, nodes[i], NULL, 0, NULL, 0666, false, "create");
                add(b, OP_BIND, nodes[i], nodes[i], NULL, MS_NOSUID | MS_NOEXEC, NULL, 0, false, "bind device");
        }
        add(b, OP_MKDIR, NULL, "/dev/pts", NULL, 0, NULL, 0755, false, "mkdir");
        add(b, OP_MOUNT, "devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=620",
            0, false, "mount /dev/pts");
        add(b, OP_SYMLINK, "pts/ptmx", "/dev/ptmx", NULL, 0, NULL, 0, false, "symlink");
        add(b, OP_SYMLINK, "/proc/self/fd", "/dev/fd", NULL, 0, NULL, 0, false, "symlink");
        add(b, OP_SYMLINK, "/proc/self/fd/0", "/dev/stdin", NULL, 0, NULL, 0, false, "symlink");
        add(b, OP_SYMLINK, "/proc/self/fd/1", "/dev/stdout", NULL, 0, NULL, 0, false, "symlink");
        add(b, OP_SYMLINK, "/proc/self/fd/2", "/dev/stderr", NULL, 0, NULL, 0, false, "symlink");
}

/* The stage's tmpfs, where every root is built. */
static void add_stage(builder *b, const char *stage) {
        b->root = "";
        add(b, OP_MOUNT, "tmpfs", stage, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m", 0, false,
            "mount tmpfs on the stage");
}

/* The steps every minimal root begins with, whatever the spec: the stage's tmpfs (the
 * root itself), the host's /usr read-only with the merged-/usr links, the skeleton's
 * directories, the fixed files of /etc, /proc and /dev. An init cloned ahead runs them
 * while it waits for its plan (osm_sb_ahead_make); a launch's own steps follow them. */
static void add_common_root(builder *b, const char *stage) {
        add_stage(b, stage);
        b->root = stage;
        add(b, OP_MKDIR, NULL, "/usr", NULL, 0, NULL, 0755, false, "mkdir");
        add(b, OP_BIND, "/usr", "/usr", NULL, MS_RDONLY | MS_NOSUID | MS_NODEV, NULL, 0, false, "bind /usr");
        /* merged-/usr: /bin, /lib… are symlinks into /usr on the host. */
        static const char *const links[] = { "bin", "sbin", "lib", "lib32", "lib64", "libx32" };
        for (size_t i = 0; i < OSM_ARRAY_SIZE(links); i++) {
                char host[32], target[32], inside[32];
                snprintf(host, sizeof(host), "/%s", links[i]);
                snprintf(target, sizeof(target), "usr/%s", links[i]);
                struct stat st;
                if (stat(host, &st) < 0 || !S_ISDIR(st.st_mode))
                        continue;
                snprintf(inside, sizeof(inside), "/%s", links[i]);
                add(b, OP_SYMLINK, target, inside, NULL, 0, NULL, 0, false, "symlink");
        }
        add_skeleton_dirs(b);
        add(b, OP_WRITE, "root:x:0:0:root:/data:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
            "/etc/passwd", NULL, 0, NULL, 0644, false, "write /etc/passwd");
        add(b, OP_WRITE, "root:x:0:\nnogroup:x:65534:\n", "/etc/group", NULL, 0, NULL, 0644, false,
            "write /etc/group");
        add(b, OP_WRITE, "passwd: files\ngroup: files\nhosts: files\n", "/etc/nsswitch.conf", NULL, 0,
            NULL, 0644, false, "write /etc/nsswitch.conf");
        add_proc(b);
        add_dev(b);
}

int osm_sb_ahead_make(const osm_sandbox *sb, osm_sb_ahead *out) {
        *out = (osm_sb_ahead) { 0 };
        builder b = { 0 };
        add_common_root(&b, sb->stage_dir);
        int r = b.err ? b.err : osm_sb_ops_pack(b.ops, b.n, out);
        osm_sb_ops_free(b.ops, b.n);
        return r;
}

int osm_sb_build_ops(const osm_sandbox *sb, const osm_sandbox_spec *spec, const struct stat *bind_st,
                     const char *hostname, uint64_t tmp_size, builder *b, char **root_out) {
        char data[128];
        const char *stage = sb->stage_dir;
        _cleanup_free_ char *root = NULL;
        b->common = NULL;
        b->n_common = 0;
        if (!spec->root) {
                /* The minimal root: the stage tmpfs itself, made read-only at the end. Its
                 * first steps are the same for every spec: made once (osm_sb_ahead). */
                root = strdup(stage);
                if (!root)
                        return -ENOMEM;
                if (sb->ahead.n) {
                        b->common = sb->ahead.ops;
                        b->n_common = sb->ahead.n;
                } else
                        add_common_root(b, stage);
                b->root = root;
                add_bind_points(b, spec, bind_st);
                char hosts[512];
                snprintf(hosts, sizeof(hosts), "127.0.0.1\tlocalhost\n::1\tlocalhost\n127.0.1.1\t%s\n", hostname);
                add(b, OP_WRITE, hosts, "/etc/hosts", NULL, 0, NULL, 0644, false, "write /etc/hosts");
                if (spec->network && sb->net.bridge) {
                        /* Name resolution as the host has it. */
                        _cleanup_free_ char *resolv = NULL;
                        if (osm_read_file("/etc/resolv.conf", 8192, &resolv, NULL) == 0)
                                add(b, OP_WRITE, resolv, "/etc/resolv.conf", NULL, 0, NULL, 0644, false,
                                    "write /etc/resolv.conf");
                }
        } else {
                /* A bundle's rootfs: overlaid read-only with a skeleton on top that holds
                 * the mount points. The skeleton wins over the bundle, so a bundle cannot
                 * turn /proc or /data into a symlink that sends our mounts elsewhere. */
                add_stage(b, stage);
                _cleanup_free_ char *skel = dupcat(stage, "/skel");
                root = dupcat(stage, "/root");
                if (!skel || !root)
                        return -ENOMEM;
                add(b, OP_MKDIR, NULL, skel, NULL, 0, NULL, 0755, false, "mkdir skeleton");
                add(b, OP_MKDIR, NULL, root, NULL, 0, NULL, 0755, false, "mkdir root");
                b->root = skel;
                add_skeleton_dirs(b);
                add_bind_points(b, spec, bind_st);
                b->root = "";
                _cleanup_free_ char *opts = NULL;
                if (asprintf(&opts, "lowerdir=%s:%s", skel, spec->root) < 0)
                        return -ENOMEM;
                if (strchr(spec->root, ',') || strchr(spec->root, ':'))
                        return -EINVAL;   /* cannot be expressed in overlay options */
                add(b, OP_MOUNT, "overlay", root, "overlay", MS_RDONLY | MS_NOSUID | MS_NODEV, opts, 0,
                    false, "mount overlay of the bundle rootfs");
                b->root = root;
                add_proc(b);
                add_dev(b);
        }

        /* The launch's own: the granted devices, /dev/shm and /tmp of its size, /data and
         * the binds. */
        for (size_t i = 0; i < spec->n_devices; i++) {
                add(b, OP_MKFILE, NULL, spec->devices[i], NULL, 0, NULL, 0600, false, "create");
                add(b, OP_BIND, spec->devices[i], spec->devices[i], NULL, MS_NOSUID | MS_NOEXEC, NULL, 0, false,
                    "bind granted device");
        }
        add(b, OP_MKDIR, NULL, "/dev/shm", NULL, 0, NULL, 01777, false, "mkdir");
        snprintf(data, sizeof(data), "mode=1777,size=%llu", (unsigned long long) tmp_size);
        add(b, OP_MOUNT, "tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, data, 0, false,
            "mount /dev/shm");
        add(b, OP_REMOUNT, NULL, "/dev", NULL, MS_RDONLY | MS_NOSUID | MS_NOEXEC, NULL, 0, false,
            "remount /dev read-only");

        add(b, OP_MOUNT, "tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, data, 0, false,
            "mount /tmp");
        if (spec->data_dir)
                add(b, OP_BIND, spec->data_dir, "/data", NULL, MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, 0, false,
                    "bind /data");
        for (size_t i = 0; i < spec->n_binds; i++)
                add(b, OP_BIND, spec->binds[i].source, spec->binds[i].target, NULL,
                    MS_NOSUID | MS_NODEV | (spec->binds[i].writable ? 0 : MS_RDONLY), NULL, 0, false,
                    "bind");
        if (!spec->root)
                add(b, OP_REMOUNT, NULL, "", NULL, MS_RDONLY | MS_NOSUID | MS_NODEV, NULL, 0, false,
                    "remount the root read-only");
        *root_out = steal_pointer(&root);
        return b->err;
}

