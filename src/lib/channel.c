/* channel.c: the channel document (format in include/osmose/channel.h): a strict parser
 * that checks the signature before it reads the body, and the publisher's signer. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "osmose/channel.h"
#include "osmose/varlink.h"

#define SIG_B64 (sodium_base64_ENCODED_LEN(OSM_SIG_BYTES, sodium_base64_VARIANT_URLSAFE_NO_PADDING))

osm_channel *osm_channel_new(const char *name) {
        osm_channel *c = calloc(1, sizeof *c);
        if (!c || !(c->name = strdup(name)))
                return osm_channel_free(c);
        return c;
}

osm_channel *osm_channel_free(osm_channel *c) {
        if (!c)
                return NULL;
        for (size_t i = 0; i < c->n_versions; i++)
                free(c->versions[i].notes);
        free(c->versions);
        free(c->name);
        free(c);
        return NULL;
}

const osm_channel_version *osm_channel_find(const osm_channel *c, int64_t version) {
        for (size_t i = 0; i < c->n_versions; i++)
                if (c->versions[i].version == version)
                        return &c->versions[i];
        return NULL;
}

const osm_channel_version *osm_channel_find_bundle(const osm_channel *c, const char *bundle_hex) {
        for (size_t i = 0; i < c->n_versions; i++)
                if (strcmp(c->versions[i].bundle, bundle_hex) == 0)
                        return &c->versions[i];
        return NULL;
}

static bool hex_id_ok(const char *s) {
        if (strlen(s) != OSM_HASH_BYTES * 2)
                return false;
        for (; *s; s++)
                if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
                        return false;
        return true;
}

/* The checks of one entry against the one before it (prev may be NULL). */
static int check_entry(const osm_channel *c, size_t i, int64_t version, const char *bundle, uint64_t size,
                       const char *notes, osm_error *err) {
        if (version < 1 || version > OSM_CHANNEL_MAX_SEQUENCE)
                return osm_error_set(err, -EINVAL, 0, "versions[%zu].version: expected an integer from 1 to 2^53", i);
        if (i > 0 && version <= c->versions[i - 1].version)
                return osm_error_set(err, -EINVAL, 0, "versions[%zu].version: %lld is not higher than the "
                            "version before it (%lld)", i, (long long) version,
                            (long long) c->versions[i - 1].version);
        if (!hex_id_ok(bundle))
                return osm_error_set(err, -EINVAL, 0, "versions[%zu].bundle: expected a bundle id (64 "
                            "lowercase hex digits)", i);
        for (size_t k = 0; k < i; k++)
                if (strcmp(c->versions[k].bundle, bundle) == 0)
                        return osm_error_set(err, -EINVAL, 0, "versions[%zu].bundle: the same bundle as "
                                    "version %lld", i, (long long) c->versions[k].version);
        if (size < 1 || size > OSM_CHANNEL_MAX_BUNDLE)
                return osm_error_set(err, -EINVAL, 0, "versions[%zu].size: expected an integer from 1 "
                            "to 2^50", i);
        if (notes && (strlen(notes) > OSM_CHANNEL_MAX_NOTES || !osm_text_line_ok(notes)))
                return osm_error_set(err, -EINVAL, 0, "versions[%zu].notes: expected one line of text of "
                            "at most %d bytes", i, OSM_CHANNEL_MAX_NOTES);
        return 0;
}

int osm_channel_append(osm_channel *c, int64_t version, const char *bundle_hex, uint64_t size,
                       const char *notes, osm_error *err) {
        if (c->n_versions >= OSM_CHANNEL_MAX_VERSIONS)
                return osm_error_set(err, -EINVAL, 0, "versions: already %d entries", OSM_CHANNEL_MAX_VERSIONS);
        int r = check_entry(c, c->n_versions, version, bundle_hex, size, notes, err);
        if (r < 0)
                return r;
        osm_channel_version *v = realloc(c->versions, (c->n_versions + 1) * sizeof *v);
        if (!v)
                return -ENOMEM;
        c->versions = v;
        osm_channel_version *e = &v[c->n_versions];
        *e = (osm_channel_version) { .version = version, .size = size };
        memcpy(e->bundle, bundle_hex, OSM_HASH_HEX);
        if (notes && !(e->notes = strdup(notes)))
                return -ENOMEM;
        c->n_versions++;
        return 0;
}

