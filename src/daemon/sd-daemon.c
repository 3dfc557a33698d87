/* sd-daemon.c: the systemd service protocols, spoken directly (see sd-daemon.h for why
 * not through libsystemd). Follows sd_notify(3), sd_listen_fds(3) and
 * sd_watchdog_enabled(3) as documented. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon/sd-daemon.h"
#include "osmose/util.h"

/* Is the variable unset, or a decimal pid equal to ours? (LISTEN_PID, WATCHDOG_PID) */
static bool for_us(const char *var, bool required) {
        const char *s = getenv(var);
        uint64_t pid;
        if (!s)
                return !required;
        return osm_parse_u64(s, &pid) == 0 && pid == (uint64_t) getpid();
}

int osm_sd_notify(const char *state) {
        const char *path = getenv("NOTIFY_SOCKET");
        if (!path || !*path)
                return 0;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        size_t len = strlen(path);
        if ((path[0] != '/' && path[0] != '@') || len >= sizeof sa.sun_path)
                return -EAFNOSUPPORT;   /* e.g. "vsock:…": not a gateway's service manager */
        memcpy(sa.sun_path, path, len);
        if (sa.sun_path[0] == '@')
                sa.sun_path[0] = '\0';  /* abstract namespace */
        int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        size_t n = strlen(state);
        ssize_t w = sendto(fd, state, n, MSG_NOSIGNAL, (struct sockaddr *) &sa,
                           (socklen_t) (offsetof(struct sockaddr_un, sun_path) + len));
        int r = w < 0 ? -errno : (size_t) w == n ? 1 : -EMSGSIZE;
        close(fd);
        return r;
}

int osm_sd_listen_fds(void) {
        const char *s = getenv("LISTEN_FDS");
        uint64_t n = 0;
        int r = 0;
        if (!s)
                return 0;
        if (!for_us("LISTEN_PID", true))
                goto out;       /* meant for another process (our parent) */
        if (osm_parse_u64(s, &n) < 0 || n > 1024) {
                r = -EINVAL;
                goto out;
        }
        for (int fd = OSM_SD_LISTEN_FDS_START; fd < OSM_SD_LISTEN_FDS_START + (int) n; fd++)
                if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
                        r = -errno;
                        goto out;
                }
        r = (int) n;
out:
        unsetenv("LISTEN_PID");
        unsetenv("LISTEN_FDS");
        unsetenv("LISTEN_FDNAMES");
        return r;
}

int osm_sd_is_listening_unix(int fd, int type) {
        struct stat st;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISSOCK(st.st_mode))
                return 0;
        int v = 0;
        socklen_t l = sizeof v;
        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &l) < 0)
                return -errno;
        if (v != type)
                return 0;
        l = sizeof v;
        if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &l) < 0)
                return -errno;
        if (!v)
                return 0;
        struct sockaddr_storage ss;
        l = sizeof ss;
        if (getsockname(fd, (struct sockaddr *) &ss, &l) < 0)
                return -errno;
        return ss.ss_family == AF_UNIX;
}

uint64_t osm_sd_watchdog_usec(void) {
        const char *s = getenv("WATCHDOG_USEC");
        uint64_t us;
        if (!s || osm_parse_u64(s, &us) < 0 || us == 0 || !for_us("WATCHDOG_PID", false))
                return 0;
        return us;
}
