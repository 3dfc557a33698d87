/* fuzz-config.c: the configuration file parser (inih + our key table and value parsers). */
#include <stdint.h>
#include <stdio.h>

#include "daemon/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size == 0)
                return 0;
        FILE *in = fmemopen((void *) data, size, "r");
        osm_config cfg = { 0 };
        osm_error_list errs = {};
        if (in && osm_config_defaults(&cfg, "/tmp/fuzz") == 0) {
                int n = osm_config_load_stream(&cfg, in, "fuzz", &errs);
                n += osm_config_validate(&cfg, &errs);
                if (n < 0 || (size_t) n != errs.n)
                        __builtin_trap();   /* every problem counted is reported */
        }
        osm_error_list_done(&errs);
        osm_config_free(&cfg);
        if (in)
                fclose(in);
        return 0;
}
