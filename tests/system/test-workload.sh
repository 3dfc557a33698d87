#!/bin/bash
# test-workload.sh: instances in real sandboxes, supervised by a real osmosed: run --wait exit
# status, bounded logs, logs -f, stop (SIGTERM, then SIGKILL after the grace period),
# restart with backoff, stats, data directory, the CLI going away, and the daemon's stop.
. "$(dirname "$0")/../lib/common.sh"
osm_setup

if [ "$(id -u)" != 0 ]; then
    echo "1..0 # SKIP needs root (sandboxes map a uid range and use cgroups)"
    exit 0
fi

state_of() { ctl --json ps --all | python3 -c "import json,sys; print(next((i['state'] for i in json.load(sys.stdin)['instances'] if i['id']=='$1'), 'none'))"; }
field_of() { ctl --json ps --all | python3 -c "import json,sys; print(next((i.get('$2','') for i in json.load(sys.stdin)['instances'] if i['id']=='$1'), ''))"; }

mk_bundle exit7 <<'EOF'
{"name":"exit7","version":1,"entrypoint":["/bin/sh","-c","echo out; echo err >&2; echo args: \"$@\"; echo data > /data/written; exit 7","sh"]}
EOF
mk_bundle killed <<'EOF'
{"name":"killed","version":1,"entrypoint":["/bin/sh","-c","kill -9 $$"]}
EOF
mk_bundle chatty <<'EOF'
{"name":"chatty","version":1,"entrypoint":["/bin/sh","-c","i=0; while [ $i -lt 2000 ]; do echo line $i; i=$((i+1)); done; echo the-end"]}
EOF
mk_bundle ticker <<'EOF'
{"name":"ticker","version":1,"entrypoint":["/bin/sh","-c","i=0; while :; do echo tick $i; i=$((i+1)); sleep 0.1; done"]}
EOF
mk_bundle stubborn <<'EOF'
{"name":"stubborn","version":1,"entrypoint":["/bin/sh","-c","trap '' TERM; echo ignoring TERM; while :; do sleep 0.1; done"]}
EOF
mk_bundle brief <<'EOF'
{"name":"brief","version":1,"entrypoint":["/bin/sh","-c","echo brief"]}
EOF
mk_bundle crash <<'EOF'
{"name":"crash","version":1,"entrypoint":["/bin/sh","-c","echo crashing; exit 3"],"restart":"on-failure"}
EOF
mk_bundle once <<'EOF'
{"name":"once","version":1,"entrypoint":["/bin/sh","-c","exit 0"],"restart":"on-failure"}
EOF
mk_bundle always <<'EOF'
{"name":"always","version":1,"entrypoint":["/bin/sh","-c","echo run; exit 0"],"restart":"always"}
EOF
mk_bundle missing <<'EOF'
{"name":"missing","version":1,"entrypoint":["/no/such/program"]}
EOF

printf '[sandbox]\nlog-size = 10K\nstop-timeout = 1s\n[workloads]\nrestart-delay = 200ms\nmax-bundle-size = 64K\n' > "$T/osmosed.conf"
osm_start_daemon --config "$T/osmosed.conf"
health=$(ctl --json status | python3 -c "import json,sys; print(next(s['health'] for s in json.load(sys.stdin)['subsystems'] if s['name']=='sandbox'))")
if [ "$health" = failed ]; then
    echo "1..0 # SKIP the sandbox cannot run on this host: $(ctl status | grep sandbox)"
    exit 0
fi
for w in exit7 killed chatty ticker stubborn crash once always missing brief; do
    ctl install "$T/$w.osb" --allow-unsigned >/dev/null || bail "install $w"
done

# max-bundle-size
mkdir -p "$T/big/rootfs"
echo '{"name":"big","version":1,"entrypoint":["/x"]}' > "$T/big/manifest.json"
head -c 100000 /dev/urandom > "$T/big/rootfs/blob"
ctl bundle build "$T/big" -o "$T/big.osb" >/dev/null
out=$(ctl install "$T/big.osb" --allow-unsigned 2>&1); ok $((! $?)) "a bundle over max-bundle-size is refused"
like "$out" "larger than the limit of 65536 bytes" "…saying so"

