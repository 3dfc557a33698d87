#!/bin/bash
# test-building-query.sh: five rooms in network namespaces join one building (every room
# lists all five); three share a collection: a building query returns exactly their
# records, merged by time and named by room, and each of the three has the answer in its
# audit; a room cut off (its veth down) is named as not answering within the timeout.
# Building trust: a publisher key trusted from one room lets a bundle it signed install
# in another — and not in a room outside the building. Recover: the last room standing.
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/rooms.sh"
. "$(dirname "$0")/../lib/building.sh"
osm_setup
ROOMS=(A B C D E F)
building_rooms 'status-interval = 1s\nquery-timeout = 2s' "${ROOMS[@]}"

rctl A building create --name HQ --address "$ROOMS_NET.1" >/dev/null || bail "create"
for r in B C D E; do
    rctl "$r" building join "$(rctl A building invite 2>/dev/null)" >/dev/null || bail "join $r"
done
for r in A B C D E; do
    wait_for 15 field_is "$r" '.members | length' 5
    is "$(jb "$r" '[.members[].name] | sort | join(",")')" "room-A,room-B,room-C,room-D,room-E" "$r lists all five rooms"
done
wait_for 20 field_is A '[.members[] | select(.role == "standby")] | length' 2
is "$(jb A '[.members[].role] | sort | join(",")')" "standby,standby,voter,voter,voter" "five rooms: 3 voters, 2 standbys"

# --- records in every room, three of them share
for r in A B C D E; do
    for i in 1 2; do rctl "$r" put sensors/temp "{\"room\": \"$r\", \"i\": $i}" >/dev/null; sleep 0.01; done
done
for r in B C E; do rctl "$r" building share sensors/temp >/dev/null || bail "share $r"; done
# No waiting for the shares to reach the other rooms' copies of the state: a query asks the
# leader who shares, and a room's own copy has its write when the call returns.
E_ID=$(jb E '.members[] | select(.name == "room-E") | .room')
is "$(rctl E --json call io.osmose.Building.ListShares | jq --arg r "$E_ID" '[.shares[] | select(.room == $r and .collection == "sensors/temp")] | length')" "1" \
    "the room that just shared lists its share at once (it reads its own write)"
q=$(rctl A --json building query sensors/temp)
is "$(echo "$q" | jq -r '[.records[].body.room] | unique | join(",")')" "B,C,E" "the query returns records of exactly the three sharing rooms"
is "$(echo "$q" | jq '.records | length')" "6" "... all six of them"
is "$(echo "$q" | jq -r '[.records[] | select(.room_name == "room-" + .body.room)] | length')" "6" "... each named by its room"
is "$(echo "$q" | jq '[.records[].time] | . == sort')" "true" "... merged by time"
is "$(echo "$q" | jq -r '.missing')" "0" "every sharing room answered"
is "$(echo "$q" | jq -r '[.rooms[].status] | unique | join(",")')" "answered" "... as the rooms list says"
for r in B C E; do
    a=$(rctl "$r" --json audit | jq -s '[.[] | select(.kind == "building-query" and .collection == "sensors/temp" and .status == "served")] | length')
    ok $(( a >= 1 ? 0 : 1 )) "$r's audit has what it sent ($a entries)"
    b=$(rctl "$r" --json audit | jq -s '[.[] | select(.kind == "building-query")][0].bytes')
    ok $(( b > 0 ? 0 : 1 )) "... with its size ($b bytes)"
