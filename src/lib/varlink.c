/* varlink.c: Varlink messages: parsing calls and replies, formatting them, checking
 * parameters against the compiled interface definitions.
 *
 * The framing (JSON objects separated by NUL bytes) is written here by hand because
 * no packaged Varlink library passes file descriptors (SCM_RIGHTS) or lets the daemon
 * bound buffers per client; the JSON itself is jansson's. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "osmose/json-check.h"
#include "osmose/varlink.h"

/* jansson refuses nesting deeper than JSON_PARSER_MAX_DEPTH (2048) with an error; we
 * accept no more than that and rely on it rather than scanning twice. Duplicate keys
 * are refused so that a field cannot mean two things to two readers. */
#define PARSE_FLAGS (JSON_REJECT_DUPLICATES | JSON_DISABLE_EOF_CHECK)

static json_t *load(const char *buf, size_t len, osm_error *err) {
        json_error_t e;
        if (len == 0) {
                osm_error_set(err, -EBADMSG, 0, "empty message");
                return NULL;
        }
        if (memchr(buf, 0, len)) {
                osm_error_set(err, -EBADMSG, 0, "NUL byte inside a message");
                return NULL;
        }
        json_t *root = json_loadb(buf, len, PARSE_FLAGS, &e);
        if (!root) {
                osm_error_set(err, -EBADMSG, 0, "not valid JSON");
                return NULL;
        }
        /* JSON_DISABLE_EOF_CHECK lets us see trailing garbage ourselves. */
        for (size_t i = (size_t) e.position; i < len; i++) {
                char c = buf[i];
                if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
                        json_decref(root);
                        osm_error_set(err, -EBADMSG, 0, "trailing data after the JSON object");
                        return NULL;
                }
        }
        if (!json_is_object(root)) {
                json_decref(root);
                osm_error_set(err, -EBADMSG, 0, "message is not a JSON object");
                return NULL;
        }
        return root;
}

static int get_bool(json_t *root, const char *key, bool *out, osm_error *err) {
        json_t *v = json_object_get(root, key);
        if (!v || json_is_null(v)) {
                *out = false;
                return 0;
        }
        if (!json_is_boolean(v)) {
                osm_error_set(err, -EBADMSG, 0, "a flag (more, oneway, upgrade, continues) is not a boolean");
                return -EBADMSG;
        }
        *out = json_is_true(v);
        return 0;
}

static json_t *get_params(json_t *root, osm_error *err) {
        json_t *p = json_object_get(root, "parameters");
        if (!p || json_is_null(p)) {
                p = json_object();
                if (p)
                        json_object_set_new(root, "parameters", p);
                else
                        osm_error_set(err, -ENOMEM, 0, "out of memory");
                return p;
        }
        if (!json_is_object(p)) {
                osm_error_set(err, -EBADMSG, 0, "\"parameters\" is not an object");
                return NULL;
        }
        return p;
}

/* The call osm_vl_format_call() writes for a method without parameters,
 * {"method":"NAME","parameters":{}} with NAME of printable ASCII but '"' and '\\', is what
 * monitors send in a loop (GetStatus), and jansson's parse of those 55 bytes was 11.5k
 * instructions, most of what such a call cost the daemon once its reply was built
 * (callgrind). Those exact bytes get the same tree built directly; anything else, the same
 * call spaced or ordered differently included, goes to jansson. */
static bool parse_plain_call(const char *buf, size_t len, osm_vl_call *out) {
        static const char head[] = "{\"method\":\"", tail[] = "\",\"parameters\":{}}";
        const size_t h = sizeof head - 1, t = sizeof tail - 1;
        if (len <= h + t || len > h + t + 255 || memcmp(buf, head, h) != 0 || memcmp(buf + len - t, tail, t) != 0)
                return false;
        const char *name = buf + h;
        size_t n = len - h - t;
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char) name[i];
                if (c < 0x20 || c > 0x7e || c == '"' || c == '\\')
                        return false;
        }
        json_t *root = json_object(), *m = json_stringn_nocheck(name, n), *p = json_object();
        if (!root || json_object_set_nocheck(root, "method", m) < 0 || json_object_set_nocheck(root, "parameters", p) < 0) {
                json_decref(root);
                json_decref(m);
                json_decref(p);
                return false;   /* out of memory: jansson's way says so */
        }
        out->root = root;
        out->method = json_string_value(m);
        out->parameters = p;
        json_decref(m);   /* root holds them */
        json_decref(p);
        return true;
}

