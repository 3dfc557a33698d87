/* manifest.c: strict parser for a workload's manifest.json and the capability (grant) syntax. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "osmose/manifest.h"
#include "osmose/varlink.h"

static const char *const restart_names[] = {
        [OSM_RESTART_NEVER] = "never",
        [OSM_RESTART_ON_FAILURE] = "on-failure",
        [OSM_RESTART_ALWAYS] = "always",
};

const char *osm_restart_policy_name(osm_restart_policy p) {
        if ((size_t) p >= OSM_ARRAY_SIZE(restart_names))
                return "unknown";
        return restart_names[p];
}

int osm_restart_policy_from_name(const char *s) {
        for (size_t i = 0; i < OSM_ARRAY_SIZE(restart_names); i++)
                if (s && strcmp(s, restart_names[i]) == 0)
                        return (int) i;
        return -EINVAL;
}


osm_manifest *osm_manifest_free(osm_manifest *m) {
        if (!m)
                return NULL;
        free(m->name);
        free(m->description);
        osm_strv_free(m->argv);
        osm_strv_free(m->health);
        osm_strv_free(m->env);
        osm_strv_free(m->caps);
        free(m);
        return NULL;
}

/* Fill err with -EINVAL and "field: message"; return -EINVAL. */
static int fail(osm_error *err, const char *field, const char *fmt, ...) OSM_PRINTF(3, 4);
static int fail(osm_error *err, const char *field, const char *fmt, ...) {
        if (err) {
                char msg[OSM_ERROR_MAX];
                va_list ap;
                va_start(ap, fmt);
                vsnprintf(msg, sizeof msg, fmt, ap);
                va_end(ap);
                osm_error_set(err, -EINVAL, 0, "%s: %s", field, msg);
        }
        return -EINVAL;
}

/* A store pattern: collection-name characters, '/' between non-empty segments that are
 * not "." or "..", and at most one '*', only as the last character. */
static bool pattern_ok(const char *p) {
        size_t len = strlen(p);
        if (len == 0 || len > 128)
                return false;
        if (strcmp(p, "*") == 0)
                return true;
        const char *star = strchr(p, '*');
        if (star && star != p + len - 1)
                return false;
        size_t name_len = star ? len - 1 : len;
        if (name_len == 0)
                return false;
        char buf[129];
        memcpy(buf, p, name_len);
        buf[name_len] = 0;
        /* A pattern like sensors/ + '*': check the name part without its trailing slash. */
        if (star && buf[name_len - 1] == '/')
                buf[name_len - 1] = 0;
        if (!buf[0])
                return false;
        return osm_name_valid(buf, 128, true);
}

bool osm_cap_pattern_match(const char *pattern, const char *collection) {
        size_t len = strlen(pattern);
        if (len > 0 && pattern[len - 1] == '*')
                return strncmp(pattern, collection, len - 1) == 0;
        return strcmp(pattern, collection) == 0;
}

/* RFC 6335 service name: 1-15 of [A-Za-z0-9-], at least one letter, no hyphen at either
 * end, no two hyphens in a row. */
static bool service_name_ok(const char *s, size_t len) {
        if (len < 1 || len > 15 || s[0] == '-' || s[len - 1] == '-')
                return false;
        bool letter = false;
        for (size_t i = 0; i < len; i++) {
                char c = s[i];
                if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
                        letter = true;
                else if (c == '-') {
                        if (i > 0 && s[i - 1] == '-')
                                return false;
                } else if (!(c >= '0' && c <= '9'))
                        return false;
        }
        return letter;
}

static bool device_ok(const char *p) {
        if (strncmp(p, "/dev/", 5) != 0 || strlen(p) > 64 || !p[5])
                return false;
        /* the part after /dev/ must be a plain relative path without "." or ".." */
        return osm_name_valid(p + 5, 59, true);
}

#define CAP_FORMS "network, discovery:read, store:read:PATTERN, store:write:PATTERN, " \
                  "publish:_NAME._tcp, publish:_NAME._udp, device:/dev/NAME"