# --- run --wait
ctl run exit7 --wait -- x y; is "$?" 7 "run --wait exits with the workload's exit status"
ctl run killed --wait; is "$?" 137 "…and with 128+N when it is killed by signal N"
ctl run missing --wait 2>"$T/err"; is "$?" 125 "run --wait of a program that cannot start exits 125"
like "$(cat "$T/err")" "SpawnFailed" "…with the reason"
ctl run nosuch >/dev/null 2>&1; ok $((! $?)) "run of an unknown workload fails"
out=$(ctl logs exit7-1 2>"$T/exit7.err"); ok $? "logs of an ended instance"
like "$out" "out" "…has its stdout"
is "$(cat "$T/exit7.err")" "err" "…and its stderr, apart, on stderr"
printf '%s\n' "$out" | grep -qx err; ok $((! $?)) "…not mixed into stdout"
js=$(ctl --json logs exit7-1)
like "$js" '"stream": ?"stderr", ?"data": ?"err\\n"' "logs --json tells the streams apart"
like "$js" '"time": ?[0-9]{16}' "…with the time of each line"
like "$out" "args: x y" "…and saw the extra arguments"
is "$(cat "$T/state/data/exit7/written" 2>/dev/null)" "data" "the workload wrote to its data directory"
js=$(ctl --json stats exit7-1)
like "$js" '"cpu_usec": [0-9]+' "stats after the end: CPU time"
like "$js" '"memory_peak": [0-9]+' "…peak memory"
like "$js" '"io_write_bytes": [0-9]+' "…I/O"

# --- bounded logs
ctl run chatty --wait >/dev/null; is "$?" 0 "a chatty workload ran"
id=$(ctl --json ps --all | python3 -c "import json,sys; print([i['id'] for i in json.load(sys.stdin)['instances'] if i['workload']=='chatty'][0])")
ctl logs "$id" > "$T/chatty.out" 2>"$T/chatty.err"
size=$(stat -c %s "$T/chatty.out")
# on disk: two files of half the bound each, 20 bytes of header per line
[ "$size" -gt 2500 ]; ok $? "logs keep up to log-size (got $size bytes of a 10240-byte log)"
[ "$size" -le 10240 ]; ok $? "…no more than log-size bytes"
is "$(tail -n1 "$T/chatty.out")" "the-end" "…keeping the newest output"
like "$(cat "$T/chatty.err")" "older lines were dropped" "…and saying that older lines were dropped"
logs_on_disk=$(( $(cat "$T/state/logs/$id" "$T/state/logs/$id.1" 2>/dev/null | wc -c) ))
[ "$logs_on_disk" -le 10240 ]; ok $? "the log files on disk stay within log-size ($logs_on_disk bytes)"

# --- run without --wait; logs -f; stats; stop (SIGTERM honoured)
inst=$(ctl run ticker); ok $? "run prints an instance id"
like "$inst" '^ticker-[0-9]+$' "…named after the workload"
wait_for 'test "$(state_of "$inst")" = running'; ok $? "ps shows it running"
(timeout 20 "$OSMOSECTL" logs -f "$inst" > "$T/follow.out"; echo $? > "$T/follow.rc") &
wait_for 'grep -q "tick 3" "$T/follow.out"'; ok $? "logs -f streams new output"
js=$(ctl --json stats "$inst")
like "$js" '"state": "running"' "stats of a running instance"
like "$js" '"source": "cgroup"' "…measured by its cgroup"
like "$js" '"memory_bytes": [0-9]+' "…with its memory"
out=$(ctl stop "$inst"); ok $? "stop"
like "$out" "killed by signal 15$" "…SIGTERM was enough"
wait_for 'test -s "$T/follow.rc"'; is "$(cat "$T/follow.rc" 2>/dev/null)" 0 "logs -f ends when the instance ends"
is "$(state_of "$inst")" exited "ps shows it exited"

# --- stop: SIGKILL after the grace period
inst=$(ctl run stubborn)
logs_have() { ctl logs "$1" 2>/dev/null | grep -q "$2"; }
wait_for 'logs_have "$inst" "ignoring TERM"'; ok $? "a workload that ignores SIGTERM runs"
out=$(ctl stop "$inst"); ok $? "stop of a workload that ignores SIGTERM"
like "$out" "killed by signal 9 after the grace period" "…SIGKILL after the grace period"
like "$(cat "$T/daemon.log")" "$inst: still running 1000 ms after SIGTERM; sending SIGKILL" "…as the daemon logs"

