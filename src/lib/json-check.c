/* json-check.c: see json-check.h.
 *
 * Written by hand because jansson offers no check without building the tree, and its
 * parse of a 50-byte record costs about 10,000 instructions (measured with callgrind on
 * osmosectl put --batch: jansson was most of the tool's time). This is a strict subset of
 * JSON as jansson reads it: it says yes only for text jansson accepts as an object, and
 * says "not sure" for the rest, which then takes jansson's way, so the verdict and the
 * error messages stay jansson's. What jansson refuses and this must refuse too:
 * invalid UTF-8 (overlong forms, surrogates, beyond U+10FFFF: Unicode's table 3-7),
 * control characters in strings, leading zeros, integers beyond 64 bits and reals that
 * overflow (numbers are bounded in digits here), duplicate keys (compared as written:
 * keys with escapes are left to jansson), nesting beyond its depth (bounded lower here). */
#include <stdint.h>
#include <string.h>

#include "osmose/json-check.h"

#define MAX_DEPTH 32       /* jansson allows 2048 */
#define MAX_KEYS  64       /* keys of the open objects, for the duplicate check */
#define MAX_INT_DIGITS 18  /* fits in json_int_t (long long) */
#define MAX_REAL_DIGITS 200 /* with an exponent of at most 2 digits: finite */

typedef struct scan {
        const unsigned char *p, *end;
        int depth;
        struct {
                const unsigned char *s;
                size_t n;
        } keys[MAX_KEYS];
        size_t n_keys;
        bool canonical;    /* so far exactly what osm_vl_dump() writes for the value */
        osm_json_scan_spec *spec;   /* what osm_json_object_scan looks for, or NULL */
        size_t matched;    /* keys of spec->path the open objects are inside of */
} scan;

static void ws(scan *s) {
        const unsigned char *b = s->p;
        while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
                s->p++;
        if (s->p != b)
                s->canonical = false;
}

static bool cont(const unsigned char *p, const unsigned char *end, unsigned char lo, unsigned char hi) {
        return p < end && *p >= lo && *p <= hi;
}

/* Length of the well-formed UTF-8 sequence of two to four bytes at p, or 0. */
static size_t utf8_seq(const unsigned char *p, const unsigned char *end) {
        unsigned char c = *p;
        if (c >= 0xc2 && c <= 0xdf)
                return cont(p + 1, end, 0x80, 0xbf) ? 2 : 0;
        if (c >= 0xe0 && c <= 0xef) {
                unsigned char lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
                return cont(p + 1, end, lo, hi) && cont(p + 2, end, 0x80, 0xbf) ? 3 : 0;
        }
        if (c >= 0xf0 && c <= 0xf4) {
                unsigned char lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
                return cont(p + 1, end, lo, hi) && cont(p + 2, end, 0x80, 0xbf) &&
                       cont(p + 3, end, 0x80, 0xbf) ? 4 : 0;
        }
        return 0;
}

/* Has w a byte below 0x20, '"', '\\', 0x7f or from 0x80? (v - n..) & ~v & 0x80.. is exact
 * about whether some byte is below n for n <= 128; the high bit is looked at alone.) */
static inline bool word_special(uint64_t w) {
        const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
        uint64_t q = w ^ (ones * '"'), bs = w ^ (ones * '\\'), del = w ^ (ones * 0x7f);
        return ((((w - ones * 0x20) & ~w) | ((q - ones) & ~q) | ((bs - ones) & ~bs) | ((del - ones) & ~del)) & high) ||
               (w & high);
}

/* A string at s->p (its opening quote); keys take no escapes (see above). */
static bool string(scan *s, bool key) {
        s->p++;
        while (s->p < s->end) {
                uint64_t w;
                /* plain ASCII eight bytes at a time */
                while (s->end - s->p >= 8 && (memcpy(&w, s->p, 8), !word_special(w)))
                        s->p += 8;
                if (s->p >= s->end)
                        break;
                unsigned char c = *s->p;
                if (c == '"') {
                        s->p++;
                        return true;
                }
                if (c == '\\') {
                        if (key || s->p + 1 >= s->end || !memchr("\"\\/bfnrt", s->p[1], 8))
                                return false;   /* \u and anything else: jansson's */
                        if (!memchr("\"\\nrt", s->p[1], 5))
                                s->canonical = false;   /* the dumper writes '/', \u0008, \u000c */
                        s->p += 2;
                } else if (c < 0x80) {
                        if (c < 0x20 || c == 0x7f)
                                return false;
                        s->p++;
                } else {
                        size_t n = utf8_seq(s->p, s->end);
                        if (!n)
                                return false;
                        s->p += n;
                }
        }
        return false;
}