int osm_cap_check(const char *cap, osm_error *err) {
        if (!cap || !*cap)
                return fail(err, "capability", "empty");
        if (strlen(cap) > OSM_CAP_MAX)
                return fail(err, "capability", "longer than %d bytes", OSM_CAP_MAX);
        if (strcmp(cap, "network") == 0 || strcmp(cap, "discovery:read") == 0)
                return 0;
        if (strncmp(cap, "store:read:", 11) == 0 || strncmp(cap, "store:write:", 12) == 0) {
                const char *pat = strchr(cap + 6, ':') + 1;
                if (!pattern_ok(pat))
                        return fail(err, cap,
                                    "bad store pattern \"%s\" (expected a collection name like "
                                    "sensors/temp, optionally ending in *)", pat);
                return 0;
        }
        if (strncmp(cap, "publish:", 8) == 0) {
                const char *t = cap + 8;
                size_t len = strlen(t);
                if (len < 7 || t[0] != '_' ||
                    (strcmp(t + len - 5, "._tcp") != 0 && strcmp(t + len - 5, "._udp") != 0) ||
                    !service_name_ok(t + 1, len - 6))
                        return fail(err, cap,
                                    "bad service type \"%s\" (expected _NAME._tcp or _NAME._udp, "
                                    "NAME 1-15 letters, digits or '-')", t);
                return 0;
        }
        if (strncmp(cap, "device:", 7) == 0) {
                if (!device_ok(cap + 7))
                        return fail(err, cap,
                                    "bad device \"%s\" (expected /dev/NAME)", cap + 7);
                return 0;
        }
        return fail(err, cap, "unknown capability (expected one of " CAP_FORMS ")");
}

/* Sizes above 1 PiB are refused: no gateway has that, and it keeps every size within
 * a JSON integer when the manifest is written back out (found by fuzzing: "13333333333300M"
 * parsed to more than INT64_MAX). */
#define MANIFEST_MAX_SIZE (1ull << 50)

static int parse_size(json_t *v, const char *field, uint64_t *out, osm_error *err) {
        if (json_is_integer(v)) {
                json_int_t i = json_integer_value(v);
                if (i <= 0)
                        return fail(err, field, "must be positive");
                *out = (uint64_t) i;
        } else if (!json_is_string(v) || osm_parse_size(json_string_value(v), out) < 0 || *out == 0) {
                return fail(err, field, "expected a size like \"64M\"");
        }
        if (*out > MANIFEST_MAX_SIZE)
                return fail(err, field, "larger than 1P");
        return 0;
}

static int parse_uint(json_t *v, const char *field, uint64_t max, uint64_t *out,
                      osm_error *err) {
        if (!json_is_integer(v) || json_integer_value(v) <= 0 ||
            (uint64_t) json_integer_value(v) > max)
                return fail(err, field, "expected an integer from 1 to %llu",
                            (unsigned long long) max);
        *out = (uint64_t) json_integer_value(v);
        return 0;
}

static int parse_resources(json_t *o, osm_manifest *m, osm_error *err) {
        if (!json_is_object(o))
                return fail(err, "resources", "expected an object");
        const char *key;
        json_t *v;
        json_object_foreach(o, key, v) {
                int r;
                if (strcmp(key, "memory") == 0) {
                        r = parse_size(v, "resources.memory", &m->memory, err);
                        if (r == 0 && m->memory < 4096)
                                r = fail(err, "resources.memory", "at least 4K");
                } else if (strcmp(key, "disk") == 0)
                        r = parse_size(v, "resources.disk", &m->disk, err);
                else if (strcmp(key, "cpu") == 0)
                        r = parse_uint(v, "resources.cpu", 100 * 1024, &m->cpu_percent, err);
                else if (strcmp(key, "pids") == 0)
                        r = parse_uint(v, "resources.pids", 1u << 22, &m->pids, err);
                else {
                        char field[160];
                        snprintf(field, sizeof field, "resources.%.128s", key);
                        r = fail(err, field,
                                 "unknown field (expected memory, cpu, pids, disk)");
                }
                if (r < 0)
                        return r;
        }
        return 0;
}

/* An argv (entrypoint or health): a non-empty array of strings, the first an absolute path. */
static int parse_argv(json_t *a, const char *name, char ***argv, size_t *argc, osm_error *err) {
        if (!json_is_array(a) || json_array_size(a) == 0)
                return fail(err, name, "expected a non-empty array of strings");
        size_t n = json_array_size(a);
        if (n > OSM_MANIFEST_MAX_ARGS)
                return fail(err, name, "more than %d arguments", OSM_MANIFEST_MAX_ARGS);
        *argv = calloc(n + 1, sizeof(char *));
        if (!*argv)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                json_t *s = json_array_get(a, i);
                char field[32];
                snprintf(field, sizeof field, "%s[%zu]", name, i);
                if (!json_is_string(s))
                        return fail(err, field, "expected a string");
                const char *v = json_string_value(s);
                if (strlen(v) > OSM_MANIFEST_MAX_ARG)
                        return fail(err, field, "longer than %d bytes", OSM_MANIFEST_MAX_ARG);
                if (i == 0 && (v[0] != '/' || strstr(v, "/../") || !osm_text_line_ok(v)))
                        return fail(err, field, "expected an absolute path to the program");
                (*argv)[i] = strdup(v);
                if (!(*argv)[i])
                        return -ENOMEM;
                (*argc)++;
        }
        return 0;
}

