#!/bin/bash
# test-discovery.sh: a small building on one machine — rooms (network namespaces on a
# bridge, each with its own D-Bus system bus and avahi-daemon) with a real osmosed each —
# checked through osmosectl: peers seen, services catalogued and streamed, gone peers
# kept, trust stored, avahi-daemon restarts and absence survived, name conflicts.
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/rooms.sh"
JGET="python3 $(dirname "$0")/../lib/jget.py"

if ! rooms_check; then
    echo "1..0 # SKIP $ROOMS_SKIP"
    exit 0
fi
osm_setup
trap 'rooms_down; osm_cleanup' EXIT
rooms_up A B C D:noavahi || bail "cannot build the rooms"

# --- helpers -------------------------------------------------------------------------
disc_status() {   # ROOM FIELD: a field of the discovery subsystem's status (or its info)
    rctl "$1" --json status |
        $JGET "[s.get('$2', s.get('info', {}).get('$2')) for s in d['subsystems'] if s['name'] == 'discovery'][0]"
}
space_id() { rctl "$1" --json status | $JGET 'd["id"]'; }
peer_field() {    # ROOM ID FIELD: a field of the (single) peer record with that id
    rctl "$1" --json peers | $JGET "[p for p in d['peers'] if p['id'] == '$2'][0]['$3']"
}
peer_is() { [ "$(peer_field "$1" "$2" "$3")" = "$4" ]; }
health_is() { [ "$(disc_status "$1" health)" = "$2" ]; }
has_service() {   # ROOM TYPE NAME
    rctl "$1" --json services --type "$2" | $JGET "[s for s in d['services'] if s['name'] == '$3'][0]['name']" >/dev/null
}
no_service() { ! has_service "$@"; }

# --- two gateways see each other -------------------------------------------------------
room_osmosed_start A gw-a || bail "osmosed in A"
room_osmosed_start B gw-b || bail "osmosed in B"
IDA=$(space_id A); IDB=$(space_id B)
diag "A is $IDA, B is $IDB"

wait_until peer_is A "$IDB" state present
ok $? "A lists B as a present peer"
wait_until peer_is B "$IDA" state present
ok $? "B lists A as a present peer"
is "$(peer_field A "$IDB" name)" "gw-b" "B's name comes from its TXT record"
is "$(peer_field A "$IDB" addresses)" '["198.51.100.2"]' "B's address is its room's"
is "$(peer_field A "$IDB" port)" "0" "federation is off: the record offers no port"
is "$(peer_field A "$IDB" trusted)" "false" "nothing is trusted automatically"
is "$(peer_field A "$IDB" version)" "1" "protocol version from TXT v"
wait_until health_is A ok
ok $? "A's discovery is healthy"
is "$(disc_status A published_name)" "gw-a" "A is published under its name"
out=$(rctl A peers)
like "$out" "gw-b +present +no +198\.51\.100\.2" "osmosectl peers shows a table"
out=$(rctl A peers --bogus 2>&1); rc=$?
ok $(( rc == 0 )) "peers rejects an unknown option"

# --- the room's services -----------------------------------------------------------------
room_spawn C "$T/publish-ipp.log" avahi-publish -s "Lab printer" _ipp._tcp 631 "rp=ipp/print" "note=hello world"
PUB_IPP=$ROOM_PID
wait_until has_service A _ipp._tcp "Lab printer"
ok $? "a printer published in room C appears in A's catalog"
svc=$(rctl A --json services --type _ipp._tcp)
is "$(echo "$svc" | $JGET 'd["services"][0]["port"]')" "631" "its port"
is "$(echo "$svc" | $JGET 'd["services"][0]["host"]')" "room-c.local" "its host"
is "$(echo "$svc" | $JGET 'd["services"][0]["addresses"]')" '["198.51.100.3"]' "its address"
is "$(echo "$svc" | $JGET 'd["services"][0]["txt"]["rp"]')" "ipp/print" "its TXT"
is "$(echo "$svc" | $JGET 'd["services"][0]["txt"]["note"]')" "hello world" "TXT values with spaces"
wait_until has_service B _ipp._tcp "Lab printer"
ok $? "... and in B's"
out=$(rctl A services)
like "$out" "Lab printer +_ipp._tcp +room-c.local +198\.51\.100\.3 +631 +.*rp=ipp/print" "osmosectl services shows a table"
is "$(rctl A --json services --type _nothing._tcp | $JGET 'len(d["services"])')" "0" "--type filters"
rctl A services --type "not a type" >/dev/null 2>&1
ok $(( $? == 0 )) "an invalid --type is refused"

