#!/bin/bash
# distribution.sh: BENCH_ROOMS (20) rooms in network namespaces (tests/lib/rooms.sh) make a
# building and follow one channel building-wide from an HTTP origin in a namespace of its
# own that counts the bytes it sends; each version is a BENCH_MIB (50) MiB bundle, rolled
# out canary first, then every other room at once. Two versions in the same run:
#   baseline: [channels] peers = no — every room fetches its copy from the origin;
#   p2p:      peers = yes (osmosectl reload) — rooms take it from members that keep it.
# Prints, for each: the time from publishing to every room running it healthy, and the
# bytes the origin sent for the bundle (in copies), then the ratios. Bounded: each rollout
# gets BENCH_TIMEOUT (600) s.
set -u
here=$(cd "$(dirname "$0")" && pwd)
BUILD=${BUILD:-$here/../build}
export OSMOSED=$BUILD/src/daemon/osmosed OSMOSECTL=$BUILD/src/cli/osmosectl
N=${BENCH_ROOMS:-20}
MIB=${BENCH_MIB:-50}
TIMEOUT=${BENCH_TIMEOUT:-600}
. "$here/../tests/lib/common.sh"   # wait_for
. "$here/../tests/lib/rooms.sh"
. "$here/../tests/lib/channels.sh"
for t in jq curl python3; do command -v $t >/dev/null || { echo "distribution: skipped ($t is not installed)"; exit 0; }; done
"$OSMOSECTL" building --help >/dev/null 2>&1 || { echo "distribution: skipped (built without the building)"; exit 0; }
rooms_check || { echo "distribution: skipped ($ROOMS_SKIP)"; exit 0; }
T=$(mktemp -d /tmp/osm-bench-dist.XXXXXX)
trap 'rooms_down; rm -rf "$T"' EXIT
now() { date +%s.%N; }
ctl() { "$OSMOSECTL" "$@"; }
echo "load before: $(uptime)"

ROOMS=(); for i in $(seq "$N"); do ROOMS+=("R$i"); done
specs=(); for r in "${ROOMS[@]}" O; do specs+=("$r:bare"); done
rooms_up "${specs[@]}" >/dev/null || { echo "distribution: cannot make the rooms"; exit 1; }
ORIGIN=http://$ROOMS_NET.$((N + 1)):8080
mkdir -p "$T/pub"
room_spawn O "$T/origin.log" python3 "$here/../tests/lib/count-http.py" 0.0.0.0 8080 "$T/pub"
served() { room_exec O curl -sf "http://127.0.0.1:8080/__bytes"; }
wait_for 10 served >/dev/null || { echo "distribution: the origin does not answer"; exit 1; }
sent_for() { served | jq -r --arg p "/bundles/$1" '.paths[$p] // 0'; }

conf() { printf '[building]\nstatus-interval = 2s\n[channels]\ncheck-interval = 1s\nhealth-grace = 0\npeers = %s\n[workloads]\nmax-bundle-size = 1G\nfetch-timeout = %ss\n' "$1" "$TIMEOUT"; }
t0=$(now)
ch_building_up "$(conf no)" || { echo "distribution: $CH_ERR"; exit 1; }
printf '%d rooms make a building in %.1f s\n' "$N" "$(awk -v a="$t0" -v b="$(now)" 'BEGIN{print b-a}')"

