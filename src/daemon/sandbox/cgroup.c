/* cgroup.c: per-instance cgroups: detect v2/v1 per controller at run time, set limits, read accounting. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "osmose/util.h"
#include "daemon/sandbox/sandbox-internal.h"

/* v1 names of the controllers (the hierarchy's super options) and v2 names. */
static const char *const v1_name[OSM_CG_N] = { "memory", "pids", "cpu", "cpuacct", "blkio" };
static const char *const v2_name[OSM_CG_N] = { "memory", "pids", "cpu", NULL, "io" };

static char *path_join3(const char *a, const char *b, const char *c) {
        char *s = NULL;
        if (asprintf(&s, "%s%s%s%s%s", a, (b && *b) ? "/" : "", b ? b : "", (c && *c) ? "/" : "",
                     c ? c : "") < 0)
                return NULL;
        return s;
}

/* Write a short string to dir/file. 0 or -errno. */
int osm_sb_write_attr(const char *dir, const char *file, const char *value) {
        char path[4096];
        if ((size_t) snprintf(path, sizeof(path), "%s/%s", dir, file) >= sizeof(path))
                return -ENAMETOOLONG;
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        size_t n = strlen(value);
        ssize_t w = write(fd, value, n);
        if (w < 0)
                return -errno;
        return (size_t) w == n ? 0 : -EIO;
}

/* Read dir/file (small) into buf, NUL-terminated. 0 or -errno. */
static int read_attr(const char *dir, const char *file, char *buf, size_t size) {
        char path[4096];
        if ((size_t) snprintf(path, sizeof(path), "%s/%s", dir, file) >= sizeof(path))
                return -ENAMETOOLONG;
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        size_t len = 0;
        for (;;) {
                ssize_t n = read(fd, buf + len, size - 1 - len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0 || len + n >= size - 1) {
                        len += n;
                        break;
                }
                len += n;
        }
        buf[len] = 0;
        return 0;
}

static uint64_t read_u64(const char *dir, const char *file) {
        char buf[64];
        if (!dir || read_attr(dir, file, buf, sizeof(buf)) < 0)
                return UINT64_MAX;
        char *end;
        errno = 0;
        unsigned long long v = strtoull(buf, &end, 10);
        if (errno || end == buf)
                return UINT64_MAX;
        return v;
}

/* Find "key value" in a flat keyed file (memory.oom_control, memory.events, cpu.stat). */
static uint64_t read_key(const char *dir, const char *file, const char *key) {
        char buf[4096];
        if (!dir || read_attr(dir, file, buf, sizeof(buf)) < 0)
                return UINT64_MAX;
        size_t kl = strlen(key);
        for (char *line = buf; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
                if (strncmp(line, key, kl) == 0 && line[kl] == ' ')
                        return strtoull(line + kl + 1, NULL, 10);
        }
        return UINT64_MAX;
}

/* Append "what: error" to why, "; "-separated. */
static void append_why(char *why, size_t len, const char *what, int err) {
        size_t used = strlen(why);
        if (used < len - 1)
                snprintf(why + used, len - used, "%s%s: %s", used ? "; " : "", what, strerror(-err));
}

/* From /proc/self/cgroup: the daemon's own path in the hierarchy holding ctrl (v1), or
 * in the v2 tree (ctrl NULL). Returns malloc'd path or NULL. */
static char *own_cgroup(const char *ctrl) {
        FILE *f = fopen("/proc/self/cgroup", "re");
        if (!f)
                return NULL;
        char line[1024];
        char *res = NULL;
        while (!res && fgets(line, sizeof(line), f)) {
                line[strcspn(line, "\n")] = 0;
                char *c1 = strchr(line, ':');
                char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
                if (!c2)
                        continue;
                *c2 = 0;
                const char *ctrls = c1 + 1, *path = c2 + 1;
                if (!ctrl) {
                        if (strcmp(line, "0") == 0 && *ctrls == 0)
                                res = strdup(path);
                        continue;
                }
                char *save = NULL, tmp[256];
                snprintf(tmp, sizeof(tmp), "%s", ctrls);
                for (char *t = strtok_r(tmp, ",", &save); t; t = strtok_r(NULL, ",", &save))
                        if (strcmp(t, ctrl) == 0) {
                                res = strdup(path);
                                break;
                        }
        }
        fclose(f);
        return res;
}

/* From /proc/self/mountinfo: where the hierarchy with ctrl (v1; NULL: the cgroup2 mount)
 * is mounted, and the root of that mount. Writes into mnt/root. 0 or -ENOENT. */
