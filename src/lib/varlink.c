/* varlink.c: Varlink messages: parsing calls and replies, formatting them, checking
 * parameters against the compiled interface definitions.
 *
 * The framing (JSON objects separated by NUL bytes) is written here by hand because
 * no packaged Varlink library passes file descriptors (SCM_RIGHTS) or lets the daemon
 * bound buffers per client; the JSON itself is jansson's. */
#include <errno.h>
#include <string.h>

#include "osmose/varlink.h"

/* jansson refuses nesting deeper than JSON_PARSER_MAX_DEPTH (2048) with an error; we
 * accept no more than that and rely on it rather than scanning twice. Duplicate keys
 * are refused so that a field cannot mean two things to two readers. */
#define PARSE_FLAGS (JSON_REJECT_DUPLICATES | JSON_DISABLE_EOF_CHECK)

static json_t *load(const char *buf, size_t len, const char **why) {
        json_error_t e;
        if (len == 0) {
                *why = "empty message";
                return NULL;
        }
        if (memchr(buf, 0, len)) {
                *why = "NUL byte inside a message";
                return NULL;
        }
        json_t *root = json_loadb(buf, len, PARSE_FLAGS, &e);
        if (!root) {
                *why = "not valid JSON";
                return NULL;
        }
        /* JSON_DISABLE_EOF_CHECK lets us see trailing garbage ourselves. */
        for (size_t i = (size_t) e.position; i < len; i++) {
                char c = buf[i];
                if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
                        json_decref(root);
                        *why = "trailing data after the JSON object";
                        return NULL;
                }
        }
        if (!json_is_object(root)) {
                json_decref(root);
                *why = "message is not a JSON object";
                return NULL;
        }
        return root;
}

static int get_bool(json_t *root, const char *key, bool *out, const char **why) {
        json_t *v = json_object_get(root, key);
        if (!v || json_is_null(v)) {
                *out = false;
                return 0;
        }
        if (!json_is_boolean(v)) {
                *why = "a flag (more, oneway, upgrade, continues) is not a boolean";
                return -EBADMSG;
        }
        *out = json_is_true(v);
        return 0;
}

static json_t *get_params(json_t *root, const char **why) {
        json_t *p = json_object_get(root, "parameters");
        if (!p || json_is_null(p)) {
                p = json_object();
                if (p)
                        json_object_set_new(root, "parameters", p);
                return p;
        }
        if (!json_is_object(p)) {
                *why = "\"parameters\" is not an object";
                return NULL;
        }
        return p;
}

int osm_vl_parse_call(const char *buf, size_t len, osm_vl_call *out, const char **why) {
        memset(out, 0, sizeof *out);
        json_t *root = load(buf, len, why);
        if (!root)
                return -EBADMSG;
        json_t *m = json_object_get(root, "method");
        if (!json_is_string(m) || json_string_length(m) == 0 || json_string_length(m) > 255) {
                *why = "\"method\" is missing or not a string of 1-255 bytes";
                goto fail;
        }
        out->method = json_string_value(m);
        if (!(out->parameters = get_params(root, why)))
                goto fail;
        if (get_bool(root, "more", &out->more, why) < 0 ||
            get_bool(root, "oneway", &out->oneway, why) < 0 ||
            get_bool(root, "upgrade", &out->upgrade, why) < 0)
                goto fail;
        if (out->more && out->oneway) {
                *why = "\"more\" and \"oneway\" exclude each other";
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

int osm_vl_parse_reply(const char *buf, size_t len, osm_vl_reply *out, const char **why) {
        memset(out, 0, sizeof *out);
        json_t *root = load(buf, len, why);
        if (!root)
                return -EBADMSG;
        json_t *e = json_object_get(root, "error");
        if (e && !json_is_null(e)) {
                if (!json_is_string(e)) {
                        *why = "\"error\" is not a string";
                        goto fail;
                }
                out->error = json_string_value(e);
        }
        if (!(out->parameters = get_params(root, why)))
                goto fail;
        if (get_bool(root, "continues", &out->continues, why) < 0)
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

/* Serialize obj compactly and append the NUL terminator. Consumes obj. */
static char *finish(json_t *obj, size_t *len) {
        if (!obj)
                return NULL;
        char *s = json_dumps(obj, JSON_COMPACT | JSON_ENSURE_ASCII);
        json_decref(obj);
        if (!s)
                return NULL;
        *len = strlen(s) + 1;   /* json_dumps NUL-terminates: that NUL is the frame end */
        return s;
}

char *osm_vl_format_call(const char *method, json_t *params, bool more, bool oneway, size_t *len) {
        json_t *o = json_object();
        if (!o)
                return NULL;
        json_object_set_new(o, "method", json_string(method));
        json_object_set_new(o, "parameters", params ? json_incref(params) : json_object());
        if (more)
                json_object_set_new(o, "more", json_true());
        if (oneway)
                json_object_set_new(o, "oneway", json_true());
        return finish(o, len);
}

char *osm_vl_format_reply(json_t *params, bool continues, size_t *len) {
        json_t *o = json_object();
        if (!o)
                return NULL;
        json_object_set_new(o, "parameters", params ? json_incref(params) : json_object());
        if (continues)
                json_object_set_new(o, "continues", json_true());
        return finish(o, len);
}

char *osm_vl_format_error(const char *error, json_t *params, size_t *len) {
        json_t *o = json_object();
        if (!o)
                return NULL;
        json_object_set_new(o, "error", json_string(error));
        json_object_set_new(o, "parameters", params ? json_incref(params) : json_object());
        return finish(o, len);
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
