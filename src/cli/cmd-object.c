/* cmd-object.c: object put/get/ls/rm/gc. Contents travel as file descriptors passed over the
 * socket (SCM_RIGHTS), never inside JSON; get checks the hash of what it received. */
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/commands.h"
#include "osmose/identity.h"

#define COPY_CHUNK (256u * 1024u)

static bool hash_valid(const char *s) {
        if (strlen(s) != OSM_HASH_BYTES * 2)
                return false;
        for (size_t i = 0; i < OSM_HASH_BYTES * 2; i++)
                if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return false;
        return true;
}

static int object_put(osm_ctl *ctl, int argc, char **argv) {
        if (osm_ctl_wants_help(argc, argv)) {
                osm_ctl_usage("object put", "FILE|-",
                        "Store a file (or stdin with -) as an object and print its BLAKE2b-256 hash. The daemon\n"
                        "reads the content through a file descriptor passed over the socket. Identical content is\n"
                        "stored once. The object is pinned: kept until 'object rm'.", NULL);
                return 0;
        }
        if (argc != 2)
                return osm_ctl_usage_error("object put: expected one FILE or - (osmosectl object put --help)");
        _cleanup_close_ int own = -1;
        int fd = 0;
        if (strcmp(argv[1], "-") != 0) {
                own = open(argv[1], O_RDONLY | O_CLOEXEC | O_NOCTTY);
                if (own < 0)
                        return osm_ctl_fail("object put: cannot open '%s': %s", argv[1], strerror(errno));
                struct stat st;
                if (fstat(own, &st) == 0 && S_ISDIR(st.st_mode))
                        return osm_ctl_fail("object put: '%s' is a directory", argv[1]);
                fd = own;
        }
        _cleanup_json_ json_t *rep = NULL;
        if (osm_ctl_request_fds(ctl, osm_req_store_object_put(&(osm_req_store_object_put_opt){ .pin = OSM_SOME(true) }),
                                &fd, 1, &rep, NULL, NULL))
                return 1;
        if (ctl->json)
                osm_print_json(rep);
        else
                printf("%s\n", json_string_value(json_object_get(rep, "hash")));
        return 0;
}

