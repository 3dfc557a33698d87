/* fuzz-manifest.c: the manifest.json parser and the capability syntax it applies. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "osmose/manifest.h"
#include "osmose/varlink.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        osm_manifest *m = NULL;
        osm_error err = {};
        int r = osm_manifest_parse((const char *) data, size, &m, &err);
        if (r == 0) {
                /* What parsed must serialize and parse again to the same manifest. */
                json_t *j = osm_manifest_to_json(m);
                char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
                osm_manifest *m2 = NULL;
                if (text && osm_manifest_parse(text, strlen(text), &m2, &err) != 0)
                        __builtin_trap();
                if (m2 && (strcmp(m->name, m2->name) != 0 || m->version != m2->version ||
                           m->argc != m2->argc || m->n_caps != m2->n_caps || m->n_env != m2->n_env))
                        __builtin_trap();
                for (size_t i = 0; i < m->n_caps; i++)
                        if (osm_cap_check(m->caps[i], NULL) != 0 || !osm_manifest_requests(m, m->caps[i]))
                                __builtin_trap();
                osm_manifest_free(m2);
                free(text);
                json_decref(j);
                osm_manifest_free(m);
        } else if (!err.message[0])
                __builtin_trap();   /* every refusal names the field */
        /* The capability checker on raw text, too. */
        char cap[OSM_CAP_MAX + 2];
        size_t n = size < sizeof cap - 1 ? size : sizeof cap - 1;
        memcpy(cap, data, n);
        cap[n] = 0;
        osm_cap_check(cap, &err);
        osm_cap_pattern_match(cap, "sensors/temp");
        return 0;
}