rctl A --json services | $JGET '[s["type"] for s in d["services"]]' | grep -q '_osmose._tcp'
ok $? "gateways are in the catalog too"

# --- services --watch streams changes ------------------------------------------------------
rctl A --json services --watch --type _http._tcp > "$T/watch-svc.jsonl" 2>&1 &
WATCH_SVC=$!; _osm_pids+=("$WATCH_SVC")
wait_until grep -q '"services"' "$T/watch-svc.jsonl"
ok $? "services --watch first prints the current list"
room_spawn C "$T/publish-http.log" avahi-publish -s "Thermostat" _http._tcp 8080 "path=/"
PUB_HTTP=$ROOM_PID
wait_until grep -q '"event":"added".*"Thermostat"' "$T/watch-svc.jsonl"
ok $? "services --watch streams an added service"
kill "$PUB_HTTP"; wait "$PUB_HTTP" 2>/dev/null
wait_until grep -q '"event":"removed".*"Thermostat"' "$T/watch-svc.jsonl"
ok $? "services --watch streams its removal"
grep -v '"services"' "$T/watch-svc.jsonl" | grep -q '_ipp._tcp'
ok $(( $? == 0 )) "the stream is filtered by --type"
kill "$WATCH_SVC" 2>/dev/null; wait "$WATCH_SVC" 2>/dev/null

# --- a stopped gateway is marked gone, not forgotten --------------------------------------
rctl A --json peers --watch > "$T/watch-peers.jsonl" 2>&1 &
WATCH_PEERS=$!; _osm_pids+=("$WATCH_PEERS")
wait_until grep -q '"peers"' "$T/watch-peers.jsonl"
room_osmosed_stop B
wait_until peer_is A "$IDB" state gone
ok $? "a stopped gateway is marked gone"
is "$(peer_field A "$IDB" name)" "gw-b" "... and still listed with its name"
wait_until grep -q "\"event\":\"gone\".*$IDB" "$T/watch-peers.jsonl"
ok $? "peers --watch streams the departure"
out=$(rctl A peers)
like "$out" "gw-b +gone" "the table shows it gone"

# --- trust: stored, survives a restart, only on request ------------------------------------
rctl A peer trust "$IDB" >/dev/null
ok $? "peer trust ID"
is "$(peer_field A "$IDB" trusted)" "true" "B is trusted"
wait_until grep -q "\"event\":\"changed\".*\"trusted\":true" "$T/watch-peers.jsonl"
ok $? "the trust change is streamed"
kill "$WATCH_PEERS" 2>/dev/null; wait "$WATCH_PEERS" 2>/dev/null
room_osmosed_stop A
room_osmosed_start A gw-a || bail "osmosed in A (restart)"
is "$(peer_field A "$IDB" trusted)" "true" "trust survives a restart"
is "$(peer_field A "$IDB" state)" "gone" "a peer not seen since the restart is listed as gone"
room_osmosed_start B gw-b || bail "osmosed in B (restart)"
wait_until peer_is A "$IDB" state present
ok $? "B is present again after it restarts"
is "$(peer_field A "$IDB" trusted)" "true" "... and still trusted"
is "$(rctl A --json peers | $JGET "len([p for p in d['peers'] if p['id'] == '$IDB'])")" "1" \
   "a returning gateway is one record, not two"
