# bench/lib.sh: what the benchmark scripts share: a temp dir, daemons of their own, cleanup.
# Source it after setting BUILD; bench_setup NAME makes $T and the trap.

OSMOSED=$BUILD/src/daemon/osmosed
pids=()

bench_cleanup() {
        # (set -e: a killed process's status must not end the trap before the others)
        for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
        for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
        rm -rf "$T"
}

bench_setup() {
        T=$(mktemp -d "/tmp/osm-bench-$1.XXXXXX")
        trap bench_cleanup EXIT
        trap 'exit 1' INT TERM HUP PIPE
}

# start_daemon DIR CONF [ENV... [WRAPPER...]]: an osmosed of its own in DIR with CONF (lines
# of osmosed.conf, after a socket group that exists); prints its pid once it is ready (the
# wrapper's, if any: valgrind runs it in place). Started in a subshell: add it to pids.
start_daemon() {
        local dir=$1
        mkdir -p "$dir"
        printf '[control]\nsocket-group = %s\n%b' "$(id -gn)" "$2" >"$dir/osmosed.conf"
        shift 2
        env "$@" "$OSMOSED" --state-dir "$dir" --name bench >"$dir/log" 2>&1 &
        local p=$!
        for _ in $(seq 600); do
                grep -q "ready on" "$dir/log" 2>/dev/null && break
                kill -0 "$p" 2>/dev/null || { cat "$dir/log" >&2; return 1; }
                sleep 0.05
        done
        echo "$p"
}

# stop_daemon PID: TERM, and wait until it has gone (not our child: started in a subshell).
stop_daemon() {
        kill "$1" 2>/dev/null || true
        for _ in $(seq 600); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.05; done
}
