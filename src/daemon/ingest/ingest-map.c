/* ingest-map.c: bridge definitions, broker URLs, topic → collection, payload → body, and
 * the in-flight file's lines. No I/O: fuzzed by tests/fuzz/fuzz-mqtt.c. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "daemon/ingest/ingest-map.h"
#include "daemon/store/store.h"
#include "osmose/util.h"

void osm_ingest_def_clear(osm_ingest_def *d) {
        free(d->name);
        free(d->url);
        for (size_t i = 0; i < d->n_topics; i++)
                free(d->topics[i]);
        free(d->into);
        free(d->username);
        free(d->password_file);
        free(d->ca_file);
        memset(d, 0, sizeof *d);
        d->qos = 1;
        d->max_payload = 1024 * 1024;
}

static int dup_or_null(char **dst, const char *src) {
        *dst = NULL;
        if (src && !(*dst = strdup(src)))
                return -ENOMEM;
        return 0;
}

int osm_ingest_def_copy(osm_ingest_def *dst, const osm_ingest_def *src) {
        memset(dst, 0, sizeof *dst);
        dst->qos = src->qos;
        dst->max_payload = src->max_payload;
        dst->from_config = src->from_config;
        dst->n_topics = src->n_topics;
        int r = dup_or_null(&dst->name, src->name);
        r |= dup_or_null(&dst->url, src->url);
        r |= dup_or_null(&dst->into, src->into);
        r |= dup_or_null(&dst->username, src->username);
        r |= dup_or_null(&dst->password_file, src->password_file);
        r |= dup_or_null(&dst->ca_file, src->ca_file);
        for (size_t i = 0; i < src->n_topics; i++)
                r |= dup_or_null(&dst->topics[i], src->topics[i]);
        if (r) {
                osm_ingest_def_clear(dst);
                return -ENOMEM;
        }
        return 0;
}

bool osm_ingest_name_valid(const char *name) {
        size_t n = name ? strlen(name) : 0;
        if (n == 0 || n > OSM_INGEST_MAX_NAME)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!isalnum((unsigned char) name[i]) && name[i] != '_' && name[i] != '-')
                        return false;
        return true;
}

bool osm_ingest_filter_valid(const char *f) {
        size_t n = f ? strlen(f) : 0;
        if (n == 0 || n > OSM_INGEST_MAX_FILTER)
                return false;
        json_t *s = json_stringn(f, n);   /* jansson checks UTF-8 */
        if (!s)
                return false;
        json_decref(s);
        for (size_t i = 0; i < n; i++) {
                bool start = i == 0 || f[i - 1] == '/', end = i + 1 == n || f[i + 1] == '/';
                if (f[i] == '+' && !(start && end))
                        return false;
                if (f[i] == '#' && !(start && i + 1 == n))
                        return false;
                if ((unsigned char) f[i] < 0x20)
                        return false;
        }
        return true;
}

int osm_ingest_parse_url(const char *url, char *host, size_t hostsz, uint16_t *port, bool *tls) {
        const char *p;
        if (!url)
                return -EINVAL;
        if (strncmp(url, "mqtt://", 7) == 0) {
                p = url + 7;
                *tls = false;
                *port = 1883;
        } else if (strncmp(url, "mqtts://", 8) == 0) {
                p = url + 8;
                *tls = true;
                *port = 8883;
        } else
                return -EINVAL;
        const char *h = p, *hend;
        if (*p == '[') {
                hend = strchr(p, ']');
                if (!hend)
                        return -EINVAL;
                h = p + 1;
                p = hend + 1;
        } else {
                hend = p + strcspn(p, ":/");
                p = hend;
        }
        size_t hl = (size_t) (hend - h);
        if (hl == 0 || hl >= hostsz || hl > 253)
                return -EINVAL;
        for (size_t i = 0; i < hl; i++)
                if (!isalnum((unsigned char) h[i]) && !strchr(".-:_%", h[i]))
                        return -EINVAL;
        memcpy(host, h, hl);
        host[hl] = 0;
        if (*p == ':') {
                uint64_t v;
                char num[8];
                size_t nl = strcspn(p + 1, "/");
                if (nl == 0 || nl >= sizeof num)
                        return -EINVAL;
                memcpy(num, p + 1, nl);
                num[nl] = 0;
                if (osm_parse_u64(num, &v) < 0 || v == 0 || v > 65535)
                        return -EINVAL;
                *port = (uint16_t) v;
                p += 1 + nl;
        }
        if (*p == '/')
                p++;
        return *p ? -EINVAL : 0;
}

