#!/bin/bash
# test-persist.sh: workloads come back after the daemon stops (SIGTERM) or dies (SIGKILL);
# enable/disable; instance history and logs on disk across restarts (ps --all, logs -n,
# --since, streams); stop of an ambiguous name or of an ended instance; run --wait
# attached, with its id and its backoff; remove with and without --keep-data.
. "$(dirname "$0")/../lib/common.sh"
osm_setup

if [ "$(id -u)" != 0 ]; then
    echo "1..0 # SKIP needs root (sandboxes map a uid range and use cgroups)"
    exit 0
fi

psall() { ctl --json ps --all; }
field_of() { psall | python3 -c "import json,sys; print(next((str(i.get('$2','')) for i in json.load(sys.stdin)['instances'] if i['id']=='$1'), 'none'))"; }
live_of() { ctl --json ps | python3 -c "import json,sys; print(' '.join(i['id'] for i in json.load(sys.stdin)['instances'] if i['workload']=='$1'))"; }

# agg: a long-running aggregator that fails now and then (restart: on-failure); each start
# says so, then ticks.
mk_bundle agg <<'EOF'
{"name":"agg","version":1,"restart":"on-failure","entrypoint":["/bin/sh","-c","echo start $$; echo warn >&2; i=0; while :; do echo tick $i; i=$((i+1)); sleep 0.2; done"]}
EOF
mk_bundle svc <<'EOF'
{"name":"svc","version":1,"entrypoint":["/bin/sh","-c","echo svc up; while :; do sleep 1; done"]}
EOF
mk_bundle oneshot <<'EOF'
{"name":"oneshot","version":1,"entrypoint":["/bin/sh","-c","while :; do sleep 1; done"]}
EOF
mk_bundle flaky <<'EOF'
{"name":"flaky","version":1,"restart":"on-failure","entrypoint":["/bin/sh","-c","echo trying; echo failing >&2; exit 3"]}
EOF
mk_bundle keeper <<'EOF'
{"name":"keeper","version":1,"entrypoint":["/bin/sh","-c","echo precious > /data/file; echo done"]}
EOF

printf '[sandbox]\nstop-timeout = 2s\n[workloads]\nrestart-delay = 200ms\n' > "$T/osmosed.conf"
osm_start_daemon --config "$T/osmosed.conf"
health=$(ctl --json status | python3 -c "import json,sys; print(next(s['health'] for s in json.load(sys.stdin)['subsystems'] if s['name']=='sandbox'))")
if [ "$health" = failed ]; then
    echo "1..0 # SKIP the sandbox cannot run on this host"
    exit 0
fi
for w in agg svc oneshot flaky keeper; do
    ctl install "$T/$w.osb" --allow-unsigned >/dev/null || bail "install $w"
done

# --- 1. a running workload comes back after SIGTERM of the daemon
agg=$(ctl run agg); ok $? "run agg (restart: on-failure)"
one=$(ctl run oneshot); ok $? "run oneshot (restart: never)"
wait_for 'ctl logs -n 1 "$agg" 2>/dev/null | grep -q "tick 2"'; ok $? "agg is ticking"
osm_stop_daemon TERM
is "$OSM_EXIT" 0 "the daemon stops cleanly (SIGTERM)"
osm_start_daemon --config "$T/osmosed.conf"
wait_for 'test "$(field_of "$agg" state)" = running'; ok $? "after the restart, agg runs again (same instance $agg)"
is "$(field_of "$agg" restarts)" 1 "…counted as a restart"
is "$(field_of "$one" state)" exited "oneshot (restart: never) stays ended"
like "$(ctl ps)" "$agg" "ps lists agg"
ps=$(ctl ps)
printf '%s\n' "$ps" | grep -q "$one"; ok $((! $?)) "ps (live only) does not list the ended oneshot"
like "$(ctl ps --all)" "$one.*exited" "ps --all does, with its state"
wait_for 'test "$(ctl logs "$agg" 2>/dev/null | grep -c "^start")" -ge 2'; ok $? "logs of before the restart are still there, and the new run's"
like "$(ctl logs "$agg" 2>&1 >/dev/null)" "warn" "…stderr too"
like "$(cat "$T/daemon.log")" "instance $agg: starting again \(it ran when the daemon stopped" "the daemon says why it starts it"

