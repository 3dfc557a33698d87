/* fuzz-config.c: the configuration file parser (inih + our key table and value parsers). */
#include <stdint.h>
#include <stdio.h>

#include "daemon/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size == 0)
                return 0;
        FILE *in = fmemopen((void *) data, size, "r");
        FILE *null = fopen("/dev/null", "w");
        osm_config cfg = { 0 };
        if (in && null && osm_config_defaults(&cfg, "/tmp/fuzz") == 0) {
                osm_config_load_stream(&cfg, in, "fuzz", null);
                osm_config_validate(&cfg, null);
        }
        osm_config_free(&cfg);
        if (in)
                fclose(in);
        if (null)
                fclose(null);
        return 0;
}
