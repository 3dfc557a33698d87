/* detect.c: what this host's kernel gives the sandbox (user and cgroup namespaces, seccomp, pidfds, cgroup controllers), found by trying once. */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "osmose/util.h"
#include "daemon/sandbox/sandbox-internal.h"

const char *osm_limit_mode_name(osm_limit_mode m) {
        switch (m) {
        case OSM_LIMIT_RLIMIT: return "rlimit";
        case OSM_LIMIT_CGROUP1: return "cgroup1";
        case OSM_LIMIT_CGROUP2: return "cgroup2";
        default: return "none";
        }
}

/* Try the real thing once: a child in every namespace that makes a cgroup namespace and
 * loads the seccomp filter (osm_sb_probe_child, in child.c); then the cgroup controllers.
 * Fills sb->feat. */
void osm_sb_detect(osm_sandbox *sb, const char *cg_name) {
        osm_sandbox_features *f = &sb->feat;
        memset(f, 0, sizeof(*f));
        const osm_seccomp_prog *prog = NULL;
        int sr = osm_seccomp_get(&sb->seccomp, 0, &prog);
        int pidfd = -1;
        osm_sb_probe probe = { .prog = prog, .unshare_user = sb->privileged };
        bool into_cg;
        pid_t pid = osm_sb_clone(osm_sb_probe_child, &probe,
                                 sb->privileged ? NS_FLAGS : NS_FLAGS | CLONE_NEWUSER, -1, &into_cg, &pidfd);
        if (pid < 0) {
                snprintf(f->detail, sizeof(f->detail), "no user namespace: clone: %s", strerror(errno));
        } else {
                int st = 0;
                while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
                        ;
                f->pidfd = pidfd >= 0;
                int code = WIFEXITED(st) ? WEXITSTATUS(st) : 0xff;
                f->userns = !(code & PROBE_USERNS);
                if (!f->userns)
                        snprintf(f->detail, sizeof(f->detail), "no user namespace: unshare failed");
                f->cgroupns = !(code & PROBE_CGROUPNS);
                f->seccomp = sr == 0 && !(code & PROBE_SECCOMP);
                osm_close(pidfd);
        }
        osm_cg_host_detect(&sb->cg, cg_name);
        f->memory = sb->cg.mode[OSM_CG_MEMORY] ? sb->cg.mode[OSM_CG_MEMORY] : OSM_LIMIT_RLIMIT;
        f->pids = sb->cg.mode[OSM_CG_PIDS] ? sb->cg.mode[OSM_CG_PIDS] : OSM_LIMIT_RLIMIT;
        f->cpu = sb->cg.mode[OSM_CG_CPU];
        f->io = sb->cg.mode[OSM_CG_IO];
        if (!*f->detail && *sb->cg.why)
                snprintf(f->detail, sizeof(f->detail), "cgroups: %s", sb->cg.why);
        if (f->userns && !f->seccomp)
                snprintf(f->detail, sizeof(f->detail), "seccomp filters cannot be loaded");
}

json_t *osm_sandbox_features_json(const osm_sandbox_features *f) {
        json_t *o = json_object(), *lim = json_object(), *deg = json_array();
        if (!o || !lim || !deg) {
                json_decref(o);
                json_decref(lim);
                json_decref(deg);
                return NULL;
        }
        json_object_set_new(o, "userns", json_boolean(f->userns));
        json_object_set_new(o, "seccomp", json_boolean(f->seccomp));
        json_object_set_new(o, "pidfd", json_boolean(f->pidfd));
        json_object_set_new(o, "cgroupns", json_boolean(f->cgroupns));
        const struct {
                const char *name;
                osm_limit_mode m;
        } l[] = { { "memory", f->memory }, { "pids", f->pids }, { "cpu", f->cpu }, { "io", f->io } };
        for (size_t i = 0; i < OSM_ARRAY_SIZE(l); i++) {
                json_object_set_new(lim, l[i].name, json_string(osm_limit_mode_name(l[i].m)));
                if (l[i].m < OSM_LIMIT_CGROUP1)
                        json_array_append_new(deg, json_string(l[i].name));
        }
        json_object_set_new(o, "limits", lim);
        json_object_set_new(o, "degraded", deg);
        if (*f->detail)
                json_object_set_new(o, "detail", json_string(f->detail));
        return o;
}

