/* test-varlink.c: parsing calls and replies, formatting, and checking parameters
 * against the compiled interface definitions. */
#include <math.h>
#include <stdint.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "osmose/varlink.h"
#include "tap.h"

static int parse(const char *s, osm_vl_call *c, osm_error *why) {
        return osm_vl_parse_call(s, strlen(s), c, why);
}

static void test_parse_call(void) {
        osm_vl_call c;
        osm_error why = {};
        TAP_OK(parse("{\"method\":\"io.osmose.Daemon.GetStatus\"}", &c, &why) == 0, "minimal call parses");
        TAP_EQ_STR(c.method, "io.osmose.Daemon.GetStatus", "method name");
        TAP_OK(json_is_object(c.parameters) && json_object_size(c.parameters) == 0, "absent parameters become {}");
        osm_vl_call_done(&c);
        TAP_OK(parse("{\"method\":\"a.b.C\",\"parameters\":{\"x\":1},\"more\":true}", &c, &why) == 0 && c.more,
               "more flag");
        osm_vl_call_done(&c);
        TAP_OK(parse("not json", &c, &why) == -EBADMSG, "garbage refused");
        TAP_OK(parse("[1,2]", &c, &why) == -EBADMSG, "array refused");
        TAP_OK(parse("{\"parameters\":{}}", &c, &why) == -EBADMSG, "missing method refused");
        TAP_OK(parse("{\"method\":5}", &c, &why) == -EBADMSG, "non-string method refused");
        TAP_OK(parse("{\"method\":\"a.b.C\",\"parameters\":[]}", &c, &why) == -EBADMSG, "array parameters refused");
        TAP_OK(parse("{\"method\":\"a.b.C\",\"more\":\"yes\"}", &c, &why) == -EBADMSG, "non-bool more refused");
        TAP_OK(parse("{\"method\":\"a.b.C\",\"more\":true,\"oneway\":true}", &c, &why) == -EBADMSG,
               "more+oneway refused");
        TAP_OK(parse("{\"method\":\"a.b.C\",\"method\":\"x.y.Z\"}", &c, &why) == -EBADMSG, "duplicate keys refused");
        TAP_OK(parse("{\"method\":\"a.b.C\"} {}", &c, &why) == -EBADMSG, "trailing data refused");
        TAP_OK(parse("", &c, &why) == -EBADMSG, "empty message refused");

        /* Deep nesting: jansson's own depth limit must turn it into an error, not a crash. */
        size_t depth = 100000;
        char *deep = malloc(depth * 2 + 64);
        strcpy(deep, "{\"method\":\"a.b.C\",\"parameters\":{\"x\":");
        size_t n = strlen(deep);
        memset(deep + n, '[', depth);
        memset(deep + n + depth, ']', depth);
        strcpy(deep + n + 2 * depth, "}}");
        TAP_OK(parse(deep, &c, &why) == -EBADMSG, "100000-deep nesting refused without crashing");
        free(deep);
}

/* The call osm_vl_format_call() writes without parameters is recognised without jansson's
 * parse: the same tree, and the edges (an empty name, a quote or an escape in it, a byte
 * outside printable ASCII, a frame that only begins or ends like it) are jansson's to judge. */
