/* test-json-check.c: the quick object check says yes to the common records (else put
 * --batch silently takes the slow way) and leaves the doubtful ones to jansson. */
#include <jansson.h>
#include <string.h>

#include "osmose/json-check.h"
#include "tap.h"

static bool certain(const char *s) {
        return osm_json_object_certain(s, strlen(s));
}

static void test_yes(void) {
        static const char *const yes[] = {
                "{}", " {}\n", "{\"sensor\":\"room-a/t1\",\"celsius\":18.01,\"seq\":1}\n",
                "{\"a\": [1, -2.5e+10, 0.5, true, false, null, {\"b\": {}}], \"c\": \"x\\\"y\\\\z\\/\\n\"}\r\n",
                "{\"k\":\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"}", "{\"a\":{\"x\":1},\"b\":{\"x\":2}}",
                "{\"i\":-123456789012345678,\"z\":0,\"r\":0.0e-99,\"e\":1E5}",
        };
        for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
                TAP_OK(certain(yes[i]), "certain: %s", yes[i]);
                json_t *v = json_loads(yes[i], JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
                TAP_OK(json_is_object(v), "and jansson agrees: %s", yes[i]);
                json_decref(v);
        }
}

static void test_not_sure(void) {
        static const char *const no[] = {
                "", " ", "[]", "1", "\"s\"", "{", "{\"a\":1", "{\"a\":1}x", "{\"a\":1} {}", "{\"a\":1,}",
                "{\"a\":1,\"a\":2}", "{\"a\":01}", "{\"a\":1.}", "{\"a\":-}", "{\"a\":tru}", "{\"a\":truex}",
                "{\"a\":12x}", "{\"a\":\"\x01\"}", "{\"a\":\"\xc0\xaf\"}", "{\"a\":\"\xed\xa0\x80\"}",
                "{\"a\":\"\xf4\x90\x80\x80\"}", "{\"a\":\"\xc3\"}", "{\"a\":\"\\u0041\"}", "{\"k\\n\":1}",
                "{\"a\":\"\\x\"}", "{\"i\":9223372036854775808}", "{\"r\":1e309}", "{\"r\":1e999}", "{a:1}",
                "{\"a\" 1}", "{\"a\":[1 2]}",
        };
        for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
                TAP_OK(!certain(no[i]), "not sure: %s", no[i]);
        char deep[200] = "{\"a\":";
        for (int i = 0; i < 40; i++)
                strcat(deep, "[");
        strcat(deep, "1");
        for (int i = 0; i < 40; i++)
                strcat(deep, "]");
        strcat(deep, "}");
        TAP_OK(!certain(deep), "deep nesting: left to jansson");
}

int main(int argc, char **argv) {
        static const tap_case cases[] = { TAP_CASE(test_yes), TAP_CASE(test_not_sure) };
        return tap_run(cases, TAP_N_CASES(cases), argc, argv);
}
