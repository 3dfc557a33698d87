/* fuzz-building-token.c: the join token parser takes whatever an operator pastes. A token
 * it accepts must re-encode and parse to the same fields. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/building/token.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *text = malloc(size + 1);
        memcpy(text, data, size);
        text[size] = 0;
        osm_token t, u;
        osm_error why;
        if (osm_token_parse(text, &t, &why) == 0) {
                char *again = osm_token_encode(&t);
                if (!again || osm_token_parse(again, &u, &why) != 0 || strcmp(t.building, u.building) != 0 ||
                    t.n_addresses != u.n_addresses || memcmp(t.secret, u.secret, sizeof t.secret) != 0 ||
                    t.expires_us != u.expires_us)
                        abort();
                free(again);
        }
        free(text);
        return 0;
}