rctl A peer untrust "$IDB" >/dev/null
ok $? "peer untrust ID"
is "$(peer_field A "$IDB" trusted)" "false" "B is no longer trusted"
err=$(rctl A peer trust 0123456789abcdef0123456789abcdef 2>&1); rc=$?
ok $(( rc == 0 )) "trusting an id never seen fails"
like "$err" "no peer with the id 0123456789abcdef0123456789abcdef" "... saying no peer has that id (PeerNotFound, in words)"
err=$(rctl A peer trust not-an-id 2>&1); rc=$?
ok $(( rc == 0 )) "trusting a malformed id fails"
like "$err" "not a space id" "... with a clear message"
err=$(rctl A call io.osmose.Discovery.Trust '{"id":"ZZZ"}' 2>&1); rc=$?
ok $(( rc == 0 )) "the daemon itself checks the id"

# --- avahi-daemon restarts are survived ------------------------------------------------------
room_avahi_stop A
wait_until health_is A degraded
ok $? "without avahi-daemon, A reports discovery degraded"
like "$(disc_status A detail)" "avahi-daemon" "... and says why"
rctl A call org.varlink.service.GetInfo >/dev/null
ok $? "... and keeps serving"
room_avahi_start A || bail "restart avahi in A"
wait_until health_is A ok
ok $? "A picks avahi-daemon up again"
wait_until peer_is B "$IDA" state present
ok $? "B sees A again (A published itself again)"
wait_until has_service A _ipp._tcp "Lab printer"
ok $? "A's catalog is rebuilt"
wait_until peer_is A "$IDB" state present
ok $? "A sees B again"

# --- a daemon started before avahi-daemon ----------------------------------------------------
room_osmosed_start D gw-d || bail "osmosed in D"
IDD=$(space_id D)
wait_until health_is D degraded
ok $? "D starts and serves without avahi-daemon (degraded)"
like "$(disc_status D detail)" "not running" "... saying avahi-daemon is not running"
room_avahi_start D || bail "avahi in D"
wait_until health_is D ok
ok $? "D picks avahi-daemon up when it appears"
wait_until peer_is D "$IDA" state present
ok $? "D then sees A"
wait_until peer_is A "$IDD" state present
ok $? "and A sees D"

# --- name conflicts ---------------------------------------------------------------------------
room_osmosed_start C gw-a || bail "osmosed in C"
IDC=$(space_id C)
conflict_seen() { [ "$(disc_status C name_conflict)" = true ]; }
wait_until conflict_seen
ok $? "a second gateway named gw-a detects the conflict"
is "$(disc_status C published_name)" "gw-a #2" "it publishes under an alternative name"
like "$(disc_status C detail)" "name conflict" "status says so"
grep -q "name conflict" "$ROOMS_DIR/C/osmosed.log"
ok $? "the log says so"
wait_until peer_is A "$IDC" state present
ok $? "A lists it"
is "$(peer_field A "$IDC" instance)" "gw-a #2" "under its alternative instance name"
is "$(peer_field A "$IDC" conflict)" "false" "a name conflict is not an id conflict"

# --- switched off ----------------------------------------------------------------------------
printf '[discovery]\nenabled = no\n' > "$T/off.conf"
OSM_NAME=quiet osm_start_daemon --config "$T/off.conf"
is "$(ctl --json status | $JGET "[s for s in d['subsystems'] if s['name'] == 'discovery'][0]['health']")" \
   "disabled" "with [discovery] enabled = no, status says disabled"
err=$(ctl services 2>&1); rc=$?
ok $(( rc == 0 )) "services fails while discovery is off"
like "$err" "discovery is off" "... with a clear message"
ctl peers >/dev/null
ok $? "peers still answers (the stored list)"
osm_stop_daemon

for r in A B C D; do
    grep -E "AddressSanitizer|runtime error" "$ROOMS_DIR/$r/osmosed.log" >/dev/null
    ok $(( $? == 0 )) "no sanitizer report from osmosed in $r"
done
done_testing
