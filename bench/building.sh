#!/bin/bash
# building.sh: the building, in rooms made of network namespaces (tests/lib/rooms.sh).
# 1. Failover: SIGKILL the leader's osmosed; time until a building write (building trust
#    add, through osmosectl) commits on a survivor — beside the same write with nothing
#    failing, in the same run; median of ROUNDS rounds. DESIGN §12 target: < 1 s.
# 2. Scale: NROOMS rooms join one by one (time for all); `building status` latency beside
#    plain `status` of the same daemon; `building query` over every room beside the same
#    query asked of one room; each room's added RSS (in the building minus before);
#    bytes dqlite writes at rest, per hour (from /proc/PID/io over a window).
#    BENCH_ONLY=rest runs only the join and the disk written at rest.
set -u
here=$(cd "$(dirname "$0")" && pwd)
BUILD=${BUILD:-$here/../build}
export OSMOSED=$BUILD/src/daemon/osmosed OSMOSECTL=$BUILD/src/cli/osmosectl
ROUNDS=${BENCH_ROUNDS:-20}
NROOMS=${BENCH_ROOMS:-30}
REST=${BENCH_REST_SECONDS:-60}
# BENCH_ONLY=rest: only join the rooms and measure the disk written at rest (no failover,
# no latencies), for a quick before/after of what the building writes to an SD card.
ONLY=${BENCH_ONLY:-}
. "$here/../tests/lib/rooms.sh"
. "$here/../tests/lib/building.sh"   # bkey

