#!/bin/bash
# scale.sh: a loaded daemon beside an empty one, in one run. The loaded osmosed holds
# RECORDS records (put --batch, spread over COLLS collections), BUNDLES installed signed
# bundles and INSTANCES running instances (`sleep 3600`, one in each of the first
# INSTANCES workloads); the empty one holds nothing. Both start from the same binary with
# the same configuration. Measured:
#   at rest   CPU of each daemon over REST_S seconds (utime+stime from /proc/PID/stat, as %
#             of one core), after SETTLE_S seconds of quiet; RSS of each;
#   latency   median and p99 of CALLS calls each of `osmosectl status` and `osmosectl ps`
#             against each daemon, interleaved, beside `osmosectl --version` (the cost of
#             starting the CLI at all, no daemon involved); and the daemon's own CPU per
#             call over those calls (utime+stime again: what is not the CLI nor the queue).
# Target (issue 14): loaded daemon under 1 % CPU at rest; status and ps under 10 ms.
# The full run is RECORDS=10000000 (about 1.1 GiB of database; loading takes minutes on a
# shared 2-core machine); the default is 10^6 so that the benchmark stays short.
# Usage: bench/scale.sh [BUILD_DIR]   (RECORDS=1000000 COLLS=10 BUNDLES=1000 INSTANCES=100
#        CALLS=50 SETTLE_S=10 REST_S=30; needs root for the instances)
set -u
BUILD=${1:-${BUILD:-build}}
RECORDS=${RECORDS:-1000000}
COLLS=${COLLS:-10}
BUNDLES=${BUNDLES:-1000}
INSTANCES=${INSTANCES:-100}
CALLS=${CALLS:-50}
SETTLE_S=${SETTLE_S:-10}
REST_S=${REST_S:-30}
OSMOSED=$BUILD/src/daemon/osmosed
OSMOSECTL=$BUILD/src/cli/osmosectl
for f in "$OSMOSED" "$OSMOSECTL"; do
        [ -x "$f" ] || { echo "scale: $f missing: build first (meson compile -C $BUILD)" >&2; exit 1; }
done
if [ "$(id -u)" != 0 ]; then
        echo "scale: skipped: needs root (instances run in sandboxes with a uid range and cgroups)"
        exit 0
fi
[ "$INSTANCES" -le "$BUNDLES" ] || { echo "scale: INSTANCES must not exceed BUNDLES" >&2; exit 2; }

WORK=$(mktemp -d /var/tmp/osm-bench-scale-XXXXXX)
chmod 755 "$WORK"
PIDS=()
cleanup() {
        local p
        # the daemon stops its instances on SIGTERM (SIGTERM, then SIGKILL after stop-timeout)
        for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
        rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Every workload has its own range of 65536 host ids; 1,000 of them need 65.5 M ids, which
# the default uid-count (2^30) allows. stop-timeout short so that the end is quick.
CONF='[store]\ndb-budget = 16G\n[sandbox]\nstop-timeout = 1s\n[discovery]\nenabled = no\n'

start() {   # start NAME: a daemon in $WORK/NAME, socket $WORK/NAME.sock; sets PID_NAME
        mkdir -p "$WORK/$1"
        printf '%b' "$CONF" > "$WORK/$1.conf"
        DBUS_SYSTEM_BUS_ADDRESS=unix:path=$WORK/no-bus "$OSMOSED" --state-dir "$WORK/$1" \
                --socket "$WORK/$1.sock" --config "$WORK/$1.conf" >"$WORK/$1.log" 2>&1 &
        PIDS+=($!)
        printf -v "PID_$1" %s $!
        local i
        for i in $(seq 200); do "$OSMOSECTL" --socket "$WORK/$1.sock" status >/dev/null 2>&1 && return 0; sleep 0.05; done
        echo "scale: osmosed did not start ($1)" >&2
        cat "$WORK/$1.log" >&2
        exit 1
}
calc() { awk "BEGIN { print $1 }"; }
gen_lines() {   # gen_lines FIRST LAST: sensor readings as JSON Lines (as bench/store.sh)
        seq "$1" "$2" | awk '{printf "{\"sensor\":\"room-a/t%d\",\"celsius\":%.2f,\"seq\":%d}\n", $1 % 16, 18 + ($1 % 600) / 100, $1}'
}
elapsed() { awk "BEGIN { printf \"%.0f\", $EPOCHREALTIME - $1 }"; }

start empty
start loaded
E="$OSMOSECTL --socket $WORK/empty.sock"
L="$OSMOSECTL --socket $WORK/loaded.sock"
health=$($L status | awk '$1 == "sandbox" {print $2}')
case "$health" in
        ok|degraded) ;;
        *) echo "scale: the sandbox cannot run here: $($L status | grep sandbox)"; exit 1 ;;
esac

# ---- load: records ----
t0=$EPOCHREALTIME
per=$((RECORDS / COLLS))
for c in $(seq "$COLLS"); do
        first=$(((c - 1) * per + 1)); last=$((c * per))
        [ "$c" = "$COLLS" ] && last=$RECORDS
        gen_lines "$first" "$last" | $L put "bench/scale$c" --batch >/dev/null \
                || { echo "scale: put --batch failed"; exit 1; }
done
echo "scale: loaded $RECORDS records in $COLLS collections in $(elapsed "$t0") s ($(du -ch "$WORK/loaded"/store.db* 2>/dev/null | tail -1 | cut -f1) of database)"

