/* output.c: what every osmosectl command shares: calls with one-line errors, tables, JSON. */
#include <errno.h>
#include <getopt.h>
#include <langinfo.h>
#include <locale.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <wchar.h>

#include "cli/output.h"
#include "osmose/identity.h"

static void vfail(const char *fmt, va_list ap) {
        fputs("osmosectl: ", stderr);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
}

int osm_ctl_fail(const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        vfail(fmt, ap);
        va_end(ap);
        return 1;
}

int osm_ctl_usage_error(const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        vfail(fmt, ap);
        va_end(ap);
        return 2;
}

osm_client *osm_ctl_client(osm_ctl *ctl) {
        if (ctl->client)
                return ctl->client;
        int r = osm_client_connect(ctl->socket, &ctl->client);
        if (r == -ENOENT || r == -ECONNREFUSED)
                osm_ctl_fail("no osmosed is running at %s (%s)", ctl->socket, strerror(-r));
        else if (r == -EACCES)
                osm_ctl_fail("permission denied connecting to %s: you need to be root or in the group 'osmose'",
                             ctl->socket);
        else if (r < 0)
                osm_ctl_fail("cannot connect to %s: %s", ctl->socket, strerror(-r));
        return r < 0 ? NULL : ctl->client;
}

static char command[64];

void osm_ctl_set_command(const char *group, const char *sub) {
        if (sub)
                snprintf(command, sizeof command, "%s %s", group, sub);
        else
                snprintf(command, sizeof command, "%s", group);
}

int osm_ctl_call_failed(const char *method, const osm_client_error *err) {
        char text[2048];
        osm_ctl_error_text(method, err, text, sizeof text);
        /* 'call' is for debugging: there the error's name is wanted too */
        if (err->name && strcmp(command, "call") == 0 && !strstr(text, err->name)) {
                size_t n = strlen(text);
                snprintf(text + n, sizeof text - n, " [%s]", err->name);
        }
        if (command[0])
                return osm_ctl_fail("%s: %s", command, text);
        return osm_ctl_fail("%s", text);
}

int osm_ctl_call_fds(osm_ctl *ctl, const char *method, json_t *params, const int *fds, size_t n_fds,
                     json_t **reply, int *reply_fds, size_t *n_reply_fds) {
        osm_client *c = osm_ctl_client(ctl);
        if (!c)
                return 1;
        osm_client_error err = { 0 };
        json_t *rep = NULL;
        int r = osm_client_call(c, method, params, fds, n_fds, &rep, reply_fds, n_reply_fds, &err);
        if (r < 0) {
                osm_ctl_call_failed(method, &err);
                osm_client_error_clear(&err);
                return 1;
        }
        if (reply)
                *reply = rep;
        else
                json_decref(rep);
        return 0;
}

int osm_ctl_call(osm_ctl *ctl, const char *method, json_t *params, json_t **reply) {
        return osm_ctl_call_fds(ctl, method, params, NULL, 0, reply, NULL, NULL);
}

int osm_ctl_request_fds(osm_ctl *ctl, osm_vl_request req, const int *fds, size_t n_fds, json_t **reply,
                        int *reply_fds, size_t *n_reply_fds) {
        _cleanup_request_ osm_vl_request r = req;
        if (r.failed)
                return osm_ctl_fail("%s%sout of memory", command, command[0] ? ": " : "");
        return osm_ctl_call_fds(ctl, r.method, r.params, fds, n_fds, reply, reply_fds, n_reply_fds);
}

int osm_ctl_request(osm_ctl *ctl, osm_vl_request req, json_t **reply) {
        return osm_ctl_request_fds(ctl, req, NULL, 0, reply, NULL, NULL);
}

void osm_print_done(osm_ctl *ctl, json_t *reply, json_t *what, const char *fmt, ...) {
        if (ctl->json) {
                if (!what)
                        abort();
                if (json_is_object(reply))
                        json_object_update(what, reply);
                osm_print_json(what);
        } else {
                va_list ap;
                va_start(ap, fmt);
                vprintf(fmt, ap);
                va_end(ap);
                putchar('\n');
        }
        json_decref(what);
}

int osm_ctl_parse_time(const char *cmd, const char *opt, const char *value, int64_t *out) {
        if (osm_parse_time(value, osm_now_real_us(), out) < 0)
                return osm_ctl_usage_error("%s: %s '%s': expected %s", cmd, opt, value, OSM_CTL_TIME_FORMS);
        return 0;
}

/* Through osm_vl_dump: a reading stored as 18.01 is printed 18.01, where jansson's
 * dumper writes 18.010000000000002 (jansson's own is the fallback without memory for
 * the text). */
