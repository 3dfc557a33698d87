/* control-bench.c: control calls through osmosed (io.osmose.Daemon.GetStatus over the real
 * socket and client library) beside a raw round trip of the same bytes over a Unix
 * socketpair echoed by a thread — one client in a loop, then 100 concurrent clients — and
 * the raw pair again with the client library's parse of each reply (what the client costs
 * by itself, whatever the daemon does). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "osmose/client.h"
#include "osmose/util.h"

#define CLIENTS 100

static const char *socket_path;
static double seconds = 2.0;
static char *reply_bytes;       /* a real GetStatus reply, for the baseline to echo */
static size_t reply_len;
static const char request[] = "{\"method\":\"io.osmose.Daemon.GetStatus\",\"parameters\":{}}";

/* ---- baseline: the same bytes over a socketpair, answered by a thread ---- */

static void *echo_thread(void *arg) {
        int fd = (int) (intptr_t) arg;
        char buf[65536];
        size_t have = 0;
        for (;;) {
                ssize_t n = read(fd, buf + have, sizeof buf - have);
                if (n <= 0)
                        break;
                have += (size_t) n;
                char *nul;
                while ((nul = memchr(buf, 0, have))) {
                        size_t used = (size_t) (nul - buf) + 1;
                        if (osm_write_all(fd, reply_bytes, reply_len) < 0)
                                return NULL;
                        memmove(buf, buf + used, have - used);
                        have -= used;
                }
        }
        close(fd);
        return NULL;
}

/* parse: also parse the reply into a tree as the client library does (the client's own
 * cost on top of the socket: the third column). */
static int raw_call(int fd, char *buf, size_t size, bool parse) {
        if (osm_write_all(fd, request, sizeof request) < 0)   /* sizeof includes the NUL */
                return -1;
        size_t have = 0;
        while (!have || !memchr(buf, 0, have)) {
                ssize_t n = read(fd, buf + have, size - have);
                if (n <= 0)
                        return -1;
                have += (size_t) n;
        }
        if (parse) {
                osm_vl_reply rep;
                if (osm_vl_parse_reply(buf, (size_t) ((char *) memchr(buf, 0, have) - buf), &rep, NULL) < 0)
                        return -1;
                osm_vl_reply_done(&rep);
        }
        return 0;
}

typedef struct worker {
        pthread_t t;
        bool raw, parse;
        int fd;                 /* raw: our end of the socketpair */
        uint64_t deadline_us;
        uint64_t *lat;          /* latencies in ns */
        size_t n, cap;
        int failed;
} worker;

static void *worker_main(void *arg) {
        worker *w = arg;
        osm_client *c = NULL;
        char *buf = malloc(1 << 20);
        if (!w->raw && osm_client_connect(socket_path, &c) < 0) {
                w->failed = 1;
                free(buf);
                return NULL;
        }
        while (osm_now_mono_us() < w->deadline_us) {
                struct timespec a, b;
                clock_gettime(CLOCK_MONOTONIC, &a);
                int r;
                if (w->raw) {
                        r = raw_call(w->fd, buf, 1 << 20, w->parse);
                } else {
                        json_t *rep = NULL;
                        osm_client_error err = { 0 };
                        r = osm_client_call(c, "io.osmose.Daemon.GetStatus", NULL, NULL, 0, &rep, NULL, NULL, &err);
                        json_decref(rep);
                        osm_client_error_clear(&err);
                }
                clock_gettime(CLOCK_MONOTONIC, &b);
                if (r < 0) {
                        w->failed = 1;
                        break;
                }
                if (w->n == w->cap) {
                        w->cap = w->cap ? w->cap * 2 : 4096;
                        w->lat = realloc(w->lat, w->cap * sizeof *w->lat);
                }
                w->lat[w->n++] = (uint64_t) ((b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec));
        }
        if (w->raw)
                shutdown(w->fd, SHUT_RDWR);
        osm_client_free(c);
        free(buf);
        return NULL;
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
        return x < y ? -1 : x > y;
}

typedef struct result {
        double calls_per_s, p50_us, p99_us;
        int failed;
} result;