int osm_ingest_def_set(osm_ingest_def *d, const char *key, const char *value, osm_error *err) {
        char **field = NULL;
        if (strcmp(key, "broker") == 0)
                field = &d->url;
        else if (strcmp(key, "into") == 0)
                field = &d->into;
        else if (strcmp(key, "username") == 0)
                field = &d->username;
        else if (strcmp(key, "password-file") == 0)
                field = &d->password_file;
        else if (strcmp(key, "ca-file") == 0)
                field = &d->ca_file;
        else if (strcmp(key, "topic") == 0) {
                if (d->n_topics >= OSM_INGEST_MAX_TOPICS)
                        return osm_error_set(err, -EINVAL, 0, "at most 16 topic filters per bridge");
                if (!osm_ingest_filter_valid(value))
                        return osm_error_set(err, -EINVAL, 0, "not a valid MQTT topic filter");
                if (!(d->topics[d->n_topics] = strdup(value)))
                        return -ENOMEM;
                d->n_topics++;
                return 0;
        } else if (strcmp(key, "qos") == 0) {
                if (strcmp(value, "0") != 0 && strcmp(value, "1") != 0)
                        return osm_error_set(err, -EINVAL, 0, "qos must be 0 or 1");
                d->qos = value[0] - '0';
                return 0;
        } else if (strcmp(key, "max-payload") == 0) {
                uint64_t v;
                if (osm_parse_size(value, &v) < 0 || v < 64 || v > 256u * 1024 * 1024)
                        return osm_error_set(err, -EINVAL, 0, "expected a size between 64 and 256M");
                d->max_payload = v;
                return 0;
        } else
                return -ENOENT;
        if (strlen(value) > 4096)
                return osm_error_set(err, -EINVAL, 0, "value too long");
        char *s = strdup(value);
        if (!s)
                return -ENOMEM;
        free(*field);
        *field = s;
        return 0;
}

int osm_ingest_def_check(const osm_ingest_def *d, osm_error *err) {
        char host[256];
        uint16_t port;
        bool tls;
        if (!osm_ingest_name_valid(d->name))
                return osm_error_set(err, -EINVAL, 0, "bridge name: 1-32 letters, digits, '_' or '-'");
        if (osm_ingest_parse_url(d->url, host, sizeof host, &port, &tls) < 0)
                return osm_error_set(err, -EINVAL, 0, "broker: expected mqtt://HOST[:PORT] or mqtts://HOST[:PORT]");
        if (d->n_topics == 0)
                return osm_error_set(err, -EINVAL, 0, "at least one topic filter is needed");
        for (size_t i = 0; i < d->n_topics; i++)
                if (!osm_ingest_filter_valid(d->topics[i]))
                        return osm_error_set(err, -EINVAL, 0, "not a valid MQTT topic filter");
        size_t pl = d->into ? strlen(d->into) : 0;
        if (pl < 2 || d->into[pl - 1] != '/' || pl > 96)
                return osm_error_set(err, -EINVAL, 0, "into: a collection prefix ending in '/' (e.g. sensors/), at most 96 bytes");
        char name[128];
        memcpy(name, d->into, pl - 1);
        name[pl - 1] = 0;
        if (!osm_name_valid(name, 96, true))
                return osm_error_set(err, -EINVAL, 0, "into: not a valid collection prefix");
        if (d->qos != 0 && d->qos != 1)
                return osm_error_set(err, -EINVAL, 0, "qos must be 0 or 1");
        if ((d->password_file && d->password_file[0] != '/') || (d->ca_file && d->ca_file[0] != '/'))
                return osm_error_set(err, -EINVAL, 0, "password-file and ca-file must be absolute paths");
        if (d->password_file && !d->username)
                return osm_error_set(err, -EINVAL, 0, "password-file needs a username");
        if (d->username && (strlen(d->username) > 256 || !*d->username))
                return osm_error_set(err, -EINVAL, 0, "username: 1-256 bytes");
        return 0;
}