/* ---- records as their text ----
 * A PutBatch of 1000 small records cost the daemon about 20,000 instructions a record in
 * jansson: parsing into a tree, freeing it, and writing each record out again as the text
 * it stores (callgrind, osmosectl put --batch). Where a method's parameter is registered
 * as raw objects, each element that is already the text osm_vl_dump() would write for it
 * (json-check.c makes sure) stays that text: a jansson string of a NUL byte and the text.
 * No message can carry such a string (a NUL byte or \u0000 in a message is refused), so
 * it cannot be forged; osm_vl_raw_object() tells it apart, and the dumper writes it as the
 * object it stands for. Anything the check is not sure of takes jansson's way, with
 * jansson's verdict and messages. */

#define MAX_RAW 4
#define RAW_MIN_MESSAGE 1024   /* smaller calls: jansson is cheap enough */

static struct {
        const char *method, *param;
} raw_params[MAX_RAW];
static size_t n_raw_params;

int osm_vl_set_raw_objects(const char *method, const char *param) {
        for (size_t i = 0; i < n_raw_params; i++)
                if (strcmp(raw_params[i].method, method) == 0 && strcmp(raw_params[i].param, param) == 0)
                        return 0;
        if (n_raw_params == MAX_RAW)
                return -ENOSPC;
        raw_params[n_raw_params].method = method;
        raw_params[n_raw_params].param = param;
        n_raw_params++;
        return 0;
}

const char *osm_vl_raw_object(json_t *v, size_t *len) {
        if (!json_is_string(v) || json_string_length(v) < 3 || json_string_value(v)[0] != 0)
                return NULL;
        if (len)
                *len = json_string_length(v) - 1;
        return json_string_value(v) + 1;
}

bool osm_vl_is_object(json_t *v) {
        return json_is_object(v) || osm_vl_raw_object(v, NULL);
}

size_t osm_vl_dumpb_size(json_t *v) {
        size_t n;
        const char *raw = osm_vl_raw_object(v, &n);
        if (!raw)
                return json_dumpb(v, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY);
        json_t *o = json_loadb(raw, n, JSON_REJECT_DUPLICATES, NULL);
        size_t r = json_dumpb(o, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY);
        json_decref(o);
        return r;
}

typedef struct raw_array {
        json_t *arr;
        const char *start, *end;   /* the array's text: from its first element to its last */
        char *tmp;             /* NUL + the text of one element */
        size_t cap;
} raw_array;

static bool add_element(void *userdata, const char *value, size_t len, bool canonical) {
        raw_array *a = userdata;
        json_t *v;
        if (value[0] != '{')
                return false;   /* not an object: the handler's error, on jansson's way */
        if (!a->start)
                a->start = value;
        a->end = value + len;
        if (len + 1 > a->cap) {
                size_t cap = OSM_MAX(len + 1, 2 * a->cap);
                char *p = realloc(a->tmp, cap);
                if (!p)
                        return false;
                a->tmp = p;
                a->cap = cap;
        }
        a->tmp[0] = 0;
        size_t n = len;
        if (canonical)
                memcpy(a->tmp + 1, value, len);
        else   /* 18.10 or spaces between tokens: often canonical once compacted */
                canonical = osm_json_object_canonical(a->tmp + 1, n = osm_json_compact(value, len, a->tmp + 1));
        if (canonical)
                v = json_stringn_nocheck(a->tmp, n + 1);
        else
                v = json_loadb(value, len, JSON_REJECT_DUPLICATES, NULL);
        return v && json_array_append_new(a->arr, v) == 0;
}

/* A call of a method with a raw parameter: its array's elements built as raw objects and
 * the rest of the message as jansson reads it: 1 and the root, or 0 (not such a call, or
 * not sure: the caller parses all of it). */
