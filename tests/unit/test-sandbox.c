/* test-sandbox.c: real sandboxes through the sandbox API: escape attempts by the probe, limits, signals, errors. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <sys/mount.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon/sandbox/sandbox.h"
#include "tap.h"

#define UID_BASE 200000
#define UID_COUNT 65536

static char tmpdir[] = "/tmp/osm-sandbox-test-XXXXXX";
static const char *probe;
static osm_sandbox *sb;

/* Every attempt the probe must make (and report as held) in "escape" mode. */
static const char *const expected[] = {
        "read-host-file", "read-host-file-via-proc1-root", "read-host-file-via-dotdot", "read-host-shadow",
        "read-host-ssh-dir", "chroot", "open-by-handle", "write-root-create", "write-root-mkdir", "write-usr",
        "write-etc", "write-dev", "write-proc-sys", "write-sysrq-trigger", "tmp-writable", "data-writable",
        "exec-from-tmp", "see-host-processes", "see-host-pid", "signal-host-pid", "pid-namespace",
        "network-interfaces", "reach-1.1.1.1", "reach-10.0.0.1", "reach-192.168.1.1", "reach-169.254.169.254",
        "reach-ipv6", "reach-host-loopback", "reach-host-abstract-socket", "raw-socket", "socket-alg", "socket-netlink-audit", "socket-netlink-route-allowed", "ptrace-attach-init",
        "ptrace-traceme", "process-vm-readv", "mount-tmpfs", "remount-root-rw", "umount-proc", "pivot-root",
        "fsopen", "open-tree", "init-module", "finit-module", "delete-module", "bpf", "keyctl", "add-key",
        "request-key", "perf-event-open", "userfaultfd", "io-uring-setup", "kexec-load", "reboot",
        "mknod-device", "clock-settime", "syslog", "swapon", "personality", "open-dev-mem", "open-dev-sda",
        "tiocsti-stdin", "tiocsti-stdin-high-bits", "tioclinux", "tiocsti-own-pty", "tiocsti-own-pty-high-bits",
        "open-controlling-tty",
        "new-session", "write-proc-self-exe", "write-proc-1-exe", "read-proc-1-exe", "read-proc-1-environ",
        "read-proc-1-mem", "no-capabilities", "capset-raise", "bounding-set-empty", "ambient-raise",
        "no-new-privs", "no-new-privs-clear", "unshare-user", "unshare-mount", "clone-newuser", "setns", "uid",
        "inherited-fds", "inherited-fds-usable", "sethostname", "setdomainname", "hostname-unchanged",
        "alive-after-denials",
};

typedef struct run_result {
        int spawn;              /* osm_sandbox_spawn's return */
        char err[OSM_ERROR_MAX];
        bool exited;            /* reaped within the timeout */
        osm_sandbox_exit ex;
        osm_cgroup_stats stats;
        bool have_stats;
        char out[65536];        /* the workload's stdout */
} run_result;

/* s with newlines shown as '|', for one-line TAP messages (static buffer). */
static const char *oneline(const char *s) {
        static char buf[256];
        size_t i = 0;
        for (; s[i] && i < sizeof(buf) - 1; i++)
                buf[i] = s[i] == '\n' ? '|' : s[i];
        buf[i] = 0;
        return buf;
}

/* Run spec to completion (timeout_s, then SIGKILL), collecting stdout. */
static void run(osm_sandbox_spec *spec, int timeout_s, int send_sig_after_start, run_result *res) {
        memset(res, 0, sizeof(*res));
        int pfd[2];
        if (pipe2(pfd, O_CLOEXEC) < 0)
                abort();
        spec->stdout_fd = pfd[1];
        osm_sandbox_proc *p = NULL;
        osm_error e = {};
        res->spawn = osm_sandbox_spawn(sb, spec, &p, &e);
        snprintf(res->err, sizeof(res->err), "%s", e.message);
        close(pfd[1]);
        if (res->spawn < 0) {
                close(pfd[0]);
                return;
        }
        if (send_sig_after_start)
                osm_sandbox_proc_kill(p, send_sig_after_start);
        size_t used = 0;
        struct pollfd fds[2] = { { .fd = pfd[0], .events = POLLIN }, { .fd = osm_sandbox_proc_pidfd(p), .events = POLLIN } };
        int waited_ms = 0;
        bool out_open = true;
        while (waited_ms < timeout_s * 1000) {
                int n = poll(fds, 2, 100);
                if (n == 0)
                        waited_ms += 100;
                if (out_open && (fds[0].revents & (POLLIN | POLLHUP))) {
                        ssize_t r = read(pfd[0], res->out + used, sizeof(res->out) - 1 - used);
                        if (r > 0)
                                used += r;
                        else
                                out_open = false;
                        if (!out_open)
                                fds[0].fd = -1;
                }
                if (fds[1].revents & POLLIN) {
                        /* Drain what is left of stdout (the writers are gone with the sandbox). */
                        if (osm_sandbox_proc_reap(p, &res->ex) == 0) {
                                res->exited = true;
                                break;
                        }
                }
        }
        res->out[used] = 0;
        if (!res->exited) {
                osm_sandbox_proc_kill(p, SIGKILL);
                for (int i = 0; i < 50 && osm_sandbox_proc_reap(p, &res->ex) == -EAGAIN; i++)
                        usleep(100 * 1000);
        }
        ssize_t r;
        fcntl(pfd[0], F_SETFL, O_NONBLOCK);
        while (used < sizeof(res->out) - 1 && (r = read(pfd[0], res->out + used, sizeof(res->out) - 1 - used)) > 0)
                used += r;
        res->out[used] = 0;
        close(pfd[0]);
        if (osm_sandbox_proc_cgroup(p))
                res->have_stats = osm_cgroup_stats_read(osm_sandbox_proc_cgroup(p), &res->stats) == 0;
        osm_sandbox_proc_free(p);
}

/* Check each probe line and that every expected attempt was reported. */
static void check_escape_output(const char *what, const run_result *res) {
        bool seen[sizeof(expected) / sizeof(expected[0])] = { 0 };
        char *copy = strdup(res->out), *save = NULL;
        for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                bool ok = strncmp(line, "ok - ", 5) == 0;
                bool notok = strncmp(line, "not ok - ", 9) == 0;
                if (!ok && !notok)
                        continue;
                const char *name = line + (ok ? 5 : 9);
                size_t nl = strcspn(name, ":");
                for (size_t i = 0; i < sizeof(expected) / sizeof(expected[0]); i++)
                        if (strlen(expected[i]) == nl && strncmp(expected[i], name, nl) == 0)
                                seen[i] = true;
                tap_ok(ok, "%s: %s", what, name);
        }
        free(copy);
        for (size_t i = 0; i < sizeof(expected) / sizeof(expected[0]); i++)
                if (!seen[i])
                        tap_ok(false, "%s: attempt '%s' was not reported by the probe", what, expected[i]);
        tap_ok(res->exited && WIFEXITED(res->ex.status) && WEXITSTATUS(res->ex.status) == 0,
               "%s: probe finished with status 0 (status 0x%x)", what, res->ex.status);
}

static int listen_tcp(int *port) {
        int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in a = { .sin_family = AF_INET };
        inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
        socklen_t l = sizeof(a);
        if (s < 0 || bind(s, (struct sockaddr *) &a, sizeof(a)) < 0 || listen(s, 4) < 0 ||
            getsockname(s, (struct sockaddr *) &a, &l) < 0)
                return -1;
        *port = ntohs(a.sin_port);
        return s;
}

