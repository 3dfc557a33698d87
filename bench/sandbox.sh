#!/bin/bash
# sandbox.sh: spawn-to-exit of /bin/true in an Osmose sandbox beside bwrap, unshare and crun, in one run.
#
# Each tool runs N times per round, rounds interleaved (the machine is shared: load
# changes between rounds hit every tool alike); the figure is the median round, in ms
# per run. Target (DESIGN.md §12): Osmose no slower than bwrap --unshare-all, ≤ 0.5 × crun.
# Usage: bench/sandbox.sh [BUILD_DIR]   (N=50 ROUNDS=5 by default; needs root)
set -u
BUILD=${1:-${OSM_BUILD_ROOT:-build}}
N=${N:-50}
ROUNDS=${ROUNDS:-5}
SPAWN=$BUILD/bench/sandbox-spawn
OSMOSED=$BUILD/src/daemon/osmosed
OSMOSECTL=$BUILD/src/cli/osmosectl

if [ "$(id -u)" != 0 ]; then
        echo "sandbox: skipped: needs root (id ranges and cgroups)"
        exit 0
fi
if [ ! -x "$SPAWN" ]; then
        echo "sandbox: $SPAWN missing: build first (meson compile -C $BUILD)" >&2
        exit 1
fi

WORK=$(mktemp -d /tmp/osm-bench-sandbox-XXXXXX)
# The instances' API sockets on a tmpfs, as on an installed gateway (/run/osmose there),
# not beside the state on disk.
RUNTIME=$(mktemp -d /dev/shm/osm-bench-run-XXXXXX 2>/dev/null || echo "$WORK/run")
DAEMON_PID=
cleanup() {
        [ -n "$DAEMON_PID" ] && kill "$DAEMON_PID" 2>/dev/null && wait "$DAEMON_PID" 2>/dev/null
        rm -rf "$WORK" "$RUNTIME"
}
trap cleanup EXIT

now_ns() { date +%s%N; }

# Each runner runs its tool N times and prints ms per run (or fails).
run_osmose() { "$SPAWN" "$N"; }

# Run "$@" N times (with $i the run's number) and print ms per run, or fail.
time_n() {
        local t0 t1 i
        t0=$(now_ns)
        for ((i = 0; i < N; i++)); do
                "$@" || return 1
        done
        t1=$(now_ns)
        awk -v a="$t0" -v b="$t1" -v n="$N" 'BEGIN { printf "%.3f\n", (b - a) / n / 1e6 }'
}

bwrap_once() {
        bwrap --unshare-all --die-with-parent --new-session \
                --ro-bind /usr /usr --symlink usr/bin /bin --symlink usr/lib /lib \
                --symlink usr/lib64 /lib64 --symlink usr/sbin /sbin \
                --proc /proc --dev /dev --tmpfs /tmp --dir /data /bin/true
}
run_bwrap() { time_n bwrap_once; }

run_unshare() { time_n unshare -Urpmnui --fork /bin/true; }

CRUN_WHY=
setup_crun() {
        if ! command -v crun >/dev/null; then
                CRUN_WHY="crun is not installed"
                return 1
        fi
        local b=$WORK/crun
        mkdir -p "$b/rootfs/usr" "$b/rootfs/proc" "$b/rootfs/dev" "$b/rootfs/tmp"
        for l in bin lib lib64 sbin; do ln -s usr/$l "$b/rootfs/$l"; done
        (cd "$b" && crun spec) || { CRUN_WHY="crun spec failed"; return 1; }
        python3 - "$b/config.json" <<'EOF'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c["process"]["args"] = ["/bin/true"]
c["process"]["terminal"] = False
c["root"]["readonly"] = True
c["mounts"].append({"destination": "/usr", "type": "bind", "source": "/usr", "options": ["rbind", "ro"]})
json.dump(c, open(p, "w"))
EOF
        local out
        if ! out=$(crun run --bundle "$b" osm-bench-probe 2>&1); then
                crun delete -f osm-bench-probe >/dev/null 2>&1
                CRUN_WHY="crun refuses to run here: $(echo "$out" | head -1)"
                return 1
        fi
        return 0
}

crun_once() { crun run --bundle "$WORK/crun" "osm-bench-$i" >/dev/null 2>&1; }
run_crun() { time_n crun_once; }