json_t *osm_ingest_def_json(const osm_ingest_def *d) {
        json_t *topics = json_array();
        for (size_t i = 0; i < d->n_topics; i++)
                json_array_append_new(topics, json_string(d->topics[i]));
        json_t *o = json_pack("{s:s?, s:s?, s:o, s:s?, s:i, s:I, s:s}", "name", d->name, "url", d->url,
                              "topics", topics, "into", d->into, "qos", d->qos,
                              "max_payload", (json_int_t) d->max_payload,
                              "source", d->from_config ? "config" : "cli");
        if (!o)
                return NULL;
        if (d->username)
                json_object_set_new(o, "username", json_string(d->username));
        if (d->password_file)
                json_object_set_new(o, "password_file", json_string(d->password_file));
        if (d->ca_file)
                json_object_set_new(o, "ca_file", json_string(d->ca_file));
        return o;
}

int osm_ingest_def_from_json(json_t *o, osm_ingest_def *d, osm_error *err) {
        static const struct { const char *json, *key; } strs[] = {
                { "url", "broker" }, { "into", "into" }, { "username", "username" },
                { "password_file", "password-file" }, { "ca_file", "ca-file" },
        };
        osm_ingest_def_clear(d);
        const char *name = json_string_value(json_object_get(o, "name"));
        if (!json_is_object(o) || !name || !(d->name = strdup(name)))
                return osm_error_set(err, -EINVAL, 0, "name");
        for (size_t i = 0; i < OSM_ARRAY_SIZE(strs); i++) {
                json_t *v = json_object_get(o, strs[i].json);
                if (!v)
                        continue;
                if (!json_is_string(v) || osm_ingest_def_set(d, strs[i].key, json_string_value(v), err) < 0)
                        return osm_error_set(err, -EINVAL, 0, "%s", strs[i].json);
        }
        size_t i;
        json_t *t;
        if (!json_is_array(json_object_get(o, "topics")))
                return osm_error_set(err, -EINVAL, 0, "topics");
        json_array_foreach(json_object_get(o, "topics"), i, t)
                if (!json_is_string(t) || osm_ingest_def_set(d, "topic", json_string_value(t), err) < 0)
                        return osm_error_set(err, -EINVAL, 0, "topics");
        json_t *q = json_object_get(o, "qos");
        if (q) {
                if (!json_is_integer(q) || (json_integer_value(q) != 0 && json_integer_value(q) != 1))
                        return osm_error_set(err, -EINVAL, 0, "qos");
                d->qos = (int) json_integer_value(q);
        }
        json_t *m = json_object_get(o, "max_payload");
        if (m) {
                if (!json_is_integer(m) || json_integer_value(m) < 64 || json_integer_value(m) > 256 * 1024 * 1024)
                        return osm_error_set(err, -EINVAL, 0, "max_payload");
                d->max_payload = (uint64_t) json_integer_value(m);
        }
        return osm_ingest_def_check(d, err);
}

int osm_ingest_collection(const char *prefix, const char *topic, size_t topic_len, char *out,
                          size_t outsz, osm_error *err) {
        size_t pl = strlen(prefix);
        if (topic_len == 0)
                return osm_error_set(err, -EINVAL, 0, "empty topic");
        if (topic[0] == '$')
                return osm_error_set(err, -EINVAL, 0, "topic starts with '$' (broker-internal)");
        if (pl + topic_len >= outsz || pl + topic_len > OSM_STORE_MAX_NAME)
                return osm_error_set(err, -EINVAL, 0, "topic makes a collection name longer than 128 bytes");
        size_t seg = 0;
        for (size_t i = 0; i <= topic_len; i++) {
                char c = i < topic_len ? topic[i] : '/';
                if (c == '/') {
                        size_t sl = i - seg;
                        if (sl == 0)
                                return osm_error_set(err, -EINVAL, 0, "topic has an empty level");
                        if ((sl == 1 && topic[seg] == '.') || (sl == 2 && topic[seg] == '.' && topic[seg + 1] == '.'))
                                return osm_error_set(err, -EINVAL, 0, "topic has a '.' or '..' level");
                        seg = i + 1;
                        continue;
                }
                if (c == '+' || c == '#')
                        return osm_error_set(err, -EINVAL, 0, "topic has a wildcard");
                if (!isalnum((unsigned char) c) && c != '.' && c != '_' && c != '-')
                        return osm_error_set(err, -EINVAL, 0, "topic has a byte outside A-Z a-z 0-9 . _ -");
        }
        memcpy(out, prefix, pl);
        memcpy(out + pl, topic, topic_len);
        out[pl + topic_len] = 0;
        if (!osm_name_valid(out, OSM_STORE_MAX_NAME, true))
                return osm_error_set(err, -EINVAL, 0, "not a valid collection name");
        return 0;
}

