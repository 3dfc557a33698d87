/* avahi-uv.c: Avahi's main-loop abstraction (AvahiPoll) implemented on libuv, so that
 * avahi-client and its D-Bus connection run on osmosed's one loop: no thread, no polling.
 *
 * Written by hand because neither Avahi nor libuv ships this glue (Avahi has adapters
 * only for its simple poll, threads and GLib). */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/time.h>

#include "daemon/discovery/avahi-uv.h"

/* libuv allows one uv_poll_t per file descriptor (a second one on the same fd would
 * silently steal the first one's events), but libdbus creates two watches on its socket,
 * one for reading and one for writing. So watches are grouped per fd: one fdpoll holds
 * the uv_poll_t, polls for the union of its watches' events and fans events out. */
typedef struct fdpoll fdpoll;

struct AvahiWatch {
        fdpoll *fp;
        AvahiWatchEvent events;         /* wanted */
        AvahiWatchEvent revents;        /* what happened, during the callback */
        AvahiWatchCallback callback;
        void *userdata;
        bool dead;                      /* freed during dispatch; unlinked afterwards */
        AvahiWatch *next;
};

struct fdpoll {
        uv_poll_t handle;
        osm_avahi_poll *p;
        int fd;
        int active;                     /* UV_READABLE|UV_WRITABLE currently polled for */
        bool failed;                    /* libuv reported an error: do not re-arm */
        unsigned dispatching;
        AvahiWatch *watches;
        fdpoll *prev, *next;
};

struct AvahiTimeout {
        uv_timer_t timer;
        osm_avahi_poll *p;
        AvahiTimeoutCallback callback;
        void *userdata;
        AvahiTimeout *prev, *next;
};

struct osm_avahi_poll {
        AvahiPoll api;
        uv_loop_t *loop;
        fdpoll *fds;
        AvahiTimeout *timeouts;
        unsigned n_handles;
};

/* The close callbacks own nothing but their own struct: the adapter may be gone. */
static void free_on_close(uv_handle_t *h) {
        free(h->data);
}

static void fdpoll_close(fdpoll *fp) {
        osm_avahi_poll *p = fp->p;

        if (fp->prev)
                fp->prev->next = fp->next;
        else
                p->fds = fp->next;
        if (fp->next)
                fp->next->prev = fp->prev;
        p->n_handles--;
        fp->handle.data = fp;
        uv_close((uv_handle_t *) &fp->handle, free_on_close);
}

static int events_to_uv(AvahiWatchEvent e) {
        int r = 0;

        if (e & AVAHI_WATCH_IN)
                r |= UV_READABLE;
        if (e & AVAHI_WATCH_OUT)
                r |= UV_WRITABLE;
        return r;
}

static void poll_cb(uv_poll_t *handle, int status, int events);

/* Poll for what the live watches want; close the fdpoll once no watch is left. */
static void fdpoll_update(fdpoll *fp) {
        AvahiWatch **wp = &fp->watches;
        int want = 0;

        if (fp->dispatching)
                return;   /* poll_cb calls us again when it is done */

        while (*wp) {
                AvahiWatch *w = *wp;
                if (w->dead) {
                        *wp = w->next;
                        free(w);
                        continue;
                }
                want |= events_to_uv(w->events);
                wp = &w->next;
        }
        if (!fp->watches) {
                fdpoll_close(fp);
                return;
        }
        if (fp->failed)
                want = 0;
        if (want == fp->active)
                return;
        if (want == 0 || uv_poll_start(&fp->handle, want, poll_cb) < 0) {
                uv_poll_stop(&fp->handle);
                fp->active = 0;
                return;
        }
        fp->active = want;
}

static void poll_cb(uv_poll_t *handle, int status, int events) {
        fdpoll *fp = handle->data;
        AvahiWatchEvent happened = 0;

        if (status < 0) {
                /* libuv has stopped the handle (POLLERR); tell every watch once and let
                 * D-Bus find the error on its next read or write. */
                happened = AVAHI_WATCH_ERR;
                fp->failed = true;
                fp->active = 0;
        }
        if (events & UV_READABLE)
                happened |= AVAHI_WATCH_IN;
        if (events & UV_WRITABLE)
                happened |= AVAHI_WATCH_OUT;
        if (events & UV_DISCONNECT)
                happened |= AVAHI_WATCH_HUP;

        /* Callbacks may free any watch (marked dead, unlinked by fdpoll_update) and add
         * new ones (at the head, so this walk does not see them). */
        fp->dispatching++;
        for (AvahiWatch *w = fp->watches; w; w = w->next) {
                AvahiWatchEvent mine = happened & (w->events | AVAHI_WATCH_ERR | AVAHI_WATCH_HUP);
                if (w->dead || !mine)
                        continue;
                w->revents = mine;
                w->callback(w, fp->fd, mine, w->userdata);
                w->revents = 0;
        }
        fp->dispatching--;
        fdpoll_update(fp);
}

