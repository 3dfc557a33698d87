#!/bin/bash
# footprint.sh: the memory an idle osmosed (federation off) costs: RSS and PSS from
# /proc/PID/smaps_rollup, every file it maps with its resident and proportional size, the
# anonymous memory by kind, and the stripped size of the binary — beside /bin/sleep (libc
# only) measured in the same run. Target (issue 14): RSS < 6 MiB, PSS < 5 MiB.
#
# Page counts do not depend on the machine's load, unlike timings; PSS does depend on what
# else maps the same libraries (other daemons on a shared machine lower it). The socket group
# is one that exists, as the package's sysusers.d makes 'osmose' on a gateway (a missing
# group sends getgrnam() on to libnss_systemd: 320 KiB more). Two more daemons show what
# discovery costs (enabled=no) and what running under systemd adds ($NOTIFY_SOCKET set).
# Usage: bench/footprint.sh   (BUILD=dir; SETTLE=seconds idle before measuring, default 2)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
BUILD=${BUILD:-$here/../build}
SETTLE=${SETTLE:-2}
OSMOSED=$BUILD/src/daemon/osmosed
T=$(mktemp -d /tmp/osm-bench-footprint.XXXXXX)
pids=()
cleanup() {
        # (set -e: a killed process's status must not end the trap before the others)
        for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
        for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
        rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP PIPE

# start_daemon DIR CONF [ENV...]: an osmosed of its own in DIR with CONF (lines of
# osmosed.conf); prints its pid once it is ready.
start_daemon() {
        local dir=$1
        mkdir -p "$dir"
        printf '[control]\nsocket-group = %s\n%b' "$(id -gn)" "$2" >"$dir/osmosed.conf"
        shift 2
        env "$@" "$OSMOSED" --state-dir "$dir" --name bench >"$dir/log" 2>&1 &
        local p=$!
        for _ in $(seq 200); do
                grep -q "ready on" "$dir/log" 2>/dev/null && break
                kill -0 "$p" 2>/dev/null || { cat "$dir/log" >&2; return 1; }
                sleep 0.05
        done
        echo "$p"
}

kib_to_mib() { awk -v k="$1" 'BEGIN { printf "%.2f", k / 1024 }'; }
field() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/smaps_rollup"; }

# summary NAME PID: one line of totals.
summary() {
        local rss pss anon
        rss=$(field "$2" Rss)
        pss=$(field "$2" Pss)
        anon=$(field "$2" Anonymous)
        printf '%-28s RSS %6s MiB   PSS %6s MiB   anon %5s MiB   threads %s\n' "$1" \
                "$(kib_to_mib "$rss")" "$(kib_to_mib "$pss")" "$(kib_to_mib "$anon")" \
                "$(ls "/proc/$2/task" | wc -l)"
}

# breakdown PID: resident KiB per mapped file (and per kind of anonymous memory).
breakdown() {
        awk '
        /^[0-9a-f]+-[0-9a-f]+ / {
                name = $6
                if (name == "") name = "[anon: thread stacks, malloc arenas, mmaps]"
                if (name ~ /\.db-shm$/) name = "[SQLite WAL index (*.db-shm)]"
        }
        /^Rss:/ { rss[name] += $2 }
        /^Pss:/ { pss[name] += $2 }
        END { for (n in rss) if (rss[n] > 0) printf "  %6d %6d  %s\n", rss[n], pss[n], n }
        ' "/proc/$1/smaps" | sort -rn
}

sleep 1000 &
base=$!
pids+=("$base")
daemon=$(start_daemon "$T/idle" "")
pids+=("$daemon")
sleep "$SETTLE"

echo "idle osmosed, federation off (measured after ${SETTLE}s idle; load: $(cut -d' ' -f1-3 /proc/loadavg))"
summary "osmosed" "$daemon"
summary "baseline: /bin/sleep" "$base"
awk -v a="$(field "$daemon" Rss)" -v b="$(field "$base" Rss)" -v c="$(field "$daemon" Pss)" \
        -v d="$(field "$base" Pss)" \
        'BEGIN { printf "ratio osmosed/sleep: RSS %.1fx, PSS %.1fx   (target: RSS < 6 MiB, PSS < 5 MiB)\n", a / b, c / d }'
strip -o "$T/osmosed.stripped" "$OSMOSED"
printf 'osmosed binary: %s bytes, stripped %s bytes\n' "$(stat -c %s "$OSMOSED")" "$(stat -c %s "$T/osmosed.stripped")"
echo "mapped libraries: $(awk '$6 ~ /\.so/ { print $6 }' "/proc/$daemon/maps" | sort -u | wc -l)"
echo "   RSS    PSS  (KiB)  mapping"
breakdown "$daemon"

nodisc=$(start_daemon "$T/nodisc" "[discovery]\nenabled = no\n")
pids+=("$nodisc")
sd=$(start_daemon "$T/systemd" "" NOTIFY_SOCKET="$T/notify.sock")
pids+=("$sd")
sleep "$SETTLE"
echo
summary "osmosed, discovery off" "$nodisc"
echo "  (discovery: $(awk -v a="$(field "$daemon" Rss)" -v b="$(field "$nodisc" Rss)" 'BEGIN { printf "%d KiB", a - b }') resident; libraries only it maps: $(comm -23 <(awk '$6 ~ /\.so/ { print $6 }' "/proc/$daemon/maps" | sort -u) <(awk '$6 ~ /\.so/ { print $6 }' "/proc/$nodisc/maps" | sort -u) | xargs -rn1 basename | tr '\n' ' '))"
summary "osmosed, under systemd" "$sd"