/* Deepest nesting of brackets outside strings; stops counting past limit. */
static unsigned json_depth(const unsigned char *p, size_t len, unsigned limit) {
        unsigned depth = 0, max = 0;
        bool in_str = false;
        for (size_t i = 0; i < len; i++) {
                unsigned char c = p[i];
                if (in_str) {
                        if (c == '\\')
                                i++;
                        else if (c == '"')
                                in_str = false;
                } else if (c == '"')
                        in_str = true;
                else if (c == '{' || c == '[') {
                        if (++depth > max)
                                max = depth;
                        if (max > limit)
                                return max;
                } else if ((c == '}' || c == ']') && depth > 0)
                        depth--;
        }
        return max;
}

static bool is_text(const unsigned char *p, size_t len) {
        for (size_t i = 0; i < len; i++)
                if ((p[i] < 0x20 && p[i] != '\t' && p[i] != '\n' && p[i] != '\r') || p[i] == 0x7f)
                        return false;
        return true;
}

int osm_ingest_payload(const void *payload, size_t len, uint64_t max, osm_ingest_kind *kind,
                       json_t **body, osm_error *err) {
        const unsigned char *p = payload;
        *body = NULL;
        *kind = OSM_INGEST_BODY;
        if (len > max)
                return osm_error_set(err, -EMSGSIZE, 0, "payload larger than max-payload");
        size_t s = 0;
        while (s < len && isspace(p[s]))
                s++;
        if (s < len && (p[s] == '{' || p[s] == '[' || p[s] == '"' || p[s] == '-' || isdigit(p[s]) ||
                        p[s] == 't' || p[s] == 'f' || p[s] == 'n')) {
                if (json_depth(p, len, OSM_INGEST_MAX_DEPTH) > OSM_INGEST_MAX_DEPTH)
                        return osm_error_set(err, -ELOOP, 0, "JSON nested deeper than 32 levels");
                json_t *v = json_loadb(payload, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
                if (v) {
                        if (json_is_object(v)) {
                                *body = v;
                                return 0;
                        }
                        *body = json_pack("{s:o}", "value", v);
                        return *body ? 0 : -ENOMEM;
                }
        }
        if (is_text(p, len)) {
                json_t *str = json_stringn(payload, len);   /* NULL: not UTF-8 */
                if (str) {
                        *body = json_pack("{s:o}", "value", str);
                        return *body ? 0 : -ENOMEM;
                }
        }
        if (len > OSM_INGEST_INLINE_BINARY) {
                *kind = OSM_INGEST_OBJECT;
                return 0;
        }
        char hex[2 * OSM_INGEST_INLINE_BINARY + 1];
        sodium_bin2hex(hex, sizeof hex, p, len);
        *body = json_pack("{s:s}", "hex", hex);
        return *body ? 0 : -ENOMEM;
}

void osm_ingest_key(const char *topic, int mid, const void *payload, size_t len, uint8_t key[16]) {
        crypto_generichash_state st;
        uint8_t m[4] = { (uint8_t) (mid >> 24), (uint8_t) (mid >> 16), (uint8_t) (mid >> 8), (uint8_t) mid };
        crypto_generichash_init(&st, NULL, 0, 16);
        crypto_generichash_update(&st, (const uint8_t *) topic, strlen(topic) + 1);
        crypto_generichash_update(&st, m, sizeof m);
        crypto_generichash_update(&st, payload, len);
        crypto_generichash_final(&st, key, 16);
}

size_t osm_ingest_intent_format(const osm_ingest_intent *in, char *buf, size_t size) {
        char hex[33];
        sodium_bin2hex(hex, sizeof hex, in->key, 16);
        int n = snprintf(buf, size, "%" PRId64 " %s %s\n", in->time_us, hex, in->collection);
        return n < 0 || (size_t) n >= size ? 0 : (size_t) n;
}

int osm_ingest_intent_parse(const char *line, size_t len, osm_ingest_intent *out) {
        char buf[256];
        if (len == 0 || len >= sizeof buf)
                return -EINVAL;
        memcpy(buf, line, len);
        buf[len] = 0;
        if (strlen(buf) != len)
                return -EINVAL;
        char *sp1 = strchr(buf, ' ');
        if (!sp1)
                return -EINVAL;
        *sp1 = 0;
        char *hex = sp1 + 1, *sp2 = strchr(hex, ' ');
        if (!sp2 || sp2 - hex != 32)
                return -EINVAL;
        *sp2 = 0;
        const char *coll = sp2 + 1;
        size_t bin_len;
        if (osm_parse_i64(buf, &out->time_us) < 0 || out->time_us <= 0 ||
            sodium_hex2bin(out->key, 16, hex, 32, NULL, &bin_len, NULL) < 0 || bin_len != 16 ||
            !osm_name_valid(coll, OSM_STORE_MAX_NAME, true))
                return -EINVAL;
        snprintf(out->collection, sizeof out->collection, "%s", coll);
        return 0;
}

/* --- [ingest.NAME] sections --- */

#define MAX_BRIDGES 64

int osm_ingest_conf_set(osm_ingest_def **defs, size_t *n, const char *name, const char *key,
                        const char *value, osm_error *err) {
        osm_ingest_def *d = NULL;
        for (size_t i = 0; i < *n && !d; i++)
                if (strcmp((*defs)[i].name, name) == 0)
                        d = &(*defs)[i];
        if (!d) {
                if (!osm_ingest_name_valid(name))
                        return osm_error_set(err, -EINVAL, 0, "bridge name: 1-32 letters, digits, '_' or '-'");
                if (*n >= MAX_BRIDGES)
                        return osm_error_set(err, -EINVAL, 0, "at most 64 bridges");
                osm_ingest_def *nd = realloc(*defs, (*n + 1) * sizeof *nd);
                if (!nd)
                        return -ENOMEM;
                *defs = nd;
                d = &nd[*n];
                osm_ingest_def_clear(memset(d, 0, sizeof *d));
                if (!(d->name = strdup(name)))
                        return -ENOMEM;
                d->from_config = true;
                (*n)++;
        }
        int r = osm_ingest_def_set(d, key, value, err);
        if (r == -ENOENT)
                osm_error_set(err, r, 0, "unknown key (broker, topic, into, qos, username, password-file, ca-file, max-payload)");
        return r;
}

int osm_ingest_defs_copy(osm_ingest_def **dst, const osm_ingest_def *src, size_t n) {
        *dst = NULL;
        if (n == 0)
                return 0;
        osm_ingest_def *d = calloc(n, sizeof *d);
        if (!d)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                if (osm_ingest_def_copy(&d[i], &src[i]) < 0) {
                        osm_ingest_defs_free(d, i);
                        return -ENOMEM;
                }
        *dst = d;
        return 0;
}

void osm_ingest_defs_free(osm_ingest_def *defs, size_t n) {
        for (size_t i = 0; i < n; i++)
                osm_ingest_def_clear(&defs[i]);
        free(defs);
}

void osm_ingest_defs_dump(const osm_ingest_def *defs, size_t n, FILE *out) {
        for (size_t i = 0; i < n; i++) {
                const osm_ingest_def *d = &defs[i];
                fprintf(out, "\n[ingest.%s]\nbroker = %s\n", d->name, d->url ? d->url : "");
                for (size_t t = 0; t < d->n_topics; t++)
                        fprintf(out, "topic = %s\n", d->topics[t]);
                fprintf(out, "into = %s\nqos = %d\nmax-payload = %llu\n", d->into ? d->into : "", d->qos,
                        (unsigned long long) d->max_payload);
                if (d->username)
                        fprintf(out, "username = %s\n", d->username);
                if (d->password_file)
                        fprintf(out, "password-file = %s\n", d->password_file);
                if (d->ca_file)
                        fprintf(out, "ca-file = %s\n", d->ca_file);
        }
}