static size_t digits(scan *s) {
        const unsigned char *b = s->p;
        while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
                s->p++;
        return (size_t) (s->p - b);
}

/* Is the real I.F (no exponent) what osm_jbuf_real() writes for the double strtod reads
 * from it? Yes when it has at most 15 digits, F does not end in 0 (or is just "0") and
 * 1e-4 <= |value| < 1e15: decimals of at most 15 significant digits read into distinct
 * doubles (DBL_DIG), so osm_real_short() finds no shorter form, and its k = |F| digits
 * are those of I.F (see there). Zero and the rest: not sure, jansson's way. */
static bool real_canonical(const unsigned char *i, size_t n_i, const unsigned char *f, size_t n_f) {
        if (n_i + n_f > 15 || (f[n_f - 1] == '0' && n_f > 1))
                return false;
        if (n_i == 1 && i[0] == '0') {   /* 0.F: at least 1e-4, and not zero */
                for (size_t k = 0; k < n_f && k < 4; k++)
                        if (f[k] != '0')
                                return true;
                return false;
        }
        return true;
}

static bool number(scan *s) {
        bool neg = *s->p == '-';
        if (neg)
                s->p++;
        if (s->p >= s->end)
                return false;
        size_t n_int;
        if (*s->p == '0') {
                s->p++;
                n_int = 1;
                if (s->p < s->end && *s->p >= '0' && *s->p <= '9')
                        return false;
        } else if ((n_int = digits(s)) == 0)
                return false;
        const unsigned char *i = s->p - n_int, *f = NULL;
        size_t n_f = 0;
        bool real = false;
        if (s->p < s->end && *s->p == '.') {
                s->p++;
                f = s->p;
                if ((n_f = digits(s)) == 0)
                        return false;
                real = true;
        }
        if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
                s->p++;
                if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
                        s->p++;
                size_t n_exp = digits(s);
                if (n_exp == 0 || n_exp > 2)
                        return false;
                s->canonical = false;   /* the dumper writes 1e5 as 100000.0: not sure */
                real = true;
        }
        if (real && f && s->canonical && !real_canonical(i, n_int, f, n_f))
                s->canonical = false;
        if (!real && neg && n_int == 1 && i[0] == '0')
                s->canonical = false;   /* -0 is the integer 0 */
        return n_int <= (real ? MAX_REAL_DIGITS : MAX_INT_DIGITS);
}

static bool word(scan *s, const char *w, size_t n) {
        if ((size_t) (s->end - s->p) < n || memcmp(s->p, w, n) != 0)
                return false;
        s->p += n;
        return true;
}

/* After a member or an element: a ',' and more to come (1, at the next one), the closing
 * bracket (0, at it), or not JSON (-1). */
static int after_item(scan *s, unsigned char close) {
        ws(s);
        if (s->p >= s->end || (*s->p != close && *s->p != ','))
                return -1;
        if (*s->p == close)
                return 0;
        s->p++;
        ws(s);
        return 1;
}

static bool value(scan *s);

static bool object(scan *s) {
        if (++s->depth > MAX_DEPTH)
                return false;
        size_t base = s->n_keys;
        s->p++;
        ws(s);
        if (s->p < s->end && *s->p == '}') {
                s->p++;
                s->depth--;
                return true;
        }
        for (;;) {
                if (s->p >= s->end || *s->p != '"')
                        return false;
                const unsigned char *k = s->p + 1;
                if (!string(s, true))
                        return false;
                size_t kn = (size_t) (s->p - 1 - k);
                for (size_t i = base; i < s->n_keys; i++)
                        if (s->keys[i].n == kn && memcmp(s->keys[i].s, k, kn) == 0)
                                return false;   /* a duplicate: jansson refuses it */
                if (s->n_keys == MAX_KEYS)
                        return false;
                s->keys[s->n_keys].s = k;
                s->keys[s->n_keys].n = kn;
                s->n_keys++;
                ws(s);
                if (s->p >= s->end || *s->p != ':')
                        return false;
                s->p++;
                ws(s);
                osm_json_scan_spec *sp = s->spec;
                bool on_path = sp && s->matched == (size_t) s->depth - 1 && s->matched < sp->path_len &&
                               strlen(sp->path[s->matched]) == kn && memcmp(sp->path[s->matched], k, kn) == 0;
                bool top = sp && sp->top_key && s->depth == 1 && strlen(sp->top_key) == kn &&
                           memcmp(sp->top_key, k, kn) == 0;
                const unsigned char *v = s->p;
                if (on_path)
                        s->matched++;
                if (!value(s))
                        return false;
                if (on_path)
                        s->matched--;
                if (top) {
                        sp->top_value = (const char *) v;
                        sp->top_value_len = (size_t) (s->p - v);
                }
                int more = after_item(s, '}');
                if (more < 0)
                        return false;
                if (!more)
                        break;
        }
        s->p++;
        s->n_keys = base;
        s->depth--;
        return true;
}

