/* fuzz-varlink.c: the control protocol's message parser and the parameter checker. */
#include <stdint.h>
#include <string.h>

#include "osmose/varlink.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        osm_vl_call c;
        osm_error why;
        if (osm_vl_parse_call((const char *) data, size, &c, &why) == 0) {
                const osm_vl_method *m = osm_vl_find_method(c.method);
                const char *bad;
                if (m)
                        osm_vl_check_params(m, c.parameters, &bad);
                /* also check against every method, to reach every kind and enum path */
                for (size_t i = 0; i < osm_vl_n_interfaces; i++)
                        for (size_t k = 0; k < osm_vl_interfaces[i]->n_methods; k++)
                                osm_vl_check_params(&osm_vl_interfaces[i]->methods[k], c.parameters, &bad);
                /* our serializer must round-trip whatever jansson accepted */
                size_t dl;
                char *d = osm_vl_dump(c.root, &dl);
                json_error_t e;
                json_t *back = d ? json_loadb(d, dl - 1, 0, &e) : NULL;
                if (d && (!back || !json_equal(back, c.root)))
                        __builtin_trap();
                json_decref(back);
                free(d);
                osm_vl_call_done(&c);
        }
        osm_vl_reply r;
        if (osm_vl_parse_reply((const char *) data, size, &r, &why) == 0)
                osm_vl_reply_done(&r);
        return 0;
}
