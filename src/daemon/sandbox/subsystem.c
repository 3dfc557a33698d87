/* subsystem.c: the sandbox as an osmosed subsystem: made from [sandbox] at start, reports what this host enforces. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "daemon/daemon.h"
#include "daemon/sandbox/sandbox.h"
#include "osmose/log.h"

/* Options from [sandbox]; stage is the caller's buffer. */
static void options_from_config(const osm_daemon *d, osm_sandbox_options *o, osm_sandbox_limits *defaults,
                                const char *stage) {
        *defaults = (osm_sandbox_limits) {
                .memory = d->cfg.default_memory,
                .pids = d->cfg.default_pids,
                .cpu_percent = d->cfg.default_cpu_percent,
        };
        *o = (osm_sandbox_options) {
                .uid_base = d->cfg.uid_base,
                .uid_count = d->cfg.uid_count,
                .stage_dir = stage,
                .network = d->cfg.network,
                .defaults = defaults,
        };
}

static int sandbox_start(osm_daemon *d) {
        char stage[4096];
        if ((size_t) snprintf(stage, sizeof(stage), "%s/sandbox-stage", d->cfg.state_dir) >= sizeof(stage))
                return -ENAMETOOLONG;
        osm_sandbox_limits defaults;
        osm_sandbox_options o;
        options_from_config(d, &o, &defaults, stage);
        int r = osm_sandbox_new(&o, &d->sandbox);
        if (r < 0) {
                /* Not fatal: the daemon serves everything else; status says why. */
                log_error("sandbox: cannot set up (%s): %s", stage, strerror(-r));
                d->sandbox = NULL;
                return 0;
        }
        const osm_sandbox_features *f = osm_sandbox_caps(d->sandbox);
        if (!f->userns || !f->seccomp)
                log_warning("sandbox: workloads cannot run on this host: %s", f->detail);
        else
                log_info("sandbox: memory %s, pids %s, cpu %s, io %s", osm_limit_mode_name(f->memory),
                         osm_limit_mode_name(f->pids), osm_limit_mode_name(f->cpu), osm_limit_mode_name(f->io));
        return 0;
}

static void sandbox_stop(osm_daemon *d) {
        d->sandbox = osm_sandbox_free(d->sandbox);
}

/* ok: every limit is a cgroup limit; degraded: some are rlimits or missing (named in
 * detail); failed: no sandbox can be made at all. */
static osm_health sandbox_health(osm_daemon *d, char *detail, size_t size) {
        if (!d->sandbox) {
                snprintf(detail, size, "not set up (see the log)");
                return OSM_HEALTH_FAILED;
        }
        const osm_sandbox_features *f = osm_sandbox_caps(d->sandbox);
        if (!f->userns || !f->seccomp) {
                snprintf(detail, size, "%s", f->detail[0] ? f->detail : "no user namespaces or seccomp");
                return OSM_HEALTH_FAILED;
        }
        char missing[256] = "", ok[128] = "";
        const struct {
                const char *name;
                osm_limit_mode m;
        } l[] = { { "memory", f->memory }, { "pids", f->pids }, { "cpu", f->cpu }, { "io accounting", f->io } };
        for (size_t i = 0; i < OSM_ARRAY_SIZE(l); i++) {
                if (l[i].m >= OSM_LIMIT_CGROUP1) {
                        size_t u = strlen(ok);
                        snprintf(ok + u, sizeof(ok) - u, "%s%s %s", u ? ", " : "", l[i].name,
                                 osm_limit_mode_name(l[i].m));
                        continue;
                }
                size_t u = strlen(missing);
                snprintf(missing + u, sizeof(missing) - u, "%s%s: %s", u ? ", " : "", l[i].name,
                         l[i].m == OSM_LIMIT_RLIMIT ? "rlimit only" : "not enforced");
        }
        snprintf(detail, size, "%s", missing[0] ? missing : ok);
        return missing[0] ? OSM_HEALTH_DEGRADED : OSM_HEALTH_OK;
}

static void sandbox_status(osm_daemon *d, json_t *obj) {
        if (!d->sandbox)
                return;
        const osm_sandbox_features *f = osm_sandbox_caps(d->sandbox);
        json_t *fj = osm_sandbox_features_json(f);
        if (fj) {
                json_object_update(obj, fj);
                json_decref(fj);
        }
        if (f->userns && f->seccomp)
                json_object_set_new(obj, "network", json_string(d->cfg.network ? d->cfg.network : "none"));
}

/* New uid range, network and default limits apply to instances started from now on. */
static void sandbox_reload(osm_daemon *d, const osm_config *old) {
        if (!d->sandbox)
                return;
        osm_sandbox_limits defaults;
        osm_sandbox_options o;
        options_from_config(d, &o, &defaults, NULL);
        int r = osm_sandbox_reconfigure(d->sandbox, &o);
        if (r < 0)
                log_error("sandbox: keeping the previous settings: %s", strerror(-r));
}

const osm_subsystem osm_sandbox_subsystem = {
        .name = "sandbox",
        .start = sandbox_start,
        .stop = sandbox_stop,
        .health = sandbox_health,
        .status = sandbox_status,
        .reload = sandbox_reload,
};
