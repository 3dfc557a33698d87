/* test-manifest.c: the manifest parser: accepted documents, and refusals that name the field. */
#include <stdio.h>
#include <string.h>

#include "osmose/manifest.h"
#include "tap.h"

/* osm_cap_check with its message in err (512 bytes). */
static int cap_check(const char *cap, char *err) {
        osm_error e;
        int r = osm_cap_check(cap, &e);
        snprintf(err, 512, "%s", r < 0 ? e.message : "");
        return r;
}

static int parse(const char *text, osm_manifest **m, char *err) {
        osm_error e = {};
        int r = osm_manifest_parse(text, strlen(text), m, &e);
        snprintf(err, 512, "%s", e.message);   /* "" after a success, as the parser left it */
        return r;
}

/* The parse must fail with an error starting with want_prefix. */
static void refused(const char *text, const char *want_prefix, const char *what) {
        osm_manifest *m = NULL;
        char err[512] = "";
        int r = parse(text, &m, err);
        tap_ok(r == -22 && strncmp(err, want_prefix, strlen(want_prefix)) == 0, "%s: refused naming %s (got: %s)",
               what, want_prefix, err);
        osm_manifest_free(m);
}

static void test_accepted(void) {
        osm_manifest *m = NULL;
        char err[512];
        const char *full =
                "{\"name\":\"counter\",\"version\":3,\"description\":\"counts\","
                "\"entrypoint\":[\"/bin/counter\",\"-v\"],\"environment\":{\"B\":\"2\",\"A\":\"1\"},"
                "\"resources\":{\"memory\":\"64M\",\"cpu\":50,\"pids\":32,\"disk\":1048576},"
                "\"capabilities\":[\"store:read:sensors/*\",\"network\",\"publish:_count._tcp\",\"device:/dev/video0\"],"
                "\"restart\":\"on-failure\"}";
        int r = parse(full, &m, err);
        TAP_EQ_INT(r, 0, "a full manifest parses");
        if (r == 0) {
                TAP_EQ_STR(m->name, "counter", "name");
                TAP_EQ_INT(m->version, 3, "version");
                TAP_EQ_INT(m->argc, 2, "argc");
                TAP_EQ_STR(m->argv[1], "-v", "argv[1]");
                TAP_EQ_STR(m->env[0], "A=1", "environment sorted by key");
                TAP_EQ_INT(m->memory, 64 << 20, "memory in bytes");
                TAP_EQ_INT(m->cpu_percent, 50, "cpu");
                TAP_EQ_INT(m->pids, 32, "pids");
                TAP_EQ_INT(m->disk, 1048576, "disk as an integer");
                TAP_EQ_INT(m->restart, OSM_RESTART_ON_FAILURE, "restart policy");
                TAP_EQ_INT(m->n_caps, 4, "four capabilities");
                TAP_OK(osm_manifest_requests(m, "network"), "requests network");
                TAP_OK(!osm_manifest_requests(m, "store:read:sensors/x"), "a grant must match a request exactly");
                json_t *j = osm_manifest_to_json(m);
                char *text = json_dumps(j, JSON_COMPACT);
                osm_manifest *m2 = NULL;
                r = parse(text, &m2, err);
                TAP_EQ_INT(r, 0, "its JSON form parses again");
                osm_manifest_free(m2);
                free(text);
                json_decref(j);
        }
        osm_manifest_free(m);
        m = NULL;
        r = parse("{\"name\":\"a\",\"version\":1,\"entrypoint\":[\"/x\"]}", &m, err);
        TAP_EQ_INT(r, 0, "a minimal manifest parses");
        if (m)
                TAP_EQ_INT(m->restart, OSM_RESTART_NEVER, "restart defaults to never");
        osm_manifest_free(m);
}