static int object_get(osm_ctl *ctl, int argc, char **argv) {
        static const struct option opts[] = {
                { "output", required_argument, NULL, 'o' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        const char *output = NULL;
        int c;
        while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
                switch (c) {
                case 'o': output = optarg; break;
                case 'h':
                        osm_ctl_usage("object get", "HASH [-o FILE]",
                                "Write an object's content to FILE (or stdout). The content is checked against its\n"
                                "hash on the way; on a mismatch FILE is removed and the command fails.",
                                "  -o, --output FILE   write here instead of stdout\n");
                        return 0;
                default: return 2;
                }
        }
        if (optind + 1 != argc)
                return osm_ctl_usage_error("object get: expected one HASH (osmosectl object get --help)");
        const char *hash = argv[optind];
        if (ctl->json && !output)
                return osm_ctl_usage_error("object get: --json needs -o FILE (without it the content itself goes to stdout)");
        if (!hash_valid(hash))
                return osm_ctl_usage_error("object get: '%s' is not an object hash: expected 64 lowercase hex digits", hash);

        _cleanup_json_ json_t *rep = NULL;
        int fds[1] = { -1 };
        size_t n_fds = 1;
        if (osm_ctl_request_fds(ctl, osm_req_store_object_get(hash), NULL, 0, &rep, fds, &n_fds))
                return 1;
        _cleanup_close_ int in = n_fds == 1 ? fds[0] : -1;
        if (in < 0)
                return osm_ctl_fail("object get: the daemon sent no file descriptor");
        uint64_t size = (uint64_t) json_integer_value(json_object_get(rep, "size"));

        _cleanup_free_ char *tmp = NULL;
        _cleanup_close_ int out = -1;
        if (output) {
                /* write beside the target and rename: FILE is never left half written */
                if (asprintf(&tmp, "%s.partial-XXXXXX", output) < 0)
                        return osm_ctl_fail("object get: out of memory");
                out = mkostemp(tmp, O_CLOEXEC);
                if (out < 0)
                        return osm_ctl_fail("object get: cannot create '%s': %s", tmp, strerror(errno));
                fchmod(out, 0644 & ~umask(umask(0)));
        } else
                out = dup(STDOUT_FILENO);

        crypto_generichash_state hs;
        crypto_generichash_init(&hs, NULL, 0, OSM_HASH_BYTES);
        _cleanup_free_ uint8_t *buf = malloc(COPY_CHUNK);
        uint64_t got = 0;
        int r = buf ? 0 : -ENOMEM;
        while (r == 0) {
                ssize_t n = read(in, buf, COPY_CHUNK);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        r = -errno;
                if (n <= 0)
                        break;
                crypto_generichash_update(&hs, buf, (size_t) n);
                got += (uint64_t) n;
                r = osm_write_all(out, buf, (size_t) n);
        }
        uint8_t digest[OSM_HASH_BYTES];
        char hex[OSM_HASH_HEX];
        crypto_generichash_final(&hs, digest, sizeof(digest));
        sodium_bin2hex(hex, sizeof(hex), digest, sizeof(digest));
        const char *bad = NULL;
        if (r < 0)
                bad = strerror(-r);
        else if (got != size)
                bad = "the content is shorter or longer than the object";
        else if (strcmp(hex, hash) != 0)
                bad = "the content does not match its hash (corrupt object?)";
        else if (output && fsync(out) < 0)
                bad = strerror(errno);
        if (bad) {
                if (tmp)
                        unlink(tmp);
                return osm_ctl_fail("object get: %s", bad);
        }
        if (tmp && rename(tmp, output) < 0) {
                int e = errno;
                unlink(tmp);
                return osm_ctl_fail("object get: cannot write '%s': %s", output, strerror(e));
        }
        if (ctl->json) {
                _cleanup_json_ json_t *o = json_pack("{s:s, s:I, s:s}", "hash", hash, "size", (json_int_t) size,
                                                     "file", output);
                osm_print_json(o);
        }
        return 0;
}

static int object_ls(osm_ctl *ctl, int argc, char **argv) {
        if (osm_ctl_wants_help(argc, argv)) {
                osm_ctl_usage("object ls", "", "List the objects: hash, size, references, pinned, encrypted, created.", NULL);
                return 0;
        }
        if (argc > 1)
                return osm_ctl_usage_error("object ls: unexpected argument '%s'", argv[1]);
        _cleanup_json_ json_t *rep = NULL;
        if (osm_ctl_request(ctl, osm_req_store_object_list(), &rep))
                return 1;
        if (ctl->json) {
                osm_print_json(rep);
                return 0;
        }
        osm_table *t = osm_table_new("HASH", "SIZE", "REFS", "PINNED", "ENCRYPTED", "CREATED", NULL);
        size_t i;
        json_t *o;
        json_array_foreach(json_object_get(rep, "objects"), i, o) {
                char sz[32], refs[32], when[64];
                osm_format_bytes((uint64_t) json_integer_value(json_object_get(o, "size")), sz, sizeof(sz));
                snprintf(refs, sizeof(refs), "%" JSON_INTEGER_FORMAT, json_integer_value(json_object_get(o, "refs")));
                osm_table_add(t, json_string_value(json_object_get(o, "hash")), sz, refs,
                              json_is_true(json_object_get(o, "pinned")) ? "yes" : "no",
                              json_is_true(json_object_get(o, "encrypted")) ? "yes" : "no",
                              osm_format_time(json_integer_value(json_object_get(o, "created")), when, sizeof(when)));
        }
        osm_table_print(t);
        return 0;
}

static int object_rm(osm_ctl *ctl, int argc, char **argv) {
        if (osm_ctl_wants_help(argc, argv)) {
                osm_ctl_usage("object rm", "HASH",
                        "Unpin an object. It is deleted at once unless something else (a bundle, a workload)\n"
                        "still references it; then it goes when the last reference does.", NULL);
                return 0;
        }
        if (argc != 2)
                return osm_ctl_usage_error("object rm: expected one HASH (osmosectl object rm --help)");
        if (!hash_valid(argv[1]))
                return osm_ctl_usage_error("object rm: '%s' is not an object hash: expected 64 lowercase hex digits", argv[1]);
        _cleanup_json_ json_t *rep = NULL;
        if (osm_ctl_request(ctl, osm_req_store_object_remove(argv[1]), &rep))
                return 1;
        osm_print_done(ctl, rep, json_pack("{s:s}", "hash", argv[1]), "%s",
                       json_is_true(json_object_get(rep, "deleted")) ? "deleted" : "unpinned; still referenced, kept");
        return 0;
}

static int object_gc(osm_ctl *ctl, int argc, char **argv) {
        if (osm_ctl_wants_help(argc, argv)) {
                osm_ctl_usage("object gc", "", "Delete unreferenced, unpinned objects and stray files now.", NULL);
                return 0;
        }
        if (argc != 1)
                return osm_ctl_usage_error("object gc: unexpected argument '%s'", argv[1]);
        _cleanup_json_ json_t *rep = NULL;
        if (osm_ctl_request(ctl, osm_req_store_object_gc(), &rep))
                return 1;
        if (ctl->json)
                osm_print_json(rep);
        else
                printf("removed %" JSON_INTEGER_FORMAT "\n", json_integer_value(json_object_get(rep, "removed")));
        return 0;
}

static const osm_ctl_command object_commands[] = {
        { "put", object_put, "FILE|-", "store a file or stdin; print its hash" },
        { "get", object_get, "HASH [-o FILE]", "write an object's content to FILE or stdout" },
        { "ls", object_ls, "", "list objects" },
        { "rm", object_rm, "HASH", "unpin an object (deleted when unreferenced)" },
        { "gc", object_gc, "", "delete unreferenced objects and stray files now" },
};

int cmd_object(osm_ctl *ctl, int argc, char **argv) {
        return osm_ctl_dispatch(ctl, "object", object_commands, OSM_ARRAY_SIZE(object_commands), argc, argv);
}
