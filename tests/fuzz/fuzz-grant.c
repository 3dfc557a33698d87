/* fuzz-grant.c: the grant matcher — checks its promises (no match of an invalid name,
 * no match outside the prefix, coverage implies matching) on arbitrary strings. */
#include <fnmatch.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "osmose/grant.h"
#include "osmose/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        /* Three NUL- or newline-separated strings: store pattern, watch pattern, collection. */
        char buf[3][300] = { "", "", "" };
        size_t k = 0, n = 0;
        for (size_t i = 0; i < size && k < 3; i++) {
                if (data[i] == 0 || data[i] == '\n') {
                        k++;
                        n = 0;
                        continue;
                }
                if (n < sizeof buf[0] - 1)
                        buf[k][n++] = (char) data[i];
        }
        const char *pat = buf[0], *watch = buf[1], *coll = buf[2];

        bool m = osm_grant_pattern_match(pat, coll);
        if (m) {
                if (!osm_name_valid(coll, OSM_GRANT_MAX_NAME, true))
                        abort();   /* matched a name that is not a valid collection */
                size_t len = strlen(pat);
                if (pat[len - 1] == '*' ? strncmp(pat, coll, len - 1) != 0 : strcmp(pat, coll) != 0)
                        abort();   /* matched outside the pattern */
        }
        /* Anything the watch can deliver must be allowed by a pattern that covers it. */
        if (osm_grant_pattern_covers(pat, watch) && osm_name_valid(coll, OSM_GRANT_MAX_NAME, true) &&
            fnmatch(watch, coll, FNM_PATHNAME) == 0 && !m)
                abort();
        const char *grants[] = { "store:read:", NULL };
        char g[320];
        memcpy(g, "store:read:", 11);
        memcpy(g + 11, pat, strlen(pat) + 1);
        grants[0] = g;
        if ((osm_grant_find_store(grants, "read", coll) != NULL) != m)
                abort();
        (void) osm_grant_find_watch(grants, watch);
        return 0;
}
