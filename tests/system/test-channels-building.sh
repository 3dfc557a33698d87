#!/bin/bash
# test-channels-building.sh: rooms (three; CH_ROOMS="A B C D E" for five) in network namespaces of their own make a building
# and follow one channel building-wide: the canary room upgrades first, then the others
# in waves (one room, or two of five, at a time), each wave after the one before it is healthy; a canary that fails its
# health check halts the rollout; rollout status shows which room runs which version; a
# held room is skipped.
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/rooms.sh"
. "$(dirname "$0")/../lib/channels.sh"
osm_setup
command -v jq >/dev/null || { echo "1..0 # SKIP jq is not installed"; exit 0; }
rooms_check || { echo "1..0 # SKIP $ROOMS_SKIP"; exit 0; }
"$OSMOSECTL" building --help >/dev/null 2>&1 || { echo "1..0 # SKIP built without the building"; exit 0; }
trap 'rooms_down; osm_cleanup' EXIT

ROOMS=(${CH_ROOMS:-A B C})
rooms_up $(printf "%s:bare " "${ROOMS[@]}") || bail "cannot make rooms"
ch_building_up '[building]\nstatus-interval = 1s\nquery-timeout = 2s\n[channels]\ncheck-interval = 1s\nhealth-grace = 1s\n' ||
    bail "$CH_ERR"
ok 0 "${#ROOMS[@]} rooms make a building"

pub=$(ctl keygen -o "$T/key")
for r in "${ROOMS[@]}"; do rctl "$r" trust add "$pub" >/dev/null || bail "trust add in $r"; done
# make VERSION [EXTRA_JSON]: a one-shot-free workload that sleeps; extra fields such as a health command
make() {
    local d=$T/src-$1; mkdir -p "$d"
    printf '{"name":"hello","version":%s,"entrypoint":["/bin/sleep","1000"],"restart":"never"%s}\n' "$1" "${2:-}" \
        > "$d/manifest.json"
    ctl bundle build "$d" -o "$T/hello-$1.osb" --key "$T/key" >/dev/null || bail "bundle build $1"
    ctl channel publish "$T/hello-$1.osb" --channel hello --key "$T/key" -o "$T/pub" >/dev/null || bail "publish $1"
}
version_in() { rctl "$1" --json workloads | jq -r '[.workloads[] | select(.name == "hello") | .version][0] // "none"'; }
all_at() { local r; for r in "${ROOMS[@]}"; do [ "$(version_in "$r")" = "$1" ] || return 1; done; }
# the time (µs) a room recorded its outcome for version V, from rollout status (as seen by A)
state_of() { rctl A --json rollout status | jq -r --arg r "room-$1" '[.rooms[] | select(.room == $r) | .state][0] // ""'; }

BATCH=$([ ${#ROOMS[@]} = 5 ] && echo 2 || echo 1)
make 1
rctl C follow hello "$T/pub" --canary room-A >/dev/null 2>&1; is $? 2 "--canary without --building is a usage error"
out=$(rctl C follow hello "$T/pub" --building --canary room-A --batch "$BATCH" 2>&1); ok $? "follow hello building-wide (canary room-A, waves of $BATCH)"
like "$out" 'follows channel hello' "…answers with the follow"
wait_for 60 all_at 1; ok $? "every room installs version 1"
reported() { [ "$(rctl A --json rollout status | jq '[.rooms[] | select(.workload == "hello")] | length')" = ${#ROOMS[@]} ]; }
wait_for 30 reported; ok $? "…and every room reported it to the building"
order=$(rctl A --json rollout status | jq -r '[.rooms[] | select(.workload == "hello")] | sort_by(.time) | map(.room) | join(" ")')
like "$order" '^room-A ' "the canary room-A went first ($order)"
if [ ${#ROOMS[@]} = 5 ]; then
    like "$order" '^room-A (room-B room-C|room-C room-B) (room-D room-E|room-E room-D)$' "…then room-B and room-C, then room-D and room-E"
else
    is "$order" "room-A room-B room-C" "…then room-B, then room-C (waves of one)"
fi
LAST=${ROOMS[-1]}
is "$(rctl B --json workloads | jq -r '.workloads[] | select(.name == "hello") | .channel.building')" true \
    "room-B learned the building-wide follow by itself"
like "$(rctl B rollout status)" "room-$LAST +hello +1 +healthy" "rollout status shows which room runs which version"

# A canary that fails its health check halts the rollout.
make 2 ',"health":["/bin/sh","-c","exit 1"]'
canary_failed() { [ "$(state_of A)" = failed ]; }
wait_for 60 canary_failed; ok $? "the canary tries version 2 and fails its health check"
is "$(version_in A)" 1 "…the canary is back on version 1"
sleep 4
for r in "${ROOMS[@]:1}"; do is "$(version_in "$r")" 1 "…room-$r did not take version 2 (halted)"; done
like "$(rctl "$LAST" --json upgrade hello)" 'halted: the canary room-A failed' "upgrade in another room says the rollout is halted"

# A good version after it completes; a held room is skipped and does not block the others.
HELD=${ROOMS[1]}
rctl "$HELD" rollout hold >/dev/null; ok $? "rollout hold (room-$HELD holds itself)"
like "$(rctl A rollout status)" "room-$HELD .*held" "…rollout status shows the hold"
make 3
three_but_held() { local r; for r in "${ROOMS[@]}"; do [ "$r" = "$HELD" ] && continue; [ "$(version_in "$r")" = 3 ] || return 1; done; }
wait_for 60 three_but_held; ok $? "version 3 rolls out to every room but the held one, which does not block those after it"
is "$(version_in "$HELD")" 1 "…the held room stays on version 1"
rctl "$HELD" rollout release >/dev/null; ok $? "rollout release"
wait_for 30 all_at 3; ok $? "…then the released room upgrades too"

for r in "${ROOMS[@]}"; do
    kill -TERM "$(cat "$ROOMS_DIR/$r/osmosed.pid")" 2>/dev/null
done
done_testing