static void test_parse_plain_call(void) {
        osm_vl_call c;
        osm_error why = {};
        size_t len;
        char *m = osm_vl_format_call("io.osmose.Daemon.GetStatus", NULL, false, false, &len);
        TAP_OK(m && osm_vl_parse_call(m, len - 1, &c, &why) == 0, "the client's call without parameters parses");
        json_t *want = json_pack("{s:s,s:{}}", "method", "io.osmose.Daemon.GetStatus", "parameters");
        TAP_OK(json_equal(c.root, want), "the same tree as jansson's");
        TAP_EQ_STR(c.method, "io.osmose.Daemon.GetStatus", "its method");
        TAP_OK(json_is_object(c.parameters) && json_object_size(c.parameters) == 0 && !c.more && !c.oneway &&
               !c.upgrade, "empty parameters, no flags");
        json_decref(want);
        osm_vl_call_done(&c);
        free(m);
        TAP_OK(parse("{\"method\":\"\",\"parameters\":{}}", &c, &why) == -EBADMSG, "an empty method refused");
        TAP_OK(parse("{\"method\":\"a.b.C\",\"x\":\"\",\"parameters\":{}}", &c, &why) == 0 &&
               strcmp(c.method, "a.b.C") == 0, "a quote ends the name: the whole message is jansson's");
        osm_vl_call_done(&c);
        TAP_OK(parse("{\"method\":\"a.b\\u0041\",\"parameters\":{}}", &c, &why) == 0 &&
               strcmp(c.method, "a.bA") == 0, "an escape in the name is jansson's (decoded)");
        osm_vl_call_done(&c);
        TAP_OK(parse("{\"method\":\"a.b.\xff\",\"parameters\":{}}", &c, &why) == -EBADMSG,
               "invalid UTF-8 in the name refused");
        TAP_OK(parse("{\"method\":\"a.b.\xc3\xa9\",\"parameters\":{}}", &c, &why) == 0 &&
               strcmp(c.method, "a.b.\xc3\xa9") == 0, "UTF-8 in the name is jansson's");
        osm_vl_call_done(&c);
        TAP_OK(parse("{\"method\":\"a.b.C\",\"parameters\":{}}}", &c, &why) == -EBADMSG, "trailing brace refused");
        TAP_OK(parse("{\"method\":\"a.b.C\",\"parameters\":{}} ", &c, &why) == 0, "trailing space allowed, as before");
        osm_vl_call_done(&c);
        char *huge = malloc(400);
        int n = snprintf(huge, 400, "{\"method\":\"%0300d\",\"parameters\":{}}", 0);
        TAP_OK(osm_vl_parse_call(huge, (size_t) n, &c, &why) == -EBADMSG, "a 300-byte method refused");
        free(huge);
}

static void test_format_and_split(void) {
        osm_error why = {};
        size_t len;
        json_t *p = json_pack("{s:s}", "k", "v");
        char *m = osm_vl_format_call("a.b.C", p, true, false, &len);
        TAP_OK(m && m[len - 1] == 0 && strlen(m) == len - 1, "formatted call ends with exactly one NUL");
        TAP_OK(m && strstr(m, "\"more\":true") != NULL, "formatted call carries more");
        free(m);
        m = osm_vl_format_error("io.osmose.NotFound", p, &len);
        osm_vl_reply r;
        TAP_OK(osm_vl_parse_reply(m, len - 1, &r, &why) == 0 && r.error && strcmp(r.error, "io.osmose.NotFound") == 0,
               "error reply round trip");
        osm_vl_reply_done(&r);
        free(m);
        json_decref(p);

        char iface[256];
        const char *member;
        TAP_OK(osm_vl_split_method("io.osmose.Daemon.GetStatus", iface, sizeof iface, &member) &&
               strcmp(iface, "io.osmose.Daemon") == 0 && strcmp(member, "GetStatus") == 0, "split method");
        TAP_OK(!osm_vl_split_method("GetStatus", iface, sizeof iface, &member), "unqualified method refused");
        TAP_OK(!osm_vl_split_method("io.GetStatus", iface, sizeof iface, &member), "one-part interface refused");
}

static void test_check_params(void) {
        TAP_OK(osm_vl_find_interface("org.varlink.service") != NULL, "service interface compiled in");
        TAP_OK(osm_vl_find_interface("io.osmose.Daemon") != NULL, "daemon interface compiled in");
        const osm_vl_method *gid = osm_vl_find_method("org.varlink.service.GetInterfaceDescription");
        TAP_OK(gid && gid->n_in == 1, "GetInterfaceDescription has one input field");
        const char *bad = NULL;
        json_t *ok = json_pack("{s:s}", "interface", "io.osmose.Daemon");
        json_t *wrong = json_pack("{s:i}", "interface", 5);
        json_t *extra = json_pack("{s:s,s:i}", "interface", "x", "extra", 1);
        json_t *missing = json_object();
        TAP_OK(gid && osm_vl_check_params(gid, ok, &bad) == 0, "valid parameters pass");
        TAP_OK(gid && osm_vl_check_params(gid, wrong, &bad) == -EINVAL && strcmp(bad, "interface") == 0,
               "wrong type names the field");
        TAP_OK(gid && osm_vl_check_params(gid, extra, &bad) == -EINVAL && strcmp(bad, "extra") == 0,
               "unknown field named");
        TAP_OK(gid && osm_vl_check_params(gid, missing, &bad) == -EINVAL && strcmp(bad, "interface") == 0,
               "missing field named");
        json_decref(ok);
        json_decref(wrong);
        json_decref(extra);
        json_decref(missing);
}

