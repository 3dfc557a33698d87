/* voice.c: an example Osmose workload: room-local voice commands. It recognises a small
 * command grammar (commands.gram: lights on/off, set the temperature to N, open/close the
 * blinds) in 16 kHz mono 16-bit audio with PocketSphinx and writes one intent record per
 * command to rooms/commands through the workload API:
 *
 *   {"command": "lights", "value": "on", "confidence": 0.93, "text": "turn the lights on",
 *    "source": "a.wav"}
 *
 *   voice-commands [--model DIR] [--min-coverage C] [--collection C] [--dry-run] [FILE...]
 *
 * FILEs are WAV (PCM, 16 kHz, mono, 16-bit) or raw samples of that kind; without FILEs it
 * reads every *.wav and *.raw in /data/inbox (a microphone workload or the operator puts
 * them there) and moves each to /data/inbox/done afterwards. It needs the grant
 * store:write:rooms/commands and nothing else: no network, no other collection.
 * --dry-run prints the intents instead of storing them (no API needed: for trying it out
 * and for bench/ingest.sh).
 *
 * A grammar alone makes the decoder force every sound onto some command, so each
 * utterance is decoded twice: with <others>, a loop of common words that are no command
 * words, and with <commands>. Speech that is not a command comes out of <commands> as a
 * short command stretched over a part of it: an intent is stored only when the command's
 * words cover at least --min-coverage (0.8) of the frames where the word loop found
 * speech, and its path scores better than the loop's. confidence = coverage (at most 1)
 * times 1 / (1 + exp(-margin / 20)), margin being the score difference per frame. The
 * figures were measured on speech synthesised with espeak-ng (tests/system/test-voice.sh):
 * commands covered 0.88 and more, unrelated sentences 0.73 at most. A real microphone
 * in a real room wants its own measurement. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <pocketsphinx.h>
#include <sphinxbase/jsgf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "osmose/api-client.h"

#define MAX_AUDIO (16000 * 2 * 60)   /* one minute of audio per file */

typedef struct recogniser {
        ps_decoder_t *ps;           /* searches "commands" and "others" */
        double min_coverage;        /* of the speech frames, by the command's words */
} recogniser;

#define MARGIN_SCALE 20.0           /* score units per frame that make a confidence of 0.73 */

