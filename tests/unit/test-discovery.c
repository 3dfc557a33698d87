/* test-discovery.c: unit tests of discovery's parts that need no avahi-daemon: TXT
 * records from the LAN, the catalog (peers, conflicts, caps, persistence) and the
 * AvahiPoll adapter on a libuv loop. */
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "build-config.h"
#include "daemon/discovery/catalog.h"
#include "daemon/discovery/txt.h"
#include "osmose/varlink.h"
#include "tap.h"
#if HAVE_AVAHI
#include "daemon/discovery/avahi-uv.h"
#endif

#define OWN "00112233445566778899aabbccddeeff"
#define IDX "0123456789abcdef0123456789abcdef"

static json_t *txt_of(const char *const *items, size_t n, unsigned *issues) {
        osm_txt_item v[64];
        json_t *o = NULL;

        for (size_t i = 0; i < n; i++)
                v[i] = (osm_txt_item) { (const uint8_t *) items[i], strlen(items[i]) };
        osm_txt_to_json(v, n, &o, issues);
        return o;
}

static void test_txt(void) {
        unsigned issues;
        _cleanup_json_ json_t *o = NULL, *o2 = NULL, *o3 = NULL, *o4 = NULL;
        const char *dup[] = { "Path=/a", "path=/b", "flag", "empty=", "=novalue", "bad\x01key=1" };
        const char *bin[] = { "k=\xff\xfe", "t=caf\xc3\xa9", "nul=a\x01z" };
        osm_txt_item many[300];
        char buf[300][16];

        o = txt_of(dup, 6, &issues);
        TAP_EQ_STR(json_string_value(json_object_get(o, "path")), "/a", "keys are case-insensitive, the first one counts");
        TAP_OK(json_is_true(json_object_get(o, "flag")), "a key without '=' is true");
        TAP_EQ_STR(json_string_value(json_object_get(o, "empty")), "", "key= is the empty string");
        TAP_EQ_INT(json_object_size(o), 3, "empty and non-printable keys are skipped");
        TAP_OK((issues & OSM_TXT_DUPLICATE) && (issues & OSM_TXT_INVALID_KEY), "duplicate and invalid keys are flagged");

        o2 = txt_of(bin, 3, &issues);
        TAP_EQ_STR(json_string_value(json_object_get(json_object_get(o2, "k"), "hex")), "fffe", "binary values come as hex");
        TAP_EQ_STR(json_string_value(json_object_get(o2, "t")), "caf\xc3\xa9", "UTF-8 text stays text");
        TAP_OK(json_is_object(json_object_get(o2, "nul")), "control characters make a value binary");
        TAP_OK(issues & OSM_TXT_BINARY, "binary values are flagged");

        for (int i = 0; i < 300; i++) {
                snprintf(buf[i], sizeof(buf[i]), "k%d=v", i);
                many[i] = (osm_txt_item) { (const uint8_t *) buf[i], strlen(buf[i]) };
        }
        osm_txt_to_json(many, 300, &o3, &issues);
        TAP_EQ_INT(json_object_size(o3), OSM_TXT_MAX_KEYS, "at most 64 keys are kept");
        TAP_OK(issues & OSM_TXT_TRUNCATED, "... and the record is flagged truncated");

        osm_txt_wire_to_json((const uint8_t *) "\x03" "a=1" "\x09" "b=2", 9, &o4, &issues);
        TAP_OK(json_object_get(o4, "a") && (issues & OSM_TXT_TRUNCATED), "a length running past the end truncates");

        osm_peer_txt p;
        osm_error why;
        _cleanup_json_ json_t *good = json_pack("{s:s,s:s,s:s}", "id", IDX, "v", "1", "name", "Kitchen");
        _cleanup_json_ json_t *badid = json_pack("{s:s,s:s}", "id", "0123", "v", "1");
        _cleanup_json_ json_t *badv = json_pack("{s:s,s:s}", "id", IDX, "v", "01");
        _cleanup_json_ json_t *binname = json_pack("{s:s,s:s,s:{s:s}}", "id", IDX, "v", "2", "name", "hex", "00");
        TAP_OK(osm_peer_txt_parse(good, &p, &why) == 0 && strcmp(p.name, "Kitchen") == 0 && p.version == 1, "a good _osmose._tcp record");
        TAP_EQ_INT(osm_peer_txt_parse(badid, &p, &why), -EINVAL, "a short id is refused");
        TAP_EQ_INT(osm_peer_txt_parse(badv, &p, &why), -EINVAL, "a version with a leading zero is refused");
        TAP_EQ_INT(osm_peer_txt_parse(binname, &p, &why), -EINVAL, "a binary name is refused");

        _cleanup_json_ json_t *t = osm_json_text("ok\x1b[2Jx\xff");
        TAP_EQ_STR(json_string_value(t), "ok\xef\xbf\xbd[2Jx\xef\xbf\xbd", "escape sequences and bad UTF-8 are made safe");
}