static int load_raw(const char *buf, size_t len, json_t **root_out, osm_error *err) {
        if (n_raw_params == 0 || len < RAW_MIN_MESSAGE)
                return 0;
        const char *param = NULL;
        for (size_t i = 0; i < n_raw_params && !param; i++) {
                /* a quick look for the method's name first: most calls are not these */
                char quoted[260];
                int n = snprintf(quoted, sizeof quoted, "\"%s\"", raw_params[i].method);
                if (n > 0 && (size_t) n < sizeof quoted && memmem(buf, len, quoted, (size_t) n))
                        param = raw_params[i].param;
        }
        if (!param)
                return 0;
        raw_array a = { .arr = json_array() };
        const char *const path[] = { "parameters", param };
        osm_json_scan_spec spec = { .path = path, .path_len = 2, .fn = add_element, .userdata = &a, .top_key = "method" };
        bool ok = a.arr && osm_json_object_scan(buf, len, &spec) && spec.found && a.start;
        free(a.tmp);
        /* the method it calls must be the one looked for (not the name inside some string) */
        const char *m = spec.top_value;
        size_t mn = spec.top_value_len;
        char method[256];
        if (ok && (!m || m[0] != '"' || mn < 3 || mn - 2 >= sizeof method || memchr(m, '\\', mn)))
                ok = false;
        if (ok) {
                memcpy(method, m + 1, mn - 2);
                method[mn - 2] = 0;
                ok = false;
                for (size_t i = 0; i < n_raw_params && !ok; i++)
                        ok = strcmp(raw_params[i].method, method) == 0 && strcmp(raw_params[i].param, param) == 0;
        }
        if (!ok) {
                json_decref(a.arr);
                return 0;
        }
        /* the rest as jansson reads it: the elements cut out, the array left empty */
        size_t head = (size_t) (a.start - buf), tail = len - (size_t) (a.end - buf);
        char *cut = malloc(head + tail);
        if (!cut) {
                json_decref(a.arr);
                return 0;
        }
        memcpy(cut, buf, head);
        memcpy(cut + head, a.end, tail);
        json_t *root = load(cut, head + tail, err);
        free(cut);
        json_t *params = json_object_get(root, "parameters");
        if (!json_is_array(json_object_get(params, param))) {
                json_decref(root);
                json_decref(a.arr);
                return 0;
        }
        if (json_object_set_new(params, param, a.arr) < 0) {   /* takes a.arr either way */
                json_decref(root);
                return 0;
        }
        *root_out = root;
        return 1;
}

int osm_vl_parse_call(const char *buf, size_t len, osm_vl_call *out, osm_error *err) {
        memset(out, 0, sizeof *out);
        if (parse_plain_call(buf, len, out))
                return 0;
        json_t *root = NULL;
        if (load_raw(buf, len, &root, err) <= 0)
                root = load(buf, len, err);
        if (!root)
                return -EBADMSG;
        json_t *m = json_object_get(root, "method");
        if (!json_is_string(m) || json_string_length(m) == 0 || json_string_length(m) > 255) {
                osm_error_set(err, -EBADMSG, 0, "\"method\" is missing or not a string of 1-255 bytes");
                goto fail;
        }
        out->method = json_string_value(m);
        if (!(out->parameters = get_params(root, err)))
                goto fail;
        if (get_bool(root, "more", &out->more, err) < 0 ||
            get_bool(root, "oneway", &out->oneway, err) < 0 ||
            get_bool(root, "upgrade", &out->upgrade, err) < 0)
                goto fail;
        if (out->more && out->oneway) {
                osm_error_set(err, -EBADMSG, 0, "\"more\" and \"oneway\" exclude each other");
                goto fail;
        }
        out->root = root;
        return 0;
fail:
        json_decref(root);
        memset(out, 0, sizeof *out);
        return -EBADMSG;
}

void osm_vl_call_done(osm_vl_call *c) {
        json_decref(c->root);
        memset(c, 0, sizeof *c);
}

int osm_vl_parse_reply(const char *buf, size_t len, osm_vl_reply *out, osm_error *err) {
        memset(out, 0, sizeof *out);
        json_t *root = load(buf, len, err);
        if (!root)
                return -EBADMSG;
        json_t *e = json_object_get(root, "error");
        if (e && !json_is_null(e)) {
                if (!json_is_string(e)) {
                        osm_error_set(err, -EBADMSG, 0, "\"error\" is not a string");
                        goto fail;
                }
                out->error = json_string_value(e);
        }
        if (!(out->parameters = get_params(root, err)))
                goto fail;
        if (get_bool(root, "continues", &out->continues, err) < 0)
                goto fail;
        out->root = root;
        return 0;
fail:
        json_decref(root);
        memset(out, 0, sizeof *out);
        return -EBADMSG;
}

