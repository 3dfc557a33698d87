/* cmd-bundle.c: keygen (a publisher keypair), bundle build (pack and sign), bundle inspect. */
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/commands.h"
#include "osmose/bundle.h"
#include "osmose/identity.h"
#include "osmose/manifest.h"

int cmd_keygen(osm_ctl *ctl, int argc, char **argv) {
        static const struct option opts[] = {
                { "output", required_argument, NULL, 'o' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        const char *out = NULL;
        int c;
        while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
                switch (c) {
                case 'o': out = optarg; break;
                case 'h':
                        osm_ctl_usage("keygen", "-o FILE",
                                      "Make a publisher keypair for signing bundles. The secret key goes to FILE "
                                      "(mode 0600,\nnever replaced), the public key to FILE.pub and stdout, for "
                                      "'osmosectl trust add'.",
                                      NULL);
                        return 0;
                default: return 2;
                }
        }
        if (!out || optind < argc)
                return osm_ctl_usage_error("keygen: usage: osmosectl keygen -o FILE");
        if (osm_crypto_init() < 0)
                return osm_ctl_fail("keygen: libsodium initialisation failed");
        osm_keypair kp = { 0 };
        int r = osm_keypair_generate(&kp);
        if (r == 0)
                r = osm_keypair_save(out, &kp);
        char pub[OSM_PUBKEY_B64];
        osm_pubkey_encode(kp.pk, pub);
        osm_keypair_clear(&kp);
        if (r == -EEXIST)
                return osm_ctl_fail("keygen: %s already exists; not replacing a key", out);
        if (r < 0)
                return osm_ctl_fail("keygen: writing %s: %s", out, strerror(-r));
        /* The public half beside it, for publishing and 'trust add'. */
        _cleanup_free_ char *pubpath = NULL, *line = NULL;
        if (asprintf(&pubpath, "%s.pub", out) < 0 || asprintf(&line, "%s\n", pub) < 0)
                return osm_ctl_fail("keygen: out of memory");
        r = osm_write_file_atomic(pubpath, line, strlen(line), 0644);
        if (r < 0)
                return osm_ctl_fail("keygen: writing %s: %s", pubpath, strerror(-r));
        if (ctl->json) {
                _cleanup_json_ json_t *o = json_pack("{s:s, s:s}", "public_key", pub, "file", out);
                osm_print_json(o);
        } else
                printf("%s\n", pub);
        return 0;
}

static int bundle_build(osm_ctl *ctl, int argc, char **argv) {
        static const struct option opts[] = {
                { "output", required_argument, NULL, 'o' },
                { "key", required_argument, NULL, 'k' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        const char *out = NULL, *key = NULL;
        int c;
        optind = 0;
        while ((c = getopt_long(argc, argv, "o:k:h", opts, NULL)) != -1) {
                switch (c) {
                case 'o': out = optarg; break;
                case 'k': key = optarg; break;
                case 'h':
                        osm_ctl_usage("bundle build", "DIR -o FILE [--key KEY]",
                                      "Pack DIR/manifest.json and DIR/rootfs/ (optional) into a bundle, signed with "
                                      "the\npublisher key KEY (from 'osmosectl keygen'); without --key it is unsigned.",
                                      "The bundle's id is BLAKE2b-256 of its manifest and tree; the same DIR gives "
                                      "the same id.\nrootfs/ may hold directories, regular files and symlinks; "
                                      "devices, fifos, sockets and\nsetuid/setgid files are refused, hardlinks "
                                      "become copies.\n");
                        return 0;
                default: return 2;
                }
        }
        if (!out || optind != argc - 1)
                return osm_ctl_usage_error("bundle build: usage: osmosectl bundle build DIR -o FILE [--key KEY]");
        const char *dir = argv[optind];
        if (osm_crypto_init() < 0)
                return osm_ctl_fail("bundle build: libsodium initialisation failed");
        osm_keypair kp = { 0 };
        if (key) {
                osm_error why = {};
                int r = osm_keypair_load(key, &kp, &why);
                if (r < 0)
                        return osm_ctl_fail("bundle build: key %s: %s", key, osm_error_message(&why, strerror(-r)));
        }
        _cleanup_free_ char *tmp = NULL;
        if (asprintf(&tmp, "%s.tmp-XXXXXX", out) < 0) {
                osm_keypair_clear(&kp);
                return osm_ctl_fail("bundle build: out of memory");
        }
        _cleanup_close_ int fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0) {
                osm_keypair_clear(&kp);
                return osm_ctl_fail("bundle build: creating %s: %m", tmp);
        }
        osm_bundle_info info;
        osm_error err = {};
        int r = osm_bundle_build(dir, fd, key ? &kp : NULL, &info, &err);
        osm_keypair_clear(&kp);
        if (r == 0 && (fchmod(fd, 0644) < 0 || fsync(fd) < 0 || rename(tmp, out) < 0))
                r = osm_error_set(&err, -EIO, 0, "writing %s: %m", out);
        if (r < 0) {
                unlink(tmp);
                return osm_ctl_fail("bundle build: %s", err.message);
        }
        char id[OSM_HASH_HEX], pub[OSM_PUBKEY_B64] = "";
        osm_hash_hex(info.id, id);
        if (info.is_signed)
                osm_pubkey_encode(info.pubkey, pub);
        if (ctl->json) {
                _cleanup_json_ json_t *o = json_pack("{s:s, s:s, s:I, s:b}", "file", out, "id", id,
                                                     "size", (json_int_t) info.size, "signed", info.is_signed);
                if (info.is_signed)
                        json_object_set_new(o, "signer", json_string(pub));
                osm_print_json(o);
        } else {
                char sz[32];
                printf("%s: bundle %s, %s, %s%s\n", out, id, osm_format_bytes(info.size, sz, sizeof sz),
                       info.is_signed ? "signed by " : "UNSIGNED", pub);
        }
        return 0;
}

/* Read a bundle file the way the daemon does (hash, signature, structure), unpacking
 * nothing, and show what is in it. */
static int bundle_inspect(osm_ctl *ctl, int argc, char **argv) {
        if (osm_ctl_wants_help(argc, argv)) {
                osm_ctl_usage("bundle inspect", "FILE",
                              "Check a bundle's hash, signature and structure, and print its manifest. "
                              "Exits non-zero\nif the bundle is malformed or its signature does not match.", NULL);
                return 0;
        }
        if (argc != 2)
                return osm_ctl_usage_error("bundle inspect: usage: osmosectl bundle inspect FILE");
        if (osm_crypto_init() < 0)
                return osm_ctl_fail("bundle inspect: libsodium initialisation failed");
        _cleanup_close_ int fd = open(argv[1], O_RDONLY | O_CLOEXEC);
        _cleanup_close_ int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
        if (fd < 0 || null < 0)
                return osm_ctl_fail("bundle inspect: %s: %m", argv[1]);
        osm_bundle_info info;
        osm_error err = {};
        if (osm_bundle_copy(fd, null, UINT64_MAX, &info, &err) < 0)
                return osm_ctl_fail("bundle inspect: %s: %s", argv[1], err.message);
        int sig = osm_bundle_verify_signature(&info);
        if (sig == -EBADMSG)
                return osm_ctl_fail("bundle inspect: %s: the signature does not match the contents "
                                    "(tampered or corrupt)", argv[1]);
        _cleanup_free_ char *mtext = NULL;
        size_t mlen;
        bool has_rootfs;
        if (osm_bundle_unpack(fd, -1, &mtext, &mlen, &has_rootfs, &err) < 0)
                return osm_ctl_fail("bundle inspect: %s: %s", argv[1], err.message);
        _cleanup_manifest_ osm_manifest *m = NULL;
        osm_error why = {};
        if (osm_manifest_parse(mtext, mlen, &m, &why) < 0)
                return osm_ctl_fail("bundle inspect: %s: manifest: %s", argv[1], why.message);
        char id[OSM_HASH_HEX], pub[OSM_PUBKEY_B64] = "";
        osm_hash_hex(info.id, id);
        if (info.is_signed)
                osm_pubkey_encode(info.pubkey, pub);
        _cleanup_json_ json_t *mj = osm_manifest_to_json(m);
        if (ctl->json) {
                _cleanup_json_ json_t *o = json_pack("{s:s, s:I, s:b, s:b, s:O}", "id", id,
                                                     "size", (json_int_t) info.size, "signed", info.is_signed,
                                                     "rootfs", has_rootfs, "manifest", mj);
                if (info.is_signed)
                        json_object_set_new(o, "signer", json_string(pub));
                osm_print_json(o);
                return 0;
        }
        char sz[32];
        printf("Bundle:    %s\nSize:      %s\nSigned by: %s\nRoot fs:   %s\nWorkload:  %s version %lld\n",
               id, osm_format_bytes(info.size, sz, sizeof sz), info.is_signed ? pub : "(unsigned)",
               has_rootfs ? "yes" : "no (host /usr, read-only)", m->name, (long long) m->version);
        printf("Requests: ");
        for (size_t i = 0; i < m->n_caps; i++)
                printf(" %s", m->caps[i]);
        printf("%s\n", m->n_caps ? "" : " nothing");
        return 0;
}

int cmd_bundle(osm_ctl *ctl, int argc, char **argv) {
        static const osm_ctl_command sub[] = {
                { "build", bundle_build, "DIR -o FILE [--key KEY]", "pack (and sign) a bundle" },
                { "inspect", bundle_inspect, "FILE", "check a bundle and show its manifest" },
        };
        return osm_ctl_dispatch(ctl, "bundle", sub, OSM_ARRAY_SIZE(sub), argc, argv);
}