/* --- the catalog --- */

static int n_added, n_changed, n_removed;
static json_t *last;

static void on_event(osm_dcat_kind kind, osm_dcat_event ev, json_t *obj, void *userdata) {
        if (kind != OSM_DCAT_PEER)
                return;
        n_added += ev == OSM_DCAT_ADDED;
        n_changed += ev == OSM_DCAT_CHANGED;
        n_removed += ev == OSM_DCAT_REMOVED;
        json_decref(last);
        last = json_incref(obj);
}

static void resolve(osm_dcat *c, const char *name, const char *type, const char *id) {
        char item[64];
        osm_txt_item txt[2];

        snprintf(item, sizeof(item), "id=%s", id);
        txt[0] = (osm_txt_item) { (const uint8_t *) item, strlen(item) };
        txt[1] = (osm_txt_item) { (const uint8_t *) "v=1", 3 };
        osm_dcat_seen(c, 2, 0, name, type, "local", 0);
        osm_dcat_resolved(c, 2, 0, name, type, "local",
                          &(osm_dcat_resolution) { "h.local", "198.51.100.7", 7443, txt, 2 });
}

static json_t *peer_named(osm_dcat *c, const char *instance) {
        _cleanup_json_ json_t *a = osm_dcat_peers(c);
        size_t i;
        json_t *p;

        json_array_foreach(a, i, p)
                if (strcmp(json_string_value(json_object_get(p, "instance")), instance) == 0)
                        return json_incref(p);
        return NULL;
}

static bool has_peer(osm_dcat *c, const char *instance) {
        json_t *p = peer_named(c, instance);
        json_decref(p);
        return p != NULL;
}