static result run(bool raw, bool parse, int clients) {
        worker *ws = calloc((size_t) clients, sizeof *ws);
        pthread_t echo[CLIENTS];
        uint64_t start = osm_now_mono_us();
        for (int i = 0; i < clients; i++) {
                ws[i].raw = raw;
                ws[i].parse = parse;
                ws[i].deadline_us = start + (uint64_t) (seconds * 1e6);
                if (raw) {
                        int sv[2];
                        socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
                        ws[i].fd = sv[0];
                        pthread_create(&echo[i], NULL, echo_thread, (void *) (intptr_t) sv[1]);
                }
        }
        for (int i = 0; i < clients; i++)
                pthread_create(&ws[i].t, NULL, worker_main, &ws[i]);
        size_t total = 0;
        result res = { 0 };
        for (int i = 0; i < clients; i++) {
                pthread_join(ws[i].t, NULL);
                total += ws[i].n;
                res.failed |= ws[i].failed;
        }
        double elapsed = (double) (osm_now_mono_us() - start) / 1e6;
        uint64_t *all = malloc((total + 1) * sizeof *all);
        size_t k = 0;
        for (int i = 0; i < clients; i++) {
                memcpy(all + k, ws[i].lat, ws[i].n * sizeof *all);
                k += ws[i].n;
                free(ws[i].lat);
                if (raw) {
                        pthread_join(echo[i], NULL);
                        close(ws[i].fd);
                }
        }
        qsort(all, total, sizeof *all, cmp_u64);
        res.calls_per_s = (double) total / elapsed;
        res.p50_us = total ? (double) all[total / 2] / 1e3 : 0;
        res.p99_us = total ? (double) all[(size_t) ((double) total * 0.99)] / 1e3 : 0;
        free(all);
        free(ws);
        return res;
}

/* N GetStatus calls from one client, nothing else: bench/control.sh runs this under
 * callgrind (--toggle-collect=client_calls) for the client's instructions per call. */
__attribute__((noinline)) static int client_calls(osm_client *c, long n) {
        for (long i = 0; i < n; i++) {
                json_t *rep = NULL;
                osm_client_error err = { 0 };
                int r = osm_client_call(c, "io.osmose.Daemon.GetStatus", NULL, NULL, 0, &rep, NULL, NULL, &err);
                json_decref(rep);
                osm_client_error_clear(&err);
                if (r < 0)
                        return r;
        }
        return 0;
}

int main(int argc, char **argv) {
        if (argc == 4 && strcmp(argv[1], "--calls") == 0) {
                osm_client *c;
                if (osm_client_connect(argv[3], &c) < 0) {
                        fprintf(stderr, "cannot connect to %s\n", argv[3]);
                        return 1;
                }
                int r = client_calls(c, atol(argv[2]));
                osm_client_free(c);
                return r < 0;
        }
        if (argc < 2) {
                fprintf(stderr, "usage: control-bench SOCKET [SECONDS]\n       control-bench --calls N SOCKET\n");
                return 2;
        }
        socket_path = argv[1];
        if (argc > 2)
                seconds = atof(argv[2]);
        /* Fetch one real reply so the baseline moves exactly the same bytes. */
        osm_client *c;
        if (osm_client_connect(socket_path, &c) < 0) {
                fprintf(stderr, "cannot connect to %s\n", socket_path);
                return 1;
        }
        json_t *rep = NULL;
        osm_client_error err = { 0 };
        if (osm_client_call(c, "io.osmose.Daemon.GetStatus", NULL, NULL, 0, &rep, NULL, NULL, &err) < 0)
                return 1;
        reply_bytes = osm_vl_format_reply(rep, false, &reply_len);
        json_decref(rep);
        osm_client_free(c);

        result ours1 = run(false, false, 1), raw1 = run(true, false, 1), parse1 = run(true, true, 1);
        result oursN = run(false, false, CLIENTS), rawN = run(true, false, CLIENTS), parseN = run(true, true, CLIENTS);
        printf("control calls (GetStatus, %zu-byte reply), %.0f s per measurement\n", reply_len, seconds);
        printf("%-30s %10s %10s %7s %12s\n", "", "osmosed", "raw pair", "ratio", "raw+parse");
        printf("%-30s %10.0f %10.0f %6.2fx %12.0f   (target >= 0.4x)\n", "1 client: calls/s", ours1.calls_per_s,
               raw1.calls_per_s, ours1.calls_per_s / raw1.calls_per_s, parse1.calls_per_s);
        printf("%-30s %10.0f %10.0f %6.2fx %12.0f\n", "100 clients: calls/s", oursN.calls_per_s, rawN.calls_per_s,
               oursN.calls_per_s / rawN.calls_per_s, parseN.calls_per_s);
        printf("%-30s %10.1f %10.1f %6.2fx %12.1f\n", "100 clients: p50 latency (us)", oursN.p50_us, rawN.p50_us,
               oursN.p50_us / rawN.p50_us, parseN.p50_us);
        printf("%-30s %10.1f %10.1f %6.2fx %12.1f   (target <= 2x)\n", "100 clients: p99 latency (us)", oursN.p99_us,
               rawN.p99_us, oursN.p99_us / rawN.p99_us, parseN.p99_us);
        printf("(raw+parse: the raw pair with the client's parse of each reply into a tree on top)\n");
        free(reply_bytes);
        return ours1.failed || oursN.failed || raw1.failed || rawN.failed || parse1.failed || parseN.failed;
}