void osm_vl_reply_done(osm_vl_reply *r) {
        json_decref(r->root);
        memset(r, 0, sizeof *r);
}

/* Compact JSON output into a growing buffer. Written here rather than calling
 * json_dumps() because every reply goes through it and jansson's dumper costs about
 * 100 instructions per output byte (measured with callgrind on GetStatus replies: 68k
 * instructions for 700 bytes); this one copies runs of plain characters at once. The
 * values come from jansson, so strings are valid UTF-8 and numbers are finite. */
bool osm_jbuf_reserve(osm_jbuf *b, size_t more) {
        if (b->failed)
                return false;
        if (b->len + more <= b->cap)
                return true;
        size_t ncap = b->cap ? b->cap : 512;
        while (ncap < b->len + more)
                ncap *= 2;
        char *np = realloc(b->p, ncap);
        if (!np) {
                b->failed = true;
                return false;
        }
        b->p = np;
        b->cap = ncap;
        return true;
}

void osm_jbuf_put(osm_jbuf *b, const char *s, size_t n) {
        if (!osm_jbuf_reserve(b, n))
                return;
        memcpy(b->p + b->len, s, n);
        b->len += n;
}

/* Does any byte of w need escaping (below 0x20, '"', '\\' or 0x7f)? Eight at a time
 * with the "has a zero byte" test of (v - 0x01..) & ~v & 0x80..: exact about whether
 * there is one, which is all the scan needs. */
static inline bool word_needs_escape(uint64_t w) {
        const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
        uint64_t q = w ^ (ones * '"'), bs = w ^ (ones * '\\'), del = w ^ (ones * 0x7f);
        return (((w - ones * 0x20) & ~w) | ((q - ones) & ~q) | ((bs - ones) & ~bs) | ((del - ones) & ~del)) & high;
}

static inline bool byte_needs_escape(unsigned char c) {
        return c < 0x20 || c == '"' || c == '\\' || c == 0x7f;
}

void osm_jbuf_string_n(osm_jbuf *b, const char *s, size_t n) {
        static const char hex[] = "0123456789abcdef";
        /* Most strings need no escape at all: then one copy between the quotes. */
        size_t k = 0;
        uint64_t w;
        while (k + 8 <= n && (memcpy(&w, s + k, 8), !word_needs_escape(w)))
                k += 8;
        while (k < n && !byte_needs_escape((unsigned char) s[k]))
                k++;
        if (k == n) {
                if (!osm_jbuf_reserve(b, n + 2))
                        return;
                b->p[b->len++] = '"';
                memcpy(b->p + b->len, s, n);
                b->len += n;
                b->p[b->len++] = '"';
                return;
        }
        osm_jbuf_put(b, "\"", 1);
        size_t run = 0;
        for (size_t i = k; i < n; i++) {   /* the bytes before k are plain */
                /* Runs of plain bytes a word at a time. */
                while (i + 8 <= n && (memcpy(&w, s + i, 8), !word_needs_escape(w)))
                        i += 8;
                if (i >= n)
                        break;
                unsigned char c = (unsigned char) s[i];
                if (!byte_needs_escape(c))
                        continue;
                osm_jbuf_put(b, s + run, i - run);
                run = i + 1;
                char esc[6] = { '\\', 0 };
                switch (c) {
                case '"': esc[1] = '"'; osm_jbuf_put(b, esc, 2); break;
                case '\\': esc[1] = '\\'; osm_jbuf_put(b, esc, 2); break;
                case '\n': esc[1] = 'n'; osm_jbuf_put(b, esc, 2); break;
                case '\r': esc[1] = 'r'; osm_jbuf_put(b, esc, 2); break;
                case '\t': esc[1] = 't'; osm_jbuf_put(b, esc, 2); break;
                default:
                        esc[1] = 'u';
                        esc[2] = '0';
                        esc[3] = '0';
                        esc[4] = hex[c >> 4];
                        esc[5] = hex[c & 15];
                        osm_jbuf_put(b, esc, 6);
                }
        }
        osm_jbuf_put(b, s + run, n - run);
        osm_jbuf_put(b, "\"", 1);
}

