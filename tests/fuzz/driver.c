/* driver.c: runs a libFuzzer harness without libFuzzer: every file of the seed corpus,
 * then a bounded, deterministic series of mutations of each (bit flips, truncations,
 * splices, repeated bytes), so the harnesses run as regression tests in every build.
 * With -Dfuzzing=true and clang, the harnesses link against libFuzzer instead. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "osmose/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MUTATIONS_PER_SEED 400

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng(void) {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        return rng_state;
}

static void mutate_and_run(const uint8_t *seed, size_t len) {
        size_t cap = len * 2 + 64;
        uint8_t *buf = malloc(cap);
        for (int i = 0; i < MUTATIONS_PER_SEED; i++) {
                size_t n = len;
                memcpy(buf, seed, len);
                int ops = 1 + (int) (rng() % 4);
                for (int k = 0; k < ops; k++) {
                        switch (rng() % 5) {
                        case 0:   /* flip a bit */
                                if (n)
                                        buf[rng() % n] ^= (uint8_t) (1u << (rng() % 8));
                                break;
                        case 1:   /* truncate */
                                if (n)
                                        n = rng() % n;
                                break;
                        case 2:   /* interesting byte */
                                if (n) {
                                        static const uint8_t b[] = { 0, '"', '\\', '{', '}', '[', ']', ':', ',', 0xff, '\n', '=' };
                                        buf[rng() % n] = b[rng() % sizeof b];
                                }
                                break;
                        case 3:   /* duplicate a chunk */
                                if (n && n < cap / 2) {
                                        size_t off = rng() % n, l = OSM_MIN(n - off, cap - n);
                                        memmove(buf + off + l, buf + off, n - off);
                                        n += l;
                                }
                                break;
                        case 4:   /* random byte */
                                if (n)
                                        buf[rng() % n] = (uint8_t) rng();
                                break;
                        }
                }
                LLVMFuzzerTestOneInput(buf, n);
        }
        free(buf);
}

int main(int argc, char **argv) {
        if (argc != 2) {
                fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
                return 2;
        }
        DIR *d = opendir(argv[1]);
        if (!d) {
                perror(argv[1]);
                return 1;
        }
        struct dirent *e;
        int n = 0;
        while ((e = readdir(d))) {
                if (e->d_name[0] == '.')
                        continue;
                char path[4096];
                snprintf(path, sizeof path, "%s/%s", argv[1], e->d_name);
                char *data;
                size_t len;
                if (osm_read_file(path, 1 << 20, &data, &len) < 0)
                        continue;
                LLVMFuzzerTestOneInput((const uint8_t *) data, len);
                mutate_and_run((const uint8_t *) data, len);
                free(data);
                n++;
        }
        closedir(d);
        printf("%d seed(s), %d inputs each\n", n, MUTATIONS_PER_SEED + 1);
        return n > 0 ? 0 : 1;
}