# --- 2. the same after SIGKILL: its sandbox dies with the daemon, and comes back
pid=$(field_of "$agg" pid)
like "$pid" '^[0-9]+$' "agg has a pid"
osm_stop_daemon KILL
wait_for '! kill -0 "$pid" 2>/dev/null'; ok $? "SIGKILL of the daemon: its sandboxes die with it (no orphan)"
osm_start_daemon --config "$T/osmosed.conf"
wait_for 'test "$(field_of "$agg" state)" = running'; ok $? "after SIGKILL and a start, agg runs again"
is "$(field_of "$agg" restarts)" 2 "…restarts counts it"
like "$(cat "$T/daemon.log")" "instance $agg: starting again \(the daemon was not stopped cleanly" "…and the daemon says it was not stopped cleanly"
wait_for 'test "$(ctl logs "$agg" 2>/dev/null | grep -c "^start")" -ge 3'; ok $? "logs of all three runs are there"

# --- logs -n, --since, timestamps
is "$(ctl logs -n 2 "$agg" 2>&1 | wc -l)" 2 "logs -n 2: two lines (stdout and stderr)"
is "$(ctl --json logs -n 3 "$agg" | wc -l)" 3 "logs --json -n 3: three JSON lines"
now_lines=$(ctl logs --since -1s "$agg" 2>/dev/null | wc -l)
all_lines=$(ctl logs "$agg" 2>/dev/null | wc -l)
[ "$now_lines" -lt "$all_lines" ] && [ "$now_lines" -ge 1 ]; ok $? "logs --since -1s: only the newest ($now_lines of $all_lines)"
like "$(ctl logs -t -n 1 "$agg" 2>/dev/null)" '^20[0-9-]+T[0-9:.]+Z tick' "logs -t: the time before each line"
ctl logs --since yesterday-ish "$agg" >/dev/null 2>&1; is "$?" 2 "logs --since with a bad time: usage error"

# --- stop: an instance that has ended; a name with two live instances
out=$(ctl stop "$one" 2>&1); is "$?" 1 "stop of an instance that has already ended fails"
like "$out" "$one has already ended" "…saying so"
agg2=$(ctl run agg)
out=$(ctl stop agg 2>&1); is "$?" 1 "stop NAME with two live instances refuses"
like "$out" "agg has 2 instances running \($agg, $agg2\)" "…and lists them"
is "$(field_of "$agg" state)" running "…and stops neither"
out=$(ctl stop agg --all); ok $? "stop NAME --all"
like "$out" "$agg stopped" "…stops the first"
like "$out" "$agg2 stopped" "…and the second"
out=$(ctl stop agg 2>&1); is "$?" 1 "stop NAME with no live instance fails"
like "$out" "agg is not running" "…saying so"

# --- enable, disable
out=$(ctl enable svc); ok $? "enable svc"
like "$out" "svc enabled" "…says so"
like "$(ctl workloads)" "svc .* yes" "workloads shows it enabled"
is "$(ctl --json enable svc | python3 -c 'import json,sys; print(json.load(sys.stdin)["changed"])')" False "enable again: changed false"
is "$(live_of svc)" "" "enable does not start it now"
osm_stop_daemon TERM
osm_start_daemon --config "$T/osmosed.conf"
wait_for 'test -n "$(live_of svc)"'; ok $? "an enabled workload is started at the daemon's start"
like "$(cat "$T/daemon.log")" "workload svc \(enabled\): started" "…as the daemon logs"
svc1=$(live_of svc)
is "$(field_of "$agg" state)" exited "agg, stopped by the operator, does not come back"
osm_stop_daemon KILL
osm_start_daemon --config "$T/osmosed.conf"
wait_for 'test -n "$(live_of svc)"'
is "$(live_of svc | wc -w)" 1 "after a crash: one svc instance, not two"
ctl disable svc >/dev/null; ok $? "disable svc"
ctl stop svc >/dev/null
osm_stop_daemon TERM
osm_start_daemon --config "$T/osmosed.conf"
sleep 1
is "$(live_of svc)" "" "a disabled workload is not started at the daemon's start"
out=$(ctl enable svc --now); ok $? "enable --now"
like "$out" "started svc-" "…starts it now"
out=$(ctl disable svc --now); ok $? "disable --now"
like "$out" "svc-[0-9]+ stopped" "…stops it now"
ctl enable nosuch >/dev/null 2>&1; is "$?" 1 "enable of an unknown workload fails"
ctl enable >/dev/null 2>&1; is "$?" 2 "enable without a name: usage error"

