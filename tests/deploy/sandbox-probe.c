/* sandbox-probe.c: does what osmosed's sandbox does to build an instance, in miniature,
 * so that a test can run it under osmosed.service's hardening and see it still works:
 * clone into new user, pid, mount, network, ipc and uts namespaces; map 0 to a uid range
 * from the parent; in the child: sethostname, a private /proc, a tmpfs, pivot_root-free
 * checks, a seccomp filter; and a cgroup of its own below the caller's.
 * Prints one line per step ("ok STEP" or "FAIL STEP: why"); exits 0 if all passed. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static int pipefd[2];
static int failures;

static void step(int ok, const char *what) {
        if (ok)
                printf("ok %s\n", what);
        else {
                printf("FAIL %s: %s\n", what, strerror(errno));
                failures++;
        }
        fflush(stdout);
}

static int child(void *arg) {
        char c;
        /* Wait for the parent to write the uid/gid maps. */
        if (read(pipefd[0], &c, 1) != 1)
                return 1;
        step(sethostname("probe", 5) == 0, "sethostname in the new uts namespace");
        step(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0, "make / private");
        step(mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) == 0,
             "mount a private /proc");
        step(mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "size=1m") == 0, "mount a tmpfs");
        step(getpid() == 1, "pid 1 in the new pid namespace");
        scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
        int r = ctx ? seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(ptrace), 0) : -ENOMEM;
        if (r == 0)
                r = seccomp_load(ctx);
        errno = -r;
        step(r == 0, "load a seccomp filter");
        seccomp_release(ctx);
        return failures ? 1 : 0;
}

static int write_file(const char *path, const char *s) {
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return -1;
        ssize_t n = write(fd, s, strlen(s));
        int e = errno;
        close(fd);
        errno = e;
        return n == (ssize_t) strlen(s) ? 0 : -1;
}

int main(int argc, char **argv) {
        const char *range = argc > 1 ? argv[1] : "0 524288 65536";
        static char stack[256 * 1024];
        if (pipe(pipefd) < 0)
                return 2;
        pid_t pid = clone(child, stack + sizeof stack,
                          CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC |
                          CLONE_NEWUTS | SIGCHLD, NULL);
        step(pid > 0, "clone into user, pid, mount, net, ipc and uts namespaces");
        if (pid < 0)
                return 1;
        char path[64], map[64];
        snprintf(map, sizeof map, "%s\n", range);
        snprintf(path, sizeof path, "/proc/%d/uid_map", (int) pid);
        step(write_file(path, map) == 0, "write the child's uid_map");
        snprintf(path, sizeof path, "/proc/%d/gid_map", (int) pid);
        step(write_file(path, map) == 0, "write the child's gid_map");
        (void) !write(pipefd[1], "x", 1);
        int status;
        waitpid(pid, &status, 0);
        errno = 0;
        step(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child's steps");

        /* A cgroup of its own below the caller's (v1 memory, or v2), with a memory limit. */
        FILE *f = fopen("/proc/self/cgroup", "re");
        char line[512], v1[512] = "", v2[512] = "";
        while (f && fgets(line, sizeof line, f)) {
                line[strcspn(line, "\n")] = 0;
                char *p = strchr(line, ':'), *q = p ? strchr(p + 1, ':') : NULL;
                if (!q)
                        continue;
                if (strncmp(p + 1, "memory:", 7) == 0)
                        snprintf(v1, sizeof v1, "/sys/fs/cgroup/memory%s/probe", q + 1);
                else if (p[1] == ':' && strncmp(line, "0:", 2) == 0)
                        snprintf(v2, sizeof v2, "%s", q + 1);
        }
        if (f)
                fclose(f);
        struct stat st;
        if (v1[0] && stat("/sys/fs/cgroup/memory", &st) == 0) {
                char lim[600];
                snprintf(lim, sizeof lim, "%s/memory.limit_in_bytes", v1);
                step(mkdir(v1, 0755) == 0 && write_file(lim, "67108864") == 0,
                     "create a cgroup (v1 memory) with a limit");
                rmdir(v1);
        } else if (v2[0]) {
                char dir[600], lim[700];
                snprintf(dir, sizeof dir, "/sys/fs/cgroup%s/probe", v2);
                snprintf(lim, sizeof lim, "%s/cgroup.procs", dir);
                step(mkdir(dir, 0755) == 0 && access(lim, W_OK) == 0, "create a cgroup (v2)");
                rmdir(dir);
        }
        printf("%s\n", failures ? "PROBE FAILED" : "PROBE OK");
        return failures ? 1 : 0;
}