static int find_mount(const char *ctrl, char *mnt, size_t mlen, char *root, size_t rlen) {
        FILE *f = fopen("/proc/self/mountinfo", "re");
        if (!f)
                return -errno;
        char line[4096];
        int r = -ENOENT;
        while (r < 0 && fgets(line, sizeof(line), f)) {
                char *sep = strstr(line, " - ");
                if (!sep)
                        continue;
                char fstype[64], source[256], opts[1024];
                if (sscanf(sep + 3, "%63s %255s %1023s", fstype, source, opts) != 3)
                        continue;
                char mroot[1024], mpoint[1024];
                if (sscanf(line, "%*s %*s %*s %1023s %1023s", mroot, mpoint) != 2)
                        continue;
                bool match = false;
                if (!ctrl)
                        match = strcmp(fstype, "cgroup2") == 0;
                else if (strcmp(fstype, "cgroup") == 0) {
                        char *save = NULL;
                        for (char *t = strtok_r(opts, ",", &save); t; t = strtok_r(NULL, ",", &save))
                                if (strcmp(t, ctrl) == 0)
                                        match = true;
                }
                if (match) {
                        snprintf(mnt, mlen, "%s", mpoint);
                        snprintf(root, rlen, "%s", mroot);
                        r = 0;
                }
        }
        fclose(f);
        return r;
}

/* The directory of the daemon's own cgroup for ctrl (v1) or v2 (ctrl NULL). */
static char *own_dir(const char *ctrl) {
        char mnt[1024], root[1024];
        if (find_mount(ctrl, mnt, sizeof(mnt), root, sizeof(root)) < 0)
                return NULL;
        _cleanup_free_ char *own = own_cgroup(ctrl);
        if (!own)
                return NULL;
        /* The mount shows the hierarchy from `root`; strip it from our path. In a cgroup
         * namespace /proc/self/cgroup is already relative to it. */
        const char *rel = own;
        size_t rl = strlen(root);
        if (strcmp(root, "/") != 0 && strncmp(own, root, rl) == 0)
                rel = own + rl;
        while (*rel == '/')
                rel++;
        return path_join3(mnt, rel, NULL);
}

static bool has_word(const char *list, const char *word) {
        size_t wl = strlen(word);
        for (const char *p = list; (p = strstr(p, word)); p += wl)
                if ((p == list || p[-1] == ' ' || p[-1] == '\n') &&
                    (p[wl] == 0 || p[wl] == ' ' || p[wl] == '\n'))
                        return true;
        return false;
}

/* v2: make `name` under our own cgroup with the controllers enabled for its children.
 * The no-internal-process rule forbids enabling controllers in a cgroup that holds
 * processes (unless it is the root): on EBUSY the daemon moves itself into a leaf
 * "<own>/supervisor" first, as systemd's Delegate= expects. */
static void detect_v2(osm_cg_host *h, const char *name) {
        _cleanup_free_ char *own = own_dir(NULL);
        if (!own)
                return;
        char avail[512];
        if (read_attr(own, "cgroup.controllers", avail, sizeof(avail)) < 0)
                return;
        char enable[128] = "";
        for (int c = 0; c < OSM_CG_N; c++)
                if (v2_name[c] && has_word(avail, v2_name[c])) {
                        strcat(enable, "+");
                        strcat(enable, v2_name[c]);
                        strcat(enable, " ");
                }
        if (!*enable)
                return;
        _cleanup_free_ char *base = path_join3(own, name, NULL);
        if (!base || (mkdir(base, 0755) < 0 && errno != EEXIST))
                return;
        int r = osm_sb_write_attr(own, "cgroup.subtree_control", enable);
        if (r == -EBUSY) {
                _cleanup_free_ char *leaf = path_join3(own, "supervisor", NULL);
                char pid[32];
                snprintf(pid, sizeof(pid), "%d", (int) getpid());
                if (leaf && (mkdir(leaf, 0755) == 0 || errno == EEXIST) &&
                    osm_sb_write_attr(leaf, "cgroup.procs", pid) == 0)
                        r = osm_sb_write_attr(own, "cgroup.subtree_control", enable);
        }
        /* Whatever got enabled shows in base's cgroup.controllers. */
        (void) osm_sb_write_attr(base, "cgroup.subtree_control", enable);
        char got[512];
        if (read_attr(base, "cgroup.subtree_control", got, sizeof(got)) < 0)
                return;
        for (int c = 0; c < OSM_CG_N; c++)
                if (v2_name[c] && has_word(got, v2_name[c])) {
                        h->mode[c] = OSM_LIMIT_CGROUP2;
                        h->base[c] = strdup(base);
                }
        if (h->mode[OSM_CG_CPU] == OSM_LIMIT_CGROUP2 || h->mode[OSM_CG_MEMORY] == OSM_LIMIT_CGROUP2) {
                /* CPU time accounting (cpu.stat) exists in every v2 cgroup. */
                h->mode[OSM_CG_CPUACCT] = OSM_LIMIT_CGROUP2;
                h->base[OSM_CG_CPUACCT] = strdup(base);
        }
}