static int listen_abstract(const char *name) {
        int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un un = { .sun_family = AF_UNIX };
        memcpy(un.sun_path + 1, name, strlen(name));
        if (s < 0 || bind(s, (struct sockaddr *) &un, (socklen_t) (offsetof(struct sockaddr_un, sun_path) + 1 + strlen(name))) < 0 ||
            listen(s, 4) < 0)
                return -1;
        return s;
}

static int copy_file(const char *from, const char *to, mode_t mode) {
        int in = open(from, O_RDONLY | O_CLOEXEC), out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
        char buf[65536];
        ssize_t n;
        int r = in >= 0 && out >= 0 ? 0 : -1;
        while (r == 0 && (n = read(in, buf, sizeof(buf))) > 0)
                if (write(out, buf, n) != n)
                        r = -1;
        if (in >= 0)
                close(in);
        if (out >= 0)
                close(out);
        return r;
}

static void test_escape(void) {
        char secret[256], data[256], pidbuf[16], portbuf[16], abstract[64];
        snprintf(secret, sizeof(secret), "%s/secret", tmpdir);
        snprintf(data, sizeof(data), "%s/data", tmpdir);
        FILE *f = fopen(secret, "w");
        fputs("host secret\n", f);
        fclose(f);
        chmod(secret, 0644);   /* world-readable: only the mount namespace protects it */

        int port = 0;
        int tcp = listen_tcp(&port);
        snprintf(abstract, sizeof(abstract), "osmose-probe-%d", (int) getpid());
        int ab = listen_abstract(abstract);
        TAP_OK(tcp >= 0 && ab >= 0, "host listeners for the network attempts");
        snprintf(pidbuf, sizeof(pidbuf), "%d", (int) getpid());
        snprintf(portbuf, sizeof(portbuf), "%d", port);

        /* Leave fds open without CLOEXEC on the host side: none may reach the probe. */
        int leaked[4];
        leaked[0] = open("/", O_RDONLY | O_DIRECTORY);
        leaked[1] = open(secret, O_RDONLY);
        leaked[2] = dup(tcp);
        leaked[3] = dup(ab);

        /* A terminal on stdin for TIOCSTI. */
        int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
        int slave = -1;
        if (master >= 0 && grantpt(master) == 0 && unlockpt(master) == 0)
                slave = open(ptsname(master), O_RDWR | O_NOCTTY | O_CLOEXEC);
        TAP_OK(slave >= 0, "a pty for the terminal injection attempts");

        char hostname_before[256] = "", hostname_after[256] = "";
        gethostname(hostname_before, sizeof(hostname_before));

        const char *argv[] = { "/opt/probe", "escape", secret, pidbuf, portbuf, abstract, NULL };
        osm_sandbox_bind binds[] = { { .source = probe, .target = "/opt/probe" } };
        osm_sandbox_spec spec;
        osm_sandbox_spec_init(&spec);
        spec.name = "escape";
        spec.argv = argv;
        spec.data_dir = data;
        spec.binds = binds;
        spec.n_binds = 1;
        spec.stdin_fd = slave;
        spec.stderr_fd = 2;
        static run_result res;
        run(&spec, 60, 0, &res);
        TAP_OK(res.spawn == 0, "spawn the probe in the minimal root (%s)", res.err);
        if (res.spawn == 0)
                check_escape_output("minimal root", &res);

        gethostname(hostname_after, sizeof(hostname_after));
        TAP_OK(strcmp(hostname_after, hostname_before) == 0, "host hostname unchanged (%s)", hostname_after);
        struct stat st;
        char probefile[600];
        snprintf(probefile, sizeof(probefile), "%s/probe", data);
        TAP_OK(stat(probefile, &st) == 0 && st.st_uid == UID_BASE,
               "the probe's /data file is on the host, owned by the mapped uid %d", UID_BASE);
        TAP_OK(stat(data, &st) == 0 && (st.st_mode & 0777) == 0700 && st.st_uid == UID_BASE,
               "data dir is 0700 and owned by the mapped uid");

        /* The same from a bundle-style rootfs holding nothing but the (static) probe. */
        char rootfs[256], bin[300], pbin[400];
        snprintf(rootfs, sizeof(rootfs), "%s/rootfs", tmpdir);
        snprintf(bin, sizeof(bin), "%s/bin", rootfs);
        snprintf(pbin, sizeof(pbin), "%s/probe", bin);
        mkdir(rootfs, 0755);
        mkdir(bin, 0755);
        TAP_OK(copy_file(probe, pbin, 0755) == 0, "a rootfs with the probe");
        const char *argv2[] = { "/bin/probe", "escape", secret, pidbuf, portbuf, abstract, NULL };
        spec.name = "escape-rootfs";
        spec.root = rootfs;
        spec.argv = argv2;
        spec.binds = NULL;
        spec.n_binds = 0;
        run(&spec, 60, 0, &res);
        TAP_OK(res.spawn == 0, "spawn the probe in a bundle rootfs (%s)", res.err);
        if (res.spawn == 0)
                check_escape_output("bundle rootfs", &res);
        TAP_OK(access(rootfs, F_OK) == 0 && access(pbin, X_OK) == 0, "the bundle rootfs is untouched");
        char stray[600];
        snprintf(stray, sizeof(stray), "%s/probe-was-here", rootfs);
        TAP_OK(access(stray, F_OK) < 0, "nothing written into the bundle rootfs");

        for (int i = 0; i < 4; i++)
                if (leaked[i] >= 0)
                        close(leaked[i]);
        close(tcp);
        close(ab);
        if (slave >= 0)
                close(slave);
        if (master >= 0)
                close(master);
}

static void test_forkbomb(void) {
        const osm_sandbox_features *f = osm_sandbox_caps(sb);
        if (f->pids < OSM_LIMIT_CGROUP1) {
                tap_skip("no pids cgroup on this host", "fork bomb bounded by the pids limit");
                return;
        }
        const char *argv[] = { "/opt/probe", "forkbomb", "32", NULL };
        osm_sandbox_bind binds[] = { { .source = probe, .target = "/opt/probe" } };
        osm_sandbox_spec spec;
        osm_sandbox_spec_init(&spec);
        spec.name = "forkbomb";
        spec.argv = argv;
        spec.binds = binds;
        spec.n_binds = 1;
        spec.limits.pids = 32;
        static run_result res;
        run(&spec, 60, 0, &res);
        TAP_OK(res.spawn == 0, "spawn the fork bomb (%s)", res.err);
        int n = -1;
        char why[128] = "";
        sscanf(res.out, "forkbomb %d %127[^\n]", &n, why);
        TAP_OK(n >= 0 && n < 32, "fork bomb stopped below the pids limit of 32 (forked %d)", n);
        TAP_OK(strstr(why, "temporarily unavailable") != NULL, "fork refused with EAGAIN (%s)", why);
        TAP_OK(res.exited, "the fork bomb's sandbox is gone");
        pid_t p = fork();
        if (p == 0)
                _exit(0);
        int st;
        TAP_OK(p > 0 && waitpid(p, &st, 0) == p, "the host can still fork");
}

