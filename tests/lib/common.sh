# common.sh: shared helpers for system tests — TAP output, a real osmosed in a
# temporary directory, osmosectl, cleanup by PID. Source it from tests/system/*.sh.
#
#   osm_setup                  make $T (temp dir), install the cleanup trap
#   osm_start_daemon [ARGS]    start osmosed --state-dir $T/state ARGS; sets OSM_PID,
#                              OSMOSE_SOCKET; waits until it answers
#   osm_stop_daemon [SIGNAL]   stop it (default TERM) and wait; sets OSM_EXIT
#   ctl ARGS                   run osmosectl
#   ok COND_EXIT MSG / is GOT WANT MSG / like GOT REGEX MSG / skip MSG REASON
#   done_testing               print the plan; exit status 1 if anything failed
#   wait_for [SECONDS] CMD...  run CMD (one word: a shell expression) every 0.1 s until it
#                              succeeds, for SECONDS (default 20); 1 if it never did
#   mk_bundle NAME             build $T/NAME.osb from the manifest on stdin (in $T/NAME/)
set -u

OSMOSED=${OSMOSED:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build/src/daemon/osmosed}
OSMOSECTL=${OSMOSECTL:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build/src/cli/osmosectl}
OSM_SOURCE_ROOT=${OSM_SOURCE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}

_tap_n=0
_tap_failed=0
_osm_pids=()

ok() {   # ok EXIT_STATUS MESSAGE — passes when EXIT_STATUS is 0
    _tap_n=$((_tap_n + 1))
    if [ "$1" -eq 0 ]; then
        echo "ok $_tap_n - $2"
    else
        echo "not ok $_tap_n - $2"
        _tap_failed=$((_tap_failed + 1))
    fi
}
is() {
    _tap_n=$((_tap_n + 1))
    if [ "$1" = "$2" ]; then
        echo "ok $_tap_n - $3"
    else
        echo "not ok $_tap_n - $3"
        echo "#   got:  '$1'"
        echo "#   want: '$2'"
        _tap_failed=$((_tap_failed + 1))
    fi
}
like() {
    _tap_n=$((_tap_n + 1))
    if printf '%s' "$1" | grep -Eq -- "$2"; then
        echo "ok $_tap_n - $3"
    else
        echo "not ok $_tap_n - $3"
        printf '#   got: %s\n#   want match: %s\n' "$(printf '%s' "$1" | head -c 600)" "$2"
        _tap_failed=$((_tap_failed + 1))
    fi
}
skip() {
    _tap_n=$((_tap_n + 1))
    echo "ok $_tap_n - $1 # SKIP $2"
}
diag() { echo "# $*"; }
done_testing() {
    echo "1..$_tap_n"
    [ "$_tap_failed" -eq 0 ]
}
bail() { echo "Bail out! $*"; exit 1; }

wait_for() {
    local secs=20
    if [ $# -gt 1 ] && [[ $1 =~ ^[0-9]+$ ]]; then secs=$1; shift; fi
    for _ in $(seq $((secs * 10))); do
        if [ $# -eq 1 ]; then eval "$1" && return 0; else "$@" && return 0; fi
        sleep 0.1
    done
    return 1
}

mk_bundle() {
    mkdir -p "$T/$1"
    cat > "$T/$1/manifest.json"
    ctl bundle build "$T/$1" -o "$T/$1.osb" >/dev/null || bail "bundle build $1"
}

osm_cleanup() {
    local p
    for p in "${_osm_pids[@]}"; do
        kill -KILL "$p" 2>/dev/null || true
    done
    if [ -n "${OSM_KEEP:-}" ]; then echo "# kept $T"; elif [ -n "${T:-}" ] && [ -d "$T" ]; then rm -rf "$T"; fi
}

osm_setup() {
    T=$(mktemp -d /tmp/osm-test.XXXXXX)
    chmod 755 "$T"
    trap osm_cleanup EXIT
}

ctl() { "$OSMOSECTL" "$@"; }

# Wait until the daemon answers or it dies; 10 s at most.
osm_wait_ready() {
    local i
    for i in $(seq 200); do
        if "$OSMOSECTL" call org.varlink.service.GetInfo >/dev/null 2>&1; then return 0; fi
        kill -0 "$OSM_PID" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

osm_start_daemon() {
    local dir=${OSM_STATE:-$T/state}
    mkdir -p "$dir"
    # OSM_SOCKET puts the socket elsewhere (the state dir is 0700: other users of a test
    # cannot reach a socket inside it).
    export OSMOSE_SOCKET=${OSM_SOCKET:-$dir/osmosed.sock}
    local name=${OSM_NAME-test-room}
    # Test daemons never talk to the machine's own avahi-daemon (which would publish on
    # its real network): they get a bus address where nothing answers, so discovery
    # runs degraded. Discovery tests start their daemons inside rooms with their own bus.
    DBUS_SYSTEM_BUS_ADDRESS=${OSM_TEST_BUS:-unix:path=$T/no-system-bus} \
        "$OSMOSED" --state-dir "$dir" ${name:+--name "$name"} ${OSM_SOCKET:+--socket "$OSM_SOCKET"} "$@" >>"$T/daemon.log" 2>&1 &
    OSM_PID=$!
    _osm_pids+=("$OSM_PID")
    osm_wait_ready || { cat "$T/daemon.log" | sed 's/^/# daemon: /'; bail "osmosed did not become ready"; }
}

osm_stop_daemon() {
    local sig=${1:-TERM}
    kill -"$sig" "$OSM_PID" 2>/dev/null
    wait "$OSM_PID" 2>/dev/null
    OSM_EXIT=$?
}

# Raw Varlink: send the given bytes (printf format) and print what comes back within
# a short time, NULs shown as '\0'. Uses python3 for precise socket control.
osm_raw() {   # osm_raw PYTHON_BYTES_LITERAL [read_timeout]
    python3 - "$OSMOSE_SOCKET" "$1" "${2:-2}" <<'PY'
import socket, sys, ast
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.sendall(eval(sys.argv[2]))  # test-authored byte expressions
s.settimeout(float(sys.argv[3]))
out = b""
try:
    while True:
        d = s.recv(65536)
        if not d:
            out += b"<EOF>"
            break
        out += d
except socket.timeout:
    pass
sys.stdout.write(out.replace(b"\0", b"\\0").decode("utf-8", "replace"))
PY
}
