# rooms.sh: a small building on one machine for discovery tests and benchmarks —
# "rooms" are network namespaces joined by a bridge (itself in a namespace of its own),
# each with its own D-Bus system bus and avahi-daemon. Source it; it never touches the
# machine's real interfaces or its root network namespace.
#
#   rooms_check                 sets ROOMS_SKIP to a reason (and returns 1) if rooms
#                               cannot be made here: not root, no netns, tools missing
#   rooms_up ROOM...            make the rooms (ROOM, ROOM:noavahi = bus only,
#                               ROOM:bare = network only); waits until each avahi is up
#   room_avahi_start ROOM       (re)start the room's avahi-daemon and wait for it
#   room_avahi_stop ROOM        stop it (by PID)
#   room_exec ROOM CMD...       run CMD in the room, with its bus (foreground)
#   room_spawn ROOM LOG CMD...  start CMD in the room in the background; ROOM_PID is its
#                               PID (killed at rooms_down)
#   room_services_dir ROOM      directory of static avahi service files for the room
#                               (read when its avahi-daemon starts)
#   rooms_down                  kill what we started (by PID), delete our namespaces
#
# Each run gets its own namespace prefix and directory, so parallel runs (and other
# people's tests) never collide. Call rooms_down from the caller's EXIT trap.

ROOMS_PFX=${ROOMS_PFX:-osmt$$-}
ROOMS_NET=198.51.100            # TEST-NET-2: never routed anywhere
ROOMS_DIR=
ROOMS_SKIP=
_rooms_pids=()
_rooms_ns=()
_rooms_list=()

_rooms_die() { echo "rooms: $*" >&2; return 1; }

rooms_check() {
    local t
    if [ "$(id -u)" != 0 ]; then ROOMS_SKIP="needs root to make network namespaces"; return 1; fi
    for t in ip dbus-daemon avahi-daemon nsenter mount; do
        command -v "$t" >/dev/null 2>&1 || { ROOMS_SKIP="$t is not installed"; return 1; }
    done
    if ! getent passwd avahi >/dev/null || ! getent group avahi >/dev/null; then
        ROOMS_SKIP="avahi-daemon needs the user and group 'avahi'"; return 1
    fi
    if ! ip netns add "${ROOMS_PFX}probe" 2>/dev/null; then
        ROOMS_SKIP="cannot create a network namespace here"; return 1
    fi
    ip netns del "${ROOMS_PFX}probe" 2>/dev/null
    if ! ip link help 2>&1 | grep -q veth; then ROOMS_SKIP="no veth support"; return 1; fi
    return 0
}