static void test_descriptions(void) {
        /* Every interface's text names itself: what GetInterfaceDescription serves is the file. */
        bool all = true;
        for (size_t i = 0; i < osm_vl_n_interfaces; i++) {
                char want[300];
                snprintf(want, sizeof want, "interface %s\n", osm_vl_interfaces[i]->name);
                all &= strstr(osm_vl_interfaces[i]->description, want) != NULL;
        }
        TAP_OK(all, "each compiled description contains its interface line");
}

static void test_serializer(void) {
        /* Our serializer against jansson's parser: every kind, escapes, UTF-8, reals. */
        json_t *v = json_pack("{s:s,s:s,s:I,s:I,s:f,s:f,s:f,s:b,s:b,s:n,s:[i,s,{}],s:{}}",
                              "plain", "room 101", "esc", "q\"b\\s/\n\r\t\x01\x1f\x7f é ☃",
                              "int", (json_int_t) -9223372036854775807LL, "big", (json_int_t) 9007199254740993LL,
                              "real", 0.1, "whole", 3.0, "tiny", 1e-300, "t", 1, "f", 0, "nil",
                              "arr", 1, "x", "obj");
        size_t dl;
        char *d = osm_vl_dump(v, &dl);
        json_error_t je;
        json_t *back = d ? json_loadb(d, dl - 1, 0, &je) : NULL;
        TAP_OK(d && d[dl - 1] == 0 && strlen(d) == dl - 1, "dump ends with exactly one NUL");
        TAP_OK(back && json_equal(v, back), "dump parses back to an equal value");
        TAP_OK(back && json_is_real(json_object_get(back, "whole")), "a whole real stays a real");
        TAP_OK(d && !strchr(d, '\n') && !strchr(d, 0x7f), "control characters and DEL are escaped");
        free(d);
        json_decref(back);
        json_decref(v);
        json_t *reals = json_pack("[f,f,f]", 20.9, 0.1 + 0.2, 1e21);
        d = osm_vl_dump(reals, &dl);
        TAP_OK(d && strcmp(d, "[20.9,0.30000000000000004,1e+21]") == 0, "reals in the shortest form that reads back (%s)", d ? d : "");
        free(d);
        json_decref(reals);
        d = osm_vl_format_call("a.b.C", NULL, false, true, &dl);
        TAP_OK(d && strcmp(d, "{\"method\":\"a.b.C\",\"parameters\":{},\"oneway\":true}") == 0, "call framing");
        free(d);
}

static void test_jbuf(void) {
        osm_error why = {};
        size_t dl, len;
        char *d;
        /* The writer GetStatus uses: the same text osm_vl_dump writes for the same values. */
        osm_jbuf jb = { 0 };
        osm_jbuf_put(&jb, "{\"s\":", 5);
        osm_jbuf_string(&jb, "a\"b\\c\n\x01\x7f\xc3\xa9");
        osm_jbuf_put(&jb, ",\"i\":", 5);
        osm_jbuf_int(&jb, -9007199254740993LL);
        osm_jbuf_put(&jb, ",\"r\":[", 6);
        osm_jbuf_real(&jb, 20.9);
        osm_jbuf_put(&jb, ",", 1);
        osm_jbuf_real(&jb, 3.0);
        osm_jbuf_put(&jb, "]}", 2);
        d = osm_jbuf_finish(&jb, &dl);
        json_t *same = json_pack("{s:s, s:I, s:[f,f]}", "s", "a\"b\\c\n\x01\x7f\xc3\xa9", "i",
                                 (json_int_t) -9007199254740993LL, "r", 20.9, 3.0);
        char *want = osm_vl_dump(same, &len);
        TAP_OK(d && want && strcmp(d, want) == 0 && dl == len, "osm_jbuf writes what osm_vl_dump writes (%s)", d ? d : "");
        free(want);
        json_decref(same);
        char *rep = d ? osm_vl_format_reply_raw(d, dl - 1, true, &len) : NULL;
        osm_vl_reply rr;
        TAP_OK(rep && osm_vl_parse_reply(rep, len - 1, &rr, &why) == 0 && rr.continues &&
               json_real_value(json_array_get(json_object_get(rr.parameters, "r"), 0)) == 20.9,
               "a reply framed around serialized parameters parses back");
        if (rep)
                osm_vl_reply_done(&rr);
        free(rep);
        free(d);
}

/* osm_vl_dump_indented lays a tree out as jansson's JSON_INDENT(2) does, byte for byte,
 * and writes reals as osm_vl_dump does. */