static void test_catalog(void) {
        osm_dcat_limits lim = { .max_services = 3, .max_peers = 3 };
        osm_dcat *c;
        osm_dcat_stats st;
        json_t *inst = NULL;
        _cleanup_json_ json_t *p = NULL, *p2 = NULL, *svcs = NULL, *saved = NULL;

        TAP_OK(osm_dcat_new(&lim, OWN, on_event, NULL, &c) == 0, "a catalog");
        int r = osm_dcat_seen(c, 2, 0, "printer", "_ipp._tcp", "local", 0);
        TAP_EQ_INT(r, 1, "a new presence asks to be resolved");
        r = osm_dcat_seen(c, 2, 0, "printer", "_ipp._tcp", "local", 0);
        TAP_EQ_INT(r, 0, "a known one does not");
        svcs = osm_dcat_services(c, NULL);
        TAP_EQ_INT(json_array_size(svcs), 0, "unresolved services are not listed");

        resolve(c, "gw", OSM_OSMOSE_SERVICE_TYPE, IDX);
        TAP_EQ_INT(n_added, 1, "a resolved _osmose._tcp service adds a peer");
        p = peer_named(c, "gw");
        TAP_EQ_STR(json_string_value(json_object_get(p, "state")), "present", "present");
        TAP_EQ_INT(json_integer_value(json_object_get(p, "port")), 7443, "with its port");
        TAP_OK(json_is_false(json_object_get(p, "conflict")), "no conflict");

        r = osm_dcat_seen(c, 2, 0, "x1", "_x._tcp", "local", 0);
        TAP_EQ_INT(r, 1, "a second service");
        r = osm_dcat_seen(c, 2, 0, "x2", "_x._tcp", "local", 0);
        TAP_EQ_INT(r, 1, "a third: the gateway's record does not take the services' room");
        r = osm_dcat_seen(c, 2, 0, "x3", "_x._tcp", "local", 0);
        TAP_EQ_INT(r, -ENOSPC, "over the cap: refused");
        osm_dcat_get_stats(c, &st);
        TAP_EQ_INT(st.dropped_services, 1, "... and counted");
        r = osm_dcat_seen(c, 2, 0, "gw2", OSM_OSMOSE_SERVICE_TYPE, "local", 0);
        TAP_EQ_INT(r, 1, "a gateway's record still has room of its own (a flood cannot hide one)");
        osm_dcat_lost(c, 2, 0, "gw2", OSM_OSMOSE_SERVICE_TYPE, "local");
        osm_dcat_lost(c, 2, 0, "x2", "_x._tcp", "local");

        osm_dcat_lost(c, 2, 0, "gw", OSM_OSMOSE_SERVICE_TYPE, "local");
        TAP_EQ_INT(n_removed, 1, "losing the service makes the peer gone");
        json_decref(p);
        p = peer_named(c, "gw");
        TAP_EQ_STR(json_string_value(json_object_get(p, "state")), "gone", "gone, still listed");
        resolve(c, "gw", OSM_OSMOSE_SERVICE_TYPE, IDX);
        osm_dcat_get_stats(c, &st);
        TAP_EQ_INT(st.peers, 1, "coming back is the same record");

        /* an impostor with the same id under another name */
        osm_dcat_lost(c, 2, 0, "x1", "_x._tcp", "local");
        osm_dcat_lost(c, 2, 0, "printer", "_ipp._tcp", "local");
        resolve(c, "evil", OSM_OSMOSE_SERVICE_TYPE, IDX);
        json_decref(p);
        p = peer_named(c, "gw");
        p2 = peer_named(c, "evil");
        TAP_OK(p2 && json_is_true(json_object_get(p, "conflict")) && json_is_true(json_object_get(p2, "conflict")),
               "two gateways claiming one id: both records in conflict, never merged");
        r = osm_dcat_trust(c, IDX, true, &inst);
        TAP_EQ_INT(r, -EADDRINUSE, "trusting a contested id is refused");
        TAP_EQ_INT(json_array_size(inst), 2, "... naming both claimants");
        json_decref(inst);
        TAP_EQ_INT(osm_dcat_trust(c, IDX, false, NULL), 0, "untrusting it is fine");
        TAP_EQ_INT(osm_dcat_trust(c, "ffffffffffffffffffffffffffffffff", true, NULL), -ENOENT, "an unknown id");

        /* our own id, announced by someone else; and our own record */
        resolve(c, "mirror", OSM_OSMOSE_SERVICE_TYPE, OWN);
        osm_dcat_get_stats(c, &st);
        TAP_OK(st.own_id_claimed, "someone announcing our id is noticed");
        json_decref(p2);
        p2 = peer_named(c, "mirror");
        TAP_OK(json_is_true(json_object_get(p2, "conflict")) && json_object_get(p2, "conflict_reason"),
               "... and shown as a conflict with a reason");
        TAP_EQ_INT(osm_dcat_trust(c, OWN, true, NULL), -EADDRINUSE, "our own id cannot be trusted");

        osm_dcat_get_stats(c, &st);
        TAP_EQ_INT(st.peers, 3, "three records (cap 3)");
        osm_dcat_lost(c, 2, 0, "evil", OSM_OSMOSE_SERVICE_TYPE, "local");
        osm_dcat_seen(c, 2, 0, "own", OSM_OSMOSE_SERVICE_TYPE, "local", OSM_DCAT_OWN);
        resolve(c, "own", OSM_OSMOSE_SERVICE_TYPE, "abababababababababababababababab");
        osm_dcat_get_stats(c, &st);
        TAP_OK(!has_peer(c, "own"), "our own record is not a peer");

        /* a fourth peer: the gone, untrusted one makes room */
        osm_dcat_lost(c, 2, 0, "own", OSM_OSMOSE_SERVICE_TYPE, "local");
        resolve(c, "new", OSM_OSMOSE_SERVICE_TYPE, "abababababababababababababababab");
        osm_dcat_get_stats(c, &st);
        TAP_OK(st.peers == 3 && !has_peer(c, "evil") && has_peer(c, "new"), "a full peer list forgets the oldest gone record");

        /* garbage TXT on _osmose._tcp is no peer */
        osm_dcat_lost(c, 2, 0, "new", OSM_OSMOSE_SERVICE_TYPE, "local");
        osm_dcat_seen(c, 2, 0, "junk", OSM_OSMOSE_SERVICE_TYPE, "local", 0);
        osm_dcat_resolved(c, 2, 0, "junk", OSM_OSMOSE_SERVICE_TYPE, "local",
                          &(osm_dcat_resolution) { "h", NULL, 0, &(osm_txt_item) { (const uint8_t *) "id=zz", 5 }, 1 });
        osm_dcat_get_stats(c, &st);
        TAP_OK(st.invalid_peer_records == 1 && !has_peer(c, "junk"), "an invalid record is counted, not listed");

        /* reconnect: stale entries survive until the sweep */
        osm_dcat_mark_stale(c);
        svcs = (json_decref(svcs), osm_dcat_services(c, NULL));
        TAP_OK(json_array_size(svcs) > 0, "after losing avahi-daemon the catalog is kept");
        osm_dcat_sweep(c);
        svcs = (json_decref(svcs), osm_dcat_services(c, NULL));
        TAP_EQ_INT(json_array_size(svcs), 0, "the sweep removes what was not seen again");

        /* persistence */
        osm_dcat_trust(c, IDX, false, NULL);
        osm_dcat_lost(c, 2, 0, "mirror", OSM_OSMOSE_SERVICE_TYPE, "local");
        saved = osm_dcat_save(c);
        osm_dcat *c2;
        size_t skipped;
        osm_error why;
        osm_dcat_new(&lim, OWN, NULL, NULL, &c2);
        TAP_OK(osm_dcat_load(c2, saved, &skipped, &why) == 0 && skipped == 0, "the saved peer list loads");
        osm_dcat_stats st2;
        osm_dcat_get_stats(c, &st);
        osm_dcat_get_stats(c2, &st2);
        TAP_OK(st2.peers == st.peers && st2.peers_present == 0, "... with every record, all gone");
        _cleanup_json_ json_t *junk = json_pack("{s:i,s:[{s:s}]}", "version", 1, "peers", "id", "nope");
        size_t before = st2.peers;
        osm_dcat_load(c2, junk, &skipped, &why);
        TAP_EQ_INT(skipped, 1, "invalid entries are skipped");
        _cleanup_json_ json_t *bad = json_pack("[]");
        TAP_EQ_INT(osm_dcat_load(c2, bad, &skipped, &why), -EINVAL, "a document of another kind is refused");
        osm_dcat_get_stats(c2, &st2);
        TAP_EQ_INT(st2.peers, before, "... and adds nothing");
        osm_dcat_free(c2);

        osm_dcat_free(c);
        json_decref(last);
}