/* Most reals in records are short decimals (20.9, 18.05), and snprintf and strtod cost
 * about 4,000 instructions for one. For 1e-4 <= |d| < 1e15: the fewest decimals k for which
 * round(|d| * 10^k) / 10^k is |d| again. m and 10^k are exact doubles and IEEE division
 * rounds correctly, so that is the double strtod reads from those digits (Clinger's fast
 * path); with at most 15 significant digits it is also exactly what "%.15g" prints (the
 * double lies within half an ulp of them, finer than the 15-digit grid). Writes the text
 * ("20.0" for a whole one) into num and returns its length, or 0 for the general way. */
int osm_real_short(double d, char num[static 32]) {
        static const double p10[16] = { 1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
                                        1e11, 1e12, 1e13, 1e14, 1e15 };
        double a = d < 0 ? -d : d;
        if (!(a >= 1e-4 && a < 1e15))   /* NaN too */
                return 0;
        for (int k = 0; k < 16; k++) {
                double x = a * p10[k];
                if (x >= 1e15)
                        return 0;
                long long m = (long long) (x + 0.5);
                if ((double) m / p10[k] != a)
                        continue;
                if (k > 0 && m % 10 == 0)
                        return 0;   /* fewer decimals read back too and rounding hid them */
                char dig[21];
                int nd = (int) osm_fmt_int(dig, m), n = 0;
                if (d < 0)
                        num[n++] = '-';
                if (nd <= k) {   /* 0.00ddd */
                        num[n++] = '0';
                        num[n++] = '.';
                        for (int z = 0; z < k - nd; z++)
                                num[n++] = '0';
                        memcpy(num + n, dig, (size_t) nd);
                        n += nd;
                } else {
                        memcpy(num + n, dig, (size_t) (nd - k));
                        n += nd - k;
                        num[n++] = '.';
                        memcpy(num + n, k ? dig + nd - k : "0", (size_t) (k ? k : 1));
                        n += k ? k : 1;
                }
                num[n] = 0;
                return n;
        }
        return 0;
}

/* The shortest of 15, 16 or 17 significant digits that reads back as the same double (so
 * 20.9 stays "20.9", where jansson writes 20.899999999999999); a real keeps a '.' or
 * exponent so it reads back as a real. */
void osm_jbuf_real(osm_jbuf *b, double d) {
        char num[64];
        int n = osm_real_short(d, num);
        if (n > 0) {
                osm_jbuf_put(b, num, (size_t) n);
                return;
        }
        for (int prec = 15; prec <= 17; prec++) {
                n = snprintf(num, sizeof num, "%.*g", prec, d);
                if (strtod(num, NULL) == d)
                        break;
        }
        if (n > 0 && !strpbrk(num, ".eE") && (size_t) n + 2 < sizeof num) {
                memcpy(num + n, ".0", 3);
                n += 2;
        }
        osm_jbuf_put(b, num, (size_t) n);
}

/* Digits by hand, two at a time: snprintf costs about 200 instructions a number, one
 * digit a step about 350 for a time in microseconds (callgrind), and a query page writes
 * two for each record. */
size_t osm_fmt_int(char buf[static 21], long long v) {
        static const char pairs[201] =
                "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
                "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
                "8081828384858687888990919293949596979899";
        char tmp[20];
        unsigned long long u = v < 0 ? 0ULL - (unsigned long long) v : (unsigned long long) v;
        size_t i = sizeof tmp, len = 0;
        while (u >= 100) {
                unsigned r = (unsigned) (u % 100);
                u /= 100;
                i -= 2;
                memcpy(tmp + i, pairs + 2 * r, 2);
        }
        if (u >= 10) {
                i -= 2;
                memcpy(tmp + i, pairs + 2 * u, 2);
        } else
                tmp[--i] = (char) ('0' + u);
        if (v < 0)
                buf[len++] = '-';
        memcpy(buf + len, tmp + i, sizeof tmp - i);
        return len + sizeof tmp - i;
}

void osm_jbuf_int(osm_jbuf *b, long long v) {
        char num[21];
        osm_jbuf_put(b, num, osm_fmt_int(num, v));
}

