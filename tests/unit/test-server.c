/* test-server.c: the Varlink server in-process on a libuv loop, driven by the client
 * library from a thread: plain calls, streams (more/continues), fd passing both ways,
 * asynchronous replies with pipelined calls, cancellation and orphaned calls. */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "daemon/control/server.h"
#include "tap.h"

static uv_loop_t *loop;
static osm_server *srv;
static char sock_path[108];
static int cancelled, orphan_reply_result = 1;
static osm_call *held, *orphan;
static uv_timer_t later;

/* GetStatus: replies {"n": 3 streamed} when more, else {"ok":true}. */
static void m_status(osm_call *c, json_t *params, void *ud) {
        if (osm_call_more(c)) {
                for (int i = 0; i < 3; i++)
                        osm_call_reply(c, json_pack("{s:i}", "n", i), true);
                osm_call_reply(c, json_pack("{s:i}", "n", 3), false);
                return;
        }
        osm_call_reply(c, json_pack("{s:b}", "ok", 1), false);
}

/* GetInfo: reads the passed fd's content and replies with a new pipe carrying "pong:<content>". */
static void m_fds(osm_call *c, json_t *params, void *ud) {
        int in = osm_call_take_fd(c, 0);
        char buf[64] = "";
        ssize_t n = in >= 0 ? read(in, buf, sizeof buf - 1) : -1;
        if (in >= 0)
                close(in);
        int p[2];
        if (n < 0 || pipe2(p, O_CLOEXEC) < 0) {
                osm_call_errorf(c, OSM_ERR_INTERNAL, "no fd");
                return;
        }
        dprintf(p[1], "pong:%s", buf);
        close(p[1]);
        osm_call_reply_fds(c, json_pack("{s:i}", "got", (int) n), false, &p[0], 1);
        close(p[0]);
}

static void on_later(uv_timer_t *t) {
        if (held) {
                osm_call_reply(held, json_pack("{s:s}", "late", "yes"), false);
                held = NULL;
        }
        if (orphan) {
                orphan_reply_result = osm_call_reply(orphan, NULL, false);
                orphan = NULL;
        }
}

static void on_cancel(osm_call *c, void *ud) { cancelled++; }

/* Reload: answers 200 ms later (async); with more, holds the call with a cancel callback
 * and never answers (a stream the client abandons); with oneway... not used. */
static void m_async(osm_call *c, json_t *params, void *ud) {
        if (osm_call_more(c)) {
                osm_call_set_cancel(c, on_cancel, NULL);
                osm_call_reply(c, json_pack("{s:s}", "stream", "open"), true);
                return;
        }
        held = c;
        uv_timer_start(&later, on_later, 200, 0);
}

static int flood_cancelled, flood_failed_replies;
static void on_flood_cancel(osm_call *c, void *ud) { flood_cancelled++; }

/* GetInterfaceDescription: with more, streams until a reply fails (the client stopped
 * reading; the server drops it past max_buffered) — the cancel callback must then run
 * once, later, from the loop; without more, held without a cancel callback and
 * answered later (an orphan). */
static void m_orphan(osm_call *c, json_t *params, void *ud) {
        if (osm_call_more(c)) {
                osm_call_set_cancel(c, on_flood_cancel, NULL);
                char big[4096];
                memset(big, 'x', sizeof big - 1);
                big[sizeof big - 1] = 0;
                for (int i = 0; i < 100000; i++) {
                        if (osm_call_reply(c, json_pack("{s:s}", "description", big), true) < 0) {
                                flood_failed_replies++;
                                return;   /* state is released in the cancel callback */
                        }
                }
                osm_call_reply(c, NULL, false);
                return;
        }
        orphan = c;
        uv_timer_start(&later, on_later, 300, 0);
}

static const osm_method methods[] = {
        { "io.osmose.Daemon.GetStatus", m_status, OSM_ACCESS_PUBLIC },
        { "org.varlink.service.GetInfo", m_fds, OSM_ACCESS_PUBLIC },
        { "io.osmose.Daemon.Reload", m_async, OSM_ACCESS_WRITE },
        { "org.varlink.service.GetInterfaceDescription", m_orphan, OSM_ACCESS_PUBLIC },
};

/* The client side (test-server-client.c) runs in a thread with the blocking client
 * library; these accessors are all it sees of the server side. */
void client_calls(void);
void client_abandoned_stream(void);
void client_departed(void);
void client_flood(void);
int *test_cancelled(void);
int *test_orphan_reply_result(void);
unsigned test_in_flight(void);

int *test_cancelled(void) { return &cancelled; }
int test_flood(void);
int test_flood(void) { return flood_cancelled * 10 + flood_failed_replies; }
int *test_orphan_reply_result(void) { return &orphan_reply_result; }
unsigned test_in_flight(void) { return osm_server_in_flight(srv); }
const char *test_sock_path(void);
const char *test_sock_path(void) { return sock_path; }

static uv_async_t done_async;
static void (*client_fn)(void);
static void *runner(void *arg) {
        (void) arg;
        client_fn();
        uv_async_send(&done_async);
        return NULL;
}
static void on_done(uv_async_t *a) {
        osm_server_free(srv, NULL, NULL);
        uv_close((uv_handle_t *) a, NULL);
        uv_close((uv_handle_t *) &later, NULL);
}

/* Serve the methods on a fresh socket while client runs on a thread of its own. */
static void serve(void (*client)(void)) {
        snprintf(sock_path, sizeof sock_path, "/tmp/osm-test-server-%d.sock", (int) getpid());
        unlink(sock_path);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        strcpy(sa.sun_path, sock_path);
        tap_ok(bind(fd, (struct sockaddr *) &sa, sizeof sa) == 0 && listen(fd, 16) == 0, "listening socket");
        loop = uv_default_loop();
        osm_server_limits lim = { .max_connections = 8, .max_message = 65536, .max_buffered = 1 << 20,
                                  .idle_timeout_ms = 10000, .partial_timeout_ms = 10000 };
        tap_ok(osm_server_new(loop, fd, (gid_t) -1, &lim, &srv) == 0, "server created");
        tap_ok(osm_server_add_methods(srv, methods, OSM_ARRAY_SIZE(methods), NULL) == 0, "methods registered");
        tap_ok(osm_server_add_methods(srv, methods, 1, NULL) == -EEXIST, "duplicate registration refused");
        static const osm_method bogus[] = { { "io.osmose.Daemon.NoSuch", m_status, OSM_ACCESS_PUBLIC } };
        tap_ok(osm_server_add_methods(srv, bogus, 1, NULL) == -ENOENT, "a method missing from the .varlink files is refused");
        uv_timer_init(loop, &later);
        uv_async_init(loop, &done_async, on_done);
        pthread_t t;
        client_fn = client;
        pthread_create(&t, NULL, runner, NULL);
        uv_run(loop, UV_RUN_DEFAULT);
        pthread_join(t, NULL);
        uv_loop_close(loop);
        unlink(sock_path);
}

static void test_calls(void) { serve(client_calls); }
static void test_abandoned_stream(void) { serve(client_abandoned_stream); }
static void test_departed_client(void) { serve(client_departed); }
static void test_flooded_stream(void) { serve(client_flood); }

int main(int argc, char **argv) {
        static const tap_case cases[] = {
                TAP_CASE(test_calls),
                TAP_CASE(test_abandoned_stream),
                TAP_CASE(test_departed_client),
                TAP_CASE(test_flooded_stream),
        };
        return tap_run(cases, TAP_N_CASES(cases), argc, argv);
}