# --- restart with backoff
inst=$(ctl run crash)
wait_for 'test "$(field_of "$inst" restarts)" -ge 2'; ok $? "on-failure restarts a failing workload"
like "$(cat "$T/daemon.log")" "$inst: restarting in 200 ms" "…first after restart-delay"
like "$(cat "$T/daemon.log")" "$inst: restarting in 400 ms" "…then after twice as long"
is "$(ctl logs "$inst" | grep -c crashing | awk '$1>=2{print "many"}')" many "…its log spans the runs"
out=$(ctl stop "$inst"); ok $? "stop ends the restarts"
is "$(state_of "$inst")" exited "…it stays ended"
inst=$(ctl run once)
wait_for 'test "$(state_of "$inst")" = exited'; ok $? "on-failure does not restart a clean exit"
is "$(field_of "$inst" restarts)" 0 "…no restarts"

inst=$(ctl run always)
wait_for 'test "$(field_of "$inst" restarts)" -ge 1'; ok $? "always restarts a workload that exits 0"
ctl stop "$inst" >/dev/null; ok $? "…until it is stopped"

# --- the CLI going away keeps the instance
"$OSMOSECTL" run ticker --wait >/dev/null 2>&1 &
cli=$!
running_tickers() { ctl --json ps --all | python3 -c "import json,sys; print(sum(1 for i in json.load(sys.stdin)['instances'] if i['workload']=='ticker' and i['state']=='running'))"; }
wait_for 'test "$(running_tickers)" = 1'
ok $? "run --wait in the background started an instance"
kill -9 "$cli"; wait "$cli" 2>/dev/null
sleep 0.5
inst=$(ctl --json ps --all | python3 -c "import json,sys; print([i['id'] for i in json.load(sys.stdin)['instances'] if i['workload']=='ticker' and i['state']=='running'][0])" 2>/dev/null)
ok $? "the instance runs on after its CLI was killed"

# --- remove stops its instances
inst2=$(ctl run stubborn)
wait_for 'test "$(state_of "$inst2")" = running'
ctl remove stubborn >/dev/null; ok $? "remove of a workload with a running instance"
wait_for 'test "$(state_of "$inst2")" = exited'; ok $? "…stops its instance"

# --- the log files of ended instances stay bounded: the newest 64 are kept, the older
# ones go at the next sweep (once every 16 ends: at most 79 are on disk)
first=
for n in $(seq 84); do
    id=$(ctl run --wait brief 2>&1 >/dev/null | sed -n 's/^osmosectl: started //p')
    [ -n "$first" ] || first=$id
done
last=$id
brief_logs=$(ls "$T/state/logs" | grep -c '^brief-')
[ "$brief_logs" -ge 64 ] && [ "$brief_logs" -le 79 ]; ok $? "84 short runs leave 64 to 79 log files ($brief_logs)"
test -n "$first" && ! test -e "$T/state/logs/$first"; ok $? "the oldest run's log ($first) is gone"
like "$(ctl logs "$last" 2>&1)" "brief" "the newest run's log ($last) is kept"
is "$(ctl --json ps --all | python3 -c "import json,sys; print(sum(1 for i in json.load(sys.stdin)['instances'] if i['id'].startswith('brief-')))")" 84 \
    "ps --all still lists every run"

# --- the daemon's stop stops its instances
pid=$(field_of "$inst" pid)
like "$pid" '^[0-9]+$' "the running instance has a pid"
osm_stop_daemon
is "$OSM_EXIT" 0 "the daemon stops cleanly with instances running"
kill -0 "$pid" 2>/dev/null; ok $((! $?)) "…and its instances are gone"
like "$(cat "$T/daemon.log")" "instance $inst ended" "…each ended and recorded"
if command -v sqlite3 >/dev/null; then
    is "$(sqlite3 "$T/state/workloads.db" "select count(*) from instances where ended is null")" 0 "no instance is left open in the database"
else
    skip "no instance is left open in the database" "no sqlite3 tool"
fi
done_testing
