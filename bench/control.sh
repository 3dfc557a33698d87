#!/bin/bash
# control.sh: control calls per second and latency with 100 clients, against a raw
# socketpair round trip of the same bytes, in the same run.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
BUILD=${BUILD:-$here/../build}
T=$(mktemp -d /tmp/osm-bench.XXXXXX)
"$BUILD/src/daemon/osmosed" --state-dir "$T" --name bench >"$T/log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$T"' EXIT
for _ in $(seq 100); do [ -S "$T/osmosed.sock" ] && break; sleep 0.05; done
"$BUILD/bench/control-bench" "$T/osmosed.sock" "${BENCH_SECONDS:-2}"