static void test_memhog(void) {
        const osm_sandbox_features *f = osm_sandbox_caps(sb);
        if (f->memory < OSM_LIMIT_CGROUP1) {
                tap_skip("no memory cgroup on this host", "memory hog killed at the memory limit");
                return;
        }
        const char *argv[] = { "/opt/probe", "memhog", "512", NULL };
        osm_sandbox_bind binds[] = { { .source = probe, .target = "/opt/probe" } };
        osm_sandbox_spec spec;
        osm_sandbox_spec_init(&spec);
        spec.name = "memhog";
        spec.argv = argv;
        spec.binds = binds;
        spec.n_binds = 1;
        spec.limits.memory = 32 << 20;
        static run_result res;
        run(&spec, 60, 0, &res);
        TAP_OK(res.spawn == 0, "spawn the memory hog (%s)", res.err);
        TAP_OK(res.exited && WIFSIGNALED(res.ex.status) && WTERMSIG(res.ex.status) == SIGKILL,
               "the memory hog was killed (status 0x%x, output: %s)", res.ex.status, oneline(res.out));
        TAP_OK(res.ex.oom_killed, "reported as killed by the memory limit");
        TAP_OK(strstr(res.out, "survived") == NULL, "it never got its 512 MiB");
        TAP_OK(res.have_stats && res.stats.memory_peak != UINT64_MAX && res.stats.memory_peak <= (32 << 20) + (1 << 20),
               "peak memory within the limit (%llu bytes)", (unsigned long long) res.stats.memory_peak);
        TAP_OK(res.have_stats && res.stats.cpu_usec != UINT64_MAX && res.stats.cpu_usec > 0,
               "CPU time accounted (%llu us)", (unsigned long long) res.stats.cpu_usec);
        /* The manager (the daemon's side) is unaffected: the next instance starts. */
        const char *argv2[] = { "/opt/probe", "true", NULL };
        spec.name = "after-memhog";
        spec.argv = argv2;
        spec.limits.memory = 0;
        run(&spec, 30, 0, &res);
        TAP_OK(res.spawn == 0 && res.exited && WIFEXITED(res.ex.status) && WEXITSTATUS(res.ex.status) == 0,
               "a new instance runs after the hog (%s)", res.err);
}

/* The per-instance API socket: a host socket bound at /run/osmose/api.sock. */
static void test_api_socket(void) {
        char path[100];
        snprintf(path, sizeof(path), "%.80s/api.sock", tmpdir);
        int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un un = { .sun_family = AF_UNIX };
        snprintf(un.sun_path, sizeof(un.sun_path), "%s", path);
        bool ok = l >= 0 && bind(l, (struct sockaddr *) &un, sizeof(un)) == 0 && listen(l, 1) == 0;
        chmod(path, 0666);
        TAP_OK(ok, "a listening socket on the host");
        const char *argv[] = { "/opt/probe", "connect", "/run/osmose/api.sock", NULL };
        osm_sandbox_bind binds[] = { { .source = probe, .target = "/opt/probe" },
                                     { .source = path, .target = "/run/osmose/api.sock" } };
        osm_sandbox_spec spec;
        osm_sandbox_spec_init(&spec);
        spec.name = "api";
        spec.argv = argv;
        spec.binds = binds;
        spec.n_binds = 2;
        int pfd[2];
        if (pipe2(pfd, O_CLOEXEC) < 0)
                abort();
        spec.stdout_fd = pfd[1];
        osm_sandbox_proc *p = NULL;
        char err[OSM_ERROR_MAX];
        osm_error e = {};
        int r = osm_sandbox_spawn(sb, &spec, &p, &e);
        snprintf(err, sizeof(err), "%s", e.message);
        close(pfd[1]);
        TAP_OK(r == 0, "spawn with the API socket bound (%s)", err);
        if (r == 0) {
                struct pollfd pl = { .fd = l, .events = POLLIN };
                int c = poll(&pl, 1, 10000) == 1 ? accept4(l, NULL, NULL, SOCK_CLOEXEC) : -1;
                char buf[16] = "";
                if (c >= 0) {
                        ssize_t n = read(c, buf, sizeof(buf) - 1);
                        buf[n > 0 ? n : 0] = 0;
                        (void) !write(c, "pong", 4);
                        close(c);
                }
                TAP_OK(strcmp(buf, "ping") == 0, "the workload reached the daemon's socket (got '%s')", buf);
                struct pollfd pp = { .fd = osm_sandbox_proc_pidfd(p), .events = POLLIN };
                poll(&pp, 1, 10000);
                char out[128] = "";
                ssize_t n = read(pfd[0], out, sizeof(out) - 1);
                out[n > 0 ? n : 0] = 0;
                TAP_OK(strstr(out, "connect answer: pong") != NULL, "and got the answer (%s)", oneline(out));
                osm_sandbox_proc_free(p);
        }
        close(pfd[0]);
        close(l);
}

/* A thread that does nothing: spawns then happen in a multithreaded process, as in the
 * daemon (libuv's pool), where glibc's credential wrappers would try to signal threads
 * that the sandbox's child does not have. */
static void *idle_thread(void *arg) {
        (void) arg;
        for (;;)
                pause();
        return NULL;
}

/* A network grant with network=BRIDGE: eth0 on the bridge, reaching the bridge's side;
 * without the grant, nothing. All in a network namespace this case's process makes and
 * builds the bridge in before it starts any thread, so no traffic touches the host. */
static void test_bridge_network(void) {
#ifndef HAVE_LIBNL
        tap_skip("built without libnl (-Dnetwork=disabled)", "bridge network");
        return;
#endif
        if (system("command -v ip >/dev/null 2>&1") != 0) {
                tap_skip("iproute2 (ip) is not installed", "bridge network");
                return;
        }
#define REPORT(ok, ...) tap_ok((ok), "bridge network: " __VA_ARGS__)
        bool ok = unshare(CLONE_NEWNET) == 0 &&
                  system("ip link set lo up && ip link add osmtbr0 type bridge && "
                         "ip addr add 192.0.2.1/24 dev osmtbr0 && ip link set osmtbr0 up") == 0;
        REPORT(ok, "a bridge 192.0.2.1/24 in a private network namespace");
        pthread_t idle;
        pthread_create(&idle, NULL, idle_thread, NULL);
        char stage[600];
        snprintf(stage, sizeof(stage), "%s/stage", tmpdir);
        osm_sandbox_options o = { .uid_base = UID_BASE, .uid_count = UID_COUNT, .stage_dir = stage,
                                  .cgroup_name = "osmose-test-net", .network = "osmtbr0" };
        osm_sandbox *nsb = NULL;
        ok = ok && osm_sandbox_new(&o, &nsb) == 0;
        int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(7777) };
        inet_pton(AF_INET, "192.0.2.1", &a.sin_addr);
        ok = ok && l >= 0 && bind(l, (struct sockaddr *) &a, sizeof(a)) == 0 && listen(l, 4) == 0;
        REPORT(ok, "a listener on the bridge's address");
        for (int grant = 1; ok && grant >= 0; grant--) {
                const char *argv[] = { "/opt/probe", "tcp", "192.0.2.1", "7777", NULL };
                osm_sandbox_bind binds[] = { { .source = probe, .target = "/opt/probe" } };
                osm_sandbox_spec spec;
                osm_sandbox_spec_init(&spec);
                spec.name = grant ? "net-granted" : "net-denied";
                spec.argv = argv;
                spec.binds = binds;
                spec.n_binds = 1;
                spec.network = grant;
                int pfd[2];
                if (pipe2(pfd, O_CLOEXEC) < 0)
                        abort();
                spec.stdout_fd = pfd[1];
                osm_sandbox_proc *p = NULL;
                char err[OSM_ERROR_MAX] = "";
                osm_error e = {};
                int r = osm_sandbox_spawn(nsb, &spec, &p, &e);
                snprintf(err, sizeof(err), "%s", e.message);
                close(pfd[1]);
                REPORT(r == 0, "spawn %s the network grant (%s)", grant ? "with" : "without", err);
                if (r < 0) {
                        close(pfd[0]);
                        continue;
                }
                if (grant) {
                        struct pollfd pl = { .fd = l, .events = POLLIN };
                        int c = poll(&pl, 1, 10000) == 1 ? accept4(l, NULL, NULL, SOCK_CLOEXEC) : -1;
                        if (c >= 0) {
                                (void) !write(c, "hello", 5);
                                close(c);
                        }
                }
                struct pollfd pp = { .fd = osm_sandbox_proc_pidfd(p), .events = POLLIN };
                poll(&pp, 1, 10000);
                char out[256] = "";
                ssize_t n = read(pfd[0], out, sizeof(out) - 1);
                out[n > 0 ? n : 0] = 0;
                close(pfd[0]);
                if (grant)
                        REPORT(strstr(out, "tcp answer: hello") != NULL,
                               "with the grant it reaches the bridge's side (%s)", oneline(out));
                else
                        REPORT(strstr(out, "Network is unreachable") != NULL,
                               "without the grant the network is unreachable (%s)", oneline(out));
                osm_sandbox_proc_free(p);
        }
        /* The kernel removes a dead namespace's links asynchronously. */
        ok = false;
        for (int i = 0; i < 50 && !ok; i++) {
                ok = system("ip -o link show master osmtbr0 | grep -q .") != 0;
                if (!ok)
                        usleep(100 * 1000);
        }
        REPORT(ok, "the veth pairs are gone with their sandboxes");
        osm_sandbox_free(nsb);
        close(l);