/* --- the AvahiPoll adapter --- */

#if HAVE_AVAHI
static int fired_in, fired_out, fired_timeout;
static AvahiWatch *w_out;
static const AvahiPoll *api;

static void on_in(AvahiWatch *w, int fd, AvahiWatchEvent ev, void *userdata) {
        char b[16];
        fired_in++;
        (void) !read(fd, b, sizeof(b));
        api->watch_free(w);   /* freeing a watch from its own callback */
}

static void on_out(AvahiWatch *w, int fd, AvahiWatchEvent ev, void *userdata) {
        fired_out++;
        api->watch_update(w, 0);   /* stop asking for writability */
}

static void on_timeout(AvahiTimeout *t, void *userdata) {
        fired_timeout++;
        api->timeout_free(t);
}

static void test_poll(void) {
        uv_loop_t loop;
        osm_avahi_poll *p;
        int sv[2];
        struct timeval tv;
        AvahiTimeout *never;

        uv_loop_init(&loop);
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv);
        TAP_OK(osm_avahi_poll_new(&loop, &p) == 0, "an AvahiPoll on a libuv loop");
        api = osm_avahi_poll_get(p);

        /* two watches on one fd, as libdbus makes: one uv_poll_t must serve both */
        api->watch_new(api, sv[0], AVAHI_WATCH_IN, on_in, NULL);
        w_out = api->watch_new(api, sv[0], AVAHI_WATCH_OUT, on_out, NULL);
        TAP_EQ_INT(osm_avahi_poll_n_handles(p), 1, "two watches on one fd share one handle");
        (void) !write(sv[1], "x", 1);
        gettimeofday(&tv, NULL);
        tv.tv_usec += 20000;
        api->timeout_new(api, &tv, on_timeout, NULL);
        never = api->timeout_new(api, &tv, on_timeout, NULL);
        api->timeout_update(never, NULL);
        while (uv_run(&loop, UV_RUN_ONCE) && (fired_in == 0 || fired_timeout == 0))
                ;
        TAP_EQ_INT(fired_in, 1, "the read watch fired once");
        TAP_EQ_INT(fired_out, 1, "the write watch fired too");
        TAP_EQ_INT(fired_timeout, 1, "the timeout fired; the disabled one did not");
        api->watch_free(w_out);
        api->timeout_free(never);
        TAP_EQ_INT(osm_avahi_poll_n_handles(p), 0, "everything freed");
        osm_avahi_poll_free(p);
        uv_run(&loop, UV_RUN_DEFAULT);
        int r = uv_loop_close(&loop);
        TAP_EQ_INT(r, 0, "the loop closes with no handle left");
        close(sv[0]);
        close(sv[1]);
}
#endif

int main(int argc, char **argv) {
        static const tap_case cases[] = {
                TAP_CASE(test_txt),
                TAP_CASE(test_catalog),
#if HAVE_AVAHI
                TAP_CASE(test_poll),
#endif
        };
        return tap_run(cases, TAP_N_CASES(cases), argc, argv);
}