static int check_header(const osm_channel *c, osm_error *err) {
        if (!c->name || !osm_name_valid(c->name, OSM_CHANNEL_MAX_NAME, false))
                return osm_error_set(err, -EINVAL, 0, "name: expected 1-%d characters of A-Z a-z 0-9 . _ -",
                            OSM_CHANNEL_MAX_NAME);
        if (c->sequence < 1 || c->sequence > OSM_CHANNEL_MAX_SEQUENCE)
                return osm_error_set(err, -EINVAL, 0, "sequence: expected an integer from 1 to 2^53");
        if (c->published < 0 || c->published > OSM_CHANNEL_MAX_TIME)
                return osm_error_set(err, -EINVAL, 0, "published: expected seconds since the epoch");
        if (c->expires < 0 || c->expires > OSM_CHANNEL_MAX_TIME)
                return osm_error_set(err, -EINVAL, 0, "expires: expected seconds since the epoch");
        return 0;
}

int osm_channel_check(const osm_channel *c, osm_error *err) {
        int r = check_header(c, err);
        if (r < 0)
                return r;
        if (c->n_versions > OSM_CHANNEL_MAX_VERSIONS)
                return osm_error_set(err, -EINVAL, 0, "versions: more than %d entries", OSM_CHANNEL_MAX_VERSIONS);
        for (size_t i = 0; i < c->n_versions; i++) {
                const osm_channel_version *v = &c->versions[i];
                if ((r = check_entry(c, i, v->version, v->bundle, v->size, v->notes, err)) < 0)
                        return r;
        }
        return 0;
}

static int get_int(json_t *v, const char *field, int64_t min, int64_t max, int64_t *out,
                   osm_error *err) {
        if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
                return osm_error_set(err, -EINVAL, 0, "%s: expected an integer from %lld to %lld", field,
                            (long long) min, (long long) max);
        *out = json_integer_value(v);
        return 0;
}

static int parse_version(osm_channel *c, size_t i, json_t *o, osm_error *err) {
        char field[48];
        if (!json_is_object(o))
                return osm_error_set(err, -EINVAL, 0, "versions[%zu]: expected an object", i);
        int64_t version = 0, size = 0;
        const char *bundle = NULL, *notes = NULL;
        const char *key;
        json_t *v;
        json_object_foreach(o, key, v) {
                int r = 0;
                if (strcmp(key, "version") == 0) {
                        snprintf(field, sizeof field, "versions[%zu].version", i);
                        r = get_int(v, field, 1, OSM_CHANNEL_MAX_SEQUENCE, &version, err);
                } else if (strcmp(key, "size") == 0) {
                        snprintf(field, sizeof field, "versions[%zu].size", i);
                        r = get_int(v, field, 1, (int64_t) OSM_CHANNEL_MAX_BUNDLE, &size, err);
                } else if (strcmp(key, "bundle") == 0) {
                        if (!json_is_string(v))
                                return osm_error_set(err, -EINVAL, 0, "versions[%zu].bundle: expected a string", i);
                        bundle = json_string_value(v);
                } else if (strcmp(key, "notes") == 0) {
                        if (!json_is_string(v))
                                return osm_error_set(err, -EINVAL, 0, "versions[%zu].notes: expected a string", i);
                        notes = json_string_value(v);
                } else
                        return osm_error_set(err, -EINVAL, 0, "versions[%zu]: unknown field \"%s\"", i, key);
                if (r < 0)
                        return r;
        }
        if (!version || !bundle || !size)
                return osm_error_set(err, -EINVAL, 0, "versions[%zu]: version, bundle and size are required", i);
        return osm_channel_append(c, version, bundle, (uint64_t) size, notes, err);
}