#undef REPORT
}

static void test_signals_and_errors(void) {
        osm_sandbox_bind binds[] = { { .source = probe, .target = "/opt/probe" } };
        osm_sandbox_spec spec;
        osm_sandbox_spec_init(&spec);
        spec.binds = binds;
        spec.n_binds = 1;
        static run_result res;

        const char *sleep_argv[] = { "/opt/probe", "sleep", NULL };
        spec.name = "sleeper";
        spec.argv = sleep_argv;
        run(&spec, 30, SIGTERM, &res);
        TAP_OK(res.spawn == 0 && res.exited && WIFSIGNALED(res.ex.status) && WTERMSIG(res.ex.status) == SIGTERM,
               "SIGTERM reaches the workload through the sandbox's init (status 0x%x)", res.ex.status);
        run(&spec, 30, SIGKILL, &res);
        TAP_OK(res.spawn == 0 && res.exited && WIFSIGNALED(res.ex.status) && WTERMSIG(res.ex.status) == SIGKILL,
               "SIGKILL ends the instance (status 0x%x)", res.ex.status);

#if defined(__x86_64__)
        const char *int80_argv[] = { "/opt/probe", "int80", NULL };
        spec.name = "int80";
        spec.argv = int80_argv;
        run(&spec, 30, 0, &res);
        TAP_OK(res.spawn == 0 && res.exited && WIFSIGNALED(res.ex.status) && WTERMSIG(res.ex.status) == SIGSYS,
               "a syscall through the i386 ABI kills the process with SIGSYS (status 0x%x, %s)", res.ex.status,
               oneline(res.out));
        const char *x32_argv[] = { "/opt/probe", "x32", NULL };
        spec.name = "x32";
        spec.argv = x32_argv;
        run(&spec, 30, 0, &res);
        TAP_OK(res.spawn == 0 && res.exited && WIFSIGNALED(res.ex.status) && WTERMSIG(res.ex.status) == SIGSYS,
               "a syscall with an x32 number kills the process with SIGSYS (status 0x%x, %s)", res.ex.status,
               oneline(res.out));
#endif
        const char *exit_argv[] = { "/bin/sh", "-c", "exit 7", NULL };
        spec.name = "exit7";
        spec.argv = exit_argv;
        run(&spec, 30, 0, &res);
        TAP_OK(res.spawn == 0 && res.exited && WIFEXITED(res.ex.status) && WEXITSTATUS(res.ex.status) == 7,
               "the workload's exit code comes back (status 0x%x)", res.ex.status);

        const char *path_argv[] = { "sh", "-c", "echo $PATH; id -u; hostname", NULL };
        spec.name = "pathsearch";
        spec.argv = path_argv;
        spec.hostname = "room-42";
        spec.uid = 1000;
        spec.gid = 1000;
        run(&spec, 30, 0, &res);
        TAP_OK(res.spawn == 0 && strstr(res.out, "/usr/bin") && strstr(res.out, "\n1000\n") && strstr(res.out, "room-42"),
               "argv[0] looked up in PATH, runs as the chosen uid with its hostname (%s)", oneline(res.out));
        spec.hostname = NULL;
        spec.uid = spec.gid = 0;

        /* Network namespaces made ahead (a root daemon) or by the clone: each instance has
         * one of its own, never the host's, never another running instance's. */
        char host_ns[64] = "";
        ssize_t hn = readlink("/proc/self/ns/net", host_ns, sizeof host_ns - 1);
        host_ns[hn > 0 ? hn : 0] = 0;
        const char *ns_argv[] = { "sh", "-c", "readlink /proc/self/ns/net; exec sleep 30", NULL };
        int nsp[2];
        TAP_OK(pipe2(nsp, O_CLOEXEC) == 0, "a pipe for the first instance's output");
        spec.name = "netns-a";
        spec.argv = ns_argv;
        spec.stdout_fd = nsp[1];
        osm_sandbox_proc *pa = NULL;
        osm_error ea = {};
        int ra = osm_sandbox_spawn(sb, &spec, &pa, &ea);
        close(nsp[1]);
        char ns_a[64] = "";
        ssize_t an = ra == 0 ? read(nsp[0], ns_a, sizeof ns_a - 1) : -1;
        ns_a[an > 0 ? an : 0] = 0;
        close(nsp[0]);
        const char *ns_argv_b[] = { "readlink", "/proc/self/ns/net", NULL };
        spec.name = "netns-b";
        spec.argv = ns_argv_b;
        run(&spec, 30, 0, &res);
        ns_a[strcspn(ns_a, "\n")] = 0;
        res.out[strcspn(res.out, "\n")] = 0;
        TAP_OK(ra == 0 && res.spawn == 0 && strncmp(ns_a, "net:[", 5) == 0 && strncmp(res.out, "net:[", 5) == 0 &&
               strcmp(ns_a, host_ns) != 0 && strcmp(res.out, host_ns) != 0 && strcmp(ns_a, res.out) != 0,
               "each instance has a network namespace of its own (host %s, %s, %s)", host_ns, ns_a, res.out);
        if (pa) {
                osm_sandbox_proc_kill(pa, SIGKILL);
                osm_sandbox_exit ex;
                for (int i = 0; i < 50 && osm_sandbox_proc_reap(pa, &ex) == -EAGAIN; i++)
                        usleep(100 * 1000);
                osm_sandbox_proc_free(pa);
        }

        const char *bad_argv[] = { "/nonexistent/program", NULL };
        spec.name = "noexec";
        spec.argv = bad_argv;
        run(&spec, 30, 0, &res);
        TAP_OK(res.spawn == -ENOENT && strstr(res.err, "execve /nonexistent/program"),
               "a missing program fails spawn with the failing step (%d: %s)", res.spawn, res.err);

        osm_sandbox_bind bad_bind[] = { { .source = probe, .target = "/opt/../etc/x" } };
        spec.name = "badbind";
        spec.argv = sleep_argv;
        spec.binds = bad_bind;
        run(&spec, 30, 0, &res);
        TAP_OK(res.spawn == -EINVAL, "a bind target with '..' is refused (%s)", res.err);
        spec.binds = binds;

        spec.name = "../evil";
        run(&spec, 30, 0, &res);
        TAP_OK(res.spawn == -EINVAL, "an instance name with '/' is refused (%s)", res.err);

        spec.name = "nonet";
        spec.network = true;
        run(&spec, 5, SIGKILL, &res);
        TAP_OK(res.spawn == 0, "a network grant with network=none gives loopback only (%s)", res.err);
        spec.network = false;

        const char *devs[] = { "/dev/sda-does-not-exist" };
        spec.name = "baddev";
        spec.devices = devs;
        spec.n_devices = 1;
        run(&spec, 5, 0, &res);
        TAP_OK(res.spawn == -EINVAL, "a device that is not a device node is refused (%s)", res.err);
}