static void test_dump_indented(void) {
        const char *trees[] = {
                "{}", "[]", "{\"a\":{}}", "{\"a\":[]}", "[[],{},[[]]]", "\"just a string\"", "42", "null",
                "{\"s\":\"tab\\t nl\\n quote\\\" bs\\\\ ctl\\u0001 \u00e9\",\"t\":true,\"f\":false,\"n\":null}",
                "{\"records\":[{\"id\":\"x-1\",\"time\":-1,\"body\":{\"k\":[1,2,{\"deep\":[[{}]]}]}}],\"cursor\":\"1.2\"}",
        };
        int same = 0;
        for (size_t i = 0; i < sizeof trees / sizeof trees[0]; i++) {
                json_t *v = json_loads(trees[i], JSON_DECODE_ANY, NULL);
                char *want = v ? json_dumps(v, JSON_INDENT(2) | JSON_ENCODE_ANY) : NULL;
                size_t len = 0;
                char *got = v ? osm_vl_dump_indented(v, 2, &len) : NULL;
                if (want && got && strcmp(want, got) == 0 && len == strlen(got) + 1)
                        same++;
                else
                        fprintf(stderr, "# differs:\n%s\n%s\n", want ? want : "?", got ? got : "?");
                free(want);
                free(got);
                json_decref(v);
        }
        TAP_EQ_INT(same, (int) (sizeof trees / sizeof trees[0]), "laid out as jansson's JSON_INDENT(2)");
        json_t *r = json_pack("{s:f, s:[f,f]}", "celsius", 18.01, "more", 20.9, 1e300);
        size_t len;
        char *text = osm_vl_dump_indented(r, 2, &len);
        json_t *back = text ? json_loads(text, 0, NULL) : NULL;
        TAP_OK(text && strstr(text, "\"celsius\": 18.01,\n") && strstr(text, "20.9,") && json_equal(back, r),
               "reals as their shortest text, read back the same (%s)", text ? text : "");
        json_decref(back);
        json_decref(r);
        free(text);
}

/* osm_fmt_int against printf over every length and the edges of its eight-digit pieces. */
static void test_fmt_int(void) {
        long long edge[] = { 0, 1, -1, 9, 10, 99, 100, 101, 9999999, 99999999, 100000000, 100000001,
                             999999999999999LL, 1000000000000000LL, 9999999999999999LL, 10000000000000000LL,
                             10000000000000001LL, 1796347691191179LL, 999999999999999999LL, LLONG_MAX, LLONG_MIN,
                             LLONG_MIN + 1, -100000000, -99999999 };
        int bad = 0;
        char got[21], want[32];
        for (size_t i = 0; i < sizeof edge / sizeof edge[0]; i++) {
                size_t n = osm_fmt_int(got, edge[i]);
                snprintf(want, sizeof want, "%lld", edge[i]);
                if (n != strlen(want) || memcmp(got, want, n) != 0)
                        bad++;
        }
        /* every power of ten and its neighbours, both signs, and a spread of others */
        unsigned long long p = 1;
        for (int e = 0; e < 19; e++, p *= 10)
                for (long long d = -1; d <= 1; d++)
                        for (int sign = -1; sign <= 1; sign += 2) {
                                long long v = sign * ((long long) p + d);
                                size_t n = osm_fmt_int(got, v);
                                snprintf(want, sizeof want, "%lld", v);
                                bad += n != strlen(want) || memcmp(got, want, n) != 0;
                        }
        unsigned long long x = 88172645463325252ULL;
        for (int i = 0; i < 100000; i++) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                long long v = (long long) (x >> (i % 64));
                size_t n = osm_fmt_int(got, v);
                snprintf(want, sizeof want, "%lld", v);
                bad += n != strlen(want) || memcmp(got, want, n) != 0;
        }
        TAP_OK(bad == 0, "osm_fmt_int writes what printf's %%lld writes (%d differ)", bad);
}

/* The generated call builders (osmose/protocol.h): the method's name, the declared fields
 * in declaration order, optional ones only when set, and parameters that pass the check
 * against the compiled interface. */
static bool passes(osm_vl_request *r) {
        const osm_vl_method *m = osm_vl_find_method(r->method);
        const char *bad = NULL;
        json_t *params = r->params ? r->params : json_object();
        bool ok = m && osm_vl_check_params(m, params, &bad) == 0;
        if (params != r->params)
                json_decref(params);
        return ok;
}

static char *dump(osm_vl_request *r) {
        size_t len;
        return r->params ? osm_vl_dump(r->params, &len) : strdup("{}");
}

