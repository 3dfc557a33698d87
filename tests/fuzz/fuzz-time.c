/* fuzz-time.c: the parsers of what an operator types for a time, a duration or a size
 * (osm_parse_time, osm_parse_duration, osm_parse_size): any input is refused or gives a
 * value, and what osm_format_time prints parses back to the same time. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "osmose/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size > 256)
                return 0;
        char s[257];
        memcpy(s, data, size);
        s[size] = 0;
        const int64_t now = INT64_C(1796297384000000);   /* 2026-12-03 */
        int64_t t;
        uint64_t u;
        if (osm_parse_time(s, now, &t) == 0 && t >= 0 && t < INT64_C(253402300799999999)) {
                char buf[64];
                osm_format_time(t, buf, sizeof buf);
                int64_t back;
                /* a formatted time is RFC 3339 with microseconds: it must read back exactly */
                if (buf[0] != '@' && (osm_parse_time(buf, now, &back) != 0 || back != t))
                        __builtin_trap();
        }
        (void) osm_parse_duration(s, &u);
        (void) osm_parse_size(s, &u);
        return 0;
}