pub=$(ctl keygen -o "$T/key")
ch_trust_all "$pub" || { echo "distribution: $CH_ERR"; exit 1; }
build() {   # VERSION: a one-shot workload with MIB MiB of its own random data; sets ID and SIZE
    local d=$T/src-$1 o; rm -rf "$T"/src-*; mkdir -p "$d/rootfs/opt"
    ch_rootfs "$d" /bin/true
    head -c $((MIB * 1024 * 1024)) /dev/urandom > "$d/rootfs/opt/blob"
    printf '{"name":"big","version":%s,"entrypoint":["/bin/true"],"restart":"never"}\n' "$1" > "$d/manifest.json"
    ctl bundle build "$d" -o "$T/big.osb" --key "$T/key" >/dev/null || exit 1
    o=$(ctl --json channel publish "$T/big.osb" --channel big --key "$T/key" -o "$T/stage") || exit 1
    ID=$(jq -r .bundle <<<"$o"); SIZE=$(jq -r .size <<<"$o")
    rm -rf "$T/src-$1" "$T/big.osb"
}
healthy() { [ "$(rctl R1 --json rollout status 2>/dev/null | jq --arg v "$1" '[.rooms[] | select(.workload == "big" and (.version|tostring) == $v and .state == "healthy")] | length')" = "$N" ]; }
fetched() { local r s=0 v; for r in "${ROOMS[@]}"; do v=$(rctl "$r" --json building status | jq -r '.counters.bundles_fetched // 0'); s=$((s + v)); done; echo $s; }
# rollout VERSION: publish the staged version to the origin; prints "SECONDS BYTES" or fails
rollout() {
    local t0 t1 i
    mkdir -p "$T/pub/bundles"
    mv "$T/stage/bundles/$ID" "$T/pub/bundles/$ID"
    t0=$(now)
    cp "$T/stage/big.channel" "$T/pub/big.channel.tmp" && mv "$T/pub/big.channel.tmp" "$T/pub/big.channel"
    for i in $(seq $((TIMEOUT * 2))); do healthy "$1" && break; sleep 0.5; done
    healthy "$1" || return 1
    t1=$(now)
    echo "$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}') $(sent_for "$ID")"
}

# the list with version 1 (a tiny bundle) so that following works before the first big one
mib_saved=$MIB; MIB=0; build 1; MIB=$mib_saved
mkdir -p "$T/pub/bundles"; mv "$T/stage/bundles/$ID" "$T/pub/bundles/"; cp "$T/stage/big.channel" "$T/pub/"
rctl R1 follow big "$ORIGIN" --building --canary room-R1 --batch "$N" >/dev/null || { echo "distribution: follow"; exit 1; }
for i in $(seq $((TIMEOUT * 2))); do healthy 1 && break; sleep 0.5; done
healthy 1 || { echo "distribution: version 1 did not reach every room"; exit 1; }

build 2
f0=$(fetched)
read -r bt bb < <(rollout 2) || true
[ -n "${bb:-}" ] || { echo "distribution: baseline rollout did not complete in ${TIMEOUT}s"; exit 1; }
bsize=$SIZE; bpeer=$(( $(fetched) - f0 ))

for r in "${ROOMS[@]}"; do conf yes > "$ROOMS_DIR/$r/osm/osmosed.conf"; rctl "$r" reload >/dev/null || { echo "distribution: reload $r"; exit 1; }; done
build 3
f0=$(fetched)
read -r pt pb < <(rollout 3) || true
[ -n "${pb:-}" ] || { echo "distribution: p2p rollout did not complete in ${TIMEOUT}s"; exit 1; }
psize=$SIZE; ppeer=$(( $(fetched) - f0 ))

awk -v n="$N" -v mib="$MIB" -v bs="$bsize" -v ps="$psize" -v bt="$bt" -v bb="$bb" -v pt="$pt" -v pb="$pb" \
    -v bpeer="$bpeer" -v ppeer="$ppeer" 'BEGIN {
    printf "%d rooms upgrade to a %d MiB bundle from one HTTP origin (canary first, then the other %d at once)\n", n, mib, n - 1
    printf "  every room from the origin (baseline): %7.1f s to all upgraded, origin sent %8.1f MiB (%.2f copies), %d copies between members\n", bt, bb / 1048576, bb / bs, bpeer
    printf "  peer-to-peer by hash:                  %7.1f s to all upgraded, origin sent %8.1f MiB (%.2f copies), %d copies between members\n", pt, pb / 1048576, pb / ps, ppeer
    printf "  ratio p2p/baseline: origin bytes %.3f, time %.2f\n", (pb / ps) / (bb / bs), pt / bt
}'
echo "load after: $(uptime)"