static void detect_v1(osm_cg_host *h, const char *name) {
        for (int c = 0; c < OSM_CG_N; c++) {
                if (h->mode[c] != OSM_LIMIT_NONE)
                        continue;
                _cleanup_free_ char *own = own_dir(v1_name[c]);
                if (!own)
                        continue;
                _cleanup_free_ char *base = path_join3(own, name, NULL);
                if (!base)
                        continue;
                if (mkdir(base, 0755) < 0 && errno != EEXIST) {
                        int e = -errno;
                        size_t u = strlen(h->why);
                        snprintf(h->why + u, sizeof(h->why) - u, "%s%s: %s", u ? "; " : "",
                                 v1_name[c], strerror(-e));
                        continue;
                }
                if (access(base, W_OK) < 0)
                        continue;
                h->mode[c] = OSM_LIMIT_CGROUP1;
                h->base[c] = steal_pointer(&base);
                if (c == OSM_CG_MEMORY) {
                        char p[4096];
                        snprintf(p, sizeof(p), "%s/memory.memsw.limit_in_bytes", h->base[c]);
                        h->memsw = access(p, W_OK) == 0;
                }
        }
}

void osm_cg_host_detect(osm_cg_host *h, const char *name) {
        memset(h, 0, sizeof(*h));
        detect_v2(h, name);
        detect_v1(h, name);
}

void osm_cg_host_clear(osm_cg_host *h) {
        for (int c = 0; c < OSM_CG_N; c++) {
                if (h->base[c])
                        rmdir(h->base[c]);   /* only succeeds when no instance is left */
                free(h->base[c]);
                h->base[c] = NULL;
        }
}

static int write_u64(const char *dir, const char *file, uint64_t v) {
        char buf[32];
        snprintf(buf, sizeof(buf), "%" PRIu64, v);
        return osm_sb_write_attr(dir, file, buf);
}

static int set_limits(osm_cg_ctrl c, osm_limit_mode mode, const char *dir, bool memsw,
                      uint64_t memory, uint64_t pids, uint64_t cpu_percent) {
        bool unlimited_mem = osm_cg_unlimited(memory);
        bool unlimited_pids = osm_cg_unlimited(pids);
        bool unlimited_cpu = osm_cg_unlimited(cpu_percent);
        int r = 0;
        char buf[64];
        switch (c) {
        case OSM_CG_MEMORY:
                if (unlimited_mem)
                        return 0;
                if (mode == OSM_LIMIT_CGROUP2) {
                        r = write_u64(dir, "memory.max", memory);
                        if (r == 0)
                                (void) osm_sb_write_attr(dir, "memory.swap.max", "0");
                } else {
                        r = write_u64(dir, "memory.limit_in_bytes", memory);
                        /* Count swap too, or a hog just moves to swap. */
                        if (r == 0 && memsw)
                                r = write_u64(dir, "memory.memsw.limit_in_bytes", memory);
                }
                return r;
        case OSM_CG_PIDS:
                if (unlimited_pids)
                        return 0;
                return write_u64(dir, "pids.max", pids);
        case OSM_CG_CPU:
                if (unlimited_cpu)
                        return 0;
                if (mode == OSM_LIMIT_CGROUP2) {
                        snprintf(buf, sizeof(buf), "%" PRIu64 " 100000", cpu_percent * 1000);
                        return osm_sb_write_attr(dir, "cpu.max", buf);
                }
                r = osm_sb_write_attr(dir, "cpu.cfs_period_us", "100000");
                if (r == 0)
                        r = write_u64(dir, "cpu.cfs_quota_us", cpu_percent * 1000);
                return r;
        default:
                return 0;
        }
}

