#!/bin/bash
# discovery.sh: building discovery, in rooms made of network namespaces (tests/lib/rooms.sh).
# 1. Time from starting osmosed in room A to A being listed by `osmosectl peers --watch`
#    in room B, beside `avahi-publish` in A -> `avahi-browse -r` in B (resolved) measured
#    the same way (a watcher already running in B, the first matching line timestamped),
#    in the same run, median of ROUNDS rounds. DESIGN §12 target: within 1.5 s.
# 2. Catalog size and osmosed's memory with 1,000 services announced in the room, beside
#    the room's own avahi-daemon holding the same services.
set -u
here=$(cd "$(dirname "$0")" && pwd)
BUILD=${BUILD:-$here/../build}
export OSMOSED=$BUILD/src/daemon/osmosed OSMOSECTL=$BUILD/src/cli/osmosectl
ROUNDS=${BENCH_ROUNDS:-5}
NSVC=${BENCH_SERVICES:-1000}
. "$here/../tests/lib/rooms.sh"
FIRST="python3 $here/../tests/lib/first-match.py"

rooms_check || { echo "discovery: skipped ($ROOMS_SKIP)"; exit 0; }
trap rooms_down EXIT
rooms_up A B C:noavahi >/dev/null || { echo "discovery: cannot build the rooms"; exit 1; }
now() { date +%s.%N; }
calc() { awk "BEGIN { print $* }"; }
median() { sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

room_osmosed_start B observer || exit 1
room_osmosed_start A gw-a || exit 1
IDA=$(rctl A --json status | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
room_osmosed_stop A

ours=() base=()
for r in $(seq "$ROUNDS"); do
    # ours: osmosed starts in A; B's `peers --watch` reports A present
    rm -f "$ROOMS_DIR/t"
    (rctl B --json peers --watch | $FIRST "\"event\":\"(added|changed)\".*\"id\":\"$IDA\".*\"state\":\"present\"" > "$ROOMS_DIR/t") &
    w=$!; sleep 0.3
    t0=$(now)
    room_spawn A "$ROOMS_DIR/A/osmosed.log" "$OSMOSED" --state-dir "$ROOMS_DIR/A/osm" --name gw-a
    echo "$ROOM_PID" > "$ROOMS_DIR/A/osmosed.pid"
    for _ in $(seq 100); do [ -s "$ROOMS_DIR/t" ] && break; sleep 0.05; done
    [ -s "$ROOMS_DIR/t" ] && ours+=("$(calc "$(cat "$ROOMS_DIR/t") - $t0")")
    kill "$w" 2>/dev/null; pkill -P "$w" 2>/dev/null; wait "$w" 2>/dev/null
    room_osmosed_stop A
    sleep 1.5    # let B see A leave

    # baseline: avahi-publish in A; B's `avahi-browse -rp` resolves it
    rm -f "$ROOMS_DIR/t"
    (room_exec B avahi-browse -rp _bench$r._tcp 2>/dev/null | $FIRST '^=;.*;bench' > "$ROOMS_DIR/t") &
    w=$!; sleep 0.3
    t0=$(now)
    room_spawn A "$ROOMS_DIR/A/publish.log" avahi-publish -s "bench" "_bench$r._tcp" 1
    p=$ROOM_PID
    for _ in $(seq 100); do [ -s "$ROOMS_DIR/t" ] && break; sleep 0.05; done
    [ -s "$ROOMS_DIR/t" ] && base+=("$(calc "$(cat "$ROOMS_DIR/t") - $t0")")
    kill "$p" 2>/dev/null; wait "$p" 2>/dev/null
    pkill -P "$w" 2>/dev/null; kill "$w" 2>/dev/null; wait "$w" 2>/dev/null
    sleep 1
done
mo=$(printf '%s\n' "${ours[@]}" | median); mb=$(printf '%s\n' "${base[@]}" | median)
printf 'gateway visible to a peer: osmosed start -> peers --watch   median %.3f s (%d/%d rounds)\n' "$mo" "${#ours[@]}" "$ROUNDS"
printf 'baseline: avahi-publish -> avahi-browse -r                  median %.3f s (%d/%d rounds)\n' "$mb" "${#base[@]}" "$ROUNDS"
printf 'ratio ours/baseline: %.2f   (target: visible within 1.5 s: %s)\n' "$(calc "$mo / $mb")" \
    "$(calc "($mo <= 1.5) ? \"met\" : \"NOT met\"")"

# --- 1,000 services ---------------------------------------------------------------------
room_osmosed_start A gw-a || exit 1
APID=$(cat "$ROOMS_DIR/A/osmosed.pid")
rss0=$(rss_kib "$APID")
dir=$(room_services_dir C)
for i in $(seq "$NSVC"); do
    cat > "$dir/s$i.service" <<EOF
<?xml version="1.0" standalone='no'?>
<!DOCTYPE service-group SYSTEM "avahi-service.dtd">
<service-group><name>sensor $i</name>
<service><type>_sensor._tcp</type><port>$((1000 + i))</port>
<txt-record>model=th-$i</txt-record><txt-record>room=C</txt-record><txt-record>unit=celsius</txt-record></service>
</service-group>
EOF
done
t0=$(now)
room_avahi_start C >/dev/null || exit 1
n=0
for _ in $(seq 600); do
    n=$(rctl A --json services --type _sensor._tcp | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["services"]))')
    [ "$n" -ge "$NSVC" ] && break
    sleep 0.1
done
t1=$(now)
sleep 1
rss1=$(rss_kib "$APID")
cpid=$(cat "$ROOMS_DIR/C/avahi.pid"); apid=$(cat "$ROOMS_DIR/A/avahi.pid")
printf 'catalog: %d of %d services announced in room C listed by osmosed in A after %.1f s\n' "$n" "$NSVC" "$(calc "$t1 - $t0")"
printf 'osmosed RSS: %d KiB idle -> %d KiB with the catalog (+%d KiB, %.0f bytes/service)\n' "$rss0" "$rss1" \
    "$((rss1 - rss0))" "$(calc "($rss1 - $rss0) * 1024 / $NSVC")"
printf 'baseline: avahi-daemon RSS in room A (its cache of the same services) %d KiB; in room C (publishing them) %d KiB\n' \
    "$(rss_kib "$apid")" "$(rss_kib "$cpid")"