int osm_channel_parse_body(const char *body, size_t len, osm_channel **out, osm_error *err) {
        if (len > OSM_CHANNEL_MAX_SIZE)
                return osm_error_set(err, -EINVAL, 0, "channel: larger than %u bytes", OSM_CHANNEL_MAX_SIZE);
        json_error_t jerr;
        _cleanup_json_ json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!root)
                return osm_error_set(err, -EINVAL, 0, "channel: not valid JSON: line %d: %s", jerr.line, jerr.text);
        if (!json_is_object(root))
                return osm_error_set(err, -EINVAL, 0, "channel: expected a JSON object");
        _cleanup_channel_ osm_channel *c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        const char *format = NULL;
        json_t *versions = NULL;
        const char *key;
        json_t *v;
        json_object_foreach(root, key, v) {
                int r = 0;
                if (strcmp(key, "format") == 0) {
                        format = json_string_value(v);
                        if (!format || strcmp(format, OSM_CHANNEL_FORMAT) != 0)
                                return osm_error_set(err, -EINVAL, 0, "format: expected \"%s\"", OSM_CHANNEL_FORMAT);
                } else if (strcmp(key, "name") == 0) {
                        if (!json_is_string(v) || !osm_name_valid(json_string_value(v), OSM_CHANNEL_MAX_NAME, false))
                                return osm_error_set(err, -EINVAL, 0, "name: expected 1-%d characters of "
                                            "A-Z a-z 0-9 . _ -", OSM_CHANNEL_MAX_NAME);
                        if (!(c->name = strdup(json_string_value(v))))
                                return -ENOMEM;
                } else if (strcmp(key, "sequence") == 0) {
                        r = get_int(v, "sequence", 1, OSM_CHANNEL_MAX_SEQUENCE, &c->sequence, err);
                } else if (strcmp(key, "published") == 0) {
                        r = get_int(v, "published", 0, OSM_CHANNEL_MAX_TIME, &c->published, err);
                } else if (strcmp(key, "expires") == 0) {
                        r = get_int(v, "expires", 1, OSM_CHANNEL_MAX_TIME, &c->expires, err);
                } else if (strcmp(key, "versions") == 0) {
                        if (!json_is_array(v))
                                return osm_error_set(err, -EINVAL, 0, "versions: expected an array");
                        if (json_array_size(v) > OSM_CHANNEL_MAX_VERSIONS)
                                return osm_error_set(err, -EINVAL, 0, "versions: more than %d entries",
                                            OSM_CHANNEL_MAX_VERSIONS);
                        versions = v;
                } else
                        return osm_error_set(err, -EINVAL, 0, "channel: unknown field \"%s\"", key);
                if (r < 0)
                        return r;
        }
        if (!format || !c->name || !c->sequence || !versions)
                return osm_error_set(err, -EINVAL, 0, "channel: format, name, sequence and versions are required");
        size_t i;
        json_array_foreach(versions, i, v) {
                int r = parse_version(c, i, v, err);
                if (r < 0)
                        return r;
        }
        *out = steal_pointer(&c);
        return 0;
}

/* The signed message: "osmose-channel-sig-v1\0" || body (plain Ed25519, not the
 * prehashed variant, so that any Ed25519 implementation can check it). */
static uint8_t *sig_message(const char *body, size_t len, size_t *msg_len) {
        uint8_t *m = malloc(sizeof OSM_CHANNEL_SIG_CONTEXT + len);
        if (!m)
                return NULL;
        memcpy(m, OSM_CHANNEL_SIG_CONTEXT, sizeof OSM_CHANNEL_SIG_CONTEXT);
        memcpy(m + sizeof OSM_CHANNEL_SIG_CONTEXT, body, len);
        *msg_len = sizeof OSM_CHANNEL_SIG_CONTEXT + len;
        return m;
}