int osm_cg_create(const osm_cg_host *h, const char *name, uint64_t memory, uint64_t pids,
                  uint64_t cpu_percent, osm_cgroup **out, char *why, size_t whylen) {
        osm_cgroup *cg = calloc(1, sizeof(*cg));
        if (!cg)
                return -ENOMEM;
        for (int c = 0; c < OSM_CG_N; c++) {
                if (h->mode[c] == OSM_LIMIT_NONE || !h->base[c])
                        continue;
                char *p = path_join3(h->base[c], name, NULL);
                if (!p) {
                        osm_cg_destroy(cg);
                        return -ENOMEM;
                }
                /* Co-mounted controllers (v1 "cpu,cpuacct", or the single v2 tree) share
                 * one directory: create and join it once. */
                bool shared = false;
                for (int o = 0; o < c; o++)
                        if (cg->path[o] && strcmp(cg->path[o], p) == 0)
                                shared = true;
                /* The instances' parent may have been removed behind our back (another
                 * manager's cleanup, an operator): make it again. */
                if (!shared && mkdir(h->base[c], 0755) < 0 && errno != EEXIST) {
                        append_why(why, whylen, v1_name[c], -errno);
                        free(p);
                        continue;
                }
                if (!shared && mkdir(p, 0755) < 0 && errno != EEXIST) {
                        append_why(why, whylen, v1_name[c], -errno);
                        free(p);
                        continue;
                }
                int r = set_limits(c, h->mode[c], p, h->memsw, memory, pids, cpu_percent);
                if (r < 0) {
                        char what[64];
                        snprintf(what, sizeof(what), "%s limit", v1_name[c]);
                        append_why(why, whylen, what, r);
                        if (!shared)
                                rmdir(p);
                        free(p);
                        continue;
                }
                cg->mode[c] = h->mode[c];
                cg->path[c] = p;
                if (!shared)
                        cg->procs[c] = path_join3(p, "cgroup.procs", NULL);
        }
        *out = cg;
        return 0;
}

int osm_cg_limit(const osm_cg_host *h, const osm_cgroup *cg, uint64_t memory, uint64_t pids, uint64_t cpu_percent) {
        for (int c = 0; c < OSM_CG_N; c++) {
                if (!cg->path[c])
                        continue;
                int r = set_limits(c, cg->mode[c], cg->path[c], h->memsw, memory, pids, cpu_percent);
                if (r < 0)
                        return r;
        }
        return 0;
}

int osm_cg_rename(osm_cgroup *cg, const char *name) {
        char *old[OSM_CG_N] = { 0 }, *new[OSM_CG_N] = { 0 };
        int r = 0, c;
        for (c = 0; c < OSM_CG_N && r == 0; c++) {
                if (!cg->procs[c])
                        continue;   /* no directory of its own, or one shared with an earlier controller */
                const char *slash = strrchr(cg->path[c], '/');
                if (!slash || asprintf(&new[c], "%.*s/%s", (int) (slash - cg->path[c]), cg->path[c], name) < 0) {
                        new[c] = NULL;
                        r = -ENOMEM;
                } else if (rename(cg->path[c], new[c]) < 0) {
                        r = -errno;
                        free(new[c]);
                        new[c] = NULL;
                }
        }
        if (r < 0) {
                /* Put back what was renamed: the cgroup is as it was. */
                for (c = 0; c < OSM_CG_N; c++)
                        if (new[c]) {
                                (void) rename(new[c], cg->path[c]);
                                free(new[c]);
                        }
                return r;
        }
        for (c = 0; c < OSM_CG_N; c++) {
                if (!new[c])
                        continue;
                old[c] = cg->path[c];
                for (int o = c + 1; o < OSM_CG_N; o++)   /* controllers sharing the directory */
                        if (cg->path[o] && !cg->procs[o] && strcmp(cg->path[o], old[c]) == 0) {
                                free(cg->path[o]);
                                cg->path[o] = strdup(new[c]);
                        }
                cg->path[c] = new[c];
                free(cg->procs[c]);
                cg->procs[c] = path_join3(new[c], "cgroup.procs", NULL);
                free(old[c]);
                if (!cg->procs[c])
                        r = -ENOMEM;
        }
        return r;
}

/* Move the calling thread (only it: v1 "tasks") into dir of each v1 controller of cg, or
 * with cg NULL into the parent of the instances' parent (where the daemon is). */