void osm_jbuf_string(osm_jbuf *b, const char *s) {
        osm_jbuf_string_n(b, s, strlen(s));
}

static void jbuf_newline(osm_jbuf *b, int indent, int depth) {
        static const char spaces[] = "                                ";
        osm_jbuf_put(b, "\n", 1);
        for (size_t n = (size_t) (indent * depth), k; n; n -= k) {
                k = OSM_MIN(n, sizeof spaces - 1);
                osm_jbuf_put(b, spaces, k);
        }
}

/* v written compactly (indent < 0), or laid out as jansson's JSON_INDENT(indent) lays it
 * out (a member a line, "key": value, empty containers as {} and []) at depth levels in. */
static void jbuf_value(osm_jbuf *b, json_t *v, int indent, int depth) {
        char num[64];
        bool pretty = indent >= 0;
        switch (json_typeof(v)) {
        case JSON_OBJECT: {
                const char *key;
                json_t *val;
                bool first = true;
                osm_jbuf_put(b, "{", 1);
                json_object_foreach(v, key, val) {
                        if (!first)
                                osm_jbuf_put(b, ",", 1);
                        first = false;
                        if (pretty)
                                jbuf_newline(b, indent, depth + 1);
                        osm_jbuf_string_n(b, key, strlen(key));
                        if (pretty)
                                osm_jbuf_put(b, ": ", 2);
                        else
                                osm_jbuf_put(b, ":", 1);
                        jbuf_value(b, val, indent, depth + 1);
                }
                if (pretty && !first)
                        jbuf_newline(b, indent, depth);
                osm_jbuf_put(b, "}", 1);
                break;
        }
        case JSON_ARRAY: {
                size_t i;
                json_t *val;
                osm_jbuf_put(b, "[", 1);
                json_array_foreach(v, i, val) {
                        if (i)
                                osm_jbuf_put(b, ",", 1);
                        if (pretty)
                                jbuf_newline(b, indent, depth + 1);
                        jbuf_value(b, val, indent, depth + 1);
                }
                if (pretty && json_array_size(v))
                        jbuf_newline(b, indent, depth);
                osm_jbuf_put(b, "]", 1);
                break;
        }
        case JSON_STRING: {
                size_t n;
                const char *raw = osm_vl_raw_object(v, &n);
                if (raw)
                        osm_jbuf_put(b, raw, n);   /* the object it stands for, as it was written */
                else
                        osm_jbuf_string_n(b, json_string_value(v), json_string_length(v));
                break;
        }
        case JSON_INTEGER:
                osm_jbuf_put(b, num, (size_t) snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v)));
                break;
        case JSON_REAL:
                osm_jbuf_real(b, json_real_value(v));
                break;
        case JSON_TRUE: osm_jbuf_put(b, "true", 4); break;
        case JSON_FALSE: osm_jbuf_put(b, "false", 5); break;
        case JSON_NULL: osm_jbuf_put(b, "null", 4); break;
        }
}

void osm_jbuf_value(osm_jbuf *b, json_t *v) {
        jbuf_value(b, v, -1, 0);
}

/* Finish a frame: the NUL terminator; returns the buffer or NULL on ENOMEM. */
char *osm_jbuf_finish(osm_jbuf *b, size_t *len) {
        osm_jbuf_put(b, "", 1);
        if (b->failed) {
                free(b->p);
                return NULL;
        }
        *len = b->len;
        return b->p;
}

static void jbuf_params(osm_jbuf *b, json_t *params) {
        if (params)
                osm_jbuf_value(b, params);
        else
                osm_jbuf_put(b, "{}", 2);
}

char *osm_vl_format_call(const char *method, json_t *params, bool more, bool oneway, size_t *len) {
        osm_jbuf b = { 0 };
        osm_jbuf_put(&b, "{\"method\":", 10);
        osm_jbuf_string_n(&b, method, strlen(method));
        osm_jbuf_put(&b, ",\"parameters\":", 14);
        jbuf_params(&b, params);
        if (more)
                osm_jbuf_put(&b, ",\"more\":true", 12);
        if (oneway)
                osm_jbuf_put(&b, ",\"oneway\":true", 14);
        osm_jbuf_put(&b, "}", 1);
        return osm_jbuf_finish(&b, len);
}

