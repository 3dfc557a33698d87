# channels.sh: what the building-wide channel tests and bench/distribution.sh share.
# Source after common.sh (wait_for) and rooms.sh (the rooms must be up).
#
#   ch_ip ROOM                   the room's address (its place in ROOMS, from .1)
#   ch_building_up CONF          start osmosed in each room of ROOMS as "room-ROOM" with CONF
#                                (osmosed.conf text, printf escapes), make a building of them
#                                (the first creates it, the others join one by one) and wait
#                                until every room sees them all; returns 1 with CH_ERR set
#                                (call it in the shell itself, not in $(...): rooms.sh tracks
#                                the daemons' PIDs)
#   ch_trust_all KEY             trust KEY (a publisher's public key) in every room of ROOMS;
#                                returns 1 with CH_ERR set
#   ch_rootfs DIR PROGRAM...     copy PROGRAM (e.g. /bin/sleep) and the libraries it loads into
#                                DIR/rootfs (a bundle with a rootfs sees nothing else), and
#                                /bin/dash as /bin/sh
ch_ip() { local i; for i in "${!ROOMS[@]}"; do [ "${ROOMS[$i]}" = "$1" ] && echo "$ROOMS_NET.$((i + 1))"; done; }
ch_n_members() { rctl "$1" --json building status 2>/dev/null | jq -r '.members | length'; }
ch_has_members() { [ "$(ch_n_members "$1")" = "$2" ]; }
ch_trust_all() {
    local r
    for r in "${ROOMS[@]}"; do rctl "$r" trust add "$1" >/dev/null || { CH_ERR="trust add in $r"; return 1; }; done
}
ch_rootfs() {
    local d=$1/rootfs p l; shift
    mkdir -p "$d/bin"
    cp /bin/dash "$d/bin/sh"
    for p in "$@"; do cp "$p" "$d/bin/"; done
    for l in $(ldd /bin/dash "$@" | grep -o '/[^ ]*\.so[^ ]*' | sort -u); do
        mkdir -p "$d$(dirname "$l")"; cp -L "$l" "$d$l"
    done
}
CH_ERR=
ch_building_up() {
    local conf=$1 r tok out joined n=1 try
    for r in "${ROOMS[@]}"; do
        mkdir -p "$ROOMS_DIR/$r/osm"
        printf "$conf" > "$ROOMS_DIR/$r/osm/osmosed.conf"
        room_osmosed_start "$r" "room-$r" --config "$ROOMS_DIR/$r/osm/osmosed.conf" || { CH_ERR="osmosed in $r"; return 1; }
    done
    rctl "${ROOMS[0]}" building create --name HQ --address "$(ch_ip "${ROOMS[0]}")" >/dev/null || { CH_ERR="building create"; return 1; }
    for r in "${ROOMS[@]:1}"; do
        tok=$(rctl "${ROOMS[0]}" building invite --expires 10m 2>/dev/null)
        joined=1
        for try in 1 2 3 4 5; do
            out=$(rctl "$r" building join "$tok" 2>&1) && { joined=0; break; }
            sleep 1
            # a join that timed out on the way back may still have gone through
            [ "$(rctl "$r" --json building status 2>/dev/null | jq -r .in_building)" = true ] && { joined=0; break; }
            tok=$(rctl "${ROOMS[0]}" building invite --expires 10m 2>/dev/null)
        done
        [ $joined = 0 ] || { CH_ERR="room $r did not join: $out"; return 1; }
        n=$((n + 1))
        wait_for 60 ch_has_members "${ROOMS[0]}" $n || { CH_ERR="room ${ROOMS[0]} does not see $n members"; return 1; }
    done
    for r in "${ROOMS[@]}"; do
        wait_for 90 ch_has_members "$r" ${#ROOMS[@]} || {
            CH_ERR="room $r does not see ${#ROOMS[@]} members: $(rctl "$r" --json building status | head -c 1500)"
            return 1; }
    done
}