static bool env_key_ok(const char *k) {
        size_t len = strlen(k);
        if (len == 0 || len > OSM_MANIFEST_MAX_ENV_KEY || (k[0] >= '0' && k[0] <= '9'))
                return false;
        for (const char *p = k; *p; p++)
                if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                      (*p >= '0' && *p <= '9') || *p == '_'))
                        return false;
        return true;
}

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

static int parse_env(json_t *o, osm_manifest *m, osm_error *err) {
        if (!json_is_object(o))
                return fail(err, "environment", "expected an object of strings");
        size_t n = json_object_size(o);
        if (n > OSM_MANIFEST_MAX_ENV)
                return fail(err, "environment", "more than %d variables", OSM_MANIFEST_MAX_ENV);
        m->env = calloc(n + 1, sizeof(char *));
        if (!m->env)
                return -ENOMEM;
        const char *key;
        json_t *v;
        json_object_foreach(o, key, v) {
                char field[160];
                snprintf(field, sizeof field, "environment.%.128s", key);
                if (!env_key_ok(key))
                        return fail(err, field,
                                    "bad variable name (expected [A-Za-z_][A-Za-z0-9_]*, at most %d bytes)",
                                    OSM_MANIFEST_MAX_ENV_KEY);
                if (!json_is_string(v))
                        return fail(err, field, "expected a string");
                if (strlen(json_string_value(v)) > OSM_MANIFEST_MAX_ARG)
                        return fail(err, field, "longer than %d bytes", OSM_MANIFEST_MAX_ARG);
                char *kv;
                if (asprintf(&kv, "%s=%s", key, json_string_value(v)) < 0)
                        return -ENOMEM;
                m->env[m->n_env++] = kv;
        }
        qsort(m->env, m->n_env, sizeof(char *), cmp_str);
        return 0;
}

static int parse_caps(json_t *a, osm_manifest *m, osm_error *err) {
        if (!json_is_array(a))
                return fail(err, "capabilities", "expected an array of strings");
        size_t n = json_array_size(a);
        if (n > OSM_MANIFEST_MAX_CAPS)
                return fail(err, "capabilities", "more than %d entries", OSM_MANIFEST_MAX_CAPS);
        m->caps = calloc(n + 1, sizeof(char *));
        if (!m->caps)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                json_t *s = json_array_get(a, i);
                char field[32];
                osm_error why;
                snprintf(field, sizeof field, "capabilities[%zu]", i);
                if (!json_is_string(s))
                        return fail(err, field, "expected a string");
                if (osm_cap_check(json_string_value(s), &why) < 0)
                        return fail(err, field, "%s", why.message);
                m->caps[i] = strdup(json_string_value(s));
                if (!m->caps[i])
                        return -ENOMEM;
                m->n_caps++;
        }
        qsort(m->caps, m->n_caps, sizeof(char *), cmp_str);
        for (size_t i = 1; i < m->n_caps; i++)
                if (strcmp(m->caps[i - 1], m->caps[i]) == 0)
                        return fail(err, "capabilities", "\"%s\" listed twice", m->caps[i]);
        return 0;
}

