/* grant.c: matching store, watch and capability grants against what a workload asks for. */
#include <string.h>

#include "osmose/grant.h"
#include "osmose/util.h"

static bool name_char(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '.' || c == '_' || c == '-';
}

/* Segments of name characters joined by '/', none empty, "." or "..", where a segment may
 * also be a '*' run or contain '*' when allow_star (watch patterns), or end the whole text
 * with one '*' when trailing_star (store patterns, where "sensors/" + '*' leaves an empty
 * last segment before the star). */
static bool shape_ok(const char *p, bool allow_star, bool trailing_star) {
        size_t len = strnlen(p, OSM_GRANT_MAX_NAME + 1);
        if (len == 0 || len > OSM_GRANT_MAX_NAME)
                return false;
        const char *seg = p;
        for (const char *c = p;; c++) {
                bool end = *c == 0;
                bool last_star = trailing_star && *c == '*' && c[1] == 0;
                if (*c == '/' || end || last_star) {
                        size_t sl = (size_t) (c - seg);
                        bool empty_ok = last_star && (c == p || c[-1] == '/');
                        if ((sl == 0 && !empty_ok) || (sl == 1 && seg[0] == '.') ||
                            (sl == 2 && seg[0] == '.' && seg[1] == '.'))
                                return false;
                        if (end || last_star)
                                return true;
                        seg = c + 1;
                        continue;
                }
                if (!(name_char(*c) || (allow_star && *c == '*')))
                        return false;
        }
}

bool osm_grant_pattern_valid(const char *pattern) {
        if (!pattern)
                return false;
        if (strcmp(pattern, "*") == 0)
                return true;
        return shape_ok(pattern, false, true);
}

bool osm_grant_watch_pattern_valid(const char *pattern) {
        return pattern && shape_ok(pattern, true, false);
}

bool osm_grant_pattern_match(const char *pattern, const char *collection) {
        if (!osm_grant_pattern_valid(pattern) || !osm_name_valid(collection, OSM_GRANT_MAX_NAME, true))
                return false;
        size_t len = strlen(pattern);
        if (pattern[len - 1] == '*')
                return strncmp(pattern, collection, len - 1) == 0;
        return strcmp(pattern, collection) == 0;
}

bool osm_grant_pattern_covers(const char *store_pattern, const char *watch_pattern) {
        if (!osm_grant_pattern_valid(store_pattern) || !osm_grant_watch_pattern_valid(watch_pattern))
                return false;
        const char *star = strchr(watch_pattern, '*');
        if (!star)
                return osm_grant_pattern_match(store_pattern, watch_pattern);
        size_t slen = strlen(store_pattern);
        if (store_pattern[slen - 1] != '*')
                return false;   /* one collection cannot cover a wildcard */
        /* Every name the watch can match begins with its literal part (the text before the
         * first '*'); if that begins with the grant's prefix, so does the name. */
        size_t prefix = slen - 1, literal = (size_t) (star - watch_pattern);
        return literal >= prefix && strncmp(store_pattern, watch_pattern, prefix) == 0;
}

/* If grant is "store:KIND:PATTERN", return PATTERN. */
static const char *store_pattern_of(const char *grant, const char *kind) {
        size_t kl = strlen(kind);
        if (strncmp(grant, "store:", 6) != 0 || strncmp(grant + 6, kind, kl) != 0 || grant[6 + kl] != ':')
                return NULL;
        return grant + 6 + kl + 1;
}

const char *osm_grant_find_store(const char *const *grants, const char *kind, const char *collection) {
        for (const char *const *g = grants; g && *g; g++) {
                const char *pat = store_pattern_of(*g, kind);
                if (pat && osm_grant_pattern_match(pat, collection))
                        return *g;
        }
        return NULL;
}

const char *osm_grant_find_watch(const char *const *grants, const char *watch_pattern) {
        for (const char *const *g = grants; g && *g; g++) {
                const char *pat = store_pattern_of(*g, "read");
                if (pat && osm_grant_pattern_covers(pat, watch_pattern))
                        return *g;
        }
        return NULL;
}

bool osm_grant_has(const char *const *grants, const char *capability) {
        for (const char *const *g = grants; g && *g; g++)
                if (strcmp(*g, capability) == 0)
                        return true;
        return false;
}
