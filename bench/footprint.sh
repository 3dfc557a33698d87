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
# discovery costs (enabled=no) and what running under systemd adds ($NOTIFY_SOCKET set);
# without a system bus (as on this machine) discovery maps no D-Bus stack, so one more
# daemon runs with a private bus, as a gateway has one.
# Usage: bench/footprint.sh   (BUILD=dir; SETTLE=seconds idle before measuring, default 2)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
BUILD=${BUILD:-$here/../build}
SETTLE=${SETTLE:-2}
. "$here/lib.sh"
bench_setup footprint

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
# A root daemon on v1 controllers keeps an init cloned ahead in each launcher spare: its
# processes, counted beside it (their pages are mostly the daemon's, shared: see PSS).
kids=$(cat /proc/"$daemon"/task/*/children 2>/dev/null | tr ' ' '\n' | grep -v '^$' || true)
if [ -n "$kids" ]; then
        krss=0 kpss=0 kn=0
        for k in $kids; do
                krss=$((krss + $(field "$k" Rss))) kpss=$((kpss + $(field "$k" Pss))) kn=$((kn + 1))
        done
        printf 'inits cloned ahead (its child processes): %d, RSS %s MiB, PSS %s MiB in all; daemon and them: PSS %s MiB\n' \
                "$kn" "$(kib_to_mib "$krss")" "$(kib_to_mib "$kpss")" "$(kib_to_mib $(($(field "$daemon" Pss) + kpss)))"
fi
echo "   RSS    PSS  (KiB)  mapping"
breakdown "$daemon"

nodisc=$(start_daemon "$T/nodisc" "[discovery]\nenabled = no\n")
pids+=("$nodisc")
sd=$(start_daemon "$T/systemd" "" NOTIFY_SOCKET="$T/notify.sock")
pids+=("$sd")
if command -v dbus-daemon >/dev/null; then
        # As on a gateway: a system bus, where discovery maps libavahi-client and the D-Bus
        # stack under it (no avahi-daemon on this private bus: discovery waits for one).
        dbus-daemon --session --address="unix:path=$T/bus" --nopidfile --fork --print-pid=3 3>"$T/bus.pid"
        pids+=("$(cat "$T/bus.pid")")
        bus=$(start_daemon "$T/bus-daemon" "" DBUS_SYSTEM_BUS_ADDRESS="unix:path=$T/bus")
        pids+=("$bus")
fi
sleep "$SETTLE"
echo
summary "osmosed, discovery off" "$nodisc"
echo "  (discovery: $(awk -v a="$(field "$daemon" Rss)" -v b="$(field "$nodisc" Rss)" 'BEGIN { printf "%d KiB", a - b }') resident; libraries only it maps: $(comm -23 <(awk '$6 ~ /\.so/ { print $6 }' "/proc/$daemon/maps" | sort -u) <(awk '$6 ~ /\.so/ { print $6 }' "/proc/$nodisc/maps" | sort -u) | xargs -rn1 basename | tr '\n' ' '))"
summary "osmosed, under systemd" "$sd"
sd_libs=$(comm -13 <(awk '$6 ~ /\.so/ { print $6 }' "/proc/$daemon/maps" | sort -u) <(awk '$6 ~ /\.so/ { print $6 }' "/proc/$sd/maps" | sort -u) | xargs -rn1 basename | tr '\n' ' ')
echo "  (under systemd: libraries it adds: ${sd_libs:-none: the systemd protocols are spoken directly, no libsystemd})"
if [ -n "${bus:-}" ]; then
        summary "osmosed, with a system bus" "$bus"
        echo "  (discovery on a bus: $(awk -v a="$(field "$bus" Rss)" -v b="$(field "$nodisc" Rss)" 'BEGIN { printf "%d KiB", a - b }') resident beside discovery off; libraries it adds: $(comm -13 <(awk '$6 ~ /\.so/ { print $6 }' "/proc/$daemon/maps" | sort -u) <(awk '$6 ~ /\.so/ { print $6 }' "/proc/$bus/maps" | sort -u) | xargs -rn1 basename | tr '\n' ' '))"
fi