static double now_s(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

/* A decoder with two FSG searches built from the public rules of commands.gram. */
static ps_decoder_t *decoder(const char *model) {
        char hmm[1024], dict[1024], gram[1024];
        snprintf(hmm, sizeof hmm, "%s/en-us", model);
        snprintf(dict, sizeof dict, "%s/commands.dict", model);
        snprintf(gram, sizeof gram, "%s/commands.gram", model);
        cmd_ln_t *c = cmd_ln_init(NULL, ps_args(), TRUE, "-hmm", hmm, "-dict", dict, "-samprate", "16000",
                                  "-logfn", "/dev/null", NULL);
        ps_decoder_t *ps = c ? ps_init(c) : NULL;
        jsgf_t *g = ps ? jsgf_parse_file(gram, NULL) : NULL;
        if (!g)
                return NULL;
        static const char *const searches[] = { "commands", "others" };
        for (size_t i = 0; i < 2; i++) {
                char name[64];
                snprintf(name, sizeof name, "commands.%s", searches[i]);
                jsgf_rule_t *rule = jsgf_get_rule(g, name);
                fsg_model_t *fsg = rule ? jsgf_build_fsg(g, rule, ps_get_logmath(ps), 6.5) : NULL;
                if (!fsg || ps_set_fsg(ps, searches[i], fsg) < 0) {
                        jsgf_grammar_free(g);
                        return NULL;
                }
        }
        jsgf_grammar_free(g);
        return ps;
}

/* Samples of a WAV file (PCM 16-bit mono 16 kHz) or of a raw file. */
static int16_t *load_audio(const char *path, size_t *n, const char **why) {
        FILE *f = fopen(path, "rb");
        if (!f) {
                *why = strerror(errno);
                return NULL;
        }
        unsigned char *buf = malloc(MAX_AUDIO + 44);
        size_t len = buf ? fread(buf, 1, MAX_AUDIO + 44, f) : 0;
        fclose(f);
        if (!buf) {
                *why = "out of memory";
                return NULL;
        }
        size_t off = 0, data_len = len;
        if (len >= 12 && memcmp(buf, "RIFF", 4) == 0 && memcmp(buf + 8, "WAVE", 4) == 0) {
                bool fmt_ok = false;
                data_len = 0;
                for (size_t p = 12; p + 8 <= len;) {
                        uint32_t sz = (uint32_t) buf[p + 4] | (uint32_t) buf[p + 5] << 8 | (uint32_t) buf[p + 6] << 16 |
                                      (uint32_t) buf[p + 7] << 24;
                        if (memcmp(buf + p, "fmt ", 4) == 0 && sz >= 16 && p + 8 + 16 <= len) {
                                const unsigned char *q = buf + p + 8;
                                unsigned fmt = q[0] | q[1] << 8, ch = q[2] | q[3] << 8, bits = q[14] | q[15] << 8;
                                uint32_t rate = (uint32_t) q[4] | (uint32_t) q[5] << 8 | (uint32_t) q[6] << 16 |
                                                (uint32_t) q[7] << 24;
                                fmt_ok = fmt == 1 && ch == 1 && bits == 16 && rate == 16000;
                        } else if (memcmp(buf + p, "data", 4) == 0) {
                                off = p + 8;
                                data_len = OSM_MIN((size_t) sz, len - off);
                                break;
                        }
                        if (sz > len)
                                break;
                        p += 8 + sz + (sz & 1);
                }
                if (!fmt_ok || off == 0) {
                        free(buf);
                        *why = "not a PCM 16-bit mono 16 kHz WAV file (convert: sox IN -r 16000 -c 1 -b 16 OUT.wav)";
                        return NULL;
                }
        }
        *n = data_len / 2;
        int16_t *s = malloc(*n * 2 + 2);
        if (s)
                memcpy(s, buf + off, *n * 2);   /* little-endian, as the gateways are */
        free(buf);
        if (!s)
                *why = "out of memory";
        return s;
}

/* Decode samples with d; returns the hypothesis (owned by d) and its acoustic score. */
static const char *decode(ps_decoder_t *d, const int16_t *s, size_t n, int32 *score, int *frames) {
        ps_start_utt(d);
        for (size_t i = 0; i < n; i += 2048)
                ps_process_raw(d, s + i, OSM_MIN((size_t) 2048, n - i), FALSE, FALSE);
        ps_end_utt(d);
        *frames = ps_get_n_frames(d);
        return ps_get_hyp(d, score);
}

/* Frames covered by the words of the last hypothesis (silence and fillers left out). */
static int word_frames(ps_decoder_t *d) {
        int frames = 0;
        for (ps_seg_t *seg = ps_seg_iter(d); seg; seg = ps_seg_next(seg)) {
                const char *w = ps_seg_word(seg);
                int sf, ef;
                if (!w || w[0] == '<' || w[0] == '[')
                        continue;
                ps_seg_frames(seg, &sf, &ef);
                frames += ef - sf + 1;
        }
        return frames;
}

/* "lights on" → {"command":"lights","value":"on"}; NULL if the words are no command. */
static json_t *intent(const char *text) {
        static const char *const units[] = { "one", "two", "three", "four", "five", "six", "seven", "eight", "nine" };
        static const struct { const char *w; int v; } numbers[] = {
                { "ten", 10 }, { "eleven", 11 }, { "twelve", 12 }, { "thirteen", 13 }, { "fourteen", 14 },
                { "fifteen", 15 }, { "sixteen", 16 }, { "seventeen", 17 }, { "eighteen", 18 }, { "nineteen", 19 },
                { "twenty", 20 }, { "thirty", 30 },
        };
        char words[32][24];
        int n = 0;
        for (const char *p = text; *p && n < 32;) {
                while (*p == ' ')
                        p++;
                size_t l = strcspn(p, " ");
                if (!l)
                        break;
                snprintf(words[n++], sizeof words[0], "%.*s", (int) l, p);
                p += l;
        }
        for (int i = 0; i < n; i++) {
                if (strcmp(words[i], "lights") == 0)
                        for (int j = 0; j < n; j++)
                                if (strcmp(words[j], "on") == 0 || strcmp(words[j], "off") == 0)
                                        return json_pack("{s:s, s:s}", "command", "lights", "value", words[j]);
                if (strcmp(words[i], "blinds") == 0 && n > 0 && (strcmp(words[0], "open") == 0 || strcmp(words[0], "close") == 0))
                        return json_pack("{s:s, s:s}", "command", "blinds", "value", words[0]);
                if (strcmp(words[i], "to") == 0 && i + 1 < n) {
                        for (size_t k = 0; k < OSM_ARRAY_SIZE(numbers); k++) {
                                if (strcmp(words[i + 1], numbers[k].w) != 0)
                                        continue;
                                int v = numbers[k].v;
                                for (size_t u = 0; v == 20 && i + 2 < n && u < OSM_ARRAY_SIZE(units); u++)
                                        if (strcmp(words[i + 2], units[u]) == 0)
                                                v += (int) u + 1;
                                return json_pack("{s:s, s:i}", "command", "temperature", "value", v);
                        }
                }
        }
        return NULL;
}

/* Recognise one file; *out is the intent record or NULL (no command). 0 or -1 (*why). */
static int recognise(recogniser *rc, const char *path, json_t **out, const char **why) {
        size_t n;
        *out = NULL;
        int16_t *s = load_audio(path, &n, why);
        if (!s)
                return -1;
        double t0 = now_s();
        int32 cscore = 0, oscore = 0;
        int frames = 0;
        /* <others> first: live cepstral mean normalisation then has adapted to this
         * file's sound before the pass that counts. */
        char text[256], other_text[256];
        ps_set_search(rc->ps, "others");
        const char *other = decode(rc->ps, s, n, &oscore, &frames);
        snprintf(other_text, sizeof other_text, "%s", other ? other : "");
        int speech = word_frames(rc->ps);   /* where the word loop found speech */
        ps_set_search(rc->ps, "commands");
        const char *hyp = decode(rc->ps, s, n, &cscore, &frames);
        snprintf(text, sizeof text, "%s", hyp ? hyp : "");
        double coverage = speech > 0 ? (double) word_frames(rc->ps) / speech : 0;
        double margin = hyp ? ((double) cscore - (double) oscore) / (frames > 0 ? frames : 1) : -1e9;
        double confidence = OSM_MIN(coverage, 1.0) / (1.0 + exp(-margin / MARGIN_SCALE));
        double secs = (double) n / 16000.0, took = now_s() - t0;
        free(s);
        fprintf(stderr, "voice-commands: %s: \"%s\" (or \"%s\") coverage %.2f, margin %.1f, confidence %.2f, %.2fs of audio in %.2fs\n",
                path, text, other_text, coverage, margin, confidence, secs, took);
        json_t *it = text[0] && margin > 0 && coverage >= rc->min_coverage ? intent(text) : NULL;
        if (it) {
                const char *base_name = strrchr(path, '/');
                json_object_set_new(it, "confidence", json_real(round(confidence * 1000) / 1000));
                json_object_set_new(it, "text", json_string(text));
                json_object_set_new(it, "source", json_string(base_name ? base_name + 1 : path));
                json_object_set_new(it, "audio_seconds", json_real(round(secs * 1000) / 1000));
                json_object_set_new(it, "decode_seconds", json_real(round(took * 1000) / 1000));
        }
        *out = it;
        return 0;
}

static int handle(recogniser *rc, osm_api_client *api, const char *collection, const char *path, int *stored) {
        const char *why = NULL;
        json_t *it = NULL;
        if (recognise(rc, path, &it, &why) < 0) {
                fprintf(stderr, "voice-commands: %s: %s\n", path, why);
                return -1;
        }
        if (!it)
                return 0;
        if (!api) {
                char *t = json_dumps(it, JSON_COMPACT);
                printf("%s\n", t);
                free(t);
                json_decref(it);
                (*stored)++;
                return 0;
        }
        char id[64];
        osm_client_error err = { 0 };
        int r = osm_api_put(api, collection, it, id, &err);
        char *text = json_dumps(it, JSON_COMPACT);
        if (r < 0)
                fprintf(stderr, "voice-commands: cannot store %s: %s\n", text, err.message);
        else {
                printf("%s %s\n", id, text);
                (*stored)++;
        }
        free(text);
        json_decref(it);
        return r < 0 ? -1 : 0;
}

static bool audio_name(const char *n) {
        size_t l = strlen(n);
        return l > 4 && n[0] != '.' && (strcmp(n + l - 4, ".wav") == 0 || strcmp(n + l - 4, ".raw") == 0);
}

int main(int argc, char **argv) {
        static const struct option opts[] = {
                { "model", required_argument, NULL, 'm' }, { "min-coverage", required_argument, NULL, 't' },
                { "collection", required_argument, NULL, 'c' }, { "dry-run", no_argument, NULL, 'n' },
                { "help", no_argument, NULL, 'h' }, {},
        };
        const char *model = "/usr/share/voice-commands", *collection = "rooms/commands";
        recogniser rc = { .min_coverage = 0.8 };
        bool dry = false;
        int c;
        while ((c = getopt_long(argc, argv, "m:t:c:nh", opts, NULL)) != -1) {
                switch (c) {
                case 'm': model = optarg; break;
                case 't': rc.min_coverage = atof(optarg); break;
                case 'c': collection = optarg; break;
                case 'n': dry = true; break;
                case 'h':
                        printf("Usage: voice-commands [--model DIR] [--min-coverage C] [--collection C] [--dry-run] [FILE...]\n"
                               "Recognise spoken commands in 16 kHz mono audio; write intents to %s.\n", collection);
                        return 0;
                default: return 2;
                }
        }
        rc.ps = decoder(model);
        if (!rc.ps) {
                fprintf(stderr, "voice-commands: cannot load the models in %s\n", model);
                return 1;
        }
        /* Say which network interfaces this process can see (in its sandbox: only lo,
         * since the workload has no network grant): operators and tests check it. */
        FILE *nd = fopen("/proc/net/dev", "r");
        char line[256], ifs[256] = "";
        for (int i = 0; nd && fgets(line, sizeof line, nd); i++) {
                char *colon = strchr(line, ':');
                if (i < 2 || !colon)
                        continue;
                *colon = 0;
                char *name = line + strspn(line, " ");
                size_t l = strlen(ifs);
                snprintf(ifs + l, sizeof ifs - l, "%s%s", l ? " " : "", name);
        }
        if (nd)
                fclose(nd);
        fprintf(stderr, "voice-commands: network interfaces: %s\n", ifs[0] ? ifs : "(none)");
        const char *sock = getenv("OSMOSE_API");
        osm_api_client *api = NULL;
        if (!dry && osm_api_connect(sock ? sock : "/run/osmose/api.sock", &api) < 0) {
                fprintf(stderr, "voice-commands: cannot reach the workload API\n");
                return 1;
        }
        int stored = 0, failed = 0;
        if (optind < argc) {
                for (int i = optind; i < argc; i++)
                        failed += handle(&rc, api, collection, argv[i], &stored) < 0;
        } else {
                DIR *d = opendir("/data/inbox");
                struct dirent *e;
                mkdir("/data/inbox/done", 0755);
                while (d && (e = readdir(d))) {
                        if (!audio_name(e->d_name))
                                continue;
                        char path[600], done[700];
                        snprintf(path, sizeof path, "/data/inbox/%s", e->d_name);
                        snprintf(done, sizeof done, "/data/inbox/done/%s", e->d_name);
                        failed += handle(&rc, api, collection, path, &stored) < 0;
                        rename(path, done);
                }
                if (d)
                        closedir(d);
        }
        fprintf(stderr, "voice-commands: %d command(s) stored, %d file(s) failed\n", stored, failed);
        if (api)
                osm_api_close(api);
        ps_free(rc.ps);
        return failed ? 1 : 0;
}