static int join_thread(const osm_cg_host *h, const osm_cgroup *cg) {
        char tid[32];
        snprintf(tid, sizeof tid, "%d", (int) gettid());
        int res = 0;
        for (int c = 0; c < OSM_CG_N; c++) {
                _cleanup_free_ char *up = NULL;
                const char *dir;
                if (cg) {
                        if (!cg->procs[c] || cg->mode[c] != OSM_LIMIT_CGROUP1)
                                continue;
                        dir = cg->path[c];
                } else {
                        if (h->mode[c] != OSM_LIMIT_CGROUP1 || !h->base[c] || !strrchr(h->base[c], '/'))
                                continue;
                        up = strndup(h->base[c], (size_t) (strrchr(h->base[c], '/') - h->base[c]));
                        if (!up)
                                return -ENOMEM;
                        dir = up;
                }
                int r = osm_sb_write_attr(dir, "tasks", tid);
                if (r < 0 && res == 0)
                        res = r;
                if (r < 0 && cg)
                        return r;
        }
        return res;
}

int osm_cg_join_thread(const osm_cg_host *h, const osm_cgroup *cg) {
        return join_thread(h, cg);
}

int osm_cg_leave_thread(const osm_cg_host *h) {
        return join_thread(h, NULL);
}

bool osm_cg_v1_joined(const osm_cgroup *cg) {
        for (int c = 0; cg && c < OSM_CG_N; c++)
                if (cg->procs[c] && cg->mode[c] == OSM_LIMIT_CGROUP1)
                        return true;
        return false;
}

int osm_cg_v2_dirfd(const osm_cgroup *cg) {
        for (int c = 0; cg && c < OSM_CG_N; c++)
                if (cg->procs[c] && cg->mode[c] == OSM_LIMIT_CGROUP2)
                        return open(cg->path[c], O_PATH | O_DIRECTORY | O_CLOEXEC);
        return -1;
}

int osm_cg_attach(const osm_cgroup *cg, pid_t pid, bool v2_done, bool v1_done) {
        char buf[32];
        snprintf(buf, sizeof(buf), "%d", (int) pid);
        for (int c = 0; c < OSM_CG_N; c++) {
                if (!cg->procs[c] || (v2_done && cg->mode[c] == OSM_LIMIT_CGROUP2) ||
                    (v1_done && cg->mode[c] == OSM_LIMIT_CGROUP1))
                        continue;
                _cleanup_close_ int fd = open(cg->procs[c], O_WRONLY | O_CLOEXEC);
                if (fd < 0)
                        return -errno;
                if (write(fd, buf, strlen(buf)) < 0)
                        return -errno;
        }
        return 0;
}

bool osm_cg_oom_killed(const osm_cgroup *cg) {
        if (!cg || !cg->path[OSM_CG_MEMORY])
                return false;
        const char *d = cg->path[OSM_CG_MEMORY];
        uint64_t n = cg->mode[OSM_CG_MEMORY] == OSM_LIMIT_CGROUP2 ? read_key(d, "memory.events", "oom_kill")
                                                                 : read_key(d, "memory.oom_control", "oom_kill");
        return n != UINT64_MAX && n > 0;
}

osm_cgroup *osm_cg_forget(osm_cgroup *cg) {
        if (!cg)
                return NULL;
        for (int c = 0; c < OSM_CG_N; c++) {
                free(cg->path[c]);
                free(cg->procs[c]);
        }
        free(cg);
        return NULL;
}

int osm_cg_remove_group(const osm_cg_host *h, const char *name) {
        int r = 0;
        for (int c = 0; c < OSM_CG_N; c++) {
                if (h->mode[c] == OSM_LIMIT_NONE || !h->base[c])
                        continue;
                _cleanup_free_ char *p = path_join3(h->base[c], name, NULL);
                if (p && rmdir(p) < 0 && errno != ENOENT)
                        r = -errno;
        }
        return r;
}

osm_cgroup *osm_cg_destroy(osm_cgroup *cg) {
        if (!cg)
                return NULL;
        for (int c = OSM_CG_N - 1; c >= 0; c--) {
                if (cg->procs[c] && cg->path[c]) {
                        /* The last tasks may still be exiting: the pid namespace died with
                         * its init, but removal of each task from the cgroup is async. */
                        for (int i = 0; i < 200 && rmdir(cg->path[c]) < 0 && errno == EBUSY; i++) {
                                struct timespec ts = { 0, 5 * 1000 * 1000 };
                                nanosleep(&ts, NULL);
                        }
                }
                free(cg->path[c]);
                free(cg->procs[c]);
        }
        free(cg);
        return NULL;
}