static void test_refused(void) {
#define BASE "\"name\":\"a\",\"version\":1,\"entrypoint\":[\"/x\"]"
        refused("{" BASE ",\"color\":\"red\"}", "color: unknown field", "an unknown top-level field");
        refused("{" BASE ",\"resources\":{\"memory\":\"lots\"}}", "resources.memory: expected a size like \"64M\"", "a bad size");
        refused("{" BASE ",\"resources\":{\"gpu\":1}}", "resources.gpu: unknown field", "an unknown resource");
        refused("{" BASE ",\"resources\":{\"cpu\":0}}", "resources.cpu", "cpu 0");
        refused("{" BASE ",\"resources\":{\"pids\":\"many\"}}", "resources.pids", "pids not an integer");
        refused("{\"name\":\"a\",\"version\":1,\"entrypoint\":[\"x\"]}", "entrypoint[0]", "a relative entrypoint");
        refused("{\"name\":\"a\",\"version\":1,\"entrypoint\":[]}", "entrypoint", "an empty entrypoint");
        refused("{\"name\":\"a\",\"version\":1,\"entrypoint\":[\"/x\",3]}", "entrypoint[1]", "a non-string argument");
        refused("{\"name\":\"a\",\"version\":\"1\",\"entrypoint\":[\"/x\"]}", "version", "a version as a string");
        refused("{\"name\":\"a\",\"version\":\"1.2.0\",\"entrypoint\":[\"/x\"]}",
                "version: \"1.2.0\" is a string: a version is an integer that grows with every release",
                "a semantic-version string, with the reason");
        refused("{\"name\":\"a\",\"version\":0,\"entrypoint\":[\"/x\"]}", "version", "version 0");
        refused("{\"name\":\"a\",\"version\":1.5,\"entrypoint\":[\"/x\"]}", "version", "a fractional version");
        refused("{\"name\":\"../etc\",\"version\":1,\"entrypoint\":[\"/x\"]}", "name", "a name with a slash");
        refused("{\"name\":\"" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" "\",\"version\":1,\"entrypoint\":[\"/x\"]}",
                "name", "a name over 48 characters");
        refused("{\"version\":1,\"entrypoint\":[\"/x\"]}", "name: missing", "a missing name");
        refused("{\"name\":\"a\",\"entrypoint\":[\"/x\"]}", "version: missing", "a missing version");
        refused("{\"name\":\"a\",\"version\":1}", "entrypoint: missing", "a missing entrypoint");
        refused("{" BASE ",\"environment\":{\"1X\":\"y\"}}", "environment.1X", "a bad variable name");
        refused("{" BASE ",\"environment\":{\"X\":1}}", "environment.X", "a non-string value");
        refused("{" BASE ",\"restart\":\"sometimes\"}", "restart", "an unknown restart policy");
        refused("{" BASE ",\"capabilities\":[\"root\"]}", "capabilities[0]: root: unknown capability", "an unknown capability");
        refused("{" BASE ",\"capabilities\":[\"store:read:../x\"]}", "capabilities[0]", "a store pattern with ..");
        refused("{" BASE ",\"capabilities\":[\"store:read:a*b\"]}", "capabilities[0]", "a star inside a pattern");
        refused("{" BASE ",\"capabilities\":[\"publish:_x._sctp\"]}", "capabilities[0]", "a service type over sctp");
        refused("{" BASE ",\"capabilities\":[\"device:/etc/passwd\"]}", "capabilities[0]", "a device outside /dev");
        refused("{" BASE ",\"capabilities\":[\"device:/dev/../etc\"]}", "capabilities[0]", "a device path with ..");
        refused("{" BASE ",\"capabilities\":[\"network\",\"network\"]}", "capabilities: \"network\" listed twice", "a duplicate");
        refused("{" BASE ",\"name\":\"b\"}", "manifest: not valid JSON", "a duplicated key");
        refused("[1,2]", "manifest: expected a JSON object", "an array");
        refused("{" BASE "", "manifest: not valid JSON", "truncated JSON");
}

static void test_limits(void) {
        /* limits */
        char big[16384];
        size_t off = (size_t) snprintf(big, sizeof big, "{\"name\":\"a\",\"version\":1,\"entrypoint\":[\"/x\"");
        for (int i = 0; i < OSM_MANIFEST_MAX_ARGS; i++)
                off += (size_t) snprintf(big + off, sizeof big - off, ",\"a\"");
        snprintf(big + off, sizeof big - off, "]}");
        refused(big, "entrypoint: more than", "too many arguments");
        char *huge = malloc(OSM_MANIFEST_MAX_SIZE + 100);
        memset(huge, ' ', OSM_MANIFEST_MAX_SIZE + 99);
        huge[OSM_MANIFEST_MAX_SIZE + 99] = 0;
        refused(huge, "manifest: larger than", "a manifest over 64 KiB");
        free(huge);
}

static void test_capabilities(void) {
        char err[512];
        /* capability syntax and pattern matching */
        const char *good[] = { "network", "discovery:read", "store:read:*", "store:write:sensors/temp",
                               "store:read:sensors/*", "store:read:sensors/t*", "publish:_http._tcp",
                               "publish:_osc-2._udp", "device:/dev/video0", "device:/dev/snd/pcmC0D0c" };
        for (size_t i = 0; i < sizeof good / sizeof *good; i++)
                tap_ok(osm_cap_check(good[i], NULL) == 0, "capability %s is valid", good[i]);
        const char *bad[] = { "", "net", "store:read:", "store:delete:x", "store:read:/abs", "publish:http._tcp",
                              "publish:_-x._tcp", "publish:_toolongservicename._tcp", "publish:_a--b._tcp",
                              "device:/dev/", "device:/dev//x", "discovery:write", "network:all" };
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
                tap_ok(cap_check(bad[i], err) == -22 && err[0], "capability '%s' is refused", bad[i]);
        TAP_OK(osm_cap_pattern_match("sensors/*", "sensors/temp"), "sensors/* matches sensors/temp");
        TAP_OK(!osm_cap_pattern_match("sensors/*", "sensorsX"), "sensors/* does not match sensorsX");
        TAP_OK(osm_cap_pattern_match("*", "anything/at/all"), "* matches everything");
        TAP_OK(!osm_cap_pattern_match("sensors/temp", "sensors/temp2"), "an exact pattern is exact");
}

int main(int argc, char **argv) {
        static const tap_case cases[] = {
                TAP_CASE(test_accepted),
                TAP_CASE(test_refused),
                TAP_CASE(test_limits),
                TAP_CASE(test_capabilities),
        };
        return tap_run(cases, TAP_N_CASES(cases), argc, argv);
}
