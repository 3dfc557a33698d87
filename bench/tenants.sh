#!/bin/bash
# tenants.sh: what tenants cost a launch. `osmosectl run --wait` of /bin/true by a tenant's
# member on a daemon with 10 tenants and 100 installed workloads (the instance in its
# tenant's cgroup, the role decided from the caller's groups, the quotas checked), beside
# the operator running the same workload on a daemon with one workload and no tenant, in
# one run, rounds interleaved. Target (issue 16): under 5 % overhead.
# Usage: bench/tenants.sh [BUILD_DIR]   (N=30 ROUNDS=5 by default; needs root)
set -u
BUILD=${1:-${OSM_BUILD_ROOT:-build}}
N=${N:-30}
ROUNDS=${ROUNDS:-5}
OSMOSED=$BUILD/src/daemon/osmosed
OSMOSECTL=$BUILD/src/cli/osmosectl

if [ "$(id -u)" != 0 ] || ! command -v useradd >/dev/null; then
        echo "tenants: skipped: needs root and useradd (it makes a user and groups)"
        exit 0
fi

WORK=$(mktemp -d /tmp/osm-bench-tenants-XXXXXX)
chmod 755 "$WORK"
S=$$
USER_T=osmbu$S
GROUPS_MADE=()
PIDS=()
cleanup() {
        local p g
        for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
        userdel "$USER_T" 2>/dev/null
        for g in "${GROUPS_MADE[@]}"; do groupdel "$g" 2>/dev/null; done
        rm -rf "$WORK"
}
trap cleanup EXIT

start() {   # start NAME: a daemon in $WORK/NAME with its socket at $WORK/NAME.sock
        mkdir -p "$WORK/$1"
        printf '[control]\nsocket-mode = 0666\n' > "$WORK/$1.conf"
        DBUS_SYSTEM_BUS_ADDRESS=unix:path=$WORK/no-bus "$OSMOSED" --state-dir "$WORK/$1" \
                --socket "$WORK/$1.sock" --config "$WORK/$1.conf" >"$WORK/$1.log" 2>&1 &
        PIDS+=($!)
        local i
        for i in $(seq 200); do "$OSMOSECTL" --socket "$WORK/$1.sock" status >/dev/null 2>&1 && return 0; sleep 0.05; done
        echo "tenants: osmosed did not start ($1)" >&2
        exit 1
}

"$OSMOSECTL" keygen -o "$WORK/key" >/dev/null
mkbundle() {   # mkbundle NAME
        mkdir -p "$WORK/b/$1"
        printf '{"name":"%s","version":1,"entrypoint":["/bin/true"],"restart":"never"}' "$1" > "$WORK/b/$1/manifest.json"
        "$OSMOSECTL" bundle build "$WORK/b/$1" -o "$WORK/b/$1.osb" --key "$WORK/key" >/dev/null
}

# One workload, no tenant: the operator's.
start plain
P="$OSMOSECTL --socket $WORK/plain.sock"
$P trust add "$(cat "$WORK/key.pub")" >/dev/null
mkbundle w0
$P install "$WORK/b/w0.osb" >/dev/null || { echo "tenants: install failed"; exit 1; }

# 10 tenants, 100 workloads (10 each); the measured one belongs to the 10th tenant.
start many
M="$OSMOSECTL --socket $WORK/many.sock"
$M trust add "$(cat "$WORK/key.pub")" >/dev/null
for t in $(seq 0 9); do
        g=osmbg$S$t
        groupadd "$g" && GROUPS_MADE+=("$g")
        $M tenant add "t$t" --group "$g" --memory 1G --pids 1000 --instances 50 >/dev/null
        for k in $(seq 0 9); do
                n=w$((t * 10 + k))
                [ -f "$WORK/b/$n.osb" ] || mkbundle "$n"
                $M install "$WORK/b/$n.osb" --tenant "t$t" >/dev/null || { echo "tenants: install $n failed"; exit 1; }
        done
done
useradd -M -N -g nogroup -G "osmbg${S}9" -s /usr/sbin/nologin "$USER_T"
echo "tenants: $($M --json workloads | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["workloads"]))') workloads in $($M --json tenant ls | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["tenants"]))') tenants"

now_ns() { date +%s%N; }
loop() {   # loop CMD...: N runs, prints ms per run
        local t0 t1 i
        t0=$(now_ns)
        for ((i = 0; i < N; i++)); do "$@" >/dev/null 2>&1 || return 1; done
        t1=$(now_ns)
        awk -v a="$t0" -v b="$t1" -v n="$N" 'BEGIN { printf "%.3f\n", (b - a) / n / 1e6 }'
}
plain=() tenant=()
for r in $(seq "$ROUNDS"); do
        plain+=("$(loop setpriv --reuid=root --regid=root --init-groups $P run w0 --wait)") || exit 1
        tenant+=("$(loop setpriv --reuid="$USER_T" --regid=nogroup --init-groups $OSMOSECTL --socket "$WORK/many.sock" run w99 --wait)") || exit 1
done
median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
mp=$(median "${plain[@]}") mt=$(median "${tenant[@]}")
echo "tenants: run --wait /bin/true, median of $ROUNDS rounds x $N (ms per run)"
printf '  %-44s %8s ms\n' "operator, 1 workload, no tenant" "$mp"
printf '  %-44s %8s ms\n' "tenant member, 10 tenants, 100 workloads" "$mt"
awk -v a="$mt" -v b="$mp" 'BEGIN { printf "  ratio tenant/plain: %.3f (target < 1.05)\n", a / b }'
echo "  load: $(cut -d' ' -f1-3 /proc/loadavg)"