/* The instances' parent in the v1 hierarchy of ctrl, from /proc/self/cgroup ("N:ctrl:/path"). */
static bool v1_base(const char *ctrl, char *out, size_t size) {
        char key[32];
        snprintf(key, sizeof key, ":%s:", ctrl);
        FILE *f = fopen("/proc/self/cgroup", "re");
        char line[1024];
        bool found = false;
        while (f && !found && fgets(line, sizeof line, f)) {
                char *c = strstr(line, key);
                if (!c)
                        continue;
                c += strlen(key);
                c[strcspn(c, "\n")] = 0;
                found = (size_t) snprintf(out, size, "/sys/fs/cgroup/%s%s%sosmose-test", ctrl,
                                          c, strcmp(c, "/") ? "/" : "") < size;
        }
        if (f)
                fclose(f);
        return found;
}

/* On v1 controllers the init is born in its own cgroups: a launcher thread waiting in a
 * spare made ahead clones it there (no migration), under its limits from the start; its
 * cgroup goes once it has ended. */
static void test_born_in_cgroup(void) {
        char base[512], dir[600], path[1024], blkio[512] = "";
        if (osm_sandbox_caps(sb)->pids != OSM_LIMIT_CGROUP1 || !v1_base("pids", base, sizeof base)) {
                tap_skip("no v1 pids hierarchy here", "born in its cgroups");
                return;
        }
        /* The spares are made as the manager starts: wait for one with its thread in it
         * (in the last hierarchy it joins too, blkio, if that is v1 here). */
        if (osm_sandbox_caps(sb)->io != OSM_LIMIT_CGROUP1 || !v1_base("blkio", blkio, sizeof blkio))
                blkio[0] = 0;
        char prefix[64];
        snprintf(prefix, sizeof prefix, ".spare-%d-", (int) getpid());
        bool spare = false;
        for (int i = 0; i < 300 && !spare; i++) {
                DIR *d = opendir(base);
                struct dirent *de;
                while (d && !spare && (de = readdir(d))) {
                        if (strncmp(de->d_name, prefix, strlen(prefix)) != 0)
                                continue;
                        snprintf(path, sizeof path, "%s/%s/tasks", *blkio ? blkio : base, de->d_name);
                        FILE *t = fopen(path, "re");
                        char tid[32];
                        spare = t && fgets(tid, sizeof tid, t) != NULL;
                        if (t)
                                fclose(t);
                }
                if (d)
                        closedir(d);
                if (!spare)
                        usleep(10 * 1000);
        }
        TAP_OK(spare, "a spare cgroup with a launcher thread in it is made ahead under %s", base);
        usleep(50 * 1000);   /* from its last write of "tasks" to ready: a lock and a flag */
        const char *argv[] = { "/bin/sleep", "30", NULL };
        osm_sandbox_spec spec;
        osm_sandbox_spec_init(&spec);
        spec.name = "born";
        spec.argv = argv;
        spec.limits.pids = 17;
        osm_sandbox_proc *p = NULL;
        char err[OSM_ERROR_MAX] = "";
        osm_error e = {};
        int r = osm_sandbox_spawn(sb, &spec, &p, &e);
        snprintf(err, sizeof err, "%s", e.message);
        TAP_OK(r == 0, "spawn (%s)", err);
        if (r < 0)
                return;
        TAP_OK(osm_sandbox_proc_timing(p)->joined == 0, "no migration: it was born in its cgroups");
        snprintf(dir, sizeof dir, "%s/born", base);
        snprintf(path, sizeof path, "/proc/%d/cgroup", (int) osm_sandbox_proc_pid(p));
        FILE *f = fopen(path, "re");
        char line[1024];
        bool in = false;
        while (f && fgets(line, sizeof line, f))
                if (strstr(line, ":pids:"))
                        in = strstr(line, "/osmose-test/born\n") != NULL;
        if (f)
                fclose(f);
        TAP_OK(in, "its init is in the instance's pids cgroup");
        snprintf(path, sizeof path, "%s/pids.max", dir);
        f = fopen(path, "re");
        char max[32] = "";
        if (f && !fgets(max, sizeof max, f))
                max[0] = 0;
        if (f)
                fclose(f);
        TAP_OK(strcmp(max, "17\n") == 0, "under its pids limit (pids.max %s)", oneline(max));
        osm_sandbox_proc_kill(p, SIGKILL);
        struct pollfd pp = { .fd = osm_sandbox_proc_pidfd(p), .events = POLLIN };
        poll(&pp, 1, 10000);
        osm_sandbox_exit ex;
        TAP_OK(osm_sandbox_proc_reap(p, &ex) == 0, "it ended");
        osm_sandbox_proc_free(p);
        struct stat st;
        bool gone = false;
        for (int i = 0; i < 300 && !gone; i++) {
                gone = stat(dir, &st) < 0 && errno == ENOENT;
                if (!gone)
                        usleep(10 * 1000);
        }
        TAP_OK(gone, "its cgroup is removed once it has ended");

        /* The spares have the default limits written when they are made: a launch with
         * the defaults writes none and is under them; one that lifts a limit (no pids
         * limit at all) cannot be born in a spare that has it, and migrates. */
        for (int lifted = 0; lifted < 2; lifted++) {
                usleep(100 * 1000);   /* both spares ready again */
                spec.name = lifted ? "born-unlimited" : "born-defaults";
                spec.limits.pids = lifted ? UINT64_MAX : 0;
                p = NULL;
                r = osm_sandbox_spawn(sb, &spec, &p, &e);
                snprintf(dir, sizeof dir, "%s/%s", base, spec.name);
                snprintf(path, sizeof path, "%s/pids.max", dir);
                f = fopen(path, "re");
                max[0] = 0;
                if (f && !fgets(max, sizeof max, f))
                        max[0] = 0;
                if (f)
                        fclose(f);
                const char *want = lifted ? "max\n" : "256\n";   /* DEFAULT_PIDS */
                TAP_OK(r == 0 && strcmp(max, want) == 0, "%s: pids.max %s (%s)", spec.name, oneline(max),
                       r == 0 ? "spawned" : e.message);
                TAP_OK(r == 0 && (osm_sandbox_proc_timing(p)->joined == 0) == !lifted, "%s: %s", spec.name,
                       lifted ? "moved into a cgroup of its own" : "born in a spare, no migration");
                if (p) {
                        osm_sandbox_proc_kill(p, SIGKILL);
                        pp.fd = osm_sandbox_proc_pidfd(p);
                        poll(&pp, 1, 10000);
                        osm_sandbox_proc_reap(p, &ex);
                        osm_sandbox_proc_free(p);
                }
        }
}

/* Spawn spec with its stdout on a pipe and read its first line (to the first newline, at
 * most size - 1 bytes) into out; the spawn's result, *p the instance (NULL on failure). */
static int spawn_line(osm_sandbox_spec *spec, osm_sandbox_proc **p, osm_error *e, char *out, size_t size) {
        int pfd[2];
        if (pipe2(pfd, O_CLOEXEC) < 0)
                abort();
        spec->stdout_fd = pfd[1];
        *p = NULL;
        int r = osm_sandbox_spawn(sb, spec, p, e);
        close(pfd[1]);
        size_t used = 0;
        ssize_t got;
        out[0] = 0;
        while (r == 0 && used < size - 1 && !strchr(out, '\n') && (got = read(pfd[0], out + used, size - 1 - used)) > 0) {
                used += (size_t) got;
                out[used] = 0;
        }
        close(pfd[0]);
        return r;
}

