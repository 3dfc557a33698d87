/* sandbox-spawn.c: time spawn-to-exit of /bin/true in an Osmose sandbox, as the daemon pays it (bench/sandbox.sh). */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "daemon/sandbox/sandbox.h"

static double now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int main(int argc, char **argv) {
        int n = argc > 1 ? atoi(argv[1]) : 200;
        char dir[] = "/tmp/osm-bench-XXXXXX";
        if (n <= 0 || !mkdtemp(dir))
                return 2;
        char stage[64], data[64];
        snprintf(stage, sizeof(stage), "%s/stage", dir);
        snprintf(data, sizeof(data), "%s/data", dir);
        mkdir(stage, 0755);
        osm_sandbox_options o = { .uid_base = 300000, .uid_count = 65536, .stage_dir = stage, .cgroup_name = "osmose-bench" };
        osm_sandbox *sb;
        int r = osm_sandbox_new(&o, &sb);
        if (r < 0 || !osm_sandbox_caps(sb)->userns) {
                fprintf(stderr, "sandbox-spawn: no sandbox on this host (%s)\n", r < 0 ? strerror(-r) : osm_sandbox_caps(sb)->detail);
                return 77;
        }
        const char *args[] = { "/bin/true", NULL };
        osm_sandbox_spec spec;
        osm_sandbox_spec_init(&spec);
        spec.name = "bench";
        spec.argv = args;
        spec.data_dir = data;
        double t0 = now_ms();
        for (int i = 0; i < n; i++) {
                osm_sandbox_proc *p;
                osm_error err;
                r = osm_sandbox_spawn(sb, &spec, &p, &err);
                if (r < 0) {
                        fprintf(stderr, "sandbox-spawn: %s\n", err.message);
                        return 1;
                }
                struct pollfd pfd = { .fd = osm_sandbox_proc_pidfd(p), .events = POLLIN };
                osm_sandbox_exit ex;
                while ((r = osm_sandbox_proc_reap(p, &ex)) == -EAGAIN)
                        poll(&pfd, 1, 1000);
                if (r < 0 || !WIFEXITED(ex.status) || WEXITSTATUS(ex.status) != 0) {
                        fprintf(stderr, "sandbox-spawn: /bin/true failed (status 0x%x)\n", ex.status);
                        return 1;
                }
                osm_sandbox_proc_free(p);
        }
        double ms = (now_ms() - t0) / n;
        printf("%.3f\n", ms);
        osm_sandbox_free(sb);
        rmdir(data);
        rmdir(stage);
        rmdir(dir);
        return 0;
}
