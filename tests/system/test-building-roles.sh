#!/bin/bash
# test-building-roles.sh: seven rooms in network namespaces. Exactly five voters and two
# standbys; a voter's osmosed killed: the leader promotes a standby in its place and
# demotes the dead one; the dead room removed: six rooms settle at 3 voters, 2 standbys,
# 1 spare — and building writes work throughout.
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/rooms.sh"
. "$(dirname "$0")/../lib/building.sh"
osm_setup
ROOMS=(A B C D E F G)
building_rooms 'status-interval = 1s' "${ROOMS[@]}"
roles() { jb A '[.members[] | select(.name != "'"${1:-}"'") | .role] | sort | join(",")'; }
roles_are() { [ "$(roles "${2:-}")" = "$1" ]; }

t0=$(date +%s%3N)
rctl A building create --name HQ --address "$ROOMS_NET.1" >/dev/null || bail "create"
for r in B C D E F G; do
    rctl "$r" building join "$(rctl A building invite 2>/dev/null)" >/dev/null || bail "join $r"
done
t1=$(date +%s%3N)
diag "seven rooms created and joined in $((t1 - t0)) ms"
for r in "${ROOMS[@]}"; do wait_for 15 field_is "$r" '.members | length' 7; done
is "$(jb G '.members | length')" "7" "seven members, as seen from the last to join"
wait_for 30 roles_are "standby,standby,voter,voter,voter,voter,voter"
is "$(roles)" "standby,standby,voter,voter,voter,voter,voter" "seven rooms: exactly five voters and two standbys"

# kill a voter that does not lead
victim=$(jb A '[.members[] | select(.role == "voter" and (.leader | not) and .name != "room-A")][0].name')
vroom=${victim#room-}
standbys_before=$(jb A '[.members[] | select(.role == "standby") | .name] | sort | join(",")')
room_osmosed_stop "$vroom" KILL
diag "killed $victim (a voter); standbys were $standbys_before"
victim_is() { [ "$(jb A ".members[] | select(.name == \"$victim\") | .role")" = "$1" ]; }
wait_for 40 victim_is spare
is "$(jb A ".members[] | select(.name == \"$victim\") | .role")" "spare" "the dead voter is demoted to spare"
is "$(jb A '[.members[] | select(.role == "voter" and .reachable)] | length')" "5" "five reachable voters again"
promoted=0
for n in ${standbys_before//,/ }; do [ "$(jb A ".members[] | select(.name == \"$n\") | .role")" = voter ] && promoted=$((promoted + 1)); done
is "$promoted" "1" "a former standby was promoted to voter in its place"
rctl A building trust add "$(bkey)" >/dev/null; is $? 0 "building writes work with the voter gone"

rctl A building remove "$victim" >/dev/null; is $? 0 "the dead room is removed"
wait_for 30 roles_are "spare,standby,standby,voter,voter,voter"
is "$(roles)" "spare,standby,standby,voter,voter,voter" "six rooms: 3 voters, 2 standbys, 1 spare"
rctl A building trust add "$(bkey)" >/dev/null; is $? 0 "building writes work after the rebalance"
done_testing