"$OSMOSECTL" building --help >/dev/null 2>&1 || { echo "building: skipped (built without the building)"; exit 0; }
rooms_check || { echo "building: skipped ($ROOMS_SKIP)"; exit 0; }
trap rooms_down EXIT
now_ms() { date +%s%3N; }
calc() { awk "BEGIN { print $* }"; }
median() { sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
pid_of() { cat "$ROOMS_DIR/$1/osmosed.pid"; }
key() { bkey; }
jb() { rctl "$1" --json building status | python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$2"; }
start_room() {   # ROOM: its config, then osmosed
    mkdir -p "$ROOMS_DIR/$1/osm"
    printf '[building]\nstatus-interval = %s\nheartbeat-interval = %s\n' "${BENCH_STATUS_INTERVAL:-5s}" \
        "${BENCH_HEARTBEAT_INTERVAL:-60s}" > "$ROOMS_DIR/$1/osm/osmosed.conf"
    room_osmosed_start "$1" "room-$1" >/dev/null 2>&1
}
wait_leader_not() {   # ROOM OLD: until ROOM names a leader other than OLD (10 s at most)
    for _ in $(seq 100); do
        l=$(jb "$1" 'd.get("leader") or ""' 2>/dev/null)
        [ -n "$l" ] && [ "$l" != "$2" ] && return 0
        sleep 0.1
    done
    return 1
}

echo "load before: $(uptime)"
names=()
for i in $(seq "$NROOMS"); do names+=("R$i"); done
specs=(); for r in "${names[@]}"; do specs+=("$r:bare"); done
rooms_up "${specs[@]}" >/dev/null || { echo "building: cannot build the rooms"; exit 1; }

# ---- 1. failover, with three rooms
[ "$ONLY" = rest ] && ROUNDS=0
if [ "$ROUNDS" -gt 0 ]; then
for r in R1 R2 R3; do start_room "$r" || { echo "osmosed in $r"; exit 1; }; done
rctl R1 building create --name bench --address "$ROOMS_NET.1" >/dev/null || exit 1
for r in R2 R3; do rctl "$r" building join "$(rctl R1 building invite 2>/dev/null)" >/dev/null || exit 1; done
sleep 2
plain=() fail=()
for round in $(seq "$ROUNDS"); do
    # the same write with nothing failing, from a room that does not lead
    leader=$(jb R1 'd.get("leader") or ""')
    for r in R1 R2 R3; do [ "room-$r" != "$leader" ] && { surv=$r; break; }; done
    t0=$(now_ms); rctl "$surv" building trust add "$(key)" >/dev/null 2>&1 && plain+=("$(( $(now_ms) - t0 ))")
    # kill the leader, write on a survivor until it commits
    lr=${leader#room-}
    room_osmosed_stop "$lr" KILL
    t0=$(now_ms)
    k=$(key)
    for _ in $(seq 100); do rctl "$surv" building trust add "$k" >/dev/null 2>&1 && break; sleep 0.02; done
    t1=$(now_ms)
    rctl "$surv" building trust ls 2>/dev/null | grep -q -- "$k" && fail+=("$((t1 - t0))")
    # bring it back and let it catch up
    start_room "$lr" || exit 1
    wait_leader_not "$lr" "" >/dev/null
    for _ in $(seq 100); do [ "$(jb "$lr" 'd["stale"]' 2>/dev/null)" = False ] && break; sleep 0.1; done
done
mf=$(printf '%s\n' "${fail[@]}" | median); mp=$(printf '%s\n' "${plain[@]}" | median)
printf 'failover: SIGKILL of the leader -> building write committed on a survivor   median %s ms (%d/%d rounds)\n' "$mf" "${#fail[@]}" "$ROUNDS"
printf 'baseline: the same write with nothing failing                             median %s ms\n' "$mp"
printf 'ratio failover/plain: %.1f   (target: < 1000 ms: %s)\n' "$(calc "$mf / $mp")" "$(calc "($mf < 1000) ? \"met\" : \"NOT met\"")"
for r in R1 R2 R3; do room_osmosed_stop "$r"; rm -rf "$ROOMS_DIR/$r/osm"; done
fi

# ---- 2. scale: NROOMS rooms
for r in "${names[@]}"; do start_room "$r" || { echo "osmosed in $r did not start"; exit 1; }; done
sleep 1
declare -A rss0
for r in "${names[@]}"; do rss0[$r]=$(rss_kib "$(pid_of "$r")"); done
t0=$(now_ms)
rctl R1 building create --name bench --address "$ROOMS_NET.1" >/dev/null || exit 1
joined=1
for r in "${names[@]:1}"; do
    rctl "$r" building join "$(rctl R1 building invite 2>/dev/null)" >/dev/null 2>&1 && joined=$((joined + 1))
done
t1=$(now_ms)
for _ in $(seq 300); do
    [ "$(jb R1 'len([m for m in d["members"] if m["reachable"]])')" = "$NROOMS" ] && break; sleep 0.2
done
t2=$(now_ms)
printf 'scale: %d of %d rooms joined one after another in %.1f s (%.0f ms a room); all reachable in R1'"'"'s status after %.1f s\n' \
    "$joined" "$NROOMS" "$(calc "($t1 - $t0) / 1000")" "$(calc "($t1 - $t0) / $NROOMS")" "$(calc "($t2 - $t0) / 1000")"
printf 'roles: %s\n' "$(jb R1 '", ".join("%d %ss" % (sum(m["role"] == r for m in d["members"]), r) for r in ("voter", "standby", "spare"))')"

if [ "$ONLY" != rest ]; then
lat() {   # ROOM ARGS...: median ms of 20 calls
    local v=() t
    for _ in $(seq 20); do t=$(now_ms); rctl "$@" >/dev/null 2>&1; v+=("$(( $(now_ms) - t ))"); done
    printf '%s\n' "${v[@]}" | median
}
sb=$(lat "R$NROOMS" --json building status); sp=$(lat "R$NROOMS" --json status)
printf 'building status (%d rooms) median %s ms   beside status of the same daemon %s ms   ratio %.1f\n' "$NROOMS" "$sb" "$sp" "$(calc "$sb / ($sp > 0 ? $sp : 1)")"

for r in "${names[@]}"; do rctl "$r" put bench/t "{\"room\": \"$r\"}" >/dev/null; rctl "$r" building share bench/t >/dev/null 2>&1; done
sleep 2
qa=$(lat R1 --json building query bench/t --limit 1000); q1=$(lat R1 --json building query bench/t --room "room-R$NROOMS")
n=$(rctl R1 --json building query bench/t --limit 1000 | python3 -c 'import json,sys; d=json.load(sys.stdin); print(len({r["room"] for r in d["records"]}), d["missing"])')
printf 'building query over all rooms median %s ms (rooms answering, missing: %s)   beside the same query to one room %s ms   ratio %.1f\n' \
    "$qa" "$n" "$q1" "$(calc "$qa / ($q1 > 0 ? $q1 : 1)")"

fi
tot=0
for r in "${names[@]}"; do tot=$((tot + $(rss_kib "$(pid_of "$r")") - ${rss0[$r]})); done
lead=$(jb R1 'd.get("leader") or ""'); lead=${lead#room-}
printf 'RSS added per room by the building: mean %d KiB (before: %d KiB in R1; leader %s now %d KiB)\n' \
    "$((tot / NROOMS))" "${rss0[R1]}" "$lead" "$(rss_kib "$(pid_of "$lead")")"

# disk written at rest: the leader and a spare, over REST seconds
sp_room=$(jb R1 '([m["name"] for m in d["members"] if m["role"] == "spare"] + [m["name"] for m in d["members"] if not m["leader"]])[0]')
sp_role=$(jb R1 '[m["role"] for m in d["members"] if m["name"] == "'"$sp_room"'"][0]'); sp_room=${sp_room#room-}
wb() { awk '/^write_bytes/ {print $2}' "/proc/$(pid_of "$1")/io"; }
l0=$(wb "$lead"); s0=$(wb "$sp_room"); d0=$(du -sk "$ROOMS_DIR/$lead/osm/building/dqlite" | cut -f1)
sleep "$REST"
l1=$(wb "$lead"); s1=$(wb "$sp_room"); d1=$(du -sk "$ROOMS_DIR/$lead/osm/building/dqlite" | cut -f1)
printf 'disk written at rest (summary checked every %s, heartbeat every %s, %d rooms): leader %.1f MiB/h, a %s %.1f MiB/h; leader dqlite dir %d -> %d KiB\n' \
    "${BENCH_STATUS_INTERVAL:-5s}" "${BENCH_HEARTBEAT_INTERVAL:-60s}" "$NROOMS" "$(calc "($l1 - $l0) * 3600 / $REST / 1048576")" "$sp_role" "$(calc "($s1 - $s0) * 3600 / $REST / 1048576")" "$d0" "$d1"
echo "load after: $(uptime)"
