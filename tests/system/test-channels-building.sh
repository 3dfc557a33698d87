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
ch_trust_all "$pub" || bail "$CH_ERR"
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

# A report that does not reach the building (no quorum while the canary's result goes out)
# is sent again until it lands: rollout status converges and the rollout halts instead of
# waiting for ever on a result sent once and lost.
make 4 ',"health":["/bin/sh","-c","sleep 4; exit 1"]'
hello_state() { rctl "$1" --json workloads | jq -r '[.workloads[] | select(.name == "hello") | .channel.state][0] // ""'; }
in_health() { [ "$(hello_state A)" = health ]; }
wait_for 60 in_health; ok $? "the canary checks the health of version 4 (its health command fails after 4 s)"
OTHERS=("${ROOMS[@]:1}")
for r in "${OTHERS[@]}"; do kill -STOP "$(cat "$ROOMS_DIR/$r/osmosed.pid")"; done
back_idle() { [ "$(hello_state A)" = idle ]; }
wait_for 30 back_idle; ok $? "…while the other rooms are stopped (no quorum) it fails and rolls back"
sent_again() { grep -q "sending the reports the building did not take again" "$ROOMS_DIR/A/osmosed.log"; }
wait_for 30 sent_again; ok $? "…its report does not reach the building, and is kept to be sent again"
for r in "${OTHERS[@]}"; do kill -CONT "$(cat "$ROOMS_DIR/$r/osmosed.pid")"; done
v4_failed() { [ "$(rctl A --json rollout status 2>/dev/null | jq -r '[.rooms[] | select(.room == "room-A") | "\(.version) \(.state)"][0]')" = "4 failed" ]; }
wait_for 90 v4_failed; ok $? "once the building has quorum again the report lands: rollout status shows room-A 4 failed"
like "$(rctl "$LAST" --json upgrade hello)" 'halted: the canary room-A failed' "…and the rollout of version 4 halts in the other rooms"
for r in "${ROOMS[@]:1}"; do is "$(version_in "$r")" 3 "…room-$r stays on version 3"; done

# Building-wide trust: a key the building trusts is accepted by every room for a channel
# followed building-wide, not for a room's own follow; a room's [channels] distrust refuses it.
pub2=$(ctl keygen -o "$T/key2")
rctl A building trust add "$pub2" >/dev/null; ok $? "building trust add KEY2 (no room trusts it by itself)"
d=$T/src-tool; mkdir -p "$d"
printf '{"name":"tool","version":1,"entrypoint":["/bin/sleep","1000"],"restart":"never"}\n' > "$d/manifest.json"
ctl bundle build "$d" -o "$T/tool-1.osb" --key "$T/key2" >/dev/null || bail "bundle build tool"
ctl channel publish "$T/tool-1.osb" --channel tool --key "$T/key2" -o "$T/pub2" >/dev/null || bail "publish tool"
trusts_key2() { rctl "$LAST" --json building trust ls 2>/dev/null | grep -qF -- "$pub2"; }
wait_for 30 trusts_key2 || bail "room-$LAST does not learn the building's trust"
# follow_in ROOM ARGS…: follow, again while a periodic check of the room is running (Busy)
follow_in() { local r=$1 o; shift; for _ in $(seq 50); do o=$(rctl "$r" follow "$@" 2>&1) && { echo "$o"; return 0; }
    [[ $o == *io.osmose.Busy* ]] || { echo "$o"; return 1; }; sleep 0.2; done; echo "$o"; return 1; }
out=$(follow_in B tool "$T/pub2"); ok $((! $?)) "a room's own follow of a channel signed by a key only the building trusts is refused"
like "$out" 'not a trusted key.*only for a follow building-wide.*io.osmose.Channel.Untrusted' "…as untrusted, saying why"
printf '[building]\nstatus-interval = 1s\nquery-timeout = 2s\n[channels]\ncheck-interval = 1s\nhealth-grace = 1s\ndistrust = %s\n' "$pub2" \
    > "$ROOMS_DIR/$LAST/osm/osmosed.conf"
rctl "$LAST" reload >/dev/null; ok $? "room-$LAST distrusts KEY2 ([channels] distrust, reload)"
out=$(follow_in B tool "$T/pub2" --building); ok $? "the same channel followed building-wide is accepted"
tool_in() { rctl "$1" --json workloads | jq -r '[.workloads[] | select(.name == "tool") | .version][0] // "none"'; }
tool_but_last() { local r; for r in "${ROOMS[@]}"; do [ "$r" = "$LAST" ] && continue; [ "$(tool_in "$r")" = 1 ] || return 1; done; }
wait_for 60 tool_but_last; ok $? "…every room that does not distrust the key installs it"
# (tool is not installed there: its follow's verdict is what a check says)
refused_last() { [[ "$(rctl "$LAST" upgrade tool --check 2>&1)" == *"which this room refuses ([channels] distrust)"*io.osmose.Channel.Untrusted* ]]; }
wait_for 30 refused_last; ok $? "…room-$LAST learned the follow and refuses it ([channels] distrust): Untrusted"
is "$(tool_in "$LAST")" none "…and does not install it"

for r in "${ROOMS[@]}"; do
    kill -TERM "$(cat "$ROOMS_DIR/$r/osmosed.pid")" 2>/dev/null
done
done_testing
