#!/bin/bash
# test-discovery-hostile.sh: a hostile LAN. Room E's avahi-daemon announces a flood of
# services, TXT records with garbage, duplicate, empty and long keys and binary values, a gateway record
# with a malformed id and one claiming A's id; osmosed in A (capped catalog) and B must
# stay up, bounded, and show the impostor as a conflict, never merged or trusted.
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/rooms.sh"
JGET="python3 $(dirname "$0")/../lib/jget.py"

if ! rooms_check; then
    echo "1..0 # SKIP $ROOMS_SKIP"
    exit 0
fi
osm_setup
trap 'rooms_down; osm_cleanup' EXIT
rooms_up A B E:noavahi || bail "cannot build the rooms"

disc() {   # ROOM FIELD: a field of the discovery status (or its info)
    rctl "$1" --json status |
        $JGET "[s.get('$2', s.get('info', {}).get('$2')) for s in d['subsystems'] if s['name'] == 'discovery'][0]"
}
nrec() {   # ROOM ID: number of peer records announcing ID
    rctl "$1" --json peers | $JGET "len([p for p in d['peers'] if p['id'] == '$2'])"
}

mkdir -p "$ROOMS_DIR/A/osm"
printf '[discovery]\nmax-services = 300\n' > "$ROOMS_DIR/A/osm/osmosed.conf"
room_osmosed_start A gw-a || bail "osmosed in A"
room_osmosed_start B gw-b || bail "osmosed in B"
IDA=$(rctl A --json status | $JGET 'd["id"]')

svc() {   # FILE NAME TYPE PORT TXT-XML...
    local f=$1 name=$2 type=$3 port=$4; shift 4
    { echo "<?xml version=\"1.0\" standalone='no'?><service-group><name>$name</name>"
      echo "<service><type>$type</type><port>$port</port>"
      printf '%s\n' "$@"
      echo "</service></service-group>"; } > "$(room_services_dir E)/$f.service"
}
for i in $(seq 1000); do svc "f$i" "flood $i" _flood._tcp "$((2000 + i))" "<txt-record>n=$i</txt-record>"; done
svc twin "gw-a-twin" _osmose._tcp 9 "<txt-record>id=$IDA</txt-record>" "<txt-record>name=gw-a</txt-record>" "<txt-record>v=1</txt-record>"
svc junkpeer "junk peer" _osmose._tcp 9 "<txt-record>id=not-an-id</txt-record>" "<txt-record>v=x</txt-record>"
long=$(printf 'x%.0s' $(seq 200))
recs=()
for i in $(seq 4); do recs+=("<txt-record>k$i=$long</txt-record>"); done
svc junk "junk	txt" _junk._tcp 7 "<txt-record>dup=1</txt-record>" "<txt-record>DUP=2</txt-record>" \
    "<txt-record>bad$(printf '\t')key=1</txt-record>" "<txt-record>bin=a$(printf '\t')b</txt-record>" "${recs[@]}"
room_avahi_start E || bail "avahi in E"

# --- the flood -------------------------------------------------------------------------
flood_capped() { [ "$(disc A dropped_services)" -gt 0 ]; }
WAIT_S=90 wait_until flood_capped
ok $? "A ignores services beyond its cap (and counts them)"
n=$(rctl A --json services | $JGET 'len([s for s in d["services"] if s["type"] != "_osmose._tcp"])')
ok $(( n > 300 )) "A's catalog holds at most 300 services beside the gateways' records (has $n)"
rctl A call org.varlink.service.GetInfo >/dev/null
ok $? "A keeps serving during the flood"
rss=$(awk '/^VmRSS/ {print $2}' "/proc/$(cat "$ROOMS_DIR/A/osmosed.pid")/status")
ok $(( rss > 65536 )) "A's memory stays bounded (${rss} KiB resident)"
flood_all() { [ "$(rctl B --json services --type _flood._tcp | $JGET 'len(d["services"])')" -ge 1000 ]; }
WAIT_S=90 wait_until flood_all
ok $? "B (default cap) lists all 1,000"

# --- an impostor claiming A's id ---------------------------------------------------------
twin_seen() { [ "$(nrec B "$IDA")" = 2 ]; }
WAIT_S=90 wait_until twin_seen
ok $? "B keeps the impostor as a second record: never merged"
is "$(rctl B --json peers | $JGET "all(p['conflict'] for p in d['peers'] if p['id'] == '$IDA')")" "true" \
   "both records are marked as a conflict"
err=$(rctl B peer trust "$IDA" 2>&1); rc=$?
ok $(( rc == 0 )) "trusting a contested id is refused"
like "$err" "several gateways announce this id; refusing to trust any of them" "... saying several gateways claim the id (PeerConflict, in words)"
is "$(rctl B --json peers | $JGET "any(p['trusted'] for p in d['peers'] if p['id'] == '$IDA')")" "false" "nobody got trusted"
like "$(rctl B peers)" "CONFLICT" "the table shows the conflict"
own_claimed() { [ "$(disc A own_id_claimed)" = true ]; }
WAIT_S=90 wait_until own_claimed
ok $? "A notices someone announcing its own id"
is "$(disc A health)" "degraded" "... and reports discovery degraded"
like "$(disc A detail)" "announces this space's id" "... saying why"
is "$(rctl A --json peers | $JGET "[p['conflict_reason'] for p in d['peers'] if p['id'] == '$IDA'][0]")" \
   "claims this gateway's own id" "A lists the impostor with the reason"

# --- garbage ------------------------------------------------------------------------------
invalid_seen() { [ "$(disc B invalid_peer_records)" -ge 1 ]; }
WAIT_S=30 wait_until invalid_seen
ok $? "a gateway record with a malformed id is counted as invalid"
is "$(rctl B --json peers | $JGET "len([p for p in d['peers'] if p['instance'] == 'junk peer'])")" "0" "... and not listed as a peer"
junk_seen() { rctl B --json services --type _junk._tcp | $JGET 'd["services"][0]["name"]'; }
WAIT_S=30 wait_until junk_seen
ok $? "the service with a garbage TXT record is catalogued"
j=$(rctl B --json services --type _junk._tcp)
is "$(echo "$j" | $JGET 'd["services"][0]["txt"]["dup"]')" "1" "a duplicate key: the first one counts"
like "$(echo "$j" | $JGET 'd["services"][0]["txt_issues"]')" "duplicate-key" "duplicates are flagged"
is "$(echo "$j" | $JGET 'len(d["services"][0]["txt"]["k4"])')" "200" "long values arrive whole"
like "$(echo "$j" | $JGET 'd["services"][0]["txt_issues"]')" "invalid-key" "a key with a control character is flagged"
like "$(echo "$j" | $JGET 'd["services"][0]["txt"]["bin"]')" '"hex"' "a value that is not text comes as hex"
table=$(rctl B services --type _junk._tcp)
printf '%s' "$table" | tr -d '\n' | grep -q "$(printf '\t')"
ok $(( $? == 0 )) "control characters in names never reach the terminal"

for r in A B; do
    kill -0 "$(cat "$ROOMS_DIR/$r/osmosed.pid")" 2>/dev/null
    ok $? "osmosed in $r is alive"
    grep -E "AddressSanitizer|runtime error" "$ROOMS_DIR/$r/osmosed.log" >/dev/null
    ok $(( $? == 0 )) "no sanitizer report from osmosed in $r"
done
done_testing