# End to end through the daemon, once `osmosectl run --wait` exists.
E2E_WHY=
setup_e2e() {
        if ! "$OSMOSECTL" run --help >/dev/null 2>&1; then
                E2E_WHY="osmosectl run is not available in this build"
                return 1
        fi
        local st=$WORK/state
        mkdir -p "$st" "$WORK/bundle"
        # At debug level the daemon logs one "launch times:" line per run: the breakdown below.
        printf '[daemon]\nlog-level = debug\nruntime-dir = %s\n' "$RUNTIME" >"$WORK/osmosed.conf"
        "$OSMOSED" --config "$WORK/osmosed.conf" --state-dir "$st" --socket "$st/osmosed.sock" >"$WORK/osmosed.log" 2>&1 &
        DAEMON_PID=$!
        export OSMOSE_SOCKET=$st/osmosed.sock
        for _ in $(seq 50); do "$OSMOSECTL" call org.varlink.service.GetInfo >/dev/null 2>&1 && break; sleep 0.1; done
        cat >"$WORK/bundle/manifest.json" <<'EOF'
{"name": "bench-true", "version": 1, "entrypoint": ["/bin/true"]}
EOF
        if ! "$OSMOSECTL" bundle build "$WORK/bundle" -o "$WORK/bench.bundle" >"$WORK/e2e.log" 2>&1 ||
                ! "$OSMOSECTL" install "$WORK/bench.bundle" --allow-unsigned >>"$WORK/e2e.log" 2>&1 ||
                ! "$OSMOSECTL" run --wait bench-true >>"$WORK/e2e.log" 2>&1; then
                E2E_WHY="could not install and run a trivial bundle: $(tail -1 "$WORK/e2e.log")"
                return 1
        fi
        # A second workload (its own host id range, as every workload has): a building's
        # gateway runs several in turn, not one.
        mkdir -p "$WORK/bundle-b"
        sed 's/"bench-true"/"bench-true-b"/' "$WORK/bundle/manifest.json" >"$WORK/bundle-b/manifest.json"
        if ! "$OSMOSECTL" bundle build "$WORK/bundle-b" -o "$WORK/bench-b.bundle" >>"$WORK/e2e.log" 2>&1 ||
                ! "$OSMOSECTL" install "$WORK/bench-b.bundle" --allow-unsigned >>"$WORK/e2e.log" 2>&1; then
                E2E_WHY="could not install a second trivial bundle: $(tail -1 "$WORK/e2e.log")"
                return 1
        fi
}

# Quiet: "started …" goes to a file, shown if the run fails.
e2e_once() { "$OSMOSECTL" run --wait bench-true >/dev/null 2>"$WORK/e2e.err" || { cat "$WORK/e2e.err" >&2; return 1; }; }
run_e2e() { time_n e2e_once; }
# Two workloads in turn, the odd runs of one, the even of the other.
e2e2_once() {
        local w=bench-true
        ((i % 2)) && w=bench-true-b
        "$OSMOSECTL" run --wait "$w" >/dev/null 2>"$WORK/e2e.err" || { cat "$WORK/e2e.err" >&2; return 1; }
}
run_e2e2() { time_n e2e2_once; }

# What the CLI alone costs: start and exit; start, connect, one call and exit.
cli_once() { "$OSMOSECTL" --version >/dev/null; }
call_once() { "$OSMOSECTL" call org.varlink.service.GetInfo >/dev/null; }
run_cli() { time_n cli_once; }
run_call() { time_n call_once; }

tools=(osmose bwrap unshare)
setup_crun && tools+=(crun)
setup_e2e && tools+=(e2e e2e2 cli call)

declare -A results
for ((r = 0; r < ROUNDS; r++)); do
        for t in "${tools[@]}"; do
                v=$(run_$t) || { echo "sandbox: $t failed" >&2; v=; }
                results[$t]+="$v "
        done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]; else print ""}'; }

declare -A med
for t in "${tools[@]}"; do med[$t]=$(echo "${results[$t]}" | median); done

label() {
        case $1 in
        osmose) echo "osmose sandbox (API, in-process)" ;;
        e2e) echo "osmosectl run --wait (end to end)" ;;
        e2e2) echo "  the same, two workloads in turn" ;;
        bwrap) echo "bwrap --unshare-all --ro-bind /usr" ;;
        unshare) echo "unshare -Urpmnui --fork" ;;
        crun) echo "crun run" ;;
        cli) echo "  osmosectl --version (start, exit)" ;;
        call) echo "  osmosectl call GetInfo (+1 call)" ;;
        esac
}

echo "sandbox: spawn-to-exit of /bin/true, ms per run (median of $ROUNDS rounds x $N runs)"
for t in "${tools[@]}"; do
        printf "  %-38s %8s ms\n" "$(label "$t")" "${med[$t]:-failed}"
