/* netns.c: fresh network namespaces made ahead by a thread of the daemon, so that making one (the costliest namespace: every pernet subsystem's init) is not in a launch's critical path.
 *
 * A network namespace made by unshare(CLONE_NEWNET) in a thread of a root daemon is what
 * CLONE_NEWNET at the init's clone makes: owned by the host's user namespace, only a
 * loopback interface. The thread brings that up, as the init does in a namespace of its
 * clone (a few hundred µs of the critical path otherwise, with the rtnl lock that a
 * namespace being made holds), steps back into the daemon's own namespace and keeps only
 * an fd; no process has been in it until an init joins it (setns) before it builds its
 * root. Each is used once: the fd is handed
 * to one launch and closed. Only for a root daemon (setns needs CAP_SYS_ADMIN over the
 * namespace's owner) and instances without a bridge (net.c moves a veth into the init's
 * namespace as soon as it is cloned); otherwise, or when none is ready, the clone makes
 * the namespace as before.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include "osmose/util.h"
#include "daemon/sandbox/sandbox-internal.h"

#define NETNS_SPARES 2   /* launches in a row before one waits for the thread */

struct osm_netns_pool {
        pid_t pid;              /* the process whose thread this is: a fork has none */
        pthread_t thread;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        bool quit, off;
        int fds[NETNS_SPARES];
        size_t n;
};

/* A new network namespace as an fd, the calling thread back in home. -errno on failure;
 * -ENOTRECOVERABLE if the thread could not get back (it must then do nothing more). */
static int make_one(int home) {
        if (unshare(CLONE_NEWNET) < 0)
                return -errno;
        int e = 0;
        int fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                e = errno;
        else if (osm_sb_loopback_up(&e))
                fd = osm_close(fd);
        if (setns(home, CLONE_NEWNET) < 0) {
                osm_close(fd);
                return -ENOTRECOVERABLE;
        }
        return fd >= 0 ? fd : e ? -e : -EIO;
}

static void *pool_main(void *arg) {
        osm_netns_pool *p = arg;
        int home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
        pthread_mutex_lock(&p->lock);
        if (home < 0)
                p->off = true;
        while (!p->quit && !p->off) {
                if (p->n == NETNS_SPARES) {
                        pthread_cond_wait(&p->cond, &p->lock);
                        continue;
                }
                pthread_mutex_unlock(&p->lock);
                int fd = make_one(home);
                pthread_mutex_lock(&p->lock);
                if (fd < 0)
                        p->off = true;   /* refused here (a container): launches clone theirs */
                else
                        p->fds[p->n++] = fd;
        }
        pthread_mutex_unlock(&p->lock);
        osm_close(home);
        return NULL;
}

osm_netns_pool *osm_netns_pool_new(void) {
        osm_netns_pool *p = calloc(1, sizeof *p);
        if (!p)
                return NULL;
        p->pid = getpid();
        pthread_mutex_init(&p->lock, NULL);
        pthread_cond_init(&p->cond, NULL);
        int r = osm_sb_thread_start(&p->thread, 64 * 1024, pool_main, p);
        if (r != 0) {
                pthread_cond_destroy(&p->cond);
                pthread_mutex_destroy(&p->lock);
                free(p);
                return NULL;
        }
        return p;
}

osm_netns_pool *osm_netns_pool_free(osm_netns_pool *p) {
        if (!p)
                return NULL;
        if (p->pid != getpid()) {
                free(p);   /* a forked copy: the thread and its namespaces are the parent's */
                return NULL;
        }
        pthread_mutex_lock(&p->lock);
        p->quit = true;
        pthread_cond_broadcast(&p->cond);
        pthread_mutex_unlock(&p->lock);
        pthread_join(p->thread, NULL);
        for (size_t k = 0; k < p->n; k++)
                osm_close(p->fds[k]);
        pthread_cond_destroy(&p->cond);
        pthread_mutex_destroy(&p->lock);
        free(p);
        return NULL;
}

int osm_netns_pool_take(osm_netns_pool *p) {
        if (!p || p->pid != getpid())
                return -1;
        int fd = -1;
        pthread_mutex_lock(&p->lock);
        if (p->n > 0) {
                /* The oldest first: none waits for long. */
                fd = p->fds[0];
                for (size_t k = 1; k < p->n; k++)
                        p->fds[k - 1] = p->fds[k];
                p->n--;
                pthread_cond_broadcast(&p->cond);
        }
        pthread_mutex_unlock(&p->lock);
        return fd;
}
