#!/bin/bash
# control.sh: control calls (io.osmose.Daemon.GetStatus) per second and latency with 1 and
# 100 clients, against a raw socketpair round trip of the same bytes echoed by a thread, in
# the same run, with the same client work on both sides: reading each reply to its NUL and
# checking its frame (the daemon against an echo, nothing else differs), then the client
# library's call with its parse of each reply into a tree against the raw pair with the same
# parse, and the library against the raw pair without it (the client's parse then counts
# against the daemon). Then the figures the machine's load does not change, when valgrind
# and strace are installed: instructions per call of the daemon (CALLS calls of one client,
# and of 100 clients) and of the client (callgrind), and system calls per call of each
# (strace -c). Targets (issue 14), read from the first comparison: 1 client >= 0.4x raw;
# 100 clients p99 <= 2x raw.
# Usage: bench/control.sh   (BUILD=dir; BENCH_SECONDS=2 per timed measurement; CALLS=1000;
#        COUNTS=0 skips the callgrind and strace part)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
BUILD=${BUILD:-$here/../build}
CALLS=${CALLS:-1000}
BENCH=$BUILD/bench/control-bench
. "$here/lib.sh"
bench_setup control
CONF='[discovery]\nenabled = no\n'
# start NAME [WRAPPER...]: a daemon in $T/NAME (discovery off: no bus needed); its pid.
start() { local n=$1; shift; start_daemon "$T/$n" "$CONF" "$@"; }
stop() { stop_daemon "$1"; }

echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
d=$(start timed)
pids+=("$d")
"$BENCH" "$T/timed/osmosed.sock" "${BENCH_SECONDS:-2}"
stop "$d"
[ "${COUNTS:-1}" != 0 ] || exit 0

echo
echo "per call, over $CALLS GetStatus calls of one client (counts, not timings):"
if command -v valgrind >/dev/null && command -v callgrind_annotate >/dev/null; then
        # The daemon's loop (uv_run) with CALLS calls minus the same with none: everything a
        # call costs the daemon, libuv's turn and the timers included.
        loop_ir() {   # loop_ir NAME CALLS [CLIENTS]
                local p
                p=$(start "$1" valgrind --tool=callgrind --callgrind-out-file="$T/$1.cg" --toggle-collect=uv_run)
                pids+=("$p")
                "$BENCH" --calls "$2" "$T/$1/osmosed.sock" ${3:-}
                stop "$p"
                callgrind_annotate "$T/$1.cg" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1; exit }'
        }
        busy=$(loop_ir cg-busy "$CALLS")
        idle=$(loop_ir cg-idle 0)
        # 100 clients checking frames, CALLS * 10 calls in all: under valgrind the daemon is
        # the slow side, so each of its turns serves many of them (the most batching).
        many=$(loop_ir cg-many "$((CALLS * 10))" 100)
        d=$(start cg-client)
        pids+=("$d")
        valgrind --tool=callgrind --callgrind-out-file="$T/client.cg" --toggle-collect=client_calls \
                "$BENCH" --calls "$CALLS" "$T/cg-client/osmosed.sock" 2>/dev/null
        stop "$d"
        client=$(callgrind_annotate "$T/client.cg" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1; exit }')
        awk -v b="$busy" -v i="$idle" -v m="$many" -v c="$client" -v n="$CALLS" 'BEGIN {
                printf "  instructions: daemon %.0f (with 100 clients %.0f), client %.0f (callgrind)\n",
                       (b - i) / n, (m - i) / (n * 10), c / n }'
else
        echo "  instructions: skipped (no valgrind)"
fi
if command -v strace >/dev/null; then
        # total FILE: the number of calls in strace -c's summary.
        total() { awk '$NF == "total" { print $4 }' "$1"; }
        d=$(start st)
        pids+=("$d")
        strace -c -f -o "$T/daemon.strace" -p "$d" 2>/dev/null &
        st=$!
        sleep 0.5
        strace -c -f -o "$T/client.strace" "$BENCH" --calls "$CALLS" "$T/st/osmosed.sock"
        kill -INT "$st"
        wait "$st" 2>/dev/null || true
        stop "$d"
        awk -v d="$(total "$T/daemon.strace")" -v c="$(total "$T/client.strace")" -v n="$CALLS" 'BEGIN {
                printf "  system calls: daemon %.2f, client %.2f (strace -c; the client'"'"'s start-up included)\n", d / n, c / n }'
        echo "  daemon's system calls over the run:"
        awk '/^ *[0-9]/ && $NF != "total" { printf "    %8d %s\n", $4, $NF }' "$T/daemon.strace" | sort -rn | head -8
else
        echo "  system calls: skipped (no strace)"
fi
