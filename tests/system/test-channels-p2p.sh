#!/bin/bash
# test-channels-p2p.sh: five rooms in network namespaces of their own make a building and
# follow a channel building-wide from an HTTP origin in a sixth namespace that counts the
# bytes it sends per path. The canary takes each bundle from the origin; the other rooms
# take it from members that keep it, verified by its hash, so the origin sends about one
# copy where five rooms fetching from it would take five. A canary failing its health
# check halts the rollout; a member that serves other bytes than the bundle is refused
# and the fetch still succeeds (from the next member, or the origin).
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/rooms.sh"
. "$(dirname "$0")/../lib/channels.sh"
osm_setup
for t in jq curl python3; do command -v $t >/dev/null || { echo "1..0 # SKIP $t is not installed"; exit 0; }; done
rooms_check || { echo "1..0 # SKIP $ROOMS_SKIP"; exit 0; }
"$OSMOSECTL" building --help >/dev/null 2>&1 || { echo "1..0 # SKIP built without the building"; exit 0; }
trap 'rooms_down; osm_cleanup' EXIT

ROOMS=(A B C D E)
rooms_up A:bare B:bare C:bare D:bare E:bare O:bare || bail "cannot make rooms"
ORIGIN=http://$ROOMS_NET.6:8080
mkdir -p "$T/pub"
room_spawn O "$T/origin.log" python3 "$OSM_SOURCE_ROOT/tests/lib/count-http.py" 0.0.0.0 8080 "$T/pub"
served() { room_exec O curl -sf "http://127.0.0.1:8080/__bytes"; }
wait_for 10 served >/dev/null || bail "the origin does not answer"
# bytes the origin sent for bundle ID
sent_for() { served | jq -r --arg p "/bundles/$1" '.paths[$p] // 0'; }

ch_building_up '[building]\nstatus-interval = 1s\nquery-timeout = 2s\n[channels]\ncheck-interval = 1s\nhealth-grace = 1s\n' ||
    bail "$CH_ERR"
ok 0 "five rooms make a building"

pub=$(ctl keygen -o "$T/key")
ch_trust_all "$pub" || bail "$CH_ERR"
# build VERSION [EXTRA_JSON]: a workload that sleeps, with its own sh and sleep and 1 MiB of
# random data (about 3 MiB in all)
build() {
    local d=$T/src-$1; mkdir -p "$d/rootfs/opt"
    ch_rootfs "$d" /bin/sleep
    head -c $((1024 * 1024)) /dev/urandom > "$d/rootfs/opt/blob"
    printf '{"name":"hello","version":%s,"entrypoint":["/bin/sleep","1000"],"restart":"never"%s}\n' "$1" "${2:-}" \
        > "$d/manifest.json"
    ctl bundle build "$d" -o "$T/hello-$1.osb" --key "$T/key" >/dev/null || bail "bundle build $1"
}
# publish VERSION [DIR]: sets ID and SIZE
publish() {
    local o
    o=$(ctl --json channel publish "$T/hello-$1.osb" --channel hello --key "$T/key" -o "${2:-$T/pub}") || bail "publish $1"
    ID=$(jq -r .bundle <<<"$o"); SIZE=$(jq -r .size <<<"$o")
}
version_in() { rctl "$1" --json workloads | jq -r '[.workloads[] | select(.name == "hello") | .version][0] // "none"'; }
all_at() { local r; for r in "${ROOMS[@]}"; do [ "$(version_in "$r")" = "$1" ] || return 1; done; }
# the sum over the rooms of a building counter
counted() { local r s=0 v; for r in "${ROOMS[@]}"; do v=$(rctl "$r" --json building status | jq -r ".counters.$1 // 0"); s=$((s + v)); done; echo $s; }
counter_in() { rctl "$1" --json building status | jq -r ".counters.$2 // 0"; }
state_of() { rctl A --json rollout status | jq -r --arg r "room-$1" '[.rooms[] | select(.room == $r) | .state][0] // ""'; }

