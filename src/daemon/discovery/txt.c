/* txt.c: DNS-SD TXT records from the LAN turned into bounded, valid JSON (see txt.h). */
#include <errno.h>
#include <string.h>

#include "daemon/discovery/txt.h"
#include "osmose/varlink.h"

/* Length of the UTF-8 sequence starting at s (at most len bytes), or 0 if it is not a
 * valid one (overlong forms, surrogates and code points past U+10FFFF are invalid). */
static size_t utf8_seq(const uint8_t *s, size_t len) {
        uint32_t cp;
        size_t n;

        if (s[0] < 0x80)
                return 1;
        if (s[0] >= 0xc2 && s[0] <= 0xdf) {
                n = 2;
                cp = s[0] & 0x1f;
        } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
                n = 3;
                cp = s[0] & 0x0f;
        } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
                n = 4;
                cp = s[0] & 0x07;
        } else
                return 0;
        if (len < n)
                return 0;
        for (size_t i = 1; i < n; i++) {
                if ((s[i] & 0xc0) != 0x80)
                        return 0;
                cp = (cp << 6) | (s[i] & 0x3f);
        }
        if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff))
                return 0;
        return n;
}

bool osm_txt_is_text(const uint8_t *s, size_t len) {
        size_t i = 0;

        while (i < len) {
                size_t n;
                if (s[i] < 0x20 || s[i] == 0x7f)
                        return false;
                n = utf8_seq(s + i, len - i);
                if (n == 0)
                        return false;
                /* C1 control characters (U+0080..U+009F) are not text either */
                if (n == 2 && s[i] == 0xc2 && s[i + 1] < 0xa0)
                        return false;
                i += n;
        }
        return true;
}

size_t osm_utf8_truncate(char *dst, size_t size, const char *s) {
        size_t len = strlen(s), i = 0;

        if (size == 0)
                return 0;
        while (i < len) {
                size_t n = utf8_seq((const uint8_t *) s + i, len - i);
                if (n == 0)
                        n = 1;   /* not ours to judge here: copy bytes as they are */
                if (i + n > size - 1)
                        break;
                i += n;
        }
        memcpy(dst, s, i);
        dst[i] = '\0';
        return i;
}

static bool key_valid(const uint8_t *k, size_t len) {
        if (len == 0 || len > OSM_TXT_MAX_KEY_LEN)
                return false;
        for (size_t i = 0; i < len; i++)
                if (k[i] < 0x20 || k[i] > 0x7e || k[i] == '=')
                        return false;
        return true;
}

static json_t *value_json(const uint8_t *v, size_t len, unsigned *issues) {
        static const char hexdigits[] = "0123456789abcdef";
        char hex[2 * 255 + 1];
        json_t *o;

        if (osm_txt_is_text(v, len))
                return json_stringn((const char *) v, len);

        /* An item is at most 255 bytes, so the value is shorter still. */
        *issues |= OSM_TXT_BINARY;
        for (size_t i = 0; i < len && i < 255; i++) {
                hex[2 * i] = hexdigits[v[i] >> 4];
                hex[2 * i + 1] = hexdigits[v[i] & 0xf];
        }
        hex[2 * OSM_MIN(len, 255)] = '\0';
        o = json_object();
        if (!o || json_object_set_new(o, "hex", json_string(hex)) < 0) {
                json_decref(o);
                return NULL;
        }
        return o;
}