char *osm_vl_format_call_raw(const char *method, const char *params, size_t params_len, size_t *len) {
        osm_jbuf b = { 0 };
        osm_jbuf_put(&b, "{\"method\":", 10);
        osm_jbuf_string_n(&b, method, strlen(method));
        osm_jbuf_put(&b, ",\"parameters\":", 14);
        osm_jbuf_put(&b, params, params_len);
        osm_jbuf_put(&b, "}", 1);
        return osm_jbuf_finish(&b, len);
}

char *osm_vl_format_reply(json_t *params, bool continues, size_t *len) {
        osm_jbuf b = { 0 };
        osm_jbuf_put(&b, "{\"parameters\":", 14);
        jbuf_params(&b, params);
        if (continues)
                osm_jbuf_put(&b, ",\"continues\":true", 17);
        osm_jbuf_put(&b, "}", 1);
        return osm_jbuf_finish(&b, len);
}

size_t osm_vl_reply_iov(const char *params, size_t params_len, bool continues, struct iovec iov[static 3]) {
        static const char head[] = "{\"parameters\":", tail[] = "}", tail_continues[] = ",\"continues\":true}";
        iov[0] = (struct iovec) { .iov_base = (void *) head, .iov_len = sizeof head - 1 };
        iov[1] = (struct iovec) { .iov_base = (void *) params, .iov_len = params_len };
        /* sizeof: the NUL that ends the frame included */
        iov[2] = continues ? (struct iovec) { .iov_base = (void *) tail_continues, .iov_len = sizeof tail_continues }
                           : (struct iovec) { .iov_base = (void *) tail, .iov_len = sizeof tail };
        return iov[0].iov_len + iov[1].iov_len + iov[2].iov_len;
}

char *osm_vl_format_reply_raw(const char *params, size_t params_len, bool continues, size_t *len) {
        struct iovec iov[3];
        size_t n = osm_vl_reply_iov(params, params_len, continues, iov), off = 0;
        char *p = malloc(n);   /* the frame around params: one allocation */
        if (!p)
                return NULL;
        for (size_t i = 0; i < 3; i++) {
                memcpy(p + off, iov[i].iov_base, iov[i].iov_len);
                off += iov[i].iov_len;
        }
        *len = n;
        return p;
}

char *osm_vl_format_error(const char *error, json_t *params, size_t *len) {
        osm_jbuf b = { 0 };
        osm_jbuf_put(&b, "{\"error\":", 9);
        osm_jbuf_string_n(&b, error, strlen(error));
        osm_jbuf_put(&b, ",\"parameters\":", 14);
        jbuf_params(&b, params);
        osm_jbuf_put(&b, "}", 1);
        return osm_jbuf_finish(&b, len);
}

char *osm_vl_dump_indented(json_t *v, int indent, size_t *len) {
        osm_jbuf b = { 0 };
        jbuf_value(&b, v, indent, 0);
        return osm_jbuf_finish(&b, len);
}

char *osm_vl_dump(json_t *v, size_t *len) {
        return osm_vl_dump_indented(v, -1, len);
}

typedef union {
        char buf[CMSG_SPACE(sizeof(int) * OSM_VARLINK_MAX_FDS)];
        struct cmsghdr align;
} fd_control;

ssize_t osm_vl_sendmsg(int fd, const void *buf, size_t len, const int *fds, size_t n_fds, int flags) {
        struct iovec iov = { .iov_base = (void *) buf, .iov_len = len };
        return osm_vl_sendmsgv(fd, &iov, 1, fds, n_fds, flags);
}

ssize_t osm_vl_sendmsgv(int fd, const struct iovec *iov, size_t n_iov, const int *fds, size_t n_fds, int flags) {
        if (n_fds > OSM_VARLINK_MAX_FDS)
                return -E2BIG;
        struct msghdr mh = { .msg_iov = (struct iovec *) iov, .msg_iovlen = n_iov };
        fd_control ctl;
        if (n_fds > 0) {
                memset(&ctl, 0, sizeof ctl);
                mh.msg_control = ctl.buf;
                mh.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
                struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
                cm->cmsg_level = SOL_SOCKET;
                cm->cmsg_type = SCM_RIGHTS;
                cm->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
                memcpy(CMSG_DATA(cm), fds, sizeof(int) * n_fds);
        }
        ssize_t n = sendmsg(fd, &mh, flags | MSG_NOSIGNAL);
        return n < 0 ? -errno : n;
}