done
a=$(rctl D --json audit | jq -s '[.[] | select(.kind == "building-query")] | length')
is "$a" "0" "a room that does not share sent nothing (its audit is empty of queries)"
q=$(rctl D --json building query sensors/temp --room room-C --limit 1)
is "$(echo "$q" | jq -r '[.records[].body.room] | join(",")')" "C" "--room and --limit ask one room for one record"
like "$(rctl A building query sensors/temp)" "room-B" "the table names the rooms"
# A share made a moment ago in one room, asked for at once from another whose copy of the
# state cannot have it yet (it refreshes once a second).
rctl B put sensors/hum '{"room": "B"}' >/dev/null
rctl B building share sensors/hum >/dev/null || bail "share sensors/hum"
q=$(rctl D --json building query sensors/hum --room room-B 2>&1)
got=$(echo "$q" | jq -r '[.records[].body.room] | join(",")' 2>/dev/null)
is "$got" "B" "a share made a moment ago is asked at once from another room"
[ "$got" = B ] || diag "$(echo "$q" | head -c 300)"
rctl B building unshare sensors/hum >/dev/null || bail "unshare sensors/hum"
out=$(rctl D building query sensors/hum 2>&1); is $? 1 "... and once unshared, at once no longer"
like "$out" "no room shares" "... saying so"
out=$(rctl A building query nothing/here 2>&1); is $? 1 "a collection nobody shares is an error"
like "$out" "no room shares" "... saying so"
# --- a room cut off: named, not silently left out
ip -n "${ROOMS_PFX}br" link set vE down
t0=$(date +%s%3N)
q=$(rctl A --json building query sensors/temp)
t1=$(date +%s%3N)
is "$(echo "$q" | jq -r '.missing')" "1" "one room did not answer"
is "$(echo "$q" | jq -r '.rooms[] | select(.status != "answered") | .name')" "room-E" "... and it is named"
is "$(echo "$q" | jq -r '[.records[].body.room] | unique | join(",")')" "B,C" "the others' records still come"
ok $(( t1 - t0 < 4000 ? 0 : 1 )) "within the query timeout ($((t1 - t0)) ms)"
like "$(rctl A building query sensors/temp 2>&1 >/dev/null)" "1 of 3 rooms did not answer" "the table says how many did not answer"
ip -n "${ROOMS_PFX}br" link set vE up

# --- building trust
rctl A keygen -o "$T/pub.key" >/dev/null || bail keygen
PUB=$(cat "$T/pub.key.pub")
mkdir -p "$T/bun"
echo '{"name":"hello","version":1,"entrypoint":["/bin/true"]}' > "$T/bun/manifest.json"
rctl A bundle build "$T/bun" -o "$T/hello.osb" --key "$T/pub.key" >/dev/null || bail "bundle build"
out=$(rctl C install "$T/hello.osb" 2>&1); is $? 1 "before: an unknown publisher's bundle is refused"
rctl B building trust add -- "$PUB" >/dev/null; is $? 0 "B trusts the publisher building-wide"
wait_for 10 sh -c "OSMOSE_SOCKET=$ROOMS_DIR/C/osm/osmosed.sock $OSMOSECTL building trust ls | grep -q -- '$PUB'"
out=$(rctl C install "$T/hello.osb" 2>&1); is $? 0 "C installs the bundle signed by it"
like "$(rctl C --json workloads | jq -r '.workloads[].name')" "hello" "... it is installed"
out=$(rctl F install "$T/hello.osb" 2>&1); is $? 1 "a room outside the building still refuses it"
rctl A building trust rm -- "$PUB" >/dev/null
wait_for 10 sh -c "! OSMOSE_SOCKET=$ROOMS_DIR/D/osm/osmosed.sock $OSMOSECTL building trust ls | grep -q -- '$PUB'"
out=$(rctl D install "$T/hello.osb" 2>&1); is $? 1 "after trust rm it is refused again"

# --- remove a room gone for good, then recover the last room standing
room_osmosed_stop E KILL
rctl A building remove room-E >/dev/null; is $? 0 "a room gone for good is removed"
wait_for 10 field_is A '.members | length' 4
is "$(jb A '.members | length')" "4" "four members left"
for r in B C D; do room_osmosed_stop "$r" KILL; done
wait_for 10 field_is A .stale true
rctl A building trust add "$(rctl A keygen -o "$T/k2" >/dev/null; cat "$T/k2.pub")" >/dev/null 2>&1; is $? 1 "three of four gone: no quorum"
out=$(rctl A building recover 2>&1); rc=$?
is "$rc" 0 "building recover on the last room"
like "$out" "one room only" "... telling the rule"
wait_for 15 field_is A .stale false
is "$(jb A .stale)" "false" "the recovered room has quorum alone"
K=$(cat "$T/k2.pub")
rctl A building trust add -- "$K" >/dev/null; is $? 0 "building writes work after recovery"
for r in B C D; do rctl A building remove "room-$r" >/dev/null 2>&1; done
wait_for 10 field_is A '.members | length' 1
is "$(jb A '.members | length')" "1" "the lost rooms removed: A alone"
# Stopped, the daemons exit cleanly: under the sanitizers a leak (the recovery's, before)
# or a crash at exit fails a check here, not only leaves a report in the daemon's log.
for r in A F; do
    room_osmosed_stop "$r"
    is "$ROOM_EXIT" 0 "room $r's osmosed exits cleanly at stop"
    [ "$ROOM_EXIT" = 0 ] || grep -E 'Sanitizer|SUMMARY|#[0-9]+ 0x' "$ROOMS_DIR/$r/osmosed.log" | head -30 | sed 's/^/# /'
done
done_testing