# ---- version 1: one copy from the origin, four from members
build 1; publish 1; ID1=$ID; SIZE1=$SIZE
out=$(rctl C follow hello "$ORIGIN" --building --canary room-A --batch 2 2>&1); ok $? "follow hello building-wide from the HTTP origin"
wait_for 120 all_at 1; ok $? "every room runs version 1"
o1=$(sent_for "$ID1")
diag "bundle 1: $SIZE1 bytes; the origin sent $o1 bytes for it"
[ "$o1" -ge "$SIZE1" ]; ok $? "the origin sent the bundle at least once ($o1 bytes)"
[ "$o1" -le $((SIZE1 * 3 / 2)) ]; ok $? "…and at most 1.5 copies ($o1 <= 1.5 x $SIZE1), not one per room ($((SIZE1 * 5)))"
is "$(counted bundles_fetched)" 4 "the four rooms after the canary each took it from a member"
[ "$(counted bundle_bytes_fetched)" -ge $((SIZE1 * 4)) ]; ok $? "…$(counted bundle_bytes_fetched) bytes between members"
is "$(counted bundles_served)" 4 "…and members counted four copies sent"
is "$(counter_in A bundles_fetched)" 0 "the canary took it from the origin (no member had it)"
[ "$(counter_in A bundle_holders)" -ge 5 ]; ok $? "the building knows the five rooms keep it"

# ---- version 2 fails its health check on the canary: the rollout halts
build 2 ',"health":["/bin/sh","-c","exit 1"]'; publish 2; ID2=$ID; SIZE2=$SIZE
canary_failed() { [ "$(state_of A)" = failed ]; }
wait_for 60 canary_failed; ok $? "the canary tries version 2 and fails its health check"
is "$(version_in A)" 1 "…the canary is back on version 1"
sleep 3
for r in B C D E; do is "$(version_in "$r")" 1 "…room-$r did not take version 2 (halted)"; done
o2=$(sent_for "$ID2")
[ "$o2" -le $((SIZE2 * 3 / 2)) ]; ok $? "the origin sent version 2 to the canary only ($o2 bytes)"

# ---- version 3: a member that keeps a corrupted copy serves it first, and is refused
rctl E rollout hold >/dev/null; ok $? "room-E holds itself"
build 3
mkdir -p "$T/stick/bundles" "$T/scratch"
publish 3 "$T/scratch"; ID3=$ID; SIZE3=$SIZE
cp "$T/scratch/bundles/$ID3" "$T/stick/bundles/"
h0=$(counter_in A bundle_holders)
out=$(rctl E import "$T/stick" 2>&1); ok $? "room-E imports bundle 3 from a stick"
more_holders() { [ "$(counter_in A bundle_holders)" -gt "$h0" ]; }
wait_for 30 more_holders; ok $? "…and the building knows room-E keeps it"
kept=$ROOMS_DIR/E/osm/channels/bundles/$ID3
[ -f "$kept" ] || bail "no kept bundle at $kept"
printf 'not the bundle you asked for' | dd of="$kept" bs=1 seek=$((SIZE3 / 2)) conv=notrunc status=none
is "$(stat -c %s "$kept")" "$SIZE3" "room-E's copy is corrupted in place (same size, other bytes)"
r0=$(counter_in A bundles_refused)
publish 3
three_but_e() { local r; for r in A B C D; do [ "$(version_in "$r")" = 3 ] || return 1; done; }
wait_for 120 three_but_e; ok $? "version 3 rolls out to room-A..room-D despite the lying member"
[ "$(counter_in A bundles_refused)" -gt "$r0" ]; ok $? "the canary refused room-E's copy by its hash (it was the only member keeping it)"
[ "$(counter_in E bundles_served)" -ge 1 ]; ok $? "…room-E did send it"
like "$(cat "$ROOMS_DIR/A/osmosed.log")" "bundle ${ID3:0:12}.* from member room-E refused" "…and room-A's log says so"
o3=$(sent_for "$ID3")
[ "$o3" -ge "$SIZE3" ] && [ "$o3" -le $((SIZE3 * 3 / 2)) ]; ok $? "the origin sent bundle 3 about once ($o3 bytes for $SIZE3)"
rm -f "$kept"
rctl E rollout release >/dev/null; ok $? "room-E released (its bad copy removed)"
wait_for 60 all_at 3; ok $? "…then room-E upgrades too, from a member"
o3b=$(sent_for "$ID3")
is "$o3b" "$o3" "…the origin sent nothing more for it"

# ---- version 4's health command is not in its bundle: that fails the check too
build 4 ',"health":["/bin/no-such-program"]'; publish 4
wait_for 60 canary_failed; ok $? "a health command that cannot start fails the canary's check"
is "$(version_in A)" 3 "…the canary is back on version 3"

for r in "${ROOMS[@]}"; do kill -TERM "$(cat "$ROOMS_DIR/$r/osmosed.pid")" 2>/dev/null; done
done_testing
