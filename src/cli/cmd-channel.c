/* cmd-channel.c: software channels — channel publish|inspect (the publisher's side, no
 * daemon needed), and follow, pin, unpin, upgrade, import (the daemon's). */
#include <fcntl.h>
#include <stdarg.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <limits.h>
#include <stdlib.h>

#include "cli/commands.h"
#include "osmose/bundle.h"
#include "osmose/channel.h"
#include "osmose/identity.h"
#include "osmose/manifest.h"

/* Read a bundle file as the daemon would (hash, signature, structure) while copying it
 * to out_fd; returns 0 with *info and *m, or 1 after printing why. */
static int read_bundle(const char *path, int out_fd, osm_bundle_info *info, osm_manifest **m) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return osm_ctl_fail("channel publish: %s: %m", path);
        osm_error err = {};
        if (osm_bundle_copy(fd, out_fd, UINT64_MAX, info, &err) < 0)
                return osm_ctl_fail("channel publish: %s: %s", path, err.message);
        if (!info->is_signed)
                return osm_ctl_fail("channel publish: %s is not signed: followers would refuse it "
                                    "(osmosectl bundle build --key KEY)", path);
        if (osm_bundle_verify_signature(info) < 0)
                return osm_ctl_fail("channel publish: %s: the signature does not match the contents", path);
        _cleanup_free_ char *mtext = NULL;
        size_t mlen;
        bool has_rootfs;
        if (osm_bundle_unpack(out_fd, -1, &mtext, &mlen, &has_rootfs, &err) < 0)
                return osm_ctl_fail("channel publish: %s: %s", path, err.message);
        if (osm_manifest_parse(mtext, mlen, m, &err) < 0)
                return osm_ctl_fail("channel publish: %s: manifest: %s", path, err.message);
        return 0;
}