static void print_value(json_t *v, int indent) {
        size_t len = 0;
        char *text = osm_vl_dump_indented(v, indent, &len);
        if (text)
                fwrite(text, 1, len - 1, stdout);
        else
                json_dumpf(v, stdout, indent < 0 ? JSON_COMPACT : JSON_INDENT(indent));
        fputc('\n', stdout);
        free(text);
}

void osm_print_json(json_t *v) {
        print_value(v, 2);
}

void osm_print_json_line(json_t *v) {
        print_value(v, -1);
        fflush(stdout);
}

struct osm_table {
        size_t cols, rows, cap;
        char **cells;   /* rows * cols, row 0 = headers */
};

/* What the daemon sends is UTF-8: tables measure it in a UTF-8 locale, the user's if it
 * is one, else C.UTF-8 (built into glibc). Only LC_CTYPE: numbers stay C. Set by the
 * first table, not at start: loading a locale costs a command that prints none (run
 * --wait) ~0.15 ms; nothing else in osmosectl depends on LC_CTYPE. */
static void utf8_ctype(void) {
        static bool done;
        if (done)
                return;
        done = true;
        if (!setlocale(LC_CTYPE, "") || strcmp(nl_langinfo(CODESET), "UTF-8") != 0)
                setlocale(LC_CTYPE, "C.UTF-8");
}

osm_table *osm_table_new(const char *first_header, ...) {
        utf8_ctype();
        osm_table *t = calloc(1, sizeof *t);
        if (!t)
                abort();
        va_list ap;
        va_start(ap, first_header);
        size_t n = 0;
        for (const char *h = first_header; h; h = va_arg(ap, const char *))
                n++;
        va_end(ap);
        t->cols = n;
        t->cap = 16;
        t->cells = calloc(t->cap * n, sizeof(char *));
        if (!t->cells)
                abort();
        va_start(ap, first_header);
        size_t i = 0;
        for (const char *h = first_header; h; h = va_arg(ap, const char *))
                t->cells[i++] = strdup(h);
        va_end(ap);
        t->rows = 1;
        return t;
}

/* Cells are UTF-8 from peers, workloads and records: what a terminal would act on (C0 and
 * C1 controls, DEL, invalid sequences, unprintable characters) becomes '?'. The table put
 * LC_CTYPE in a UTF-8 locale (utf8_ctype), so mbrtowc and wcwidth know the characters. */
static char *clean_cell(const char *v) {
        size_t n = strlen(v);
        char *s = malloc(n + 1), *o = s;
        if (!s)
                abort();
        mbstate_t st = { 0 };
        for (const char *p = v; *p;) {
                wchar_t wc;
                size_t k = mbrtowc(&wc, p, n - (size_t) (p - v), &st);
                if (k == (size_t) -1 || k == (size_t) -2 || k == 0) {
                        memset(&st, 0, sizeof st);
                        *o++ = '?';
                        p++;
                        continue;
                }
                if (wc < 0x20 || (wc >= 0x7f && wc < 0xa0) || wcwidth(wc) < 0)
                        *o++ = '?';
                else {
                        memcpy(o, p, k);
                        o += k;
                }
                p += k;
        }
        *o = 0;
        return s;
}

/* Display width of a clean cell in terminal columns (an East Asian character takes two,
 * a combining mark none); *cut_at gets the byte length of the longest prefix of at most
 * max columns. */
static size_t display_width(const char *s, size_t max, size_t *cut_at) {
        size_t w = 0, n = strlen(s);
        mbstate_t st = { 0 };
        if (cut_at)
                *cut_at = n;
        for (const char *p = s; *p;) {
                wchar_t wc;
                size_t k = mbrtowc(&wc, p, n - (size_t) (p - s), &st);
                if (k == (size_t) -1 || k == (size_t) -2 || k == 0)
                        k = 1, wc = '?';
                int cw = wcwidth(wc);
                if (cw < 0)
                        cw = 1;
                if (cut_at && w + (size_t) cw > max && *cut_at == n)
                        *cut_at = (size_t) (p - s);
                w += (size_t) cw;
                p += k;
        }
        return w;
}

void osm_table_add(osm_table *t, const char *first_cell, ...) {
        if (t->rows == t->cap) {
                t->cap *= 2;
                t->cells = realloc(t->cells, t->cap * t->cols * sizeof(char *));
                if (!t->cells)
                        abort();
        }
        va_list ap;
        va_start(ap, first_cell);
        for (size_t c = 0; c < t->cols; c++) {
                const char *v = c == 0 ? first_cell : va_arg(ap, const char *);
                t->cells[t->rows * t->cols + c] = clean_cell(v ? v : "-");
        }
        va_end(ap);
        t->rows++;
}

/* The widest a cell may be: 72 columns (a 64-digit hash fits), the last one up to the
 * terminal's right edge, or 200 columns when the output is not a terminal. */
#define CELL_MAX      72
#define LAST_MAX_PIPE 200

