/* fuzz-config.c: the configuration file parser (inih + our key table and value parsers). */
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include "daemon/config.h"
#include "osmose/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static char path[64];
        if (!path[0])
                snprintf(path, sizeof path, "/tmp/osm-fuzz-config-%d", (int) getpid());
        if (osm_write_file_atomic(path, data, size, 0600) < 0)
                return 0;
        osm_config cfg;
        if (osm_config_defaults(&cfg, "/tmp/fuzz") == 0) {
                FILE *null = fopen("/dev/null", "w");
                osm_config_load(&cfg, path, null);
                osm_config_validate(&cfg, null);
                fclose(null);
        }
        osm_config_free(&cfg);
        unlink(path);
        return 0;
}