# ---- load: bundles ----
t0=$EPOCHREALTIME
"$OSMOSECTL" keygen -o "$WORK/key" >/dev/null || { echo "scale: keygen failed"; exit 1; }
$L trust add "$(cat "$WORK/key.pub")" >/dev/null || { echo "scale: trust add failed"; exit 1; }
mkdir -p "$WORK/b/w"
for i in $(seq "$BUNDLES"); do
        printf '{"name":"w%d","version":1,"entrypoint":["/bin/sleep","3600"],"restart":"never"}' "$i" > "$WORK/b/w/manifest.json"
        "$OSMOSECTL" bundle build "$WORK/b/w" -o "$WORK/b/w.osb" --key "$WORK/key" >/dev/null \
                || { echo "scale: bundle build w$i failed"; exit 1; }
        $L install "$WORK/b/w.osb" >/dev/null || { echo "scale: install w$i failed"; exit 1; }
done
n=$($L --json workloads | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["workloads"]))')
echo "scale: built and installed $n signed bundles in $(elapsed "$t0") s"
[ "$n" = "$BUNDLES" ] || { echo "scale: expected $BUNDLES workloads"; exit 1; }

# ---- load: instances ----
t0=$EPOCHREALTIME
for i in $(seq "$INSTANCES"); do
        $L run "w$i" >/dev/null || { echo "scale: run w$i failed"; cat "$WORK/loaded.log" | tail -5; exit 1; }
done
running() { $L --json ps | python3 -c 'import json,sys; print(sum(1 for i in json.load(sys.stdin)["instances"] if i["state"] == "running"))'; }
for _ in $(seq 100); do [ "$(running)" = "$INSTANCES" ] && break; sleep 0.2; done
n=$(running)
echo "scale: started $n running instances in $(elapsed "$t0") s"
[ "$n" = "$INSTANCES" ] || { echo "scale: expected $INSTANCES running instances"; $L ps | tail -5; exit 1; }

# ---- at rest ----
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }   # utime + stime, in clock ticks
rss_kib() { awk '$1 == "VmRSS:" {print $2}' "/proc/$1/status"; }
HZ=$(getconf CLK_TCK)
sleep "$SETTLE_S"
le0=$(ticks "$PID_empty"); ll0=$(ticks "$PID_loaded"); t0=$EPOCHREALTIME
sleep "$REST_S"
le1=$(ticks "$PID_empty"); ll1=$(ticks "$PID_loaded"); t1=$EPOCHREALTIME
cpu_e=$(calc "100 * ($le1 - $le0) / $HZ / ($t1 - $t0)")
cpu_l=$(calc "100 * ($ll1 - $ll0) / $HZ / ($t1 - $t0)")
printf 'at rest (%s s): loaded osmosed CPU %.2f %% of one core (%d ticks), empty osmosed %.2f %% (%d ticks) (target: loaded < 1 %%)\n' \
        "$REST_S" "$cpu_l" $((ll1 - ll0)) "$cpu_e" $((le1 - le0))
printf 'memory: loaded osmosed RSS %.1f MiB, empty osmosed %.1f MiB\n' \
        "$(calc "$(rss_kib "$PID_loaded") / 1024")" "$(calc "$(rss_kib "$PID_empty") / 1024")"

# ---- latency, interleaved: each round one call of each kind ----
KINDS="version empty-status loaded-status empty-ps loaded-ps"
for k in $KINDS; do : > "$WORK/lat-$k"; done
one() {   # one KIND: time one call, in µs, appended to lat-KIND
        local t0=$EPOCHREALTIME
        case "$1" in
                version) "$OSMOSECTL" --version ;;
                empty-status) $E status ;;
                loaded-status) $L status ;;
                empty-ps) $E ps ;;
                loaded-ps) $L ps ;;
        esac >/dev/null || { echo "scale: $1 failed" >&2; exit 1; }
        awk "BEGIN { printf \"%.0f\n\", ($EPOCHREALTIME - $t0) * 1e6 }" >> "$WORK/lat-$1"
}
ce0=$(ticks "$PID_empty"); cl0=$(ticks "$PID_loaded")
for _ in $(seq "$CALLS"); do
        for k in $KINDS; do one "$k"; done
done
ce1=$(ticks "$PID_empty"); cl1=$(ticks "$PID_loaded")
pct() {   # pct FILE P: the P-th percentile (nearest rank), in ms
        sort -n "$1" | awk -v p="$2" '{v[NR]=$1} END {i=int((NR*p+99)/100); if(i<1)i=1; printf "%.2f", v[i]/1000}'
}
printf 'latency (%d calls each, ms): osmosectl --version p50 %s p99 %s\n' "$CALLS" "$(pct "$WORK/lat-version" 50)" "$(pct "$WORK/lat-version" 99)"
for c in status ps; do
        l50=$(pct "$WORK/lat-loaded-$c" 50); l99=$(pct "$WORK/lat-loaded-$c" 99)
        e50=$(pct "$WORK/lat-empty-$c" 50); e99=$(pct "$WORK/lat-empty-$c" 99)
        printf 'latency: %-6s loaded p50 %s p99 %s, empty p50 %s p99 %s: %.2fx / %.2fx the empty daemon (target: loaded < 10 ms)\n' \
                "$c" "$l50" "$l99" "$e50" "$e99" "$(calc "$l50 / $e50")" "$(calc "$l99 / $e99")"
done
# what the daemon itself spends (the CLI's start and the machine's queue aside), in clock ticks
printf 'daemon CPU per call (status and ps, averaged over %d): loaded %.2f ms, empty %.2f ms\n' $((2 * CALLS)) \
        "$(calc "1000 * ($cl1 - $cl0) / $HZ / (2 * $CALLS)")" "$(calc "1000 * ($ce1 - $ce0) / $HZ / (2 * $CALLS)")"
echo "load: $(uptime | sed 's/.*load average/load average/') (2 cores shared: figures are noisy)"