int osm_cgroup_stats_read(const osm_cgroup *cg, osm_cgroup_stats *st) {
        memset(st, 0xff, sizeof(*st));
        if (!cg)
                return -ENOENT;
        const char *mem = cg->path[OSM_CG_MEMORY];
        bool v2 = cg->mode[OSM_CG_MEMORY] == OSM_LIMIT_CGROUP2;
        if (mem) {
                st->memory_bytes = read_u64(mem, v2 ? "memory.current" : "memory.usage_in_bytes");
                st->memory_peak = read_u64(mem, v2 ? "memory.peak" : "memory.max_usage_in_bytes");
                st->oom_kills = v2 ? read_key(mem, "memory.events", "oom_kill")
                                   : read_key(mem, "memory.oom_control", "oom_kill");
        }
        if (cg->path[OSM_CG_PIDS])
                st->pids = read_u64(cg->path[OSM_CG_PIDS], "pids.current");
        const char *acct = cg->path[OSM_CG_CPUACCT];
        if (acct && cg->mode[OSM_CG_CPUACCT] == OSM_LIMIT_CGROUP2)
                st->cpu_usec = read_key(acct, "cpu.stat", "usage_usec");
        else if (acct) {
                uint64_t ns = read_u64(acct, "cpuacct.usage");
                st->cpu_usec = ns == UINT64_MAX ? ns : ns / 1000;
        }
        const char *io = cg->path[OSM_CG_IO];
        if (io) {
                char buf[8192];
                uint64_t rd = 0, wr = 0;
                if (cg->mode[OSM_CG_IO] == OSM_LIMIT_CGROUP2) {
                        if (read_attr(io, "io.stat", buf, sizeof(buf)) == 0) {
                                for (char *p = buf; (p = strstr(p, "rbytes=")); p += 7)
                                        rd += strtoull(p + 7, NULL, 10);
                                for (char *p = buf; (p = strstr(p, "wbytes=")); p += 7)
                                        wr += strtoull(p + 7, NULL, 10);
                                st->io_read_bytes = rd;
                                st->io_write_bytes = wr;
                        }
                } else if (read_attr(io, "blkio.throttle.io_service_bytes_recursive", buf, sizeof(buf)) == 0 ||
                           read_attr(io, "blkio.throttle.io_service_bytes", buf, sizeof(buf)) == 0) {
                        /* "8:0 Read 4096" lines per device, then "Total N". */
                        for (char *p = buf; (p = strstr(p, " Read ")); p += 6)
                                rd += strtoull(p + 6, NULL, 10);
                        for (char *p = buf; (p = strstr(p, " Write ")); p += 7)
                                wr += strtoull(p + 7, NULL, 10);
                        st->io_read_bytes = rd;
                        st->io_write_bytes = wr;
                }
        }
        return 0;
}

int osm_cgroup_kill(const osm_cgroup *cg, int sig) {
        if (!cg)
                return -ENOENT;
        int res = -ENOENT;
        for (int c = 0; c < OSM_CG_N; c++) {
                if (!cg->procs[c])
                        continue;
                if (sig == SIGKILL && cg->mode[c] == OSM_LIMIT_CGROUP2 &&
                    osm_sb_write_attr(cg->path[c], "cgroup.kill", "1") == 0)
                        return 0;
                char buf[16384];
                if (read_attr(cg->path[c], "cgroup.procs", buf, sizeof(buf)) < 0)
                        continue;
                res = 0;
                for (char *p = buf; *p;) {
                        char *end;
                        long pid = strtol(p, &end, 10);
                        if (end == p)
                                break;
                        /* A launcher thread of the daemon may still sit in it (launcher.c). */
                        if (pid > 0 && pid != getpid() && kill((pid_t) pid, sig) < 0 && errno != ESRCH)
                                res = -errno;
                        p = end;
                        while (*p == '\n')
                                p++;
                }
                return res;
        }
        return res;
}

json_t *osm_cgroup_stats_json(const osm_cgroup_stats *st) {
        json_t *o = json_object();
        if (!o)
                return NULL;
#define ADD(f) \
        if (st->f != UINT64_MAX) \
                json_object_set_new(o, #f, json_integer((json_int_t) st->f));
        ADD(cpu_usec);
        ADD(memory_bytes);
        ADD(memory_peak);
        ADD(pids);
        ADD(io_read_bytes);
        ADD(io_write_bytes);
        ADD(oom_kills);
#undef ADD
        return o;
}