int osm_channel_parse(const char *text, size_t len, osm_channel **out, osm_error *err) {
        if (len > OSM_CHANNEL_MAX_SIZE)
                return osm_error_set(err, -EINVAL, 0, "channel: larger than %u bytes", OSM_CHANNEL_MAX_SIZE);
        if (len < 2 || text[len - 1] != '\n' || memchr(text, 0, len))
                return osm_error_set(err, -EINVAL, 0, "channel: expected text ending in a signature line");
        /* The last line: "osmose-channel-signature KEY SIG\n". */
        size_t start = len - 1;
        while (start > 0 && text[start - 1] != '\n')
                start--;
        if (start == 0)
                return osm_error_set(err, -EINVAL, 0, "channel: no body before the signature line");
        const char *line = text + start;
        size_t line_len = len - 1 - start;
        size_t plen = strlen(OSM_CHANNEL_SIG_PREFIX);
        char key[OSM_PUBKEY_B64], sig_b64[SIG_B64];
        if (line_len <= plen || memcmp(line, OSM_CHANNEL_SIG_PREFIX, plen) != 0)
                return osm_error_set(err, -EINVAL, 0, "channel: the last line is not \"%s" "KEY SIGNATURE\"",
                            OSM_CHANNEL_SIG_PREFIX);
        const char *k = line + plen, *end = line + line_len;
        const char *sp = memchr(k, ' ', (size_t) (end - k));
        if (!sp || (size_t) (sp - k) != sizeof key - 1 || (size_t) (end - sp - 1) != sizeof sig_b64 - 1)
                return osm_error_set(err, -EINVAL, 0, "channel: signature line: expected a 43-character key "
                            "and an 86-character signature");
        memcpy(key, k, sizeof key - 1);
        key[sizeof key - 1] = 0;
        memcpy(sig_b64, sp + 1, sizeof sig_b64 - 1);
        sig_b64[sizeof sig_b64 - 1] = 0;
        uint8_t pk[OSM_PUBKEY_BYTES], sig[OSM_SIG_BYTES];
        size_t sl;
        const char *send;
        if (osm_pubkey_decode(key, pk) < 0)
                return osm_error_set(err, -EINVAL, 0, "channel: signature line: the key is not valid base64");
        if (sodium_base642bin(sig, sizeof sig, sig_b64, strlen(sig_b64), NULL, &sl, &send,
                              sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 || sl != sizeof sig || *send)
                return osm_error_set(err, -EINVAL, 0, "channel: signature line: the signature is not valid base64");
        size_t mlen;
        _cleanup_free_ uint8_t *msg = sig_message(text, start, &mlen);
        if (!msg)
                return -ENOMEM;
        if (osm_verify(pk, msg, mlen, sig) != 0)
                return osm_error_set(err, -EBADMSG, 0, "channel: the signature by %s does not match the "
                            "contents: tampered with or corrupt", key);
        /* Only now, signed: the body. */
        osm_channel *c = NULL;
        int r = osm_channel_parse_body(text, start, &c, err);
        if (r < 0)
                return r;
        memcpy(c->signer, pk, sizeof pk);
        crypto_generichash(c->digest, sizeof c->digest, (const uint8_t *) text, len, NULL, 0);
        *out = c;
        return 0;
}

int osm_channel_sign(osm_channel *c, const osm_keypair *kp, char **out, size_t *out_len) {
        if (osm_channel_check(c, NULL) < 0)
                return -EINVAL;
        _cleanup_json_ json_t *vs = json_array();
        for (size_t i = 0; vs && i < c->n_versions; i++) {
                const osm_channel_version *v = &c->versions[i];
                json_t *o = json_pack("{s:I, s:s, s:I}", "version", (json_int_t) v->version,
                                      "bundle", v->bundle, "size", (json_int_t) v->size);
                if (o && v->notes)
                        json_object_set_new(o, "notes", json_string(v->notes));
                if (!o || json_array_append_new(vs, o) < 0)
                        return -ENOMEM;
        }
        _cleanup_json_ json_t *root = json_pack("{s:s, s:s, s:I, s:O}", "format", OSM_CHANNEL_FORMAT,
                                                "name", c->name, "sequence", (json_int_t) c->sequence,
                                                "versions", vs);
        if (!root)
                return -ENOMEM;
        if (c->published)
                json_object_set_new(root, "published", json_integer(c->published));
        if (c->expires)
                json_object_set_new(root, "expires", json_integer(c->expires));
        _cleanup_free_ char *body = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (!body)
                return -ENOMEM;
        size_t blen = strlen(body);
        char *text = malloc(blen + 1 + strlen(OSM_CHANNEL_SIG_PREFIX) + OSM_PUBKEY_B64 + SIG_B64 + 2);
        if (!text)
                return -ENOMEM;
        memcpy(text, body, blen);
        text[blen++] = '\n';
        uint8_t sig[OSM_SIG_BYTES];
        size_t mlen;
        _cleanup_free_ uint8_t *msg = sig_message(text, blen, &mlen);
        if (!msg) {
                free(text);
                return -ENOMEM;
        }
        osm_sign(kp, msg, mlen, sig);
        char key[OSM_PUBKEY_B64], sig_b64[SIG_B64];
        osm_pubkey_encode(kp->pk, key);
        sodium_bin2base64(sig_b64, sizeof sig_b64, sig, sizeof sig, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        int n = sprintf(text + blen, "%s%s %s\n", OSM_CHANNEL_SIG_PREFIX, key, sig_b64);
        size_t len = blen + (size_t) n;
        memcpy(c->signer, kp->pk, sizeof c->signer);
        crypto_generichash(c->digest, sizeof c->digest, (const uint8_t *) text, len, NULL, 0);
        *out = text;
        *out_len = len;
        return 0;
}

/* The words of list: 1 if one is want, 0 if none is (or want is NULL), -1 if a word is
 * not a key. */
static int keys_each(const char *list, const uint8_t want[OSM_PUBKEY_BYTES]) {
        const char *p = list ? list : "";
        for (;;) {
                p += strspn(p, " ,\t");
                if (!*p)
                        return 0;
                size_t n = strcspn(p, " ,\t");
                char word[OSM_PUBKEY_B64 + 1];
                uint8_t pk[OSM_PUBKEY_BYTES];
                if (n >= sizeof word)
                        return -1;
                memcpy(word, p, n);
                word[n] = 0;
                if (osm_pubkey_decode(word, pk) < 0)
                        return -1;
                if (want && memcmp(pk, want, OSM_PUBKEY_BYTES) == 0)
                        return 1;
                p += n;
        }
}

bool osm_channel_keys_ok(const char *list) {
        return keys_each(list, NULL) == 0;
}

bool osm_channel_key_listed(const char *list, const uint8_t pk[OSM_PUBKEY_BYTES]) {
        return keys_each(list, pk) == 1;
}