int osm_manifest_parse(const char *text, size_t len, osm_manifest **out, osm_error *err) {
        if (len > OSM_MANIFEST_MAX_SIZE)
                return fail(err, "manifest", "larger than %u bytes", OSM_MANIFEST_MAX_SIZE);

        json_error_t jerr;
        _cleanup_json_ json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!root)
                return fail(err, "manifest", "not valid JSON: line %d: %s", jerr.line, jerr.text);
        if (!json_is_object(root))
                return fail(err, "manifest", "expected a JSON object");

        _cleanup_manifest_ osm_manifest *m = calloc(1, sizeof *m);
        if (!m)
                return -ENOMEM;
        m->restart = OSM_RESTART_NEVER;

        const char *key;
        json_t *v;
        int r;
        json_object_foreach(root, key, v) {
                if (strcmp(key, "name") == 0) {
                        if (!json_is_string(v) ||
                            !osm_name_valid(json_string_value(v), OSM_MANIFEST_MAX_NAME, false))
                                return fail(err, "name",
                                            "expected 1-%d characters of A-Z a-z 0-9 . _ -",
                                            OSM_MANIFEST_MAX_NAME);
                        m->name = strdup(json_string_value(v));
                        if (!m->name)
                                return -ENOMEM;
                } else if (strcmp(key, "version") == 0) {
                        /* Versions are compared as numbers (upgrades, channels, downgrades):
                         * a semantic-version string would need an order of its own. */
                        if (json_is_string(v))
                                return fail(err, "version",
                                            "\"%.32s\" is a string: a version is an integer that grows with "
                                            "every release (1.2.0 could be 10200; see osmose-manifest(5))",
                                            json_string_value(v));
                        if (!json_is_integer(v) || json_integer_value(v) < 1 ||
                            json_integer_value(v) > OSM_MANIFEST_MAX_VERSION)
                                return fail(err, "version",
                                            "expected an integer from 1 to 2^53");
                        m->version = json_integer_value(v);
                } else if (strcmp(key, "description") == 0) {
                        if (!json_is_string(v) || strlen(json_string_value(v)) > OSM_MANIFEST_MAX_DESC ||
                            !osm_text_line_ok(json_string_value(v)))
                                return fail(err, "description",
                                            "expected one line of text of at most %d bytes",
                                            OSM_MANIFEST_MAX_DESC);
                        m->description = strdup(json_string_value(v));
                        if (!m->description)
                                return -ENOMEM;
                } else if (strcmp(key, "entrypoint") == 0) {
                        if ((r = parse_argv(v, "entrypoint", &m->argv, &m->argc, err)) < 0)
                                return r;
                } else if (strcmp(key, "health") == 0) {
                        if ((r = parse_argv(v, "health", &m->health, &m->n_health, err)) < 0)
                                return r;
                } else if (strcmp(key, "environment") == 0) {
                        if ((r = parse_env(v, m, err)) < 0)
                                return r;
                } else if (strcmp(key, "resources") == 0) {
                        if ((r = parse_resources(v, m, err)) < 0)
                                return r;
                } else if (strcmp(key, "capabilities") == 0) {
                        if ((r = parse_caps(v, m, err)) < 0)
                                return r;
                } else if (strcmp(key, "restart") == 0) {
                        r = json_is_string(v) ? osm_restart_policy_from_name(json_string_value(v)) : -EINVAL;
                        if (r < 0)
                                return fail(err, "restart",
                                            "expected \"never\", \"on-failure\" or \"always\"");
                        m->restart = (osm_restart_policy) r;
                } else {
                        char field[160];
                        snprintf(field, sizeof field, "%.128s", key);
                        return fail(err, field,
                                    "unknown field (expected name, version, description, entrypoint, "
                                    "health, environment, resources, capabilities, restart)");
                }
        }
        if (!m->name)
                return fail(err, "name", "missing");
        if (m->version == 0)
                return fail(err, "version", "missing");
        if (!m->argv)
                return fail(err, "entrypoint", "missing");
        if (!m->env && !(m->env = calloc(1, sizeof(char *))))
                return -ENOMEM;
        if (!m->caps && !(m->caps = calloc(1, sizeof(char *))))
                return -ENOMEM;
        *out = steal_pointer(&m);
        return 0;
}

bool osm_manifest_requests(const osm_manifest *m, const char *cap) {
        for (size_t i = 0; i < m->n_caps; i++)
                if (strcmp(m->caps[i], cap) == 0)
                        return true;
        return false;
}

static json_t *strv_to_json(char **v, size_t n) {
        json_t *a = json_array();
        if (!a)
                return NULL;
        for (size_t i = 0; i < n; i++)
                if (json_array_append_new(a, json_string(v[i])) < 0) {
                        json_decref(a);
                        return NULL;
                }
        return a;
}

json_t *osm_manifest_to_json(const osm_manifest *m) {
        _cleanup_json_ json_t *env = json_object();
        if (!env)
                return NULL;
        for (size_t i = 0; i < m->n_env; i++) {
                const char *eq = strchr(m->env[i], '=');
                char key[OSM_MANIFEST_MAX_ENV_KEY + 1];
                size_t kl = OSM_MIN((size_t) (eq - m->env[i]), sizeof key - 1);
                memcpy(key, m->env[i], kl);
                key[kl] = 0;
                if (json_object_set_new(env, key, json_string(eq + 1)) < 0)
                        return NULL;
        }
        _cleanup_json_ json_t *res = json_object();
        if (!res)
                return NULL;
        if (m->memory)
                json_object_set_new(res, "memory", json_integer((json_int_t) m->memory));
        if (m->cpu_percent)
                json_object_set_new(res, "cpu", json_integer((json_int_t) m->cpu_percent));
        if (m->pids)
                json_object_set_new(res, "pids", json_integer((json_int_t) m->pids));
        if (m->disk)
                json_object_set_new(res, "disk", json_integer((json_int_t) m->disk));
        json_t *o = json_pack("{s:s, s:I, s:o, s:O, s:O, s:o, s:s}",
                              "name", m->name,
                              "version", (json_int_t) m->version,
                              "entrypoint", strv_to_json(m->argv, m->argc),
                              "environment", env,
                              "resources", res,
                              "capabilities", strv_to_json(m->caps, m->n_caps),
                              "restart", osm_restart_policy_name(m->restart));
        if (o && m->description)
                json_object_set_new(o, "description", json_string(m->description));
        if (o && m->health)
                json_object_set_new(o, "health", strv_to_json(m->health, m->n_health));
        return o;
}