int osm_txt_to_json(const osm_txt_item *items, size_t n, json_t **out, unsigned *issues) {
        _cleanup_json_ json_t *obj = NULL;
        size_t bytes = 0;
        unsigned found = 0;

        obj = json_object();
        if (!obj)
                return -ENOMEM;

        if (n > OSM_TXT_MAX_ITEMS) {
                n = OSM_TXT_MAX_ITEMS;
                found |= OSM_TXT_TRUNCATED;
        }
        for (size_t i = 0; i < n; i++) {
                const uint8_t *d = items[i].data, *eq;
                size_t len = OSM_MIN(items[i].len, (size_t) 255), klen;
                char key[OSM_TXT_MAX_KEY_LEN + 1];
                json_t *v;

                if (len == 0)
                        continue;   /* RFC 6763 §6.1: an empty string is no attribute */
                eq = memchr(d, '=', len);
                klen = eq ? (size_t) (eq - d) : len;
                if (!key_valid(d, klen)) {
                        found |= OSM_TXT_INVALID_KEY;
                        continue;
                }
                for (size_t j = 0; j < klen; j++)
                        key[j] = (d[j] >= 'A' && d[j] <= 'Z') ? (char) (d[j] + 32) : (char) d[j];
                key[klen] = '\0';

                if (json_object_get(obj, key)) {
                        found |= OSM_TXT_DUPLICATE;   /* §6.4: only the first one counts */
                        continue;
                }
                if (json_object_size(obj) >= OSM_TXT_MAX_KEYS || bytes + len > OSM_TXT_MAX_BYTES) {
                        found |= OSM_TXT_TRUNCATED;
                        continue;
                }
                v = eq ? value_json(eq + 1, len - klen - 1, &found) : json_true();
                if (!v || json_object_set_new(obj, key, v) < 0)
                        return -ENOMEM;
                bytes += len;
        }
        *out = steal_pointer(&obj);
        if (issues)
                *issues = found;
        return 0;
}

int osm_txt_wire_to_json(const uint8_t *buf, size_t len, json_t **out, unsigned *issues) {
        osm_txt_item items[OSM_TXT_MAX_ITEMS];
        size_t n = 0, off = 0;
        unsigned extra = 0;
        int r;

        while (off < len) {
                size_t l = buf[off++];
                if (l > len - off) {
                        extra |= OSM_TXT_TRUNCATED;
                        l = len - off;
                }
                if (n == OSM_TXT_MAX_ITEMS) {
                        extra |= OSM_TXT_TRUNCATED;
                        break;
                }
                items[n++] = (osm_txt_item) { buf + off, l };
                off += l;
        }
        r = osm_txt_to_json(items, n, out, issues);
        if (r >= 0 && issues)
                *issues |= extra;
        return r;
}

json_t *osm_txt_issues_json(unsigned issues) {
        static const struct { unsigned bit; const char *name; } names[] = {
                { OSM_TXT_TRUNCATED, "truncated" },
                { OSM_TXT_DUPLICATE, "duplicate-key" },
                { OSM_TXT_INVALID_KEY, "invalid-key" },
                { OSM_TXT_BINARY, "binary-value" },
        };
        json_t *a = json_array();

        if (!a)
                return NULL;
        for (size_t i = 0; i < OSM_ARRAY_SIZE(names); i++)
                if ((issues & names[i].bit) && json_array_append_new(a, json_string(names[i].name)) < 0) {
                        json_decref(a);
                        return NULL;
                }
        return a;
}

bool osm_space_id_valid(const char *s) {
        return s && strlen(s) == OSM_SPACE_ID_LEN && strspn(s, "0123456789abcdef") == OSM_SPACE_ID_LEN;
}

int osm_peer_txt_parse(json_t *txt, osm_peer_txt *out, osm_error *err) {
        const char *id, *v, *name;
        json_t *j;
        unsigned long ver = 0;

        memset(out, 0, sizeof(*out));

        id = json_string_value(json_object_get(txt, "id"));
        if (!id)
                return osm_error_set(err, -EINVAL, 0, "no text key 'id'");
        if (!osm_space_id_valid(id))
                return osm_error_set(err, -EINVAL, 0, "'id' is not a space id (32 lowercase hex digits)");

        v = json_string_value(json_object_get(txt, "v"));
        if (!v || !*v || strlen(v) > 5 || strspn(v, "0123456789") != strlen(v) || v[0] == '0')
                return osm_error_set(err, -EINVAL, 0, "'v' is not a protocol version (1..65535)");
        for (const char *c = v; *c; c++)
                ver = ver * 10 + (unsigned long) (*c - '0');
        if (ver > 65535)
                return osm_error_set(err, -EINVAL, 0, "'v' is not a protocol version (1..65535)");

        j = json_object_get(txt, "name");
        if (j) {
                /* osm_txt_to_json only makes strings of clean text */
                name = json_string_value(j);
                if (!name || strlen(name) > OSM_PEER_NAME_MAX)
                        return osm_error_set(err, -EINVAL, 0, "'name' is not text of at most 63 bytes");
                memcpy(out->name, name, strlen(name) + 1);
        }
        memcpy(out->id, id, OSM_SPACE_ID_LEN + 1);
        out->version = (unsigned) ver;
        return 0;
}
