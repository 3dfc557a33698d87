/* test-grant.c: the grant matcher — store patterns, watch patterns and their edges. */
#include <string.h>

#include "osmose/grant.h"
#include "tap.h"

static void match(const char *pat, const char *coll, bool want) {
        TAP_OK(osm_grant_pattern_match(pat, coll) == want, "'%s' %s '%s'", pat, want ? "matches" : "does not match", coll);
}

static void covers(const char *pat, const char *watch, bool want) {
        TAP_OK(osm_grant_pattern_covers(pat, watch) == want, "'%s' %s watch '%s'", pat,
               want ? "covers" : "does not cover", watch);
}

static void test_store_patterns(void) {
        /* exact names */
        match("sensors/temp", "sensors/temp", true);
        match("sensors/temp", "sensors/temp2", false);
        match("sensors/temp", "sensors/tem", false);
        match("sensors/temp", "sensors/temp/x", false);
        /* a subtree */
        match("sensors/*", "sensors/a", true);
        match("sensors/*", "sensors/a/b", true);
        match("sensors/*", "sensors", false);
        match("sensors/*", "sensors/", false);
        match("sensors/*", "sensorsX/a", false);
        match("sensors/*", "sensorsX", false);
        match("sensors/*", "sensors/../secret", false);
        match("sensors/*", "sensors/a/../../secret", false);
        match("sensors/*", "sensors/./a", false);
        match("sensors/*", "sensors//a", false);
        match("sensors/*", "sensors/a/", false);
        match("sensors/*", "/sensors/a", false);
        match("sensors/*", "sensors/a b", false);
        match("sensors/*", "sensors/\xc3\xa9", false);
        match("sensors/*", "", false);
        /* a plain prefix, as written */
        match("sens*", "sensors/a", true);
        match("sens*", "sensX", true);
        match("sens*", "sen", false);
        /* everything, but only valid names */
        match("*", "anything/at/all", true);
        match("*", "../etc", false);
        match("*", "a/..", false);
        /* malformed patterns match nothing */
        match("", "a", false);
        match("sensors/*/x", "sensors/a/x", false);
        match("*sensors", "xsensors", false);
        match("sensors/**", "sensors/a", false);
        match("../*", "../a", false);
        match("sensors//*", "sensors//a", false);
        match("sensors/?", "sensors/a", false);
        TAP_OK(!osm_grant_pattern_match(NULL, "a") && !osm_grant_pattern_match("*", NULL), "NULL matches nothing");
        char longname[200];
        memset(longname, 'a', sizeof longname - 1);
        longname[sizeof longname - 1] = 0;
        match("*", longname, false);
        longname[OSM_GRANT_MAX_NAME] = 0;
        match("*", longname, true);
}

static void test_watch_patterns(void) {
        /* watch patterns */
        TAP_OK(osm_grant_watch_pattern_valid("sensors/*/hourly"), "a star in a middle segment is a valid watch");
        TAP_OK(!osm_grant_watch_pattern_valid("sensors/[ab]"), "brackets are not");
        TAP_OK(!osm_grant_watch_pattern_valid("sensors/../*"), "nor '..'");
        covers("sensors/*", "sensors/*", true);
        covers("sensors/*", "sensors/temp", true);
        covers("sensors/*", "sensors/*/hourly", true);
        covers("sensors/*", "sensors*", false);
        covers("sensors/*", "*", false);
        covers("sensors/*", "sensors", false);
        covers("sensors/temp", "sensors/temp", true);
        covers("sensors/temp", "sensors/*", false);
        covers("sensors/t*", "sensors/*", false);
        covers("sensors/t*", "sensors/te*", true);
        covers("sens*", "sensors/*", true);
        covers("*", "*", true);
        covers("*", "x/*/y", true);
}

static void test_grant_lists(void) {
        /* grant lists */
        const char *grants[] = { "discovery:read", "publish:_http._tcp", "store:read:sensors/*",
                                 "store:write:rooms/summary", NULL };
        TAP_EQ_STR(osm_grant_find_store(grants, "read", "sensors/temp"), "store:read:sensors/*", "read grant found");
        TAP_OK(!osm_grant_find_store(grants, "write", "sensors/temp"), "a read grant does not allow writing");
        TAP_OK(!osm_grant_find_store(grants, "read", "rooms/summary"), "a write grant does not allow reading");
        TAP_EQ_STR(osm_grant_find_store(grants, "write", "rooms/summary"), "store:write:rooms/summary", "write grant found");
        TAP_OK(!osm_grant_find_store(grants, "write", "rooms/summary2"), "an exact write grant is exact");
        TAP_EQ_STR(osm_grant_find_watch(grants, "sensors/*"), "store:read:sensors/*", "watch covered by a read grant");
        TAP_OK(!osm_grant_find_watch(grants, "rooms/*"), "watch not covered without a read grant");
        TAP_OK(osm_grant_has(grants, "publish:_http._tcp") && !osm_grant_has(grants, "publish:_ssh._tcp"),
               "exact capabilities");
        const char *tricky[] = { "store:readx:*", "store:read", "store:write:*", NULL };
        TAP_OK(!osm_grant_find_store(tricky, "read", "a"), "malformed grants allow nothing to read");
        TAP_OK(!osm_grant_find_store(NULL, "read", "a"), "no grants, nothing allowed");
}

int main(int argc, char **argv) {
        static const tap_case cases[] = {
                TAP_CASE(test_store_patterns),
                TAP_CASE(test_watch_patterns),
                TAP_CASE(test_grant_lists),
        };
        return tap_run(cases, TAP_N_CASES(cases), argc, argv);
}
