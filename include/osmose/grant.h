/* grant.h: deciding whether a workload's grants allow a call — store patterns, watch
 * patterns, publish types — as pure functions over strings (no state, no allocation). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define OSM_GRANT_MAX_NAME 128   /* bytes of a collection name or pattern (the store's limit) */

/*
 * Store patterns (the PATTERN of store:read:PATTERN and store:write:PATTERN):
 *
 *   "sensors/temp"   exactly that collection;
 *   "sensors/" "*"   every collection under sensors/, at any depth: sensors/a and
 *                    sensors/a/b — but not "sensors" itself, nor "sensorsX/a";
 *   "sens" "*"       every collection whose name starts with "sens" (sensors/a, sensX):
 *                    a star at the end of a segment is a plain prefix, as written;
 *   "*"              every collection.
 *
 * A '*' may appear only once, as the last character. The collection must itself be a
 * valid name (segments of [A-Za-z0-9._-], no empty, "." or ".." segment), so no pattern
 * matches "sensors/../secret", "sensors//a" or "sensors/./a": a name that does not
 * normalise to itself is refused before any prefix is compared.
 */

/* Is pattern a well-formed store pattern (as above)? */
bool osm_grant_pattern_valid(const char *pattern);

/* Does the store pattern match the collection name? False for any malformed input. */
bool osm_grant_pattern_match(const char *pattern, const char *collection);

/*
 * Watch patterns follow io.osmose.Store.Watch: fnmatch(3) with FNM_PATHNAME over name
 * characters and '*' ('*' never crosses a '/'): "sensors/temp", "sensors/" "*",
 * "sensors/" "*" "/hourly", "*". No '?', '[' or '\'.
 */
bool osm_grant_watch_pattern_valid(const char *pattern);

/* Is every collection that the watch pattern can match also matched by the store
 * pattern? Decided without knowing which collections exist: the literal text before the
 * watch pattern's first '*' must begin with the store pattern's prefix (or, for a watch
 * pattern without '*', the store pattern must match it). */
bool osm_grant_pattern_covers(const char *store_pattern, const char *watch_pattern);

/* Find the first grant "store:KIND:PATTERN" (kind "read" or "write") in the
 * NULL-terminated list grants whose pattern matches collection. Returns it (borrowed
 * from grants) or NULL. */
const char *osm_grant_find_store(const char *const *grants, const char *kind, const char *collection);

/* The same for a watch pattern: a read grant whose pattern covers it, or NULL. */
const char *osm_grant_find_watch(const char *const *grants, const char *watch_pattern);

/* Is exactly this capability string in the NULL-terminated grants? */
bool osm_grant_has(const char *const *grants, const char *capability);
