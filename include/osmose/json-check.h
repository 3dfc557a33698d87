/* json-check.h: a quick "is this certainly a JSON object?" look at text, for the hot paths
 * that need jansson's verdict but not its tree: osmosectl put --batch checks each line and
 * sends it as it was read; the daemon keeps PutBatch records as their text (varlink.c). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* True if text[0..len) is one JSON object (whitespace around it allowed) that
 * json_loadb(text, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES) accepts. False means
 * "not sure": anything unusual (\u escapes, escapes in keys, long numbers, deep nesting,
 * many keys, invalid JSON) is left to jansson, which gives the verdict and its message.
 * Never true where jansson would refuse (tests/fuzz/fuzz-json-check.c checks that). */
bool osm_json_object_certain(const char *text, size_t len);

/* The same, and the text is exactly what osm_vl_dump() writes for the object jansson reads
 * from it (compact, reals as osm_jbuf_real writes them, the dumper's escapes): it can stand
 * for that object as it is. False means not sure. */
bool osm_json_object_canonical(const char *text, size_t len);

/* One look at a JSON object text for what a caller takes out of it without a tree: the
 * array at path (keys from the top object down: "parameters", "records"), each element of
 * which goes to fn with whether it is canonical as above (fn returns false to stop), and
 * the value of the top-level member top_key (e.g. "method"), as written. */
typedef bool (*osm_json_element_fn)(void *userdata, const char *value, size_t len, bool canonical);
typedef struct osm_json_scan_spec {
        const char *const *path;
        size_t path_len;
        osm_json_element_fn fn;
        void *userdata;
        const char *top_key;
        bool found;                /* out: the array was there */
        const char *top_value;     /* out: top_key's value, or NULL */
        size_t top_value_len;
} osm_json_scan_spec;
/* True if text is certain as osm_json_object_certain says (and fn never stopped). fn sees
 * elements as the scan passes them: on false, forget what it was given. */
bool osm_json_object_scan(const char *text, size_t len, osm_json_scan_spec *spec);

/* For text that osm_json_object_certain() accepts: the same JSON with no whitespace between
 * tokens and fractions without trailing zeros (18.10 as 18.1, 19.00 as 19.0), the same
 * values as jansson reads them; often canonical then. Writes at most len bytes to out and
 * returns their count. */
size_t osm_json_compact(const char *text, size_t len, char *out);