static bool array(scan *s) {
        if (++s->depth > MAX_DEPTH)
                return false;
        osm_json_scan_spec *sp = s->spec;
        bool target = sp && sp->path_len > 0 && s->matched == sp->path_len && (size_t) s->depth == sp->path_len + 1;
        if (target)
                sp->found = true;
        s->p++;
        ws(s);
        if (s->p < s->end && *s->p == ']') {
                s->p++;
                s->depth--;
                return true;
        }
        for (;;) {
                if (target) {
                        const unsigned char *v = s->p;
                        bool outer = s->canonical;
                        s->canonical = true;
                        if (!value(s))
                                return false;
                        if (!sp->fn(sp->userdata, (const char *) v, (size_t) (s->p - v), s->canonical))
                                return false;
                        s->canonical = outer && s->canonical;
                } else if (!value(s))
                        return false;
                int more = after_item(s, ']');
                if (more < 0)
                        return false;
                if (!more)
                        break;
        }
        s->p++;
        s->depth--;
        return true;
}

/* A value at s->p; what follows it is the caller's to check (so "12x" or "truex" fail there). */
static bool value(scan *s) {
        if (s->p >= s->end)
                return false;
        switch (*s->p) {
        case '{': return object(s);
        case '[': return array(s);
        case '"': return string(s, false);
        case 't': return word(s, "true", 4);
        case 'f': return word(s, "false", 5);
        case 'n': return word(s, "null", 4);
        case '-':
        case '0' ... '9': return number(s);
        default: return false;
        }
}

/* The whole text one object (whitespace around it allowed), with spec's array and top key
 * looked for if spec is given; *canonical, if given, as osm_json_object_canonical says. */
static bool check(const char *text, size_t len, osm_json_scan_spec *spec, bool *canonical) {
        scan s = { .p = (const unsigned char *) text, .end = (const unsigned char *) text + len, .canonical = true,
                   .spec = spec };
        ws(&s);
        if (s.p >= s.end || *s.p != '{' || !object(&s))
                return false;
        ws(&s);
        if (canonical)
                *canonical = s.canonical;
        return s.p == s.end;
}

bool osm_json_object_certain(const char *text, size_t len) {
        return check(text, len, NULL, NULL);
}

bool osm_json_object_canonical(const char *text, size_t len) {
        bool canonical;
        return check(text, len, NULL, &canonical) && canonical;
}

bool osm_json_object_scan(const char *text, size_t len, osm_json_scan_spec *spec) {
        spec->found = false;
        spec->top_value = NULL;
        spec->top_value_len = 0;
        return check(text, len, spec, NULL);
}

size_t osm_json_compact(const char *text, size_t len, char *out) {
        size_t n = 0;
        for (size_t i = 0; i < len;) {
                char c = text[i];
                if (c == '"') {   /* a string as it is, escapes and all */
                        out[n++] = text[i++];
                        while (i < len && text[i] != '"') {
                                if (text[i] == '\\' && i + 1 < len)
                                        out[n++] = text[i++];
                                out[n++] = text[i++];
                        }
                        if (i < len)
                                out[n++] = text[i++];
                } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
                        i++;
                } else if (c == '.') {   /* a fraction: without its trailing zeros, one digit kept */
                        size_t b = i + 1, e = b;
                        while (e < len && text[e] >= '0' && text[e] <= '9')
                                e++;
                        size_t keep = e;
                        if (e >= len || (text[e] != 'e' && text[e] != 'E'))
                                while (keep > b + 1 && text[keep - 1] == '0')
                                        keep--;
                        memcpy(out + n, text + i, keep - i);
                        n += keep - i;
                        i = e;
                } else
                        out[n++] = text[i++];
        }
        return n;
}