static size_t terminal_columns(void) {
        struct winsize ws;
        if (isatty(STDOUT_FILENO) && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
                return ws.ws_col;
        return 0;
}

/* Cut s to at most max columns, the last of them '…'. */
static void cut_cell(char **s, size_t max) {
        size_t at;
        if (max < 2 || display_width(*s, max - 1, &at) <= max)
                return;
        char *c = malloc(at + sizeof "…");
        if (!c)
                abort();
        memcpy(c, *s, at);
        memcpy(c + at, "…", sizeof "…");
        free(*s);
        *s = c;
}

static void table_print(osm_table *t, size_t first_row) {
        size_t *w = calloc(t->cols, sizeof *w);
        size_t term = terminal_columns(), left = 0;
        for (size_t c = 0; c < t->cols; c++) {
                for (size_t r = 0; r < t->rows; r++) {
                        char **s = &t->cells[r * t->cols + c];
                        if (c + 1 < t->cols)
                                cut_cell(s, CELL_MAX);
                        else
                                cut_cell(s, term ? OSM_MAX(term > left ? term - left : 0, (size_t) 20) : LAST_MAX_PIPE);
                        w[c] = OSM_MAX(w[c], display_width(*s, 0, NULL));
                }
                left += w[c] + 2;
        }
        for (size_t r = first_row; r < t->rows; r++) {
                for (size_t c = 0; c < t->cols; c++) {
                        const char *s = t->cells[r * t->cols + c];
                        if (c + 1 == t->cols)
                                printf("%s\n", s);
                        else
                                printf("%s%*s", s, (int) (w[c] - display_width(s, 0, NULL) + 2), "");
                }
        }
        for (size_t i = 0; i < t->rows * t->cols; i++)
                free(t->cells[i]);
        free(t->cells);
        free(w);
        free(t);
}

void osm_table_print(osm_table *t) {
        table_print(t, 0);
}

void osm_table_print_rows(osm_table *t) {
        table_print(t, 1);
}

bool osm_ctl_wants_help(int argc, char **argv) {
        for (int i = 1; i < argc; i++) {
                if (strcmp(argv[i], "--") == 0)
                        return false;
                if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
                        return true;
        }
        return false;
}

/* Does arg name one of opts's options that takes a value in the next argument? */
static bool takes_next_value(const char *arg, const struct option *opts) {
        for (const struct option *o = opts; o && o->name; o++) {
                if (o->has_arg != required_argument)
                        continue;
                if ((arg[1] == '-' && strcmp(arg + 2, o->name) == 0) ||
                    (arg[1] == o->val && arg[2] == 0 && o->val > 0 && o->val < 128))
                        return true;
        }
        return false;
}

const char *osm_ctl_take_key_operand(int *argc, char **argv, const struct option *opts) {
        for (int i = 1; i < *argc; i++) {
                if (strcmp(argv[i], "--") == 0)
                        return NULL;
                uint8_t pk[OSM_PUBKEY_BYTES];
                if (argv[i][0] != '-' || (i > 1 && argv[i - 1][0] == '-' && takes_next_value(argv[i - 1], opts)) ||
                    osm_pubkey_decode(argv[i], pk) < 0)
                        continue;
                const char *key = argv[i];
                memmove(argv + i, argv + i + 1, (size_t) (*argc - i) * sizeof *argv);   /* with argv[argc], NULL */
                (*argc)--;
                return key;
        }
        return NULL;
}

void osm_ctl_usage(const char *cmd, const char *args, const char *help, const char *details) {
        printf("Usage: osmosectl [--socket PATH] [--json] %s%s%s\n%s\n", cmd, args && *args ? " " : "",
               args ? args : "", help);
        if (details && *details)
                printf("\n%s", details);
}

int osm_ctl_dispatch(osm_ctl *ctl, const char *group, const osm_ctl_command *table, size_t n,
                     int argc, char **argv) {
        if (argc >= 2) {
                for (size_t i = 0; i < n; i++)
                        if (strcmp(argv[1], table[i].name) == 0) {
                                osm_ctl_set_command(group, table[i].name);
                                return table[i].fn(ctl, argc - 1, argv + 1);
                        }
        }
        bool help = argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0);
        FILE *f = help ? stdout : stderr;
        if (!help)
                fprintf(stderr, "osmosectl: %s: %s\n", group,
                        argc >= 2 ? "unknown subcommand" : "missing subcommand");
        fprintf(f, "Usage: osmosectl %s COMMAND …\n\n", group);
        for (size_t i = 0; i < n; i++)
        {
                char syn[128];
                snprintf(syn, sizeof syn, "%s %s%s%s", group, table[i].name, table[i].args ? " " : "",
                         table[i].args ? table[i].args : "");
                fprintf(f, "  %-40s %s\n", syn, table[i].help);
        }
        return help ? 0 : 2;
}