# --- run --wait: attached output, the id, backoff and why; --restart never
out=$(ctl run oneshot --wait --restart never 2>"$T/run.err" </dev/null & sleep 1.5; ctl stop oneshot >/dev/null; wait)
like "$(cat "$T/run.err")" "started oneshot-[0-9]+" "run --wait prints the instance id on stderr"
timeout 20 "$OSMOSECTL" run flaky --wait >"$T/flaky.out" 2>"$T/flaky.err" &
runpid=$!
wait_for 'grep -q "backoff" "$T/flaky.err"'; ok $? "run --wait says when it is in backoff"
like "$(cat "$T/flaky.err")" "exit code 3; restart on-failure: next start in [0-9]+ ms" "…and why"
like "$(cat "$T/flaky.out")" "trying" "run --wait attaches its stdout"
like "$(cat "$T/flaky.err")" "failing" "…and its stderr"
ctl stop flaky >/dev/null
wait "$runpid"
ctl run flaky --wait --restart never >/dev/null 2>&1; is "$?" 3 "run --wait --restart never: the failure ends it (exit 3, no restart)"
inst=$(ctl --json ps --all | python3 -c "import json,sys; print([i for i in json.load(sys.stdin)['instances'] if i['workload']=='flaky'][-1]['restart'])")
is "$inst" never "…ps shows the policy of that run"
ctl run flaky --restart sometimes >/dev/null 2>&1; is "$?" 2 "run --restart with a bad policy: usage error"
out=$(ctl run flaky --wait --no-attach --restart never 2>/dev/null); is "$out" "" "run --wait --no-attach shows no output"

# --- remove: data deleted and said, or kept with --keep-data
ctl run keeper --wait >/dev/null 2>&1
is "$(cat "$T/state/data/keeper/file" 2>/dev/null)" precious "keeper wrote its data"
out=$(ctl remove keeper --keep-data); ok $? "remove --keep-data"
like "$out" "kept: +its data, .*data/keeper" "…says the data is kept, and where"
is "$(cat "$T/state/data/keeper/file" 2>/dev/null)" precious "…and it is"
osm_stop_daemon TERM
osm_start_daemon --config "$T/osmosed.conf"
is "$(cat "$T/state/data/keeper/file" 2>/dev/null)" precious "kept data survives a restart of the daemon"
ctl install "$T/keeper.osb" --allow-unsigned >/dev/null
out=$(ctl remove keeper); ok $? "remove"
like "$out" "deleted: +its data, .*data/keeper" "…says the data is deleted, and where"
test ! -e "$T/state/data/keeper"; ok $? "…and it is gone"
js=$(ctl --json remove agg)
like "$js" '"data_deleted": (true|false)' "remove --json says what happened to the data"
ctl remove >/dev/null 2>&1; is "$?" 2 "remove without a name: usage error"

# --- trust rm: workloads its key signed are flagged and do not run unless asked
mkdir -p "$T/signed"
echo '{"name":"signed","version":1,"entrypoint":["/bin/sh","-c","echo signed ran"]}' > "$T/signed/manifest.json"
pub=$(ctl --json keygen -o "$T/pub.key" | python3 -c 'import json,sys; print(json.load(sys.stdin)["public_key"])')
ctl bundle build "$T/signed" -o "$T/signed.osb" --key "$T/pub.key" >/dev/null
ctl trust add "$pub" >/dev/null
ctl install "$T/signed.osb" >/dev/null; ok $? "a signed workload installs"
ctl enable signed >/dev/null
out=$(ctl trust rm "$pub"); ok $? "trust rm of its key"
like "$out" "flagged .*: signed" "…flags the workload it signed"
like "$(ctl workloads)" "signed +1 +UNTRUSTED" "workloads shows it UNTRUSTED"
is "$(ctl --json workloads | python3 -c 'import json,sys; print([w["trusted"] for w in json.load(sys.stdin)["workloads"] if w["name"]=="signed"][0])')" False "…trusted false in --json"
out=$(ctl run signed 2>&1); is "$?" 1 "its next run is refused"
like "$out" "no longer trusted" "…saying why"
like "$(ctl run signed --wait --allow-untrusted 2>/dev/null)" "signed ran" "run --allow-untrusted runs it"
osm_stop_daemon TERM
osm_start_daemon --config "$T/osmosed.conf"
sleep 1
is "$(live_of signed)" "" "an enabled workload whose key is no longer trusted is not started with the daemon"
like "$(cat "$T/daemon.log")" "workload signed is enabled, but its publisher key is no longer trusted" "…as the daemon logs"
ctl trust add "$pub" >/dev/null
like "$(ctl run signed --wait 2>/dev/null)" "signed ran" "trusted again, it runs"
ctl disable signed >/dev/null

# --- what the database keeps
osm_stop_daemon TERM
if command -v sqlite3 >/dev/null; then
    is "$(sqlite3 "$T/state/workloads.db" "select count(*) from instances where ended is null")" 0 "no instance is left open in the database"
fi
done_testing
