# building.sh: what the building tests share — rooms in network namespaces (no avahi:
# the building needs none), an osmosed in each with a [building] section, and helpers.
# Source after common.sh and rooms.sh.
#
#   building_rooms CONF ROOM...  check what is needed (skip the test otherwise), make the
#                                rooms, write CONF (lines of [building]) and start osmosed
#                                in each as "room-ROOM"
#   jb ROOM JQ                   building status of ROOM, through jq -r
#   field_is ROOM JQ VALUE       does jb ROOM JQ print VALUE?
#   bkey                         a random public key (never starting with '-')

building_rooms() {
    local conf=$1 r specs=()
    shift
    command -v jq >/dev/null || { echo "1..0 # SKIP jq is not installed"; exit 0; }
    rooms_check || { echo "1..0 # SKIP $ROOMS_SKIP"; exit 0; }
    "$OSMOSECTL" building --help >/dev/null 2>&1 || { echo "1..0 # SKIP built without the building"; exit 0; }
    trap 'rooms_down; osm_cleanup' EXIT
    for r in "$@"; do specs+=("$r:bare"); done
    rooms_up "${specs[@]}" || bail "cannot make rooms"
    for r in "$@"; do
        mkdir -p "$ROOMS_DIR/$r/osm"
        printf '[building]\n%b\n' "$conf" > "$ROOMS_DIR/$r/osm/osmosed.conf"
        room_osmosed_start "$r" "room-$r" || bail "osmosed in $r"
    done
}
jb() { rctl "$1" --json building status | jq -r "$2"; }
field_is() { [ "$(jb "$1" "$2" 2>/dev/null)" = "$3" ]; }
bkey() { python3 -c 'import base64, os
while True:
    k = base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
    if k[0] != "-":
        print(k)
        break'; }