/* Wait (10 s at most) for p to end, reap and free it. NULL-safe. */
static void finish(osm_sandbox_proc *p) {
        if (!p)
                return;
        struct pollfd pp = { .fd = osm_sandbox_proc_pidfd(p), .events = POLLIN };
        poll(&pp, 1, 10000);
        osm_sandbox_exit ex;
        osm_sandbox_proc_reap(p, &ex);
        osm_sandbox_proc_free(p);
}

/* Workloads have id ranges of their own: user namespaces made ahead are kept per range,
 * so launches of two workloads in turn each join one made for their own range (never the
 * other's: its map is what the instance sees), not only the first after a pause. */
static void test_userns_ranges(void) {
        if (osm_sandbox_caps(sb)->pids != OSM_LIMIT_CGROUP1) {
                tap_skip("user namespaces are made ahead for inits born in v1 cgroups", "user namespaces per range");
                return;
        }
        const char *argv[] = { "cat", "/proc/self/uid_map", NULL };
        const uint64_t base[2] = { UID_BASE, UID_BASE + 4096 }, count = 4096;
        int right = 0, ahead = 0, runs = 12;
        char bad[OSM_ERROR_MAX + 512] = "";
        for (int k = 0; k < runs; k++) {
                usleep(30 * 1000);   /* time for the pool's thread to make the next ones */
                osm_sandbox_spec spec;
                osm_sandbox_spec_init(&spec);
                char name[32];
                snprintf(name, sizeof name, "range-%d", k);
                spec.name = name;
                spec.argv = argv;
                spec.uid_base = base[k % 2];
                spec.uid_count = count;
                osm_sandbox_proc *p;
                osm_error e = {};
                char out[256];
                int r = spawn_line(&spec, &p, &e, out, sizeof out);
                unsigned long long in = 1, host = 0, len = 0;
                bool ok = r == 0 && sscanf(out, "%llu %llu %llu", &in, &host, &len) == 3 && in == 0 &&
                          host == base[k % 2] && len == count;
                right += ok;
                if (!ok && !*bad)
                        snprintf(bad, sizeof bad, "run %d: %s%s", k, r == 0 ? oneline(out) : "spawn: ", r == 0 ? "" : e.message);
                /* The first launch of each range finds none made for it yet. */
                if (r == 0 && k >= 2 && osm_sandbox_proc_timing(p)->userns_ahead)
                        ahead++;
                finish(p);
        }
        TAP_OK(right == runs, "each instance has its own range's id map, two ranges in turn (%d of %d%s%s)", right, runs,
               *bad ? "; " : "", bad);
        TAP_OK(ahead == runs - 2, "after the first of each range, every launch joined a user namespace made ahead "
               "for its range (%d of %d)", ahead, runs - 2);
}

static size_t count_fds(void) {
        size_t n = 0;
        DIR *d = opendir("/proc/self/fd");
        struct dirent *de;
        while (d && (de = readdir(d)))
                n += de->d_name[0] != '.';
        if (d)
                closedir(d);
        return n;
}

/* The pids of the processes in the spare cgroups under base but ours (the inits cloned
 * ahead), at most max; how many. */
static size_t preforked_inits(const char *base, pid_t *out, size_t max) {
        char prefix[64], path[1024];
        snprintf(prefix, sizeof prefix, ".spare-%d-", (int) getpid());
        size_t n = 0;
        DIR *d = opendir(base);
        struct dirent *de;
        while (d && n < max && (de = readdir(d))) {
                if (strncmp(de->d_name, prefix, strlen(prefix)) != 0)
                        continue;
                snprintf(path, sizeof path, "%s/%s/cgroup.procs", base, de->d_name);
                FILE *f = fopen(path, "re");
                long pid;
                while (f && n < max && fscanf(f, "%ld", &pid) == 1)
                        if (pid != getpid())
                                out[n++] = (pid_t) pid;
                if (f)
                        fclose(f);
        }
        if (d)
                closedir(d);
        return n;
}

/* As root on v1 controllers, an init is cloned ahead into each spare: it holds none of the
 * daemon's fds but its sync socket, sits in namespaces of its own, and a launch hands it
 * its plan; a plan too big for one message takes an init cloned at the launch, moved into
 * the instance's cgroups, with the same result. */
/* Mounts on the stage in pid's mount namespace (the common part of a root that an init
 * cloned ahead builds while it waits), and whether its /dev/pts is among them. */
static char stage[600];
static size_t stage_mounts(pid_t pid, bool *has_pts) {
        char path[64], line[4096], pts[700];
        snprintf(path, sizeof path, "/proc/%d/mountinfo", (int) pid);
        snprintf(pts, sizeof pts, "%s/dev/pts", stage);
        size_t n = 0, sl = strlen(stage);
        *has_pts = false;
        FILE *f = fopen(path, "re");
        while (f && fgets(line, sizeof line, f)) {
                char mp[4096];
                /* id parent major:minor root mount-point … */
                if (sscanf(line, "%*s %*s %*s %*s %4095s", mp) != 1 || strncmp(mp, stage, sl) != 0 ||
                    (mp[sl] != 0 && mp[sl] != '/'))
                        continue;
                n++;
                if (strcmp(mp, pts) == 0)
                        *has_pts = true;
        }
        if (f)
                fclose(f);
        return n;
}

/* How many of the inits cloned ahead have built the common part of a root (given 5 s
 * for both to get there). */
static size_t inits_built(const char *base) {
        pid_t pre[4];
        size_t built = 0;
        for (int i = 0; i < 500 && built < 2; i++) {
                size_t n = preforked_inits(base, pre, 4);
                built = 0;
                for (size_t k = 0; k < n; k++) {
                        bool pts;
                        if (stage_mounts(pre[k], &pts) >= 15 && pts)
                                built++;
                }
                if (built < 2)
                        usleep(10 * 1000);
        }
        return built;
}

