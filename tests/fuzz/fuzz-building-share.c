/* fuzz-building-share.c: the first line a member answers to {"op":"bundle"} with — whatever a
 * lying or broken member writes. An answer taken as "sends" must name a size the room asked
 * for and may take; every answer leaves a terminated reason or none. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/building/building-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        /* The first byte picks the size asked for (0: any) and the room's bound. */
        if (size < 1)
                return 0;
        static const uint64_t wants[] = { 0, 1, 4096, 1u << 20 };
        static const uint64_t maxes[] = { 1u << 20, 4096, UINT64_MAX >> 1, 1 };
        uint64_t want = wants[data[0] & 3], max = maxes[(data[0] >> 2) & 3];
        /* As the reader hands it over: at most 511 bytes and a terminating zero. */
        size_t n = size - 1 < 511 ? size - 1 : 511;
        char *line = malloc(n + 1);
        memcpy(line, data + 1, n);
        line[n] = 0;
        char why[512];
        uint64_t got = 12345;
        bld_answer a = bld_share_parse_answer(line, want, max, &got, why, sizeof why);
        if (a == BLD_ANSWER_SENDS) {
                if (got == 0 || got > max || (want && got != want))
                        abort();
        } else if (got != 0 || memchr(why, 0, sizeof why) == NULL) {
                abort();
        }
        free(line);
        return 0;
}
