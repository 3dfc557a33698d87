#!/bin/bash
# federation.sh: records per second synced between two osmosed on loopback (a queues N
# records while federation is off, then drains them to b once it is on), beside raw curl
# posting the same payload — the same batches, signed and encrypted the same way — to the
# same server, in the same run. The ratio is what the sender side (outbox, signing,
# encryption, audit, curl multi on the loop, acknowledgements) costs over bare HTTP.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
BUILD=${BUILD:-$here/../build}
N=${BENCH_RECORDS:-20000}
BATCH=1000   # FED_BATCH_RECORDS: the daemon's own batch size
OSMOSED=$BUILD/src/daemon/osmosed
CTL=$BUILD/src/cli/osmosectl
SIGN=$BUILD/tests/system/fed-sign
[ -x "$SIGN" ] || { echo "federation: not built (no libmicrohttpd)"; exit 0; }
T=$(mktemp -d /tmp/osm-bench.XXXXXX)
pids=()
trap 'for p in "${pids[@]}"; do kill $p 2>/dev/null; wait $p 2>/dev/null; done; rm -rf "$T"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
on() { local s=$1; shift; OSMOSE_SOCKET=$T/$s/osmosed.sock "$CTL" "$@"; }
now() { date +%s.%N; }
for s in a b; do
    "$OSMOSED" --state-dir "$T/$s" --name "$s" >"$T/$s.log" 2>&1 &
    pids+=($!)
done
for s in a b; do for _ in $(seq 100); do [ -S "$T/$s/osmosed.sock" ] && break; sleep 0.05; done; done
PA=$(free_port); PB=$(free_port)
KA=$(on a --json federation status | jq -r .key); KB=$(on b --json federation status | jq -r .key)
on b federation enable --listen "127.0.0.1:$PB" >/dev/null
on b remote add a "http://127.0.0.1:$PA" --key "$KA" >/dev/null
on a remote add b "http://127.0.0.1:$PB" --key "$KB" >/dev/null
on a share bench/x --with b >/dev/null

# Queue N records on a while its federation is off.
for ((i = 0; i < N; i += 1000)); do
    k=$(( N - i < 1000 ? N - i : 1000 ))
    recs=$(jq -cn --argjson n "$k" --argjson o "$i" '[range($n) | {n: (. + $o), sensor: "temp-3", value: 21.5, unit: "C"}]')
    on a call io.osmose.Store.PutBatch "{\"collection\":\"bench/x\",\"records\":$recs}" >/dev/null
done
queued=$(on a --json remote ls | jq '.remotes[0].queued')
[ "$queued" -eq "$N" ] || { echo "federation: expected $N queued, got $queued"; exit 1; }
received() { on b --json remote ls | jq '.remotes[0].received'; }

t0=$(now)
on a federation enable --listen "127.0.0.1:$PA" >/dev/null
while [ "$(received)" -lt "$N" ]; do sleep 0.25; done
t1=$(now)
sync_rate=$(awk -v n="$N" -v a="$t0" -v b="$t1" 'BEGIN { print n / (b - a) }')

# The same payload by raw curl: the batches a sent, built the same way (ids of a, sealed to
# b, signed by a), posted in one curl process over one kept-alive connection.
IDA=$(on a --json federation status | jq -r .space_id)
args=()
for ((i = 0; i < N; i += BATCH)); do
    pt=$(jq -cn --argjson o "$i" --arg p "${IDA:0:16}" --argjson b "$BATCH" \
        '{collection: "bench/raw", records: [range($b) | {id: ($p + "-" + (. + $o + 1000000000 | tostring)), time: (1700000000000000 + . + $o), body: {n: (. + $o), sensor: "temp-3", value: 21.5, unit: "C"}}]}')
    "$SIGN" "$T/a/identity.key" "$KB" /v1/records "$pt" "$T/raw.$i.body" > "$T/raw.$i.h"
    [ ${#args[@]} -gt 0 ] && args+=(--next)
    args+=(-s -o /dev/null -w '%{http_code}\n' -H @"$T/raw.$i.h" -H 'Content-Type: application/octet-stream' -H 'Expect:'
           --data-binary @"$T/raw.$i.body" "http://127.0.0.1:$PB/v1/records")
done
t2=$(now)
codes=$(curl "${args[@]}" | sort | uniq -c | tr -s ' ')
t3=$(now)
[ "$codes" = " $(( N / BATCH )) 200" ] || { echo "federation: raw curl got: $codes"; exit 1; }
raw_rate=$(awk -v n="$N" -v a="$t2" -v b="$t3" 'BEGIN { print n / (b - a) }')

printf 'records synced a -> b (loopback, %d records, batches of %d):\n' "$N" "$BATCH"
printf '  osmosed sync:         %10.0f records/s\n' "$sync_rate"
printf '  raw curl, same bytes: %10.0f records/s\n' "$raw_rate"
printf '  ratio:                %10.2f\n' "$(awk -v s="$sync_rate" -v r="$raw_rate" 'BEGIN { print s / r }')"