static void test_prefork(void) {
        char base[512];
        if (geteuid() != 0 || osm_sandbox_caps(sb)->pids != OSM_LIMIT_CGROUP1 || !v1_base("pids", base, sizeof base)) {
                tap_skip("inits are cloned ahead by a root daemon on v1 controllers", "inits cloned ahead");
                return;
        }
        int held = open("/dev/null", O_RDONLY);   /* one of the daemon's own fds, say */
        pid_t pre[4];
        size_t n = 0;
        for (int i = 0; i < 300 && n < 2; i++) {
                n = preforked_inits(base, pre, 4);
                if (n < 2)
                        usleep(10 * 1000);
        }
        TAP_OK(n == 2, "an init waits in each of the two spares (%zu)", n);
        char self_pid[64] = "", self_mnt[64] = "";
        ssize_t l1 = readlink("/proc/self/ns/pid", self_pid, sizeof self_pid - 1);
        ssize_t l2 = readlink("/proc/self/ns/mnt", self_mnt, sizeof self_mnt - 1);
        self_pid[l1 > 0 ? l1 : 0] = self_mnt[l2 > 0 ? l2 : 0] = 0;
        for (size_t k = 0; k < n; k++) {
                char path[128], fds[256] = "", ns_pid[64] = "", ns_mnt[64] = "";
                snprintf(path, sizeof path, "/proc/%d/fd", (int) pre[k]);
                /* It sits in its spare from its clone on, and closes the daemon's fds
                 * itself right after: seen too early (a slow run, under ASan), it still
                 * holds them, so it is given a few seconds to get to its wait. */
                for (int tries = 0; tries < 300; tries++) {
                        DIR *d = opendir(path);
                        struct dirent *de;
                        size_t used = 0;
                        fds[0] = 0;
                        while (d && (de = readdir(d)))
                                if (de->d_name[0] != '.')
                                        used += (size_t) snprintf(fds + used, used < sizeof fds ? sizeof fds - used : 0,
                                                                  "%s ", de->d_name);
                        if (d)
                                closedir(d);
                        if (strcmp(fds, "3 ") == 0)
                                break;
                        usleep(10 * 1000);
                }
                snprintf(path, sizeof path, "/proc/%d/ns/pid", (int) pre[k]);
                l1 = readlink(path, ns_pid, sizeof ns_pid - 1);
                snprintf(path, sizeof path, "/proc/%d/ns/mnt", (int) pre[k]);
                l2 = readlink(path, ns_mnt, sizeof ns_mnt - 1);
                ns_pid[l1 > 0 ? l1 : 0] = ns_mnt[l2 > 0 ? l2 : 0] = 0;
                TAP_OK(strcmp(fds, "3 ") == 0, "init %d cloned ahead holds only its sync socket (fds: %s)", (int) pre[k], fds);
                TAP_OK(*ns_pid && *ns_mnt && strcmp(ns_pid, self_pid) != 0 && strcmp(ns_mnt, self_mnt) != 0,
                       "it is in a pid and a mount namespace of its own (%s, %s)", ns_pid, ns_mnt);
        }
        close(held);

        /* Twenty launches in a row leave no fd behind once they have ended: the mount
         * namespaces held past their inits' exit (and the inits cloned ahead) are closed.
         * One launch first, so that what is made ahead for this workload (user namespaces
         * of its id range) is counted before too; then the count is taken once both slots
         * are ready and it has stayed the same for a while. */
        pid_t two[4];
        size_t fds_before = 0;
        for (int k = 0; k <= 20; k++) {
                if (k == 1)
                        for (int i = 0, same = 0; i < 1000 && same < 5; i++) {
                                usleep(10 * 1000);
                                size_t now = count_fds();
                                same = now == fds_before && preforked_inits(base, two, 4) == 2 ? same + 1 : 0;
                                fds_before = now;
                        }
                const char *tv[] = { "/bin/true", NULL };
                osm_sandbox_spec ts;
                osm_sandbox_spec_init(&ts);
                char name[32];
                snprintf(name, sizeof name, "prefork-%d", k);
                ts.name = name;
                ts.argv = tv;
                run_result *res = calloc(1, sizeof *res);
                run(&ts, 30, 0, res);
                free(res);
        }
        size_t fds_after = 0;
        for (int i = 0; i < 1000 && ((fds_after = count_fds()) != fds_before || preforked_inits(base, two, 4) != 2); i++)
                usleep(10 * 1000);
        TAP_OK(fds_after == fds_before, "20 launches leave no fd open (%zu before, %zu after)", fds_before, fds_after);

        /* A launch takes one; a plan bigger than a message (40 arguments of 4,000 bytes)
         * takes a clone. Either way the workload runs with its arguments, in its cgroup. */
        static char big[40][4001];
        const char *argv[48] = { "/bin/sh", "-c", "echo args $#; exec sleep 30", "sh" };
        for (int large = 0; large < 2; large++) {
                size_t argc = 4;
                for (size_t k = 0; large && k < 40; k++) {
                        memset(big[k], 'a', 4000);
                        argv[argc++] = big[k];
                }
                argv[argc] = NULL;
                osm_sandbox_spec spec;
                osm_sandbox_spec_init(&spec);
                spec.name = large ? "prefork-big" : "prefork";
                spec.argv = argv;
                usleep(50 * 1000);
                osm_sandbox_proc *p;
                osm_error e = {};
                char out[512], want[128], cg[1024] = "", path[64];
                int r = spawn_line(&spec, &p, &e, out, sizeof out);
                /* Its init, as the host sees it (the workload's view is its cgroup namespace). */
                snprintf(path, sizeof path, "/proc/%d/cgroup", r == 0 ? (int) osm_sandbox_proc_pid(p) : 0);
                FILE *f = fopen(path, "re");
                char line[1024];
                while (f && fgets(line, sizeof line, f))
                        if (strstr(line, ":pids:"))
                                snprintf(cg, sizeof cg, "%s", line);
                if (f)
                        fclose(f);
                char want_out[32];
                snprintf(want, sizeof want, "/osmose-test/%s", spec.name);
                snprintf(want_out, sizeof want_out, "args %d\n", large ? 40 : 0);
                cg[strcspn(cg, "\n")] = 0;
                size_t cl = strlen(cg), wl = strlen(want);
                TAP_OK(r == 0 && strcmp(out, want_out) == 0 && cl >= wl && strcmp(cg + cl - wl, want) == 0,
                       "%s: it runs in its pids cgroup (%s) with its arguments (%s)", spec.name, cg,
                       r == 0 ? oneline(out) : e.message);
                if (p)
                        osm_sandbox_proc_kill(p, SIGKILL);
                TAP_OK(r == 0 && osm_sandbox_proc_timing(p)->preforked == !large, "%s: its init was %s",
                       spec.name, large ? "cloned at the launch (the plan is too big for one message)" : "cloned ahead");
                finish(p);
        }

        /* Left alone, each init cloned ahead builds what every minimal root begins with
         * (/usr, /etc's fixed files, /proc and /dev) on its stage, in its own namespace. */
        size_t built = inits_built(base);
        TAP_OK(built == 2, "both inits cloned ahead have built the common part of a root (%zu)", built);
        bool host_pts;
        TAP_OK(stage_mounts(getpid(), &host_pts) == 0, "none of it is on the host's stage");

        /* A minimal root then takes only its own steps; it is whole: the parts built ahead
         * and the launch's own (its hostname, /dev/shm, /tmp, read-only /dev and root). */
        const char *sh[] = { "/bin/sh", "-c",
                             "h=$(grep -c built-ahead /etc/hosts); u=$(grep -c ^nobody: /etc/passwd); "
                             "test -c /dev/null && test -L /dev/fd && test -d /dev/pts && test -d /dev/shm && "
                             "test -r /proc/self/status && ! test -w /proc/sys && ! touch /dev/x 2>/dev/null && "
                             "! touch /x 2>/dev/null && touch /tmp/x /dev/shm/x && echo \"$h $u whole\"",
                             NULL };
        osm_sandbox_spec ms;
        osm_sandbox_spec_init(&ms);
        ms.name = "built-ahead";
        ms.hostname = "built-ahead";
        ms.argv = sh;
        osm_sandbox_proc *p;
        osm_error e = {};
        char out[256];
        int r = spawn_line(&ms, &p, &e, out, sizeof out);
        TAP_OK(r == 0 && strcmp(out, "1 1 whole\n") == 0, "a minimal root on an init that built ahead is whole (%s)",
               r == 0 ? oneline(out) : e.message);
        TAP_OK(r == 0 && osm_sandbox_proc_timing(p)->preforked && osm_sandbox_proc_timing(p)->root_ahead,
               "its init had built the common part before its plan came");
        finish(p);

        /* A bundle's rootfs on such an init: the stage built ahead goes, its root is built
         * from a bare one (the probe, static, is all the rootfs holds). */
        built = inits_built(base);
        char rootfs[600], bin[640], pbin[700];
        snprintf(rootfs, sizeof rootfs, "%s/prefork-rootfs", tmpdir);
        snprintf(bin, sizeof bin, "%s/bin", rootfs);
        snprintf(pbin, sizeof pbin, "%s/probe", bin);
        mkdir(rootfs, 0755);
        mkdir(bin, 0755);
        const char *pv[] = { "/bin/probe", "true", NULL };
        osm_sandbox_spec rs;
        osm_sandbox_spec_init(&rs);
        rs.name = "rootfs-on-built";
        rs.root = rootfs;
        rs.argv = pv;
        osm_sandbox_proc *q = NULL;
        r = copy_file(probe, pbin, 0755) == 0 ? osm_sandbox_spawn(sb, &rs, &q, &e) : -1;
        bool pre_ok = r == 0 && osm_sandbox_proc_timing(q)->preforked && !osm_sandbox_proc_timing(q)->root_ahead;
        osm_sandbox_exit ex = { 0 };
        if (q) {
                struct pollfd pp = { .fd = osm_sandbox_proc_pidfd(q), .events = POLLIN };
                poll(&pp, 1, 10000);
                osm_sandbox_proc_reap(q, &ex);
                osm_sandbox_proc_free(q);
        }
        TAP_OK(r == 0 && WIFEXITED(ex.status) && WEXITSTATUS(ex.status) == 0,
               "a bundle rootfs on an init that had built a minimal root ahead runs (%s, status %d)", r == 0 ? "spawned" : e.message,
               ex.status);
        TAP_OK(pre_ok && built == 2, "…its init was cloned ahead, had built ahead, and built this root from a bare stage");
}