ssize_t osm_vl_recvmsg(int fd, void *buf, size_t len, int flags, int *fds, size_t *n_fds, bool *truncated) {
        struct iovec iov = { .iov_base = buf, .iov_len = len };
        fd_control ctl;
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf };
        *n_fds = 0;
        *truncated = false;
        ssize_t n = recvmsg(fd, &mh, flags | MSG_CMSG_CLOEXEC);
        if (n < 0)
                return -errno;
        *truncated = (mh.msg_flags & MSG_CTRUNC) != 0;
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
                if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
                        continue;
                size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                const int *in = (const int *) CMSG_DATA(cm);
                for (size_t i = 0; i < k; i++) {
                        if (*n_fds < OSM_VARLINK_MAX_FDS) {
                                fds[(*n_fds)++] = in[i];
                        } else {
                                close(in[i]);
                                *truncated = true;
                        }
                }
        }
        return n;
}

bool osm_vl_split_method(const char *method, char *iface, size_t size, const char **member) {
        const char *dot = strrchr(method, '.');
        if (!dot || dot == method || !dot[1])
                return false;
        size_t n = (size_t) (dot - method);
        if (n >= size)
                return false;
        memcpy(iface, method, n);
        iface[n] = 0;
        if (!strchr(iface, '.'))
                return false;
        *member = dot + 1;
        return true;
}

const osm_vl_interface *osm_vl_find_interface(const char *name) {
        for (size_t i = 0; i < osm_vl_n_interfaces; i++)
                if (strcmp(osm_vl_interfaces[i]->name, name) == 0)
                        return osm_vl_interfaces[i];
        return NULL;
}

const osm_vl_method *osm_vl_find_method(const char *qualified) {
        char iface[256];
        const char *member;
        if (!osm_vl_split_method(qualified, iface, sizeof iface, &member))
                return NULL;
        const osm_vl_interface *i = osm_vl_find_interface(iface);
        if (!i)
                return NULL;
        for (size_t k = 0; k < i->n_methods; k++)
                if (strcmp(i->methods[k].name, qualified) == 0)
                        return &i->methods[k];
        return NULL;
}

static bool kind_matches(char kind, json_t *v) {
        switch (kind) {
        case OSM_VL_STRING: return json_is_string(v);
        case OSM_VL_INT:    return json_is_integer(v);
        case OSM_VL_FLOAT:  return json_is_number(v);
        case OSM_VL_BOOL:   return json_is_boolean(v);
        case OSM_VL_OBJECT:
        case OSM_VL_MAP:    return json_is_object(v);
        case OSM_VL_ARRAY:  return json_is_array(v);
        case OSM_VL_ANY:    return true;
        }
        return false;
}

int osm_vl_check_params(const osm_vl_method *m, json_t *params, const char **bad_field) {
        const char *key;
        json_t *v;
        json_object_foreach(params, key, v) {
                const osm_vl_field *f = NULL;
                for (size_t i = 0; i < m->n_in; i++)
                        if (strcmp(m->in[i].name, key) == 0)
                                f = &m->in[i];
                if (!f) {
                        *bad_field = key;
                        return -EINVAL;
                }
                if (json_is_null(v)) {
                        if (!f->optional) {
                                *bad_field = f->name;
                                return -EINVAL;
                        }
                        continue;
                }
                if (!kind_matches(f->kind, v)) {
                        *bad_field = f->name;
                        return -EINVAL;
                }
                if (f->enum_values) {
                        bool found = false;
                        for (const char *const *e = f->enum_values; *e && !found; e++)
                                found = strcmp(*e, json_string_value(v)) == 0;
                        if (!found) {
                                *bad_field = f->name;
                                return -EINVAL;
                        }
                }
        }
        for (size_t i = 0; i < m->n_in; i++) {
                if (!m->in[i].optional && !json_object_get(params, m->in[i].name)) {
                        *bad_field = m->in[i].name;
                        return -EINVAL;
                }
        }
        return 0;
}
