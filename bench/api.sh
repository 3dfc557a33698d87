#!/bin/bash
# api.sh: records/s a workload writes through its API socket (PutBatch of 1000, and one
# Put per record), beside `osmosectl put --batch` of the same rows into the same daemon,
# in the same run. Both are durable (acknowledged after the group commit's sync).
# Usage: bench/api.sh   (N=100000 records by default; needs root for the sandbox)
set -u
here=$(cd "$(dirname "$0")" && pwd)
BUILD=${BUILD:-$here/../build}
N=${N:-100000}
N1=${N1:-5000}
WRITER=$BUILD/bench/api-writer
if [ "$(id -u)" != 0 ]; then echo "api: skipped: needs root (sandboxes)"; exit 0; fi
if [ ! -x "$WRITER" ]; then echo "api: skipped: $WRITER not built (no static jansson)"; exit 0; fi
T=$(mktemp -d /tmp/osm-bench-api.XXXXXX)
printf '[api]\nmax-bytes-stored = 4G\n[store]\ndb-budget = 8G\n' > "$T/osmosed.conf"
"$BUILD/src/daemon/osmosed" --state-dir "$T/state" --config "$T/osmosed.conf" --name bench >"$T/log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$T"' EXIT
export OSMOSE_SOCKET=$T/state/osmosed.sock
ctl() { "$BUILD/src/cli/osmosectl" "$@"; }
for _ in $(seq 100); do ctl call org.varlink.service.GetInfo >/dev/null 2>&1 && break; sleep 0.05; done

mkdir -p "$T/b/rootfs/usr/bin"
cp "$WRITER" "$T/b/rootfs/usr/bin/api-writer"
echo '{"name":"writer","version":1,"entrypoint":["/usr/bin/api-writer"],"capabilities":["store:write:bench/*"]}' \
    > "$T/b/manifest.json"
ctl bundle build "$T/b" -o "$T/writer.osb" >/dev/null
ctl install "$T/writer.osb" --allow-unsigned --grant 'store:write:bench/*' >/dev/null || exit 1

# The same rows for put --batch, as JSON Lines.
python3 -c "
import json
for i in range($N): print(json.dumps({'seq': i, 'sensor': 'temp', 'value': 20.0 + (i % 50) / 10.0}))" > "$T/rows.jsonl"

run_api() {   # run_api COLLECTION N BATCH [CONNECTIONS] -> records/s
    local id
    id=$(ctl run writer -- "$1" "$2" "$3" "${4:-1}")
    for _ in $(seq 1200); do
        ctl ps 2>/dev/null | grep -q "^$id .*running" || break
        sleep 0.1
    done
    ctl logs "$id" | awk '/^records/ { print $6 }'
}
run_cli() {   # run_cli COLLECTION -> records/s
    local s e
    s=$(date +%s%N)
    ctl put "$1" --batch < "$T/rows.jsonl" >/dev/null || return 1
    e=$(date +%s%N)
    awk -v n="$N" -v ns=$((e - s)) 'BEGIN { printf "%.0f\n", n / (ns / 1e9) }'
}
# Interleave: baseline, API, baseline again (the machine is shared).
cli1=$(run_cli bench/cli1)
api=$(run_api bench/api "$N" 1000)
api2=$(run_api bench/api2 "$N" 1000 2)
cli2=$(run_cli bench/cli2)
single=$(run_api bench/single "$N1" 1)
cli=$(( (cli1 + cli2) / 2 ))
echo "osmosectl put --batch:            $cli records/s (runs: $cli1, $cli2; $N records)"
echo "workload API, PutBatch of 1000:   $api records/s (one connection), $api2 records/s (two)"
echo "workload API, one Put per record: $single records/s ($N1 records, one durable commit each)"
awk -v a="$api" -v b="$api2" -v c="$cli" 'BEGIN { printf "ratio API batch / put --batch: %.2f (one connection), %.2f (two)\n", a / c, b / c }'