/* A file system mounted on the host after an init was cloned ahead is missing from that
 * init's copy of the mount table: the launch takes a clone instead, which sees it. (The
 * case runs in a mount namespace of its own, made before its sandbox manager.) */
static void test_prefork_mounts(void) {
        char base[512];
        if (geteuid() != 0 || osm_sandbox_caps(sb)->pids != OSM_LIMIT_CGROUP1 || !v1_base("pids", base, sizeof base)) {
                tap_skip("inits are cloned ahead by a root daemon on v1 controllers", "a mount after the clone");
                return;
        }
        pid_t two[4];
        for (int i = 0; i < 300 && preforked_inits(base, two, 4) != 2; i++)
                usleep(10 * 1000);
        char dir[600], file[700];
        snprintf(dir, sizeof dir, "%s/late-mount", tmpdir);
        mkdir(dir, 0755);
        bool mounted = mount("tmpfs", dir, "tmpfs", 0, "size=64k") == 0;
        snprintf(file, sizeof file, "%s/seen", dir);
        FILE *f = mounted ? fopen(file, "we") : NULL;
        if (f) {
                fputs("late\n", f);
                fclose(f);
        }
        chmod(dir, 0755);
        chmod(file, 0644);
        TAP_OK(mounted && f, "a tmpfs mounted after the inits were cloned ahead");
        const char *argv[] = { "cat", "/opt/late/seen", NULL };
        osm_sandbox_bind binds[] = { { .source = dir, .target = "/opt/late" } };
        osm_sandbox_spec spec;
        osm_sandbox_spec_init(&spec);
        spec.name = "late-mount";
        spec.argv = argv;
        spec.binds = binds;
        spec.n_binds = 1;
        osm_sandbox_proc *p;
        osm_error e = {};
        char out[64];
        int r = spawn_line(&spec, &p, &e, out, sizeof out);
        TAP_OK(r == 0 && strcmp(out, "late\n") == 0, "the workload sees what was mounted (%s%s)", oneline(out),
               r == 0 ? "" : e.message);
        TAP_OK(r == 0 && !osm_sandbox_proc_timing(p)->preforked, "its init was cloned at the launch, not ahead");
        finish(p);
        umount2(dir, MNT_DETACH);
}

static char stage[600];
static osm_sandbox_options sb_opts;

/* Each case runs in a process of its own (tap_run forks). The parent has no thread when
 * it forks (a lock some thread held then would stay held in the child for good): each case
 * starts the idle thread and makes the sandbox (its launcher threads) itself. */
#define IDLE_CASE(fn)                                                                   \
        static void fn##_mt(void) {                                                     \
                pthread_t idle;                                                         \
                pthread_create(&idle, NULL, idle_thread, NULL);                         \
                int r = osm_sandbox_new(&sb_opts, &sb);                                 \
                TAP_OK(r == 0, "the case's sandbox manager (%s)", r < 0 ? strerror(-r) : ""); \
                if (r == 0)                                                             \
                        fn();                                                           \
                sb = osm_sandbox_free(sb);                                              \
        }
IDLE_CASE(test_escape)
IDLE_CASE(test_api_socket)
IDLE_CASE(test_forkbomb)
IDLE_CASE(test_memhog)
IDLE_CASE(test_signals_and_errors)
IDLE_CASE(test_born_in_cgroup)
IDLE_CASE(test_userns_ranges)
IDLE_CASE(test_prefork)
IDLE_CASE(test_prefork_mounts)

static void test_prefork_mounts_ns(void) {
        bool own = unshare(CLONE_NEWNS) == 0 && mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0;
        TAP_OK(own, "the case's own mount namespace");
        if (own)
                test_prefork_mounts_mt();
}

int main(int argc, char **argv) {
        probe = argc > 1 ? argv[1] : getenv("OSM_PROBE");
        static char probe_abs[4096];
        if (probe && realpath(probe, probe_abs))
                probe = probe_abs;
        if (!probe || access(probe, X_OK) < 0) {
                printf("1..0 # SKIP the probe program is missing\n");
                return 0;
        }
        if (geteuid() != 0) {
                printf("1..0 # SKIP needs root (id ranges, cgroups)\n");
                return 0;
        }
        if (!mkdtemp(tmpdir))
                return 1;
        chmod(tmpdir, 0755);
        snprintf(stage, sizeof(stage), "%s/stage", tmpdir);
        sb_opts = (osm_sandbox_options) { .uid_base = UID_BASE, .uid_count = UID_COUNT, .stage_dir = stage,
                                          .cgroup_name = "osmose-test" };
        mkdir(stage, 0755);
        int r = osm_sandbox_new(&sb_opts, &sb);
        if (r < 0) {
                printf("Bail out! osm_sandbox_new: %s\n", strerror(-r));
                return 1;
        }
        const osm_sandbox_features *f = osm_sandbox_caps(sb);
        json_t *j = osm_sandbox_features_json(f);
        char *js = json_dumps(j, JSON_COMPACT);
        printf("# host: %s\n", js);
        free(js);
        json_decref(j);
        if (!f->userns || !f->seccomp) {
                /* e.g. under qemu-user, which cannot unshare or load filters */
                printf("1..0 # SKIP sandboxes cannot be made here: %s\n", f->detail);
                osm_sandbox_free(sb);
                return 0;
        }
        sb = osm_sandbox_free(sb);   /* the cases make their own */
        static const tap_case cases[] = {
                { "test_escape", test_escape_mt },
                { "test_api_socket", test_api_socket_mt },
                { "test_bridge_network", test_bridge_network },
                { "test_forkbomb", test_forkbomb_mt },
                { "test_memhog", test_memhog_mt },
                { "test_signals_and_errors", test_signals_and_errors_mt },
                { "test_born_in_cgroup", test_born_in_cgroup_mt },
                { "test_userns_ranges", test_userns_ranges_mt },
                { "test_prefork", test_prefork_mt },
                { "test_prefork_mounts", test_prefork_mounts_ns },
        };
        /* argv[1] is the probe; case names may follow it. The escape and the hogs take their
         * time on a loaded machine (meson gives the whole file 300 s). */
        tap_case_timeout_s = 240;
        int rc = tap_run(cases, TAP_N_CASES(cases), argc > 1 ? argc - 1 : argc, argc > 1 ? argv + 1 : argv);
        char cmd[700];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0)
                printf("# could not remove %s\n", tmpdir);
        return rc;
}