static void test_request_builders(void) {
        _cleanup_request_ osm_vl_request q = osm_req_store_query("sensors/temp", &(osm_req_store_query_opt){
                .until = OSM_SOME(5), .reverse = OSM_SOME(false), .cursor = "c1" });
        _cleanup_free_ char *qs = dump(&q);
        TAP_EQ_STR(q.method, OSM_M_STORE_QUERY, "Store.Query: its method");
        TAP_EQ_STR(qs, "{\"collection\":\"sensors/temp\",\"until\":5,\"reverse\":false,\"cursor\":\"c1\"}",
                   "Store.Query: required and set optional fields, in declaration order");
        TAP_OK(!q.failed && passes(&q), "Store.Query: the parameters pass the interface check");

        _cleanup_request_ osm_vl_request q0 = osm_req_store_query("a", NULL);
        _cleanup_free_ char *q0s = dump(&q0);
        TAP_EQ_STR(q0s, "{\"collection\":\"a\"}", "no options: the required field alone");
        osm_req_store_delete_opt del = { .until = OSM_IF(false, 7), .writer = NULL };
        _cleanup_request_ osm_vl_request d = osm_req_store_delete("a", &del);
        _cleanup_free_ char *ds = dump(&d);
        TAP_EQ_STR(ds, "{\"collection\":\"a\"}", "OSM_IF(false, …) and NULL leave a field out");

        _cleanup_request_ osm_vl_request none = osm_req_store_collections();
        TAP_OK(none.params == NULL && !none.failed && passes(&none), "a method without parameters sends {}");

        json_t *args = json_pack("[s,s]", "-v", "x");
        _cleanup_request_ osm_vl_request run = osm_req_workload_run("w", &(osm_req_workload_run_opt){
                .args = args, .restart = "always", .attach = OSM_SOME(true) });
        _cleanup_free_ char *rs = dump(&run);
        TAP_EQ_STR(rs, "{\"name\":\"w\",\"args\":[\"-v\",\"x\"],\"restart\":\"always\",\"attach\":true}",
                   "Workload.Run: a JSON value, an enum and a bool");
        TAP_OK(passes(&run) && args->refcount == 2, "and the JSON value is borrowed, not stolen");
        json_decref(args);

        json_t *topics = json_pack("[s]", "a/#");
        _cleanup_request_ osm_vl_request in = osm_req_ingest_add("b", "mqtt://h", topics, "s/",
                &(osm_req_ingest_add_opt){ .qos = OSM_SOME(0), .max_payload = OSM_SOME(1024) });
        TAP_OK(!in.failed && passes(&in), "Ingest.Add: four required fields and two optional ones pass");
        json_decref(topics);

        _cleanup_request_ osm_vl_request pin = osm_req_channel_pin("ch", 3);
        _cleanup_request_ osm_vl_request gi = osm_req_varlink_get_interface_description(OSM_I_STORE);
        _cleanup_request_ osm_vl_request ping = osm_req_ping();
        TAP_OK(passes(&pin) && passes(&gi) && passes(&ping) && strcmp(ping.method, "io.osmose.Ping") == 0,
               "an int field, org.varlink.service and io.osmose itself");

        /* A required JSON value that is NULL (a failed json_pack): nothing half-built is sent. */
        json_t *nothing = NULL;
        _cleanup_request_ osm_vl_request bad = osm_req_store_put("a", nothing, NULL);
        TAP_OK(bad.failed && bad.params == NULL, "a NULL required value fails the request");
}

/* The general way of osm_jbuf_real, as it was before the fast one. */
static int real_general(double d, char *num, size_t size) {
        int n = 0;
        for (int prec = 15; prec <= 17; prec++) {
                n = snprintf(num, size, "%.*g", prec, d);
                if (strtod(num, NULL) == d)
                        break;
        }
        if (n > 0 && !strpbrk(num, ".eE")) {
                memcpy(num + n, ".0", 3);
                n += 2;
        }
        return n;
}