static int channel_publish(osm_ctl *ctl, int argc, char **argv) {
        static const struct option opts[] = {
                { "channel", required_argument, NULL, 'c' },
                { "key", required_argument, NULL, 'k' },
                { "output", required_argument, NULL, 'o' },
                { "notes", required_argument, NULL, 'n' },
                { "expires", required_argument, NULL, 'e' },
                { "sequence", required_argument, NULL, 'S' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        const char *name = NULL, *key = NULL, *dir = NULL, *notes = NULL, *expires = NULL, *seq = NULL;
        int c;
        optind = 0;
        while ((c = getopt_long(argc, argv, "c:k:o:h", opts, NULL)) != -1) {
                switch (c) {
                case 'c': name = optarg; break;
                case 'k': key = optarg; break;
                case 'o': dir = optarg; break;
                case 'n': notes = optarg; break;
                case 'e': expires = optarg; break;
                case 'S': seq = optarg; break;
                case 'h':
                        osm_ctl_usage("channel publish", "BUNDLE --channel NAME --key KEY -o DIR [--notes TEXT] "
                                      "[--expires D] [--sequence N]",
                                      "Append BUNDLE's version to the channel NAME in DIR and sign the list again "
                                      "with KEY:\nwrites DIR/NAME.channel and DIR/bundles/ID (each atomically). "
                                      "DIR can be served by any\nstatic HTTP server, copied to a USB stick, or "
                                      "followed as a directory.",
                                      "The version must be higher than every version already listed; the "
                                      "sequence number goes up\nby one (--sequence sets it, e.g. after moving "
                                      "a channel). --expires D (\"30d\") makes followers\nwith a synchronised "
                                      "clock refuse the list after D unless it is published again.\n");
                        return 0;
                default: return 2;
                }
        }
        if (!name || !key || !dir || optind != argc - 1)
                return osm_ctl_usage_error("channel publish: usage: osmosectl channel publish BUNDLE --channel NAME "
                                   "--key KEY -o DIR");
        if (!osm_name_valid(name, OSM_CHANNEL_MAX_NAME, false))
                return osm_ctl_usage_error("channel publish: --channel: expected 1-%d characters of A-Z a-z 0-9 . _ -",
                                   OSM_CHANNEL_MAX_NAME);
        int64_t sequence = 0;
        uint64_t expires_us = 0;
        if (seq && (osm_parse_i64(seq, &sequence) < 0 || sequence < 1 || sequence > OSM_CHANNEL_MAX_SEQUENCE))
                return osm_ctl_usage_error("channel publish: --sequence: expected an integer from 1 to 2^53");
        if (expires && (osm_parse_duration(expires, &expires_us) < 0 || expires_us < 1000000))
                return osm_ctl_usage_error("channel publish: --expires: expected a duration like 30d");
        if (notes && (strlen(notes) > OSM_CHANNEL_MAX_NOTES || strpbrk(notes, "\n\r\t")))
                return osm_ctl_usage_error("channel publish: --notes: one line of at most %d bytes", OSM_CHANNEL_MAX_NOTES);
        if (osm_crypto_init() < 0)
                return osm_ctl_fail("channel publish: libsodium initialisation failed");

        osm_keypair kp = { 0 };
        osm_error why = {};
        int r = osm_keypair_load(key, &kp, &why);
        if (r < 0)
                return osm_ctl_fail("channel publish: key %s: %s", key, osm_error_message(&why, strerror(-r)));
        _cleanup_free_ char *bdir = NULL, *chpath = NULL, *tmp = NULL, *final = NULL, *text = NULL;
        _cleanup_close_ int tfd = -1;
        _cleanup_manifest_ osm_manifest *m = NULL;
        _cleanup_channel_ osm_channel *ch = NULL;
        osm_bundle_info info;
        char id[OSM_HASH_HEX];
        osm_error err = {};
        size_t len = 0;
        int ret = 1;
        if (asprintf(&bdir, "%s/bundles", dir) < 0 || asprintf(&chpath, "%s/%s.channel", dir, name) < 0 ||
            asprintf(&tmp, "%s/.tmp-XXXXXX", bdir) < 0) {
                osm_ctl_fail("channel publish: out of memory");
                goto out;
        }
        if ((r = osm_mkdir_p(bdir, 0755)) < 0) {
                osm_ctl_fail("channel publish: creating %s: %s", bdir, strerror(-r));
                goto out;
        }
        if ((tfd = mkostemp(tmp, O_CLOEXEC)) < 0) {
                osm_ctl_fail("channel publish: creating a file in %s: %m", bdir);
                goto out;
        }
        if (read_bundle(argv[optind], tfd, &info, &m) != 0)
                goto out;
        osm_hash_hex(info.id, id);

        /* The list so far, if there is one: it must be ours. */
        char *old = NULL;
        size_t old_len;
        r = osm_read_file(chpath, OSM_CHANNEL_MAX_SIZE, &old, &old_len);
        if (r == 0) {
                r = osm_channel_parse(old, old_len, &ch, &err);
                free(old);
                if (r < 0) {
                        osm_ctl_fail("channel publish: %s: %s", chpath, err.message);
                        goto out;
                }
                if (memcmp(ch->signer, kp.pk, sizeof kp.pk) != 0) {
                        char other[OSM_PUBKEY_B64];
                        osm_pubkey_encode(ch->signer, other);
                        osm_ctl_fail("channel publish: %s is signed by another key (%s)", chpath, other);
                        goto out;
                }
                if (strcmp(ch->name, name) != 0) {
                        osm_ctl_fail("channel publish: %s names the channel %s", chpath, ch->name);
                        goto out;
                }
                if (!sequence)
                        sequence = ch->sequence + 1;
        } else if (r == -ENOENT) {
                if (!(ch = osm_channel_new(name))) {
                        osm_ctl_fail("channel publish: out of memory");
                        goto out;
                }
                if (!sequence)
                        sequence = 1;
        } else {
                osm_ctl_fail("channel publish: reading %s: %s", chpath, strerror(-r));
                goto out;
        }
        if (osm_channel_append(ch, m->version, id, info.size, notes, &err) < 0) {
                osm_ctl_fail("channel publish: %s version %lld: %s", m->name, (long long) m->version, err.message);
                goto out;
        }
        ch->sequence = sequence;
        ch->published = (int64_t) time(NULL);
        ch->expires = expires ? ch->published + (int64_t) (expires_us / 1000000) : 0;
        if ((r = osm_channel_sign(ch, &kp, &text, &len)) < 0) {
                osm_ctl_fail("channel publish: signing: %s", strerror(-r));
                goto out;
        }
        /* The bundle first, then the list that names it: a follower never sees an entry
         * whose bundle is not there yet. */
        if (asprintf(&final, "%s/%s", bdir, id) < 0 || fchmod(tfd, 0644) < 0 || fsync(tfd) < 0 ||
            rename(tmp, final) < 0 || osm_fsync_parent(final) < 0) {
                osm_ctl_fail("channel publish: writing %s: %m", final ? final : bdir);
                goto out;
        }
        free(steal_pointer(&tmp));
        if ((r = osm_write_file_atomic(chpath, text, len, 0644)) < 0) {
                osm_ctl_fail("channel publish: writing %s: %s", chpath, strerror(-r));
                goto out;
        }
        if (ctl->json) {
                _cleanup_json_ json_t *o = json_pack("{s:s, s:I, s:s, s:I, s:s, s:I, s:s, s:s}",
                                                     "channel", ch->name, "sequence", (json_int_t) ch->sequence,
                                                     "workload", m->name, "version", (json_int_t) m->version,
                                                     "bundle", id, "size", (json_int_t) info.size,
                                                     "file", chpath, "bundle_file", final);
                osm_print_json(o);
        } else {
                char sz[32];
                printf("%s: %s version %lld (bundle %s, %s), sequence %lld, %zu version%s\n", chpath, m->name,
                       (long long) m->version, id, osm_format_bytes(info.size, sz, sizeof sz),
                       (long long) ch->sequence, ch->n_versions, ch->n_versions == 1 ? "" : "s");
        }
        ret = 0;
out:
        osm_keypair_clear(&kp);
        if (tmp && tfd >= 0)
                unlink(tmp);
        return ret;
}

/* Print a channel document: its signer, sequence and versions. */
static int channel_inspect(osm_ctl *ctl, int argc, char **argv) {
        if (osm_ctl_wants_help(argc, argv)) {
                osm_ctl_usage("channel inspect", "FILE",
                              "Check a channel file's signature and syntax and list its versions. Whether "
                              "its signer is\ntrusted is for the daemon to say (osmosectl trust ls).", NULL);
                return 0;
        }
        if (argc != 2)
                return osm_ctl_usage_error("channel inspect: usage: osmosectl channel inspect FILE");
        if (osm_crypto_init() < 0)
                return osm_ctl_fail("channel inspect: libsodium initialisation failed");
        _cleanup_free_ char *text = NULL;
        size_t len;
        int r = osm_read_file(argv[1], OSM_CHANNEL_MAX_SIZE + 1, &text, &len);
        if (r < 0)
                return osm_ctl_fail("channel inspect: %s: %s", argv[1], strerror(-r));
        _cleanup_channel_ osm_channel *ch = NULL;
        osm_error err = {};
        if (osm_channel_parse(text, len, &ch, &err) < 0)
                return osm_ctl_fail("channel inspect: %s: %s", argv[1], err.message);
        char signer[OSM_PUBKEY_B64];
        osm_pubkey_encode(ch->signer, signer);
        if (ctl->json) {
                _cleanup_json_ json_t *vs = json_array();
                for (size_t i = 0; i < ch->n_versions; i++) {
                        const osm_channel_version *v = &ch->versions[i];
                        json_t *o = json_pack("{s:I, s:s, s:I}", "version", (json_int_t) v->version,
                                              "bundle", v->bundle, "size", (json_int_t) v->size);
                        if (o && v->notes)
                                json_object_set_new(o, "notes", json_string(v->notes));
                        json_array_append_new(vs, o);
                }
                _cleanup_json_ json_t *o = json_pack("{s:s, s:I, s:s, s:O}", "channel", ch->name,
                                                     "sequence", (json_int_t) ch->sequence, "signer", signer,
                                                     "versions", vs);
                if (ch->published)
                        json_object_set_new(o, "published", json_integer(ch->published));
                if (ch->expires)
                        json_object_set_new(o, "expires", json_integer(ch->expires));
                osm_print_json(o);
                return 0;
        }
        printf("Channel:   %s\nSequence:  %lld\nSigned by: %s\n", ch->name, (long long) ch->sequence, signer);
        if (ch->expires) {
                char t[64];
                printf("Expires:   %s\n", osm_format_time(ch->expires * 1000000, t, sizeof t));
        }
        osm_table *t = osm_table_new("VERSION", "BUNDLE", "SIZE", "NOTES", NULL);
        for (size_t i = 0; i < ch->n_versions; i++) {
                const osm_channel_version *v = &ch->versions[i];
                char ver[24], sz[32];
                snprintf(ver, sizeof ver, "%lld", (long long) v->version);
                osm_table_add(t, ver, v->bundle, osm_format_bytes(v->size, sz, sizeof sz), v->notes);
        }
        osm_table_print(t);
        return 0;
}

int cmd_channel(osm_ctl *ctl, int argc, char **argv) {
        static const osm_ctl_command sub[] = {
                { "publish", channel_publish, "BUNDLE --channel NAME --key KEY -o DIR", "append a version and sign the list" },
                { "inspect", channel_inspect, "FILE", "check a channel file and list its versions" },
        };
        return osm_ctl_dispatch(ctl, "channel", sub, OSM_ARRAY_SIZE(sub), argc, argv);
}

/* ---- the daemon's side: follow, unfollow, pin, unpin, upgrade, import ------------------- */

/* argv[1..n] positional, no options but --help (handled by the caller). */
static bool positional(int argc, char **argv, int min, int max) {
        for (int i = 1; i < argc; i++)
                if (argv[i][0] == '-' && argv[i][1])
                        return false;
        return argc - 1 >= min && argc - 1 <= max;
}

/* A directory or file given on the command line, made absolute for the daemon; URLs as
 * they are. */
static int source_arg(const char *cmd, const char *arg, char out[PATH_MAX]) {
        if (strncmp(arg, "http://", 7) == 0 || strncmp(arg, "https://", 8) == 0 || strncmp(arg, "remote:", 7) == 0) {
                if (strlen(arg) >= PATH_MAX)
                        return osm_ctl_usage_error("%s: URL too long", cmd);
                snprintf(out, PATH_MAX, "%s", arg);
                return 0;
        }
        if (!realpath(arg, out))
                return osm_ctl_fail("%s: %s: %m", cmd, arg);
        return 0;
}

static void print_follow(json_t *f) {
        const char *name = json_string_value(json_object_get(f, "name"));
        printf("%s follows channel %s from %s", name, json_string_value(json_object_get(f, "channel")),
               json_string_value(json_object_get(f, "source")));
        json_t *seq = json_object_get(f, "sequence"), *latest = json_object_get(f, "latest");
        json_t *inst = json_object_get(f, "installed"), *pin = json_object_get(f, "pinned");
        if (seq)
                printf(" (sequence %lld", (long long) json_integer_value(seq));
        if (seq && latest)
                printf(", newest version %lld", (long long) json_integer_value(latest));
        if (seq)
                printf(")");
        if (inst)
                printf("; version %lld installed", (long long) json_integer_value(inst));
        if (pin)
                printf("; pinned to version %lld", (long long) json_integer_value(pin));
        printf("\n");
}

int cmd_follow(osm_ctl *ctl, int argc, char **argv) {
        static const struct option opts[] = {
                { "building", no_argument, NULL, 'b' },
                { "canary", required_argument, NULL, 'c' },
                { "batch", required_argument, NULL, 'n' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        bool building = false;
        const char *canary = NULL, *batch = NULL;
        int c;
        optind = 0;
        while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                switch (c) {
                case 'b': building = true; break;
                case 'c': canary = optarg; break;
                case 'n': batch = optarg; break;
                case 'h':
                        osm_ctl_usage("follow", "NAME SOURCE [--building [--canary ROOM] [--batch N]]",
                                      "Let the workload NAME follow the channel at SOURCE: a directory (a USB stick) "
                                      "or an http(s) URL\nholding NAME.channel and bundles/, or the .channel file "
                                      "itself; or remote:REMOTE, a paired remote\nthat shares the channel with this "
                                      "space, reached over federation.",
                                      "The list is read and checked now (trusted signer, sequence); upgrades come with "
                                      "'osmosectl upgrade'\nor the periodic check ([channels] check-interval). "
                                      "Following again changes the source.\nWith --building every room of the "
                                      "building follows it and upgrades in waves: the room named by\n--canary (or "
                                      "the first by name) first, then --batch N rooms at a time (default 1), each\n"
                                      "wave once the rooms before it run the new version healthy; a failure halts "
                                      "the rollout.\nSOURCE must then be reachable from every room.\n");
                        return 0;
                default: return 2;
                }
        }
        int64_t n = 0;
        if (argc - optind != 2)
                return osm_ctl_usage_error("follow: usage: osmosectl follow NAME SOURCE [--building [--canary ROOM] "
                                           "[--batch N]]");
        if ((canary || batch) && !building)
                return osm_ctl_usage_error("follow: --canary and --batch go with --building");
        if (batch && (osm_parse_i64(batch, &n) < 0 || n < 1 || n > 1024))
                return osm_ctl_usage_error("follow: --batch: a number of rooms from 1 to 1024");
        char src[PATH_MAX];
        int r = source_arg("follow", argv[optind + 1], src);
        if (r)
                return r;
        osm_req_channel_follow_opt fo = {
                .building = OSM_IF(building, true), .canary = canary, .batch = OSM_IF(batch, n),
        };
        _cleanup_json_ json_t *rep = NULL;
        if (osm_ctl_request(ctl, osm_req_channel_follow(argv[optind], src, &fo), &rep))
                return 1;
        json_t *f = json_object_get(rep, "follow");
        if (ctl->json)
                osm_print_json(f);
        else
                print_follow(f);
        return 0;
}

int cmd_unfollow(osm_ctl *ctl, int argc, char **argv) {
        if (osm_ctl_wants_help(argc, argv)) {
                osm_ctl_usage("unfollow", "NAME", "Stop following a channel; the installed version stays.", NULL);
                return 0;
        }
        if (!positional(argc, argv, 1, 1))
                return osm_ctl_usage_error("unfollow: usage: osmosectl unfollow NAME");
        _cleanup_json_ json_t *rep = NULL;
        if (osm_ctl_request(ctl, osm_req_channel_unfollow(argv[1]), &rep))
                return 1;
        osm_print_done(ctl, rep, json_pack("{s:s, s:b}", "name", argv[1], "followed", 0),
                       "%s no longer follows a channel", argv[1]);
        return 0;
}

int cmd_pin(osm_ctl *ctl, int argc, char **argv) {
        if (osm_ctl_wants_help(argc, argv)) {
                osm_ctl_usage("pin", "NAME VERSION",
                              "Hold a followed workload at VERSION of its channel: upgrades go to that version "
                              "(down,\nif need be) and no further, until 'osmosectl unpin NAME'.", NULL);
                return 0;
        }
        int64_t v;
        if (!positional(argc, argv, 2, 2) || osm_parse_i64(argv[2], &v) < 0 || v < 1)
                return osm_ctl_usage_error("pin: usage: osmosectl pin NAME VERSION (a positive integer)");
        _cleanup_json_ json_t *rep = NULL;
        if (osm_ctl_request(ctl, osm_req_channel_pin(argv[1], v), &rep))
                return 1;
        if (ctl->json)
                osm_print_json(json_object_get(rep, "follow"));
        else
                printf("%s pinned to version %lld\n", argv[1], (long long) v);
        return 0;
}

int cmd_unpin(osm_ctl *ctl, int argc, char **argv) {
        if (osm_ctl_wants_help(argc, argv)) {
                osm_ctl_usage("unpin", "NAME", "Let a pinned workload follow its channel again.", NULL);
                return 0;
        }
        if (!positional(argc, argv, 1, 1))
                return osm_ctl_usage_error("unpin: usage: osmosectl unpin NAME");
        _cleanup_json_ json_t *rep = NULL;
        if (osm_ctl_request(ctl, osm_req_channel_unpin(argv[1]), &rep))
                return 1;
        if (ctl->json)
                osm_print_json(json_object_get(rep, "follow"));
        else
                printf("%s follows its channel again\n", argv[1]);
        return 0;
}

static const char *s_of(json_t *o, const char *k) {
        const char *s = json_string_value(json_object_get(o, k));
        return s ? s : "";
}

int cmd_upgrade(osm_ctl *ctl, int argc, char **argv) {
        static const struct option opts[] = {
                { "check", no_argument, NULL, 'c' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        bool check = false;
        int c;
        optind = 0;
        while ((c = getopt_long(argc, argv, "ch", opts, NULL)) != -1) {
                switch (c) {
                case 'c': check = true; break;
                case 'h':
                        osm_ctl_usage("upgrade", "[NAME] [--check]",
                                      "Check the channel of NAME (or of every followed workload) and upgrade to the "
                                      "newest version\nnot marked bad, or to the pinned one. --check only says what "
                                      "would change.",
                                      "An upgrade installs the new version beside the old, restarts the instances "
                                      "and watches them\n([channels] health-grace, and the manifest's health "
                                      "command); if they fail, the old version runs\nagain and the new one is marked "
                                      "bad. Exits 1 if anything was refused or rolled back.\n");
                        return 0;
                default: return 2;
                }
        }
        if (argc - optind > 1)
                return osm_ctl_usage_error("upgrade: usage: osmosectl upgrade [NAME] [--check]");
        osm_req_channel_upgrade_opt uo = { .name = optind < argc ? argv[optind] : NULL, .check = OSM_SOME(check) };
        _cleanup_json_ json_t *rep = NULL;
        if (osm_ctl_request(ctl, osm_req_channel_upgrade(&uo), &rep))
                return 1;
        json_t *results = json_object_get(rep, "results");
        int status = 0;
        size_t i;
        json_t *r;
        json_array_foreach(results, i, r) {
                const char *action = s_of(r, "action");
                if (strcmp(action, "failed") == 0 || strcmp(action, "rolled-back") == 0)
                        status = 1;
        }
        if (ctl->json) {
                osm_print_json(rep);
                return status;
        }
        if (json_array_size(results) == 0)
                printf("no workload follows a channel\n");
        json_array_foreach(results, i, r) {
                const char *name = s_of(r, "name"), *action = s_of(r, "action");
                long long inst = json_integer_value(json_object_get(r, "installed"));
                long long target = json_integer_value(json_object_get(r, "target"));
                if (strcmp(action, "current") == 0)
                        printf("%s: up to date%s%.0lld%s%s\n", name, inst ? " (version " : "", inst, inst ? ")" : "",
                               json_object_get(r, "message") ? "; " : "");
                else if (strcmp(action, "upgrade") == 0)
                        printf("%s: would upgrade %s%lld to version %lld\n", name, inst ? "from version " : "(not "
                               "installed) ", inst, target);
                else if (strcmp(action, "upgraded") == 0)
                        printf("%s: upgraded to version %lld\n", name, target);
                else
                        printf("%s: %s: %s%s%s%s\n", name, action, s_of(r, "message"),
                               json_object_get(r, "error_name") ? " (" : "", s_of(r, "error_name"),
                               json_object_get(r, "error_name") ? ")" : "");
        }
        return status;
}

int cmd_import(osm_ctl *ctl, int argc, char **argv) {
        if (osm_ctl_wants_help(argc, argv)) {
                osm_ctl_usage("import", "DIR",
                              "Take channels and bundles from DIR (a USB stick): DIR/*.channel and DIR/bundles/*.",
                              "A channel must be signed by a trusted key and pass the sequence checks; a bundle "
                              "is kept\nwhen its contents hash to its file name. Followed workloads then "
                              "upgrade from them even\nwhile their source is unreachable. Exits 1 if anything was "
                              "refused.\n");
                return 0;
        }
        if (!positional(argc, argv, 1, 1))
                return osm_ctl_usage_error("import: usage: osmosectl import DIR");
        char dir[PATH_MAX];
        if (!realpath(argv[1], dir))
                return osm_ctl_fail("import: %s: %m", argv[1]);
        _cleanup_json_ json_t *rep = NULL;
        if (osm_ctl_request(ctl, osm_req_channel_import(dir), &rep))
                return 1;
        json_t *refused = json_object_get(rep, "refused");
        if (ctl->json) {
                osm_print_json(rep);
                return json_array_size(refused) ? 1 : 0;
        }
        size_t i;
        json_t *v;
        json_array_foreach(json_object_get(rep, "channels"), i, v)
                printf("channel %s imported\n", json_string_value(v));
        printf("%zu bundle%s kept\n", json_array_size(json_object_get(rep, "bundles")),
               json_array_size(json_object_get(rep, "bundles")) == 1 ? "" : "s");
        json_array_foreach(refused, i, v)
                fprintf(stderr, "osmosectl: import: %s refused: %s (%s)\n", s_of(v, "item"), s_of(v, "message"),
                        s_of(v, "error_name"));
        return json_array_size(refused) ? 1 : 0;
}

/* For 'workloads': the channel each workload follows, its pin and its bad versions
 * (nothing when the daemon has no channels). */
void osm_ctl_annotate_channels(osm_ctl *ctl, json_t *workloads) {
        osm_client *cl = osm_ctl_client(ctl);
        osm_client_error err = { 0 };
        json_t *rep = NULL;
        osm_vl_request req = osm_req_channel_list();
        if (!cl || osm_client_call(cl, req.method, req.params, NULL, 0, &rep, NULL, NULL, &err) < 0) {
                osm_client_error_clear(&err);
                return;
        }
        size_t i, k;
        json_t *w, *f;
        json_array_foreach(workloads, i, w)
                json_array_foreach(json_object_get(rep, "follows"), k, f)
                        if (strcmp(s_of(f, "name"), s_of(w, "name")) == 0)
                                json_object_set(w, "channel", f);
        json_decref(rep);
}

const char *osm_ctl_channel_cell(json_t *w, char *buf, size_t size) {
        json_t *f = json_object_get(w, "channel");
        if (!f)
                return NULL;
        size_t n = json_array_size(json_object_get(f, "bad"));
        int o = snprintf(buf, size, "%s", s_of(f, "channel"));
        if (json_object_get(f, "pinned") && o >= 0 && (size_t) o < size)
                o += snprintf(buf + o, size - (size_t) o, " pinned %lld",
                              (long long) json_integer_value(json_object_get(f, "pinned")));
        for (size_t i = 0; i < n && o >= 0 && (size_t) o < size; i++)
                o += snprintf(buf + o, size - (size_t) o, "%s%lld", i ? "," : " bad ",
                              (long long) json_integer_value(json_object_get(json_array_get(json_object_get(f, "bad"), i),
                                                                             "version")));
        return buf;
}

bool osm_ctl_is_bundle_id(const char *s) {
        return strlen(s) == OSM_HASH_BYTES * 2 && strspn(s, "0123456789abcdef") == OSM_HASH_BYTES * 2;
}

/* ---- rollout: building-wide ---------------------------------------------------------------- */

static int rollout_status(osm_ctl *ctl, int argc, char **argv) {
        if (osm_ctl_wants_help(argc, argv)) {
                osm_ctl_usage("rollout status", "",
                              "Which room of the building runs which version of each workload followed "
                              "building-wide,\nits state (healthy, or failed: rolled back) and the rooms on hold.",
                              NULL);
                return 0;
        }
        if (argc != 1)
                return osm_ctl_usage_error("rollout status: usage: osmosectl rollout status");
        _cleanup_json_ json_t *rep = NULL;
        if (osm_ctl_request(ctl, osm_req_channel_rollout_status(), &rep))
                return 1;
        if (ctl->json) {
                osm_print_json(rep);
                return 0;
        }
        osm_table *t = osm_table_new("ROOM", "WORKLOAD", "VERSION", "STATE", "HELD", NULL);
        size_t i;
        json_t *r;
        json_array_foreach(json_object_get(rep, "rooms"), i, r) {
                char ver[24] = "-";
                if (json_object_get(r, "version"))
                        snprintf(ver, sizeof ver, "%lld", (long long) json_integer_value(json_object_get(r, "version")));
                osm_table_add(t, s_of(r, "room"), json_object_get(r, "workload") ? s_of(r, "workload") : NULL, ver,
                              json_object_get(r, "state") ? s_of(r, "state") : NULL,
                              json_is_true(json_object_get(r, "held")) ? "held" : NULL);
        }
        osm_table_print(t);
        return 0;
}

static int rollout_hold_release(osm_ctl *ctl, int argc, char **argv, bool hold) {
        const char *cmd = hold ? "rollout hold" : "rollout release";
        if (osm_ctl_wants_help(argc, argv)) {
                osm_ctl_usage(cmd, "[ROOM]", hold ? "Keep a room (default: this one) out of building-wide rollouts; "
                                                    "the rooms after it do not wait for it."
                                                  : "Let a held room (default: this one) take part in rollouts again.",
                              NULL);
                return 0;
        }
        if (argc > 2 || (argc == 2 && argv[1][0] == '-'))
                return osm_ctl_usage_error("%s: usage: osmosectl %s [ROOM]", cmd, cmd);
        const char *room = argc == 2 ? argv[1] : NULL;
        _cleanup_json_ json_t *rep = NULL;
        if (osm_ctl_request(ctl, hold ? osm_req_channel_hold(&(osm_req_channel_hold_opt){ .room = room })
                                      : osm_req_channel_release(&(osm_req_channel_release_opt){ .room = room }), &rep))
                return 1;
        if (ctl->json)
                osm_print_json(rep);
        else
                printf("%s %s\n", s_of(rep, "room"), hold ? "is held out of rollouts" : "takes part in rollouts again");
        return 0;
}

static int rollout_hold(osm_ctl *ctl, int argc, char **argv) {
        return rollout_hold_release(ctl, argc, argv, true);
}

static int rollout_release(osm_ctl *ctl, int argc, char **argv) {
        return rollout_hold_release(ctl, argc, argv, false);
}

int cmd_rollout(osm_ctl *ctl, int argc, char **argv) {
        static const osm_ctl_command sub[] = {
                { "status", rollout_status, "", "which room runs which version" },
                { "hold", rollout_hold, "[ROOM]", "keep a room out of rollouts" },
                { "release", rollout_release, "[ROOM]", "let a held room take part again" },
        };
        return osm_ctl_dispatch(ctl, "rollout", sub, OSM_ARRAY_SIZE(sub), argc, argv);
}
