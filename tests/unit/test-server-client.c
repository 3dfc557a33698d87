/* test-server-client.c: the client half of test-server.c (see there). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "osmose/client.h"
#include "tap.h"

void client_calls(void);
void client_abandoned_stream(void);
void client_departed(void);
void client_flood(void);
int *test_cancelled(void);
int *test_orphan_reply_result(void);
unsigned test_in_flight(void);
const char *test_sock_path(void);
int test_flood(void);

static int stream_n;
static int count_cb(json_t *p, bool continues, void *ud) {
        if (json_integer_value(json_object_get(p, "n")) == stream_n)
                stream_n++;
        return 0;
}
static int first_only_cb(json_t *p, bool continues, void *ud) { return 1; }

/* Each runs in a case of its own, against a fresh server (test-server.c). */
void client_calls(void) {
        osm_client *c;
        osm_client_error err = { 0 };
        json_t *rep = NULL;
        tap_ok(osm_client_connect(test_sock_path(), &c) == 0, "client connects");
        tap_ok(osm_client_call(c, "io.osmose.Daemon.GetStatus", NULL, NULL, 0, &rep, NULL, NULL, &err) == 0 &&
               json_is_true(json_object_get(rep, "ok")), "plain call answered");
        json_decref(rep);
        tap_ok(osm_client_call_more(c, "io.osmose.Daemon.GetStatus", NULL, count_cb, NULL, &err) == 0 && stream_n == 4,
               "stream: three continues replies and a final one, in order");

        int p[2];
        pipe2(p, O_CLOEXEC);
        write(p[1], "ping", 4);
        close(p[1]);
        int rfd[2] = { -1, -1 };
        size_t nr = 2;
        rep = NULL;
        int r = osm_client_call(c, "org.varlink.service.GetInfo", NULL, &p[0], 1, &rep, rfd, &nr, &err);
        close(p[0]);
        char buf[32] = "";
        if (r == 0 && nr == 1) {
                read(rfd[0], buf, sizeof buf - 1);
                close(rfd[0]);
        }
        tap_ok(r == 0 && nr == 1 && strcmp(buf, "pong:ping") == 0, "fd passed to the daemon and a new one back");
        json_decref(rep);

        /* a reply's text is lent until the next read: two in a row, then a tree again */
        const char *t1 = NULL, *t2 = NULL;
        size_t l1 = 0, l2 = 0;
        char first[256] = "";
        r = osm_client_call_text(c, "io.osmose.Daemon.GetStatus", NULL, &t1, &l1, &err);
        if (r == 0)
                snprintf(first, sizeof first, "%s", t1);
        int r2 = osm_client_call_text(c, "org.varlink.service.GetInfo", NULL, &t2, &l2, &err);
        tap_ok(r == 0 && r2 == 0 && strstr(first, "\"ok\":true") && strlen(first) == l1 && t2 &&
               strlen(t2) == l2 && strstr(t2, "\"parameters\"") && !strstr(t2, "\"ok\""),
               "call_text: each reply's own text, NUL-terminated (%s | %s)", first, t2 ? t2 : "");
        rep = NULL;
        tap_ok(osm_client_call(c, "io.osmose.Daemon.GetStatus", NULL, NULL, 0, &rep, NULL, NULL, &err) == 0 &&
               json_is_true(json_object_get(rep, "ok")), "…and a call after them reads its own reply");
        json_decref(rep);

        /* an asynchronous reply, sent from a timer */
        rep = NULL;
        r = osm_client_call(c, "io.osmose.Daemon.Reload", NULL, NULL, 0, &rep, NULL, NULL, &err);
        tap_ok(r == 0 && json_object_get(rep, "late"), "asynchronous reply arrives");
        json_decref(rep);
        osm_client_free(c);
        osm_client_error_clear(&err);
}

void client_abandoned_stream(void) {
        osm_client *c;
        osm_client_error err = { 0 };
        /* a stream abandoned by its client: the cancel callback runs */
        osm_client_connect(test_sock_path(), &c);
        osm_client_call_more(c, "io.osmose.Daemon.Reload", NULL, first_only_cb, NULL, &err);
        osm_client_free(c);
        usleep(200000);
        tap_ok(*test_cancelled() == 1, "client gone mid-stream: cancel callback ran once");
        osm_client_error_clear(&err);
}

void client_departed(void) {
        osm_client *c;
        /* a call the handler still holds when the client goes: its late reply is refused */
        osm_client_connect(test_sock_path(), &c);
        int fd = osm_client_fd(c);
        const char msg[] = "{\"method\":\"org.varlink.service.GetInterfaceDescription\",\"parameters\":{\"interface\":\"x\"}}";
        send(fd, msg, sizeof msg, 0);
        usleep(50000);
        osm_client_free(c);
        usleep(500000);
        tap_ok(*test_orphan_reply_result() == -ECONNRESET, "a reply to a departed client returns -ECONNRESET");
        tap_ok(test_in_flight() == 0, "no call left in flight");
}

void client_flood(void) {
        osm_client *c;
        /* a stream to a client that stops reading: dropped, cancel runs once, no double free */
        osm_client_connect(test_sock_path(), &c);
        int fd = osm_client_fd(c);
        const char flood[] = "{\"method\":\"org.varlink.service.GetInterfaceDescription\",\"parameters\":{\"interface\":\"x\"},\"more\":true}";
        send(fd, flood, sizeof flood, 0);
        usleep(500000);
        tap_ok(test_flood() == 11, "flooded stream: one failed reply, then the cancel callback once (got %d)", test_flood());
        osm_client_free(c);
}