done
[ -n "$CRUN_WHY" ] && printf "  %-38s %s\n" "crun run" "skipped: $CRUN_WHY"
[ -n "$E2E_WHY" ] && printf "  %-38s %s\n" "osmosectl run --wait" "skipped: $E2E_WHY"
# Where the time of one run --wait goes, from the daemon's "launch times:" debug lines
# (medians over every timed run; each step in order, see instance.c log_launch_times).
if [ -z "$E2E_WHY" ] && grep -q "launch times:" "$WORK/osmosed.log"; then
        echo "  breakdown of run --wait in the daemon (median ms per step):"
        grep "launch times:" "$WORK/osmosed.log" | sed 's/.*launch times: //' | awk '
                function isort(a, m,   i, j, t) { for (i = 2; i <= m; i++) { t = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]; a[j + 1] = t } }
                { for (f = 1; f <= NF; f++) { split($f, kv, "="); v[kv[1]] = v[kv[1]] " " kv[2]; if (!(kv[1] in seen)) { seen[kv[1]] = 1; order[++n] = kv[1] } } }
                END {
                        split("record:Run call to instance recorded (SQL, log file)|prepare:API socket, pipes, spec|cgroups:cgroups made, limits written|clone:clone3 into new namespaces|join:move into v1 cgroups (parallel with the root)|join_critical:runs where the root waited for the move (count)|userns_ahead:runs that joined a user namespace made ahead (count)|preforked:runs whose init was cloned ahead (count)|root_ahead:runs whose init had built the common part of the root ahead (count)|root:root built after the move, id map|exec:drop privileges, seccomp, exec|watch:pipes and pidfd watched, started reply|ran:/bin/true runs, init exits, pidfd readable|answer:reap, drain, end recorded, final reply|housekeeping:API socket, usage, logs and bundles gc (after the reply)", d, "|")
                        for (k in d) { split(d[k], p, ":"); desc[p[1]] = p[2] }
                        for (k = 1; k <= n; k++) {
                                m = split(substr(v[order[k]], 2), a, " "); isort(a, m)
                                if (order[k] == "join_critical" || order[k] == "userns_ahead" || order[k] == "preforked" || order[k] == "root_ahead") { c = 0; for (j = 1; j <= m; j++) c += a[j]; printf "    %-14s %8d of %d  %s\n", order[k], c, m, desc[order[k]]; continue }
                                printf "    %-14s %8.3f  %s\n", order[k], a[int((m + 1) / 2)], desc[order[k]]
                        }
                }'
fi
ratio() { [ -n "${med[$1]:-}" ] && [ -n "${med[$2]:-}" ] && awk -v a="${med[$1]}" -v b="${med[$2]}" 'BEGIN { printf "%.2f\n", a / b }'; }
for ours in osmose e2e e2e2; do
        [ -n "${med[$ours]:-}" ] || continue
        printf "  ratio %-10s / bwrap   = %s (target <= 1)\n" "$ours" "$(ratio "$ours" bwrap)"
        printf "  ratio %-10s / unshare = %s\n" "$ours" "$(ratio "$ours" unshare)"
        [ -n "${med[crun]:-}" ] && printf "  ratio %-10s / crun    = %s (target <= 0.5)\n" "$ours" "$(ratio "$ours" crun)"
done

# Paired, run by run: one run --wait, then one bwrap, PAIRS times, each timed alone (the
# rounds above are back to back: each launch of a round meets the previous one's
# teardown and the work made ahead for the next; here the daemon has a bwrap run's time
# in between, as a gateway's launches are spaced). The median of the per-pair ratios.
if [ -z "$E2E_WHY" ]; then
        PAIRS=${PAIRS:-100}
        us() { local t=$EPOCHREALTIME; echo "${t/[.,]/}"; }
        for ((p = 0; p < PAIRS; p++)); do
                a0=$(us); e2e_once || break; a1=$(us)
                b0=$(us); bwrap_once; b1=$(us)
                echo "$((a1 - a0)) $((b1 - b0))"
        done | python3 -c '
import statistics as S, sys
r = [tuple(map(int, l.split())) for l in sys.stdin if l.strip()]
if r:
    print("  paired, run by run (%d pairs): run --wait %.3f ms, bwrap %.3f ms (medians); ratio %.2f (median of the pairs; target <= 1)"
          % (len(r), S.median(a for a, _ in r) / 1000, S.median(b for _, b in r) / 1000, S.median(a / b for a, b in r)))'
fi
exit 0