# Namespaces left behind by a run that was killed (its PID is gone and nothing runs in
# them any more) are ours to remove; anything else is not.
_rooms_reap_stale() {
    local ns pid
    for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^osmt[0-9]+-' || true); do
        pid=${ns#osmt}; pid=${pid%%-*}
        kill -0 "$pid" 2>/dev/null && continue
        [ -z "$(ip netns pids "$ns" 2>/dev/null)" ] && ip netns del "$ns" 2>/dev/null
    done
    return 0
}

_room_env() { echo "DBUS_SYSTEM_BUS_ADDRESS=unix:path=$ROOMS_DIR/$1/bus"; }

_room_avahi_conf() {   # ROOM DIR
    cat > "$2/avahi-daemon.conf" <<EOF
[server]
host-name=room-$(echo "$1" | tr 'A-Z' 'a-z')
use-ipv4=yes
use-ipv6=no
allow-interfaces=eth0
enable-dbus=yes
ratelimit-interval-usec=1000000
ratelimit-burst=1000
cache-entries-max=20000
[wide-area]
enable-wide-area=no
[publish]
publish-hinfo=no
publish-workstation=no
[reflector]
[rlimits]
EOF
}

_rooms_track() { _rooms_pids+=("$1"); }

room_avahi_start() {
    local r=$1 d=$ROOMS_DIR/$1 i
    : > "$d/avahi.log"
    # avahi-daemon hard-codes /run/avahi-daemon and reads static services from
    # /etc/avahi/services: give it a private /run and the room's own services directory,
    # in the mount namespace 'ip netns exec' makes (with / made rslave, so nothing of
    # this is seen outside).
    ip netns exec "$ROOMS_PFX$r" env "$(_room_env "$r")" sh -c '
        mount -t tmpfs -o mode=755,size=4m tmpfs /run &&
        mkdir -p /run/avahi-daemon /run/dbus &&
        ln -s "$1/bus" /run/dbus/system_bus_socket &&
        { [ ! -d /etc/avahi/services ] || mount --bind "$1/services" /etc/avahi/services; } &&
        exec avahi-daemon -f "$1/avahi-daemon.conf" --no-drop-root --no-chroot \
             --no-rlimits --no-proc-title' sh "$d" >"$d/avahi.log" 2>&1 &
    echo $! > "$d/avahi.pid"
    _rooms_track "$!"
    for i in $(seq 150); do
        grep -q 'Server startup complete' "$d/avahi.log" 2>/dev/null && return 0
        kill -0 "$(cat "$d/avahi.pid")" 2>/dev/null || { sed 's/^/# avahi: /' "$d/avahi.log" >&2; _rooms_die "avahi in $r died"; return 1; }
        sleep 0.1
    done
    sed 's/^/# avahi: /' "$d/avahi.log" >&2
    _rooms_die "avahi in $r not ready after 15 s"
}

room_avahi_stop() {
    local d=$ROOMS_DIR/$1 p i
    p=$(cat "$d/avahi.pid" 2>/dev/null) || return 0
    kill "$p" 2>/dev/null || true
    for i in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
    rm -f "$d/avahi.pid"
}

_room_up() {   # ROOM INDEX MODE
    local r=$1 i=$2 mode=$3 d=$ROOMS_DIR/$1 ns=$ROOMS_PFX$1
    mkdir -p "$d/services" && chmod 755 "$d" "$d/services"
    ip netns add "$ns" || return 1
    _rooms_ns+=("$ns")
    ip -n "${ROOMS_PFX}br" link add "v$r" type veth peer name eth0 netns "$ns" || return 1
    ip -n "${ROOMS_PFX}br" link set "v$r" master br0 up
    ip -n "$ns" link set lo up
    ip -n "$ns" addr add "$ROOMS_NET.$i/24" dev eth0
    ip -n "$ns" link set eth0 up      # veth has MULTICAST on; without it avahi ignores it
    [ "$mode" = bare ] && return 0

    # A private system bus: the stock system.conf (so avahi's D-Bus policy applies),
    # listening on the room's own socket path.
    ip netns exec "$ns" dbus-daemon --system --address="unix:path=$d/bus" \
        --nopidfile --fork --print-pid=3 3>"$d/dbus.pid" || return 1
    _rooms_track "$(cat "$d/dbus.pid")"
    for _ in $(seq 50); do [ -S "$d/bus" ] && break; sleep 0.1; done
    [ -S "$d/bus" ] || { _rooms_die "dbus in $r did not come up"; return 1; }
    _room_avahi_conf "$r" "$d"
    [ "$mode" = noavahi ] && return 0
    room_avahi_start "$r"
}

rooms_up() {
    local spec i=1
    rooms_check || return 1
    _rooms_reap_stale
    ROOMS_DIR=$(mktemp -d /tmp/osm-rooms.XXXXXX) && chmod 755 "$ROOMS_DIR"
    ip netns add "${ROOMS_PFX}br" || return 1
    _rooms_ns+=("${ROOMS_PFX}br")
    ip -n "${ROOMS_PFX}br" link add br0 type bridge mcast_snooping 0 stp_state 0 forward_delay 0
    ip -n "${ROOMS_PFX}br" link set br0 up
    for spec in "$@"; do
        _rooms_list+=("${spec%%:*}")
        _room_up "${spec%%:*}" "$i" "$([ "$spec" != "${spec#*:}" ] && echo "${spec#*:}")" || return 1
        i=$((i + 1))
    done
}

room_exec() {
    local r=$1; shift
    ip netns exec "$ROOMS_PFX$r" env "$(_room_env "$r")" "$@"
}

room_spawn() {
    local r=$1 log=$2; shift 2
    ip netns exec "$ROOMS_PFX$r" env "$(_room_env "$r")" "$@" >>"$log" 2>&1 &
    ROOM_PID=$!
    _rooms_track "$ROOM_PID"
}

room_services_dir() { echo "$ROOMS_DIR/$1/services"; }

rooms_down() {
    local p ns i
    for p in "${_rooms_pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for i in $(seq 30); do
        local alive=0
        for p in "${_rooms_pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ $alive = 0 ] && break
        sleep 0.1
    done
    for p in "${_rooms_pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    _rooms_pids=()
    for ns in "${_rooms_ns[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
    _rooms_ns=()
    if [ -n "${OSM_KEEP:-}" ] && [ -n "$ROOMS_DIR" ]; then
        echo "# kept $ROOMS_DIR"
    elif [ -n "$ROOMS_DIR" ] && [ -d "$ROOMS_DIR" ]; then
        rm -rf "$ROOMS_DIR"
    fi
    ROOMS_DIR=
}

# osmosed in a room: state in $ROOMS_DIR/ROOM/osm (or $2 if given), its socket there.
#   room_osmosed_start ROOM NAME [OSMOSED ARGS...]   start and wait until it answers
#   room_osmosed_stop ROOM [SIGNAL]                  stop it (by PID) and wait; ROOM_EXIT
#                                                    is its exit status (0 for a clean exit
#                                                    at TERM; a sanitizer's report at exit,
#                                                    a crash or an abort is not 0)
#   rctl ROOM ARGS...                                osmosectl against it
room_osmosed_start() {
    local r=$1 name=$2 d=$ROOMS_DIR/$1/osm i; shift 2
    mkdir -p "$d"
    room_spawn "$r" "$ROOMS_DIR/$r/osmosed.log" "${OSMOSED:?}" --state-dir "$d" --name "$name" "$@"
    echo "$ROOM_PID" > "$ROOMS_DIR/$r/osmosed.pid"
    for i in $(seq 200); do
        rctl "$r" call org.varlink.service.GetInfo >/dev/null 2>&1 && return 0
        kill -0 "$ROOM_PID" 2>/dev/null || break
        sleep 0.05
    done
    sed 's/^/# osmosed: /' "$ROOMS_DIR/$r/osmosed.log" >&2
    _rooms_die "osmosed in $r did not become ready"
}

room_osmosed_stop() {
    local p
    ROOM_EXIT=
    p=$(cat "$ROOMS_DIR/$1/osmosed.pid" 2>/dev/null) || return 0
    kill -"${2:-TERM}" "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null
    ROOM_EXIT=$?
    rm -f "$ROOMS_DIR/$1/osmosed.pid"
}

rctl() {
    local r=$1; shift
    OSMOSE_SOCKET=$ROOMS_DIR/$r/osm/osmosed.sock "${OSMOSECTL:?}" "$@"
}

# Poll CMD... until it succeeds, for at most $WAIT_S seconds (default 15): a bound on
# liveness, not a speed assertion (bench/ measures speed).
wait_until() {
    local i n=$(( ${WAIT_S:-15} * 10 ))
    for i in $(seq "$n"); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}
