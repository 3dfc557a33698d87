/* sandbox.c: the sandbox manager: options, defaults, the stage directory; spawning is in spawn.c, the child side in child.c. */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "osmose/util.h"
#include "daemon/sandbox/sandbox-internal.h"

/* Where this process's brk heap begins (start_brk, field 47 of /proc/self/stat, after
 * the command name in parentheses, which may hold anything), or 0. */
static uintptr_t heap_start(void) {
        _cleanup_free_ char *stat = NULL;
        if (osm_read_file("/proc/self/stat", 4096, &stat, NULL) < 0)
                return 0;
        const char *p = strrchr(stat, ')');
        for (int field = 2; p && field < 47; field++)
                p = strchr(p + 1, ' ');
        return p ? (uintptr_t) strtoull(p + 1, NULL, 10) : 0;
}

static void set_limits_defaults(osm_sandbox *sb, const osm_sandbox_limits *d) {
        sb->defaults.memory = osm_sb_pick(d ? d->memory : 0, DEFAULT_MEMORY);
        sb->defaults.pids = osm_sb_pick(d ? d->pids : 0, DEFAULT_PIDS);
        sb->defaults.cpu_percent = osm_sb_pick(d ? d->cpu_percent : 0, UINT64_MAX);
        sb->defaults.tmp_size = osm_sb_pick(d ? d->tmp_size : 0, DEFAULT_TMP);
        sb->defaults.nofile = osm_sb_pick(d ? d->nofile : 0, DEFAULT_NOFILE);
        sb->defaults.file_size = osm_sb_pick(d ? d->file_size : 0, DEFAULT_FSIZE);
}

int osm_sandbox_reconfigure(osm_sandbox *sb, const osm_sandbox_options *opts) {
        if (!opts || (sb->privileged && opts->uid_count == 0) || opts->uid_base + opts->uid_count > UINT32_MAX)
                return -EINVAL;
        const char *net = opts->network ? opts->network : "none";
        if (strlen(net) >= IFNAMSIZ)
                return -EINVAL;
        char *network = strdup(net), *bridge = NULL;
        if (!network || (strcmp(net, "none") != 0 && *net && !(bridge = strdup(net)))) {
                free(network);
                return -ENOMEM;
        }
        free(sb->network);
        sb->network = network;
        free(sb->net.bridge);
        sb->net.bridge = bridge;   /* leases of running instances stay until they end */
        sb->uid_base = opts->uid_base;
        sb->uid_count = opts->uid_count;
        set_limits_defaults(sb, opts->defaults);
        osm_launcher_set_limits(sb->launcher, sb->defaults.memory, sb->defaults.pids, sb->defaults.cpu_percent);
        return 0;
}

int osm_sandbox_new(const osm_sandbox_options *opts, osm_sandbox **out) {
        if (!opts || (opts->uid_count == 0 && geteuid() == 0) || opts->uid_base + opts->uid_count > UINT32_MAX)
                return -EINVAL;
        osm_sandbox *sb = calloc(1, sizeof(*sb));
        if (!sb)
                return -ENOMEM;
        set_limits_defaults(sb, opts->defaults);
        sb->uid_base = opts->uid_base;
        sb->uid_count = opts->uid_count;
        sb->privileged = geteuid() == 0;
        if (opts->stage_dir)
                sb->stage_dir = strdup(opts->stage_dir);
        else if (asprintf(&sb->stage_dir, "/tmp/.osmose-stage-%u", (unsigned) geteuid()) < 0)
                sb->stage_dir = NULL;
        sb->network = strdup(opts->network ? opts->network : "none");
        if (!sb->stage_dir || !sb->network) {
                osm_sandbox_free(sb);
                return -ENOMEM;
        }
        if (strcmp(sb->network, "none") != 0 && *sb->network) {
                sb->net.bridge = strdup(sb->network);
                if (!sb->net.bridge || strlen(sb->network) >= IFNAMSIZ) {
                        osm_sandbox_free(sb);
                        return -EINVAL;
                }
        }
        /* The stage is a mount point inside each sandbox's own mount namespace; on the
         * host it stays an empty directory, so mounting over it hides nothing a spec
         * could name as a source. */
        struct stat st;
        if ((mkdir(sb->stage_dir, 0755) < 0 && errno != EEXIST) || lstat(sb->stage_dir, &st) < 0 ||
            !S_ISDIR(st.st_mode) || st.st_uid != geteuid()) {
                osm_sandbox_free(sb);
                return -ENOTDIR;
        }
        sb->last_cap = CAP_LAST_CAP;
        char buf[16];
        _cleanup_close_ int fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
        ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
        if (n > 0) {
                buf[n] = 0;
                sb->last_cap = (unsigned) strtoul(buf, NULL, 10);
        }
        osm_sb_detect(sb, opts->cgroup_name ? opts->cgroup_name : "osmose");
        sb->heap_start = heap_start();
        /* Inits cloned ahead only where they get their user namespace after their clone;
         * they build what every minimal root begins with while they wait (none if it
         * cannot be packed: then each launch builds all of its root). */
        if (sb->privileged && osm_sb_ahead_make(sb, &sb->ahead) < 0)
                sb->ahead = (osm_sb_ahead) { 0 };
        sb->launcher = osm_launcher_new(&sb->cg, sb->privileged, sb->heap_start, sb->ahead.ops, sb->ahead.n);
        osm_launcher_set_limits(sb->launcher, sb->defaults.memory, sb->defaults.pids, sb->defaults.cpu_percent);
        /* setns needs no user namespace */
        sb->netns = sb->privileged ? osm_netns_pool_new(sb->uid_base, sb->uid_count) : NULL;
        *out = sb;
        return 0;
}

osm_sandbox *osm_sandbox_free(osm_sandbox *sb) {
        if (!sb)
                return NULL;
        sb->launcher = osm_launcher_free(sb->launcher);
        osm_sb_ahead_clear(&sb->ahead);
        sb->netns = osm_netns_pool_free(sb->netns);
        osm_cg_host_clear(&sb->cg);
        free(sb->net.bridge);
        osm_net_clear(&sb->net);
        osm_seccomp_cache_clear(&sb->seccomp);
        free(sb->stage_dir);
        free(sb->network);
        free(sb);
        return NULL;
}

const osm_sandbox_features *osm_sandbox_caps(const osm_sandbox *sb) {
        return &sb->feat;
}

int osm_sandbox_remove_group(osm_sandbox *sb, const char *group) {
        return sb ? osm_cg_remove_group(&sb->cg, group) : 0;
}