static AvahiWatch *watch_new(const AvahiPoll *api, int fd, AvahiWatchEvent event,
                             AvahiWatchCallback callback, void *userdata) {
        osm_avahi_poll *p = api->userdata;
        fdpoll *fp;
        AvahiWatch *w;

        w = calloc(1, sizeof(*w));
        if (!w)
                return NULL;

        for (fp = p->fds; fp; fp = fp->next)
                if (fp->fd == fd)
                        break;
        if (!fp) {
                fp = calloc(1, sizeof(*fp));
                if (!fp) {
                        free(w);
                        return NULL;
                }
                if (uv_poll_init(p->loop, &fp->handle, fd) < 0) {
                        free(fp);
                        free(w);
                        return NULL;
                }
                fp->handle.data = fp;
                fp->p = p;
                fp->fd = fd;
                fp->next = p->fds;
                if (p->fds)
                        p->fds->prev = fp;
                p->fds = fp;
                p->n_handles++;
        }

        w->fp = fp;
        w->events = event;
        w->callback = callback;
        w->userdata = userdata;
        w->next = fp->watches;
        fp->watches = w;
        fdpoll_update(fp);
        return w;
}

static void watch_update(AvahiWatch *w, AvahiWatchEvent event) {
        w->events = event;
        fdpoll_update(w->fp);
}

static AvahiWatchEvent watch_get_events(AvahiWatch *w) {
        return w->revents;
}

static void watch_free(AvahiWatch *w) {
        w->dead = true;
        fdpoll_update(w->fp);   /* frees w now, or after the dispatch it is in */
}

static void timer_cb(uv_timer_t *timer) {
        AvahiTimeout *t = timer->data;

        /* A fired timeout is disabled until timeout_update(): a one-shot uv timer already
         * is. The callback may free t (uv_close is safe from inside the callback). */
        t->callback(t, t->userdata);
}

/* Avahi gives absolute wall-clock times (gettimeofday, see avahi_elapse_time()); libuv
 * wants a delay relative to its cached loop time, which we refresh first so that a stale
 * loop time does not make the timeout fire early. */
static void timeout_arm(AvahiTimeout *t, const struct timeval *tv) {
        struct timeval now;
        int64_t delta_us;
        uint64_t ms;

        if (!tv) {
                uv_timer_stop(&t->timer);
                return;
        }
        gettimeofday(&now, NULL);
        delta_us = ((int64_t) tv->tv_sec - now.tv_sec) * 1000000 + (tv->tv_usec - now.tv_usec);
        ms = delta_us <= 0 ? 0 : ((uint64_t) delta_us + 999) / 1000;
        uv_update_time(t->p->loop);
        uv_timer_start(&t->timer, timer_cb, ms, 0);
}

static AvahiTimeout *timeout_new(const AvahiPoll *api, const struct timeval *tv,
                                 AvahiTimeoutCallback callback, void *userdata) {
        osm_avahi_poll *p = api->userdata;
        AvahiTimeout *t;

        t = calloc(1, sizeof(*t));
        if (!t)
                return NULL;
        if (uv_timer_init(p->loop, &t->timer) < 0) {
                free(t);
                return NULL;
        }
        t->timer.data = t;
        t->p = p;
        t->callback = callback;
        t->userdata = userdata;
        t->next = p->timeouts;
        if (p->timeouts)
                p->timeouts->prev = t;
        p->timeouts = t;
        p->n_handles++;
        timeout_arm(t, tv);
        return t;
}

static void timeout_update(AvahiTimeout *t, const struct timeval *tv) {
        timeout_arm(t, tv);
}

static void timeout_free(AvahiTimeout *t) {
        osm_avahi_poll *p = t->p;

        if (t->prev)
                t->prev->next = t->next;
        else
                p->timeouts = t->next;
        if (t->next)
                t->next->prev = t->prev;
        p->n_handles--;
        uv_close((uv_handle_t *) &t->timer, free_on_close);
}

int osm_avahi_poll_new(uv_loop_t *loop, osm_avahi_poll **out) {
        osm_avahi_poll *p;

        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->loop = loop;
        p->api = (AvahiPoll) {
                .userdata = p,
                .watch_new = watch_new,
                .watch_update = watch_update,
                .watch_get_events = watch_get_events,
                .watch_free = watch_free,
                .timeout_new = timeout_new,
                .timeout_update = timeout_update,
                .timeout_free = timeout_free,
        };
        *out = p;
        return 0;
}

const AvahiPoll *osm_avahi_poll_get(osm_avahi_poll *p) {
        return &p->api;
}

unsigned osm_avahi_poll_n_handles(const osm_avahi_poll *p) {
        return p->n_handles;
}

osm_avahi_poll *osm_avahi_poll_free(osm_avahi_poll *p) {
        if (!p)
                return NULL;
        while (p->fds) {
                fdpoll *fp = p->fds;
                while (fp->watches) {
                        AvahiWatch *w = fp->watches;
                        fp->watches = w->next;
                        free(w);
                }
                fdpoll_close(fp);
        }
        while (p->timeouts)
                timeout_free(p->timeouts);
        free(p);
        return NULL;
}