static void test_real_short(void) {
        /* Whatever the fast way writes is what the general way writes: short decimals of
         * every length and scale, their neighbours an ulp away, random doubles, edges. */
        char fast[32], slow[64];
        size_t n_fast = 0, n = 0, bad = 0;
        char first_bad[160] = "";
        uint64_t x = 88172645463325252ull;
        for (size_t i = 0; i < 400000; i++) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;   /* xorshift64 */
                double d;
                switch (i % 4) {
                case 0:   /* digits / 10^k */
                        d = (double) (long long) (x % 10000000000000000ull >> (x % 40)) / pow(10, (double) (x % 17));
                        break;
                case 1:   /* a short decimal's neighbours */
                        d = nextafter((double) (long long) (x % 100000) / pow(10, (double) (x % 7)), (x & 1) ? 1e300 : -1e300);
                        break;
                case 2: {
                        double r;
                        memcpy(&r, &x, sizeof r);
                        d = r;
                        break;
                }
                default:
                        d = (double) (int) (x % 2000001) / 100.0 - 10000.0;
                        break;
                }
                if (x & 2)
                        d = -d;
                if (!isfinite(d))
                        continue;
                n++;
                int k = osm_real_short(d, fast);
                if (!k)
                        continue;
                n_fast++;
                real_general(d, slow, sizeof slow);
                if (strcmp(fast, slow) != 0 && bad++ == 0)
                        snprintf(first_bad, sizeof first_bad, "%.17g: fast %s, general %s", d, fast, slow);
        }
        static const double edges[] = { 1e-4, 0.00011, 0.5, 1.0, 20.0, 20.9, 18.05, 0.1 + 0.2, 999999999999999.0,
                                        999999999999999.9, 123456789012345.0, 1e15, 9.999999999999999e-5, -0.0, 0.0 };
        for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) {
                int k = osm_real_short(edges[i], fast);
                real_general(edges[i], slow, sizeof slow);
                n++;
                if (k && (n_fast++, strcmp(fast, slow) != 0) && bad++ == 0)
                        snprintf(first_bad, sizeof first_bad, "%.17g: fast %s, general %s", edges[i], fast, slow);
        }
        TAP_OK(bad == 0, "the fast way writes the general way's text for all %zu of %zu reals it takes%s%s",
               n_fast, n, bad ? ": " : "", first_bad);
        TAP_OK(n_fast > n / 4, "…and takes the short decimals (%zu of %zu)", n_fast, n);
        TAP_OK(osm_real_short(20.9, fast) == 4 && strcmp(fast, "20.9") == 0, "20.9 is 20.9");
        TAP_OK(osm_real_short(3.0, fast) == 3 && strcmp(fast, "3.0") == 0, "a whole real keeps its .0");
        TAP_OK(osm_real_short(-0.05, fast) == 5 && strcmp(fast, "-0.05") == 0, "-0.05 is -0.05");
        TAP_OK(osm_real_short(0.1 + 0.2, fast) == 0, "0.30000000000000004 takes the general way");
        TAP_OK(osm_real_short(1e21, fast) == 0 && osm_real_short(NAN, fast) == 0, "1e21 and NaN too");
}

/* The generated reply builders: declared fields in order, optional ones when set, JSON
 * values stolen (as osm_call_reply steals what it sends). */
static void test_reply_builders(void) {
        json_t *r = osm_reply_store_put_batch(3, &(osm_reply_store_put_batch_opt){ .first = "a1" });
        _cleanup_free_ char *s = r ? osm_vl_dump(r, &(size_t){ 0 }) : NULL;
        TAP_EQ_STR(s, "{\"stored\":3,\"first\":\"a1\"}", "Store.PutBatch: a required int and the one optional string set");
        json_decref(r);
        json_t *list = json_array();
        json_t *t = osm_reply_tenant_remove(list, 42);
        TAP_OK(t && json_object_get(t, "removed_workloads") == list && list->refcount == 1 &&
               json_integer_value(json_object_get(t, "data_kept_until")) == 42, "Tenant.Remove: the array is stolen");
        json_decref(t);
        json_t *nothing = NULL;
        TAP_OK(osm_reply_building_trust_list(nothing, false) == NULL, "a NULL required value: no reply half-built");
}

int main(int argc, char **argv) {
        static const tap_case cases[] = {
                TAP_CASE(test_parse_call),
                TAP_CASE(test_parse_plain_call),
                TAP_CASE(test_format_and_split),
                TAP_CASE(test_check_params),
                TAP_CASE(test_descriptions),
                TAP_CASE(test_serializer),
                TAP_CASE(test_jbuf),
                TAP_CASE(test_fmt_int),
                TAP_CASE(test_dump_indented),
                TAP_CASE(test_real_short),
                TAP_CASE(test_request_builders),
                TAP_CASE(test_reply_builders),
        };
        return tap_run(cases, TAP_N_CASES(cases), argc, argv);
}
