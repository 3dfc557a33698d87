#!/bin/bash
# test-channels.sh: software channels end to end — channel publish (a signed list that an
# independent Ed25519 implementation verifies), then a real osmosed following it from a
# directory and from python3 -m http.server on loopback: upgrades, pins, and each
# refusal with its own error.
. "$(dirname "$0")/../lib/common.sh"
osm_setup

jget() { python3 -c 'import json,sys; d=json.load(sys.stdin)
for k in sys.argv[1].split("."): d=d[int(k)] if isinstance(d,list) else d[k]
print(d if not isinstance(d,bool) else str(d).lower())' "$1"; }

# make_bundle VERSION KEY OUT [ENTRYPOINT_JSON [NAME [EXTRA_JSON]]]: a bundle of workload NAME
# (hello) that appends "vVERSION" to /data/log and sleeps, unless told otherwise.
make_bundle() {
    local d=$T/src-$1-$$; rm -rf "$d"; mkdir -p "$d"
    printf '{"name":"%s","version":%s,"entrypoint":%s,"restart":"never"%s}\n' "${5:-hello}" "$1" \
        "${4:-[\"/bin/sh\",\"-c\",\"echo v$1 >> /data/log; exec sleep 1000\"]}" "${6:-}" > "$d/manifest.json"
    ctl bundle build "$d" -o "$3" --key "$2" >/dev/null || bail "bundle build $3"
}
installed() { ctl --json workloads | python3 -c 'import json,sys
print(next((str(w["version"]) for w in json.load(sys.stdin)["workloads"] if w["name"]==sys.argv[1]), "none"))' "$1"; }
installed_db() { python3 -c 'import sqlite3,sys
r=sqlite3.connect(sys.argv[1]).execute("SELECT version FROM workloads WHERE name=?", (sys.argv[2],)).fetchone()
print(r[0] if r else "none")' "$T/state/workloads.db" "$1"; }
running_version() { ctl --json ps | python3 -c 'import json,sys
print(" ".join(str(i["version"]) for i in json.load(sys.stdin)["instances"] if i["workload"]==sys.argv[1] and i["state"] in ("running","starting")))' "$1"; }


pub=$(ctl keygen -o "$T/key")
other=$(ctl keygen -o "$T/other")
for v in 1 2 3; do make_bundle $v "$T/key" "$T/hello-$v.osb"; done

# --- publishing
out=$(ctl channel publish "$T/hello-1.osb" --channel hello --key "$T/key" -o "$T/pub" --notes "first"); ok $? "channel publish version 1"
like "$out" 'sequence 1, 1 version' "…sequence 1"
id1=$(ctl --json bundle inspect "$T/hello-1.osb" | jget id)
[ -f "$T/pub/bundles/$id1" ]; ok $? "…the bundle is in DIR/bundles/ID"
cmp -s "$T/hello-1.osb" "$T/pub/bundles/$id1"; ok $? "…byte for byte"
ctl channel publish "$T/hello-2.osb" --channel hello --key "$T/key" -o "$T/pub" >/dev/null; ok $? "publish version 2"
cp "$T/pub/hello.channel" "$T/hello-seq2.channel"
j=$(ctl --json channel publish "$T/hello-3.osb" --channel hello --key "$T/key" -o "$T/pub"); ok $? "publish version 3 (--json)"
is "$(echo "$j" | jget sequence)" 3 "…sequence 3"
is "$(ctl --json channel inspect "$T/pub/hello.channel" | jget versions.2.version)" 3 "channel inspect lists version 3"
out=$(ctl channel publish "$T/hello-2.osb" --channel hello --key "$T/key" -o "$T/pub" 2>&1); ok $((! $?)) "publishing an older version again is refused"
like "$out" 'not higher than' "…saying why"
out=$(ctl channel publish "$T/hello-3.osb" --channel hello --key "$T/other" -o "$T/pub" 2>&1); ok $((! $?)) "another key cannot append to the list"
like "$out" "signed by another key \($pub\)" "…naming the list's key"
ctl channel publish "$T/hello-1.osb" --channel hello -o "$T/pub" >/dev/null 2>&1; is $? 2 "a usage error exits 2"
ls -A "$T/pub/bundles" | grep -q '^\.tmp'; ok $((! $?)) "no temporary files are left behind"

# An independent Ed25519 implementation (python3-cryptography) checks the signature.
python3 - "$T/pub/hello.channel" <<'PY'
import base64, sys
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
text = open(sys.argv[1], "rb").read()
body, _, last = text[:-1].rpartition(b"\n")
body += b"\n"
prefix, key, sig = last.split(b" ")
assert prefix == b"osmose-channel-signature"
b64 = lambda s: base64.urlsafe_b64decode(s + b"=" * (-len(s) % 4))
Ed25519PublicKey.from_public_bytes(b64(key)).verify(b64(sig), b"osmose-channel-sig-v1\0" + body)
PY
ok $? "python3-cryptography verifies the channel's Ed25519 signature"
python3 - "$T/pub/hello.channel" "$T/tampered.channel" <<'PY'
import sys
b = open(sys.argv[1]).read().replace('"sequence": 3', '"sequence": 4')
open(sys.argv[2], "w").write(b)
PY
out=$(ctl channel inspect "$T/tampered.channel" 2>&1); ok $((! $?)) "channel inspect refuses a tampered list"
like "$out" 'does not match the contents' "…saying so"


# --- following, from a directory and over HTTP
if [ "$(id -u)" != 0 ]; then
    skip "following and upgrading" "needs root (sandboxes)"
    done_testing; exit
fi
for v in 1 2 3; do
    make_bundle $v "$T/key" "$T/web-$v.osb" '["/bin/sh","-c","exec sleep 1000"]' web
    ctl channel publish "$T/web-$v.osb" --channel web --key "$T/key" -o "$T/www" >/dev/null || bail "publish web $v"
done
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 -m http.server --bind 127.0.0.1 --directory "$T/www" "$port" >"$T/http.log" 2>&1 &
_osm_pids+=($!)
wait_for "curl -sf http://127.0.0.1:$port/web.channel >/dev/null" || bail "http.server did not start"

printf '[channels]\ncheck-interval = 0\nhealth-grace = 2s\ntrust-clock = yes\n' > "$T/osmosed.conf"
osm_start_daemon --config "$T/osmosed.conf"

out=$(ctl follow hello "$T/pub" 2>&1); ok $((! $?)) "follow: a channel signed by an untrusted key is refused"
like "$out" "signed by $pub, which is not a trusted key.*io.osmose.Channel.Untrusted" "…with its own error (Untrusted)"
is "$(ctl --json upgrade | jget results)" "[]" "…and it is not followed"
ctl follow hello >/dev/null 2>&1; is $? 2 "follow without a source is a usage error (exit 2)"
ctl pin hello two >/dev/null 2>&1; is $? 2 "pin with a version that is not a number: exit 2"
ctl upgrade --bogus >/dev/null 2>&1; is $? 2 "upgrade with an unknown option: exit 2"
out=$(ctl follow 'bad/name' "$T/pub" 2>&1); ok $((! $?)) "follow refuses a name that is not a workload name"
ctl trust add "$pub" >/dev/null
out=$(ctl follow hello "$T/pub"); ok $? "follow hello DIR"
like "$out" 'follows channel hello from .*sequence 3, newest version 3' "…reads the list at once"
out=$(ctl upgrade hello --check); ok $? "upgrade --check"
like "$out" 'would upgrade .*to version 3' "…says it would install version 3"
is "$(installed hello)" none "…and changes nothing"
ctl pin hello 1 >/dev/null; ok $? "pin hello 1"
out=$(ctl upgrade hello); ok $? "upgrade to the pinned version"
is "$(installed hello)" 1 "…version 1 is installed"
ctl run hello >/dev/null; ok $? "run hello (version 1)"
wait_for '[ -s "$T/state/data/hello/log" ]'; ok $? "…it writes to its data directory"
ctl unpin hello >/dev/null; ok $? "unpin hello"
out=$(ctl upgrade hello); ok $? "upgrade hello follows the channel again"
like "$out" 'hello: upgraded to version 3' "…to version 3"
is "$(installed hello)" 3 "…version 3 is installed"
is "$(running_version hello)" 3 "…and its instance was restarted from version 3"
wait_for 'grep -q v3 "$T/state/data/hello/log"'; ok $? "…which runs"
is "$(tr '\n' ' ' < "$T/state/data/hello/log")" "v1 v3 " "the data directory survived the upgrade"

out=$(ctl follow web "http://127.0.0.1:$port"); ok $? "follow web over HTTP (python3 -m http.server)"
ctl pin web 2 >/dev/null
out=$(ctl upgrade); ok $? "upgrade (every followed workload)"
like "$out" 'web: upgraded to version 2' "…the pinned one goes to its pin"
like "$out" 'hello: up to date' "…the other is up to date"
out=$(ctl upgrade); ok $? "upgrade again"
is "$(installed web)" 2 "…the pinned one stays at version 2"
like "$(ctl workloads)" 'web .* web pinned 2' "workloads shows the pin"

# --- refusals, each with its own error
cp "$T/pub/hello.channel" "$T/hello-seq3.channel"
cp -r "$T/pub" "$T/resigned"
make_bundle 4 "$T/key" "$T/hello-4.osb"
ctl channel publish "$T/hello-4.osb" --channel hello --key "$T/key" -o "$T/resigned" --sequence 1 >/dev/null
cp "$T/resigned/hello.channel" "$T/pub/hello.channel"
out=$(ctl upgrade hello 2>&1); ok $((! $?)) "a list re-signed with a lower sequence is refused"
like "$out" 'sequence 1 is lower than 3.*io.osmose.Channel.StaleSequence' "…as a stale sequence (StaleSequence)"
cp -r "$T/pub" "$T/wronghash"; cp "$T/hello-seq3.channel" "$T/wronghash/hello.channel"
ctl channel publish "$T/hello-4.osb" --channel hello --key "$T/key" -o "$T/wronghash" --sequence 5 >/dev/null
id4=$(ctl --json bundle inspect "$T/hello-4.osb" | jget id)
cp "$T/hello-2.osb" "$T/wronghash/bundles/$id4"
out=$( { ctl follow hello "$T/wronghash" >/dev/null && ctl upgrade hello; } 2>&1); ok $((! $?)) "a bundle that does not match its hash is refused"
like "$out" "names bundle $id4, but what arrived is bundle .*io.osmose.Channel.HashMismatch" "…as a hash mismatch (HashMismatch)"
is "$(installed hello)" 3 "…version 3 stays installed"
ls "$T/state/channels/bundles" | grep -q "$id4"; ok $((! $?)) "…and the wrong file was not kept"
mkdir -p "$T/older"
ctl channel publish "$T/hello-2.osb" --channel hello --key "$T/key" -o "$T/older" --sequence 10 >/dev/null
out=$( { ctl follow hello "$T/older" >/dev/null && ctl upgrade hello; } 2>&1); ok $((! $?)) "a list whose newest version is lower than installed is refused"
like "$out" 'version 3 is installed; channel hello offers at most version 2.*io.osmose.Channel.Downgrade' "…as a downgrade (Downgrade)"
make_bundle 1 "$T/other" "$T/stranger-1.osb" '' stranger
ctl channel publish "$T/stranger-1.osb" --channel stranger --key "$T/other" -o "$T/strange" >/dev/null
out=$(ctl follow stranger "$T/strange" 2>&1); ok $((! $?)) "a list signed by an untrusted key is refused"
like "$out" "signed by $other, which is not a trusted key.*Untrusted" "…as untrusted (Untrusted)"
make_bundle 1 "$T/key" "$T/expiring-1.osb" '' expiring
ctl channel publish "$T/expiring-1.osb" --channel expiring --key "$T/key" -o "$T/exp" --expires 1s >/dev/null
sleep 2.1
out=$(ctl follow expiring "$T/exp" 2>&1); ok $((! $?)) "an expired list is refused (trust-clock = yes)"
like "$out" 'expired at .*io.osmose.Channel.Expired' "…as expired (Expired)"
is "$(ctl --json status | python3 -c 'import json,sys; print([s["health"] for s in json.load(sys.stdin)["subsystems"] if s["name"]=="channels"][0])')" degraded \
    "status: the channels subsystem is degraded (a follow's last check failed)"
is "$(ctl --json workloads | python3 -c 'import json,sys; print([w["channel"]["error_name"] for w in json.load(sys.stdin)["workloads"] if w["name"]=="hello"][0])')" \
    io.osmose.Channel.Downgrade "workloads --json shows the follow's last error"
is "$(ctl --json workloads | python3 -c 'import json,sys; print([w["channel"]["source"] for w in json.load(sys.stdin)["workloads"] if w["name"]=="hello"][0])')" \
    "$T/wronghash" "the refused follow left the source it had"

# --- health check and rollback
cp "$T/hello-seq3.channel" "$T/pub/hello.channel"
make_bundle 4 "$T/key" "$T/hello-4crash.osb" '["/bin/sh","-c","echo v4 >> /data/log; exit 1"]'
ctl channel publish "$T/hello-4crash.osb" --channel hello --key "$T/key" -o "$T/pub" --sequence 11 --notes "crashes" >/dev/null
ctl follow hello "$T/pub" >/dev/null; ok $? "follow hello DIR again (sequence 11 lists a version 4 that crashes on start)"
out=$(ctl upgrade hello 2>&1); ok $((! $?)) "upgrade to the crashing version 4 fails"
like "$out" 'version 4 failed its health check \(instance hello-[0-9]+ exited with status 1\) and is marked bad; the previous version runs again.*io.osmose.Channel.RolledBack' \
    "…rolled back (RolledBack), saying why"
is "$(installed hello)" 3 "…version 3 is installed again"
wait_for '[ "$(running_version hello)" = 3 ]'; ok $? "…and its instance runs version 3 again"
like "$(ctl workloads)" 'hello .* hello bad 4' "workloads shows version 4 marked bad"
is "$(ctl --json workloads | python3 -c 'import json,sys; print([w["channel"]["bad"][0]["reason"] for w in json.load(sys.stdin)["workloads"] if w["name"]=="hello"][0])' | sed 's/hello-[0-9]*/hello-N/')" \
    "instance hello-N exited with status 1" "…with the reason"
out=$(ctl upgrade hello); ok $? "upgrade again"
like "$out" 'hello: up to date \(version 3\)' "…the bad version is not tried again"
wait_for 'grep -c v3 "$T/state/data/hello/log" | grep -q 2'
is "$(tr '\n' ' ' < "$T/state/data/hello/log")" "v1 v3 v4 v3 " "the data directory was kept across the upgrade and the rollback"
grep -q "rolled back to version 3" "$T/daemon.log"; ok $? "the rollback is in the daemon's log"

make_bundle 5 "$T/key" "$T/hello-5.osb" '' hello ',"health":["/bin/sh","-c","exit 3"]'
ctl channel publish "$T/hello-5.osb" --channel hello --key "$T/key" -o "$T/pub" >/dev/null
out=$(ctl upgrade hello 2>&1); ok $((! $?)) "a version whose health command fails is rolled back"
like "$out" 'version 5 failed its health check \(the health command exited non-zero\)' "…saying so"
# The health command waits (up to 5 s) for the new version to have written its mark, as a
# real one would: on a loaded machine the instance may not have run yet when the grace ends.
make_bundle 6 "$T/key" "$T/hello-6.osb" '' hello ',"health":["/bin/sh","-c","i=0; while [ $i -lt 50 ]; do grep -q v6 /data/log && exit 0; i=$((i+1)); sleep 0.1; done; exit 1"]'
ctl channel publish "$T/hello-6.osb" --channel hello --key "$T/key" -o "$T/pub" >/dev/null
out=$(ctl upgrade hello); ok $? "a version whose health command (run in its sandbox, on its data) passes"
like "$out" 'hello: upgraded to version 6' "…is kept"
is "$(running_version hello)" 6 "…and runs"

cp "$T/hello-seq3.channel" "$T/pub/hello.channel"
out=$(ctl upgrade hello 2>&1); ok $((! $?)) "a replayed older list (one seen before) is refused"
like "$out" 'this list \(sequence 3\) was seen before and sequence 13 has replaced it.*io.osmose.Channel.Replayed' "…as a replay (Replayed)"

# --- offline: import from a USB stick, run a bundle by its id
for v in 1 2; do
    make_bundle $v "$T/key" "$T/usb-$v.osb" '["/bin/sh","-c","exec sleep 1000"]' usb
    ctl channel publish "$T/usb-$v.osb" --channel usb --key "$T/key" -o "$T/stick" >/dev/null
    [ $v = 1 ] && mkdir -p "$T/oldstick" && cp "$T/stick/usb.channel" "$T/oldstick/"
done
make_bundle 1 "$T/key" "$T/tool-1.osb" '["/bin/sh","-c","echo tool ran; exit 0"]' tool
idtool=$(ctl --json bundle inspect "$T/tool-1.osb" | jget id)
cp "$T/tool-1.osb" "$T/stick/bundles/$idtool"
cp "$T/hello-1.osb" "$T/stick/bundles/$(printf 'f%.0s' $(seq 64))"
cp "$T/strange/stranger.channel" "$T/stick/"
out=$(ctl import "$T/stick" 2>&1); is $? 1 "import DIR: exit 1 when something was refused"
like "$out" 'channel usb imported' "…the trusted channel is imported"
like "$out" '3 bundles kept' "…the three bundles whose contents match their name are kept"
like "$out" 'ffff+ refused: .*io.osmose.Channel.HashMismatch' "…a file whose contents do not match its name is refused (HashMismatch)"
like "$out" 'stranger.channel refused: .*Untrusted' "…a channel signed by an untrusted key is refused (Untrusted)"
j=$(ctl --json import "$T/stick"); is "$(echo "$j" | jget channels.0)" usb "import --json lists the channels"
out=$(ctl follow usb "http://127.0.0.1:9/offline" 2>&1); ok $? "follow a channel whose source is unreachable: the imported list stands in"
like "$out" 'sequence 2, newest version 2' "…with the imported list's sequence"
out=$(ctl upgrade usb); ok $? "upgrade from the imported list and kept bundles, offline"
is "$(installed usb)" 2 "…version 2 is installed"
out=$(ctl import "$T/oldstick" 2>&1); ok $((! $?)) "importing an older list of the channel is refused"
like "$out" 'sequence 1 is lower than 2.*StaleSequence' "…as a stale sequence"
out=$(ctl run "$idtool" --wait); ok $? "run BUNDLE-ID --wait: installed from the kept bundles and run"
like "$(ctl logs tool)" 'tool ran' "…it ran (its log)"
is "$(installed tool)" 1 "…it is installed now"
out=$(ctl run "$(printf 'e%.0s' $(seq 64))" 2>&1); ok $((! $?)) "run of a bundle id that is not kept is refused"
like "$out" 'neither installed nor kept here' "…saying so"

make_bundle 7 "$T/key" "$T/hello-7.osb"
ctl channel publish "$T/hello-7.osb" --channel hello --key "$T/key" -o "$T/pub" --sequence 20 >/dev/null
ctl upgrade hello >"$T/upgrade-7.out" 2>&1 &
upid=$!
follow_state() { ctl --json workloads | python3 -c 'import json,sys
print(next((w["channel"]["state"] for w in json.load(sys.stdin)["workloads"] if w["name"]=="hello" and "channel" in w), ""))'; }
wait_for '[ "$(follow_state)" = health ]'; ok $? "an upgrade is in its health check (state health)"
osm_stop_daemon TERM
is "$OSM_EXIT" 0 "the daemon stops cleanly in the middle of a health check"
wait "$upid"; ok $((! $?)) "…the upgrade call fails"
like "$(cat "$T/upgrade-7.out")" 'the daemon is stopping' "…saying the daemon is stopping"

# --- after a restart: follows and bad marks kept; the periodic check and its window
make_bundle 1 "$T/key" "$T/auto-1.osb" '["/bin/sh","-c","exec sleep 1000"]' auto
ctl channel publish "$T/auto-1.osb" --channel auto --key "$T/key" -o "$T/autodir" >/dev/null
h=$(date +%H); away=$(printf '%02d:00-%02d:00' $(( (10#$h + 2) % 24 )) $(( (10#$h + 3) % 24 )))
printf '[channels]\ncheck-interval = 1s\nhealth-grace = 1s\nwindow = %s\n' "$away" > "$T/osmosed.conf"
osm_start_daemon --config "$T/osmosed.conf"
is "$(ctl --json workloads | python3 -c 'import json,sys; print(",".join(str(b["version"]) for w in json.load(sys.stdin)["workloads"] if w["name"]=="hello" for b in w["channel"]["bad"]))')" \
    "4,5" "after a restart hello still follows its channel, versions 4 and 5 still marked bad"
wait_for '[ "$(installed hello)" = 7 ] && [ "$(follow_state)" = idle ] && [ "$(running_version hello)" = 7 ]'
ok $? "the upgrade the stop interrupted in its health check is judged at the next start: version 7 runs"
grep -q "daemon stopped during the health check of version 7; checking it again" "$T/daemon.log"; ok $? "…as the log says"
ctl follow auto "$T/autodir" >/dev/null; ok $? "follow auto (check-interval 1s, window $away)"
sleep 3
is "$(installed auto)" none "outside the maintenance window the periodic check does not upgrade"
printf '[channels]\ncheck-interval = 1s\nhealth-grace = 1s\nwindow = 00:00-24:00\n' > "$T/osmosed.conf"
ctl reload >/dev/null; ok $? "reload with a window around now"
wait_for '[ "$(installed auto)" = 1 ]'; ok $? "…the periodic check installs the followed version by itself"
osm_stop_daemon TERM
is "$OSM_EXIT" 0 "the daemon stops cleanly"

# --- SIGKILL in the grace period: at the next start the upgrade is finished or rolled back
printf '[channels]\ncheck-interval = 0\nhealth-grace = 6s\n' > "$T/osmosed.conf"
osm_start_daemon --config "$T/osmosed.conf"
ctl run hello >/dev/null
wait_for '[ "$(running_version hello)" = 7 ]'; ok $? "hello version 7 runs (restart never: started by hand)"
make_bundle 8 "$T/key" "$T/hello-8.osb"
ctl channel publish "$T/hello-8.osb" --channel hello --key "$T/key" -o "$T/pub" --sequence 30 >/dev/null
ctl upgrade hello >/dev/null 2>&1 &
upid=$!
wait_for '[ "$(follow_state)" = health ] && [ "$(running_version hello)" = 8 ]'; ok $? "version 8 is in its health check"
osm_stop_daemon KILL
wait "$upid" 2>/dev/null
is "$OSM_EXIT" 137 "osmosed is killed (SIGKILL) in the grace period"
osm_start_daemon --config "$T/osmosed.conf"
is "$(follow_state)" health "after the restart the health check of version 8 starts again"
wait_for '[ "$(follow_state)" = idle ]'; ok $? "…and ends"
is "$(installed hello)" 8 "…version 8 is judged healthy and stays installed"
is "$(running_version hello)" 8 "…and runs"
like "$(ctl --json workloads | python3 -c 'import json,sys; print([w["channel"].get("error_name","none") for w in json.load(sys.stdin)["workloads"] if w["name"]=="hello"][0])')" \
    none "…with no error left on the follow"

make_bundle 9 "$T/key" "$T/hello-9.osb" '["/bin/sh","-c","echo v9 >> /data/log; sleep 3; exit 1"]'
ctl channel publish "$T/hello-9.osb" --channel hello --key "$T/key" -o "$T/pub" >/dev/null
ctl upgrade hello >/dev/null 2>&1 &
upid=$!
wait_for '[ "$(follow_state)" = health ] && [ "$(running_version hello)" = 9 ]'; ok $? "version 9 (exits 1 after 3 s) is in its health check"
osm_stop_daemon KILL
wait "$upid" 2>/dev/null
is "$(installed_db hello)" 9 "…SIGKILL before it fails: the database says version 9 is installed, judged by nobody"
osm_start_daemon --config "$T/osmosed.conf"
wait_for '[ "$(follow_state)" = idle ]'; ok $? "after the restart the health check of version 9 runs again"
is "$(installed hello)" 8 "…it fails and version 8 is installed again"
wait_for '[ "$(running_version hello)" = 8 ]'; ok $? "…and runs again"
like "$(ctl workloads)" 'hello .* bad 4,5,9' "…version 9 is marked bad"
like "$(ctl --json workloads | python3 -c 'import json,sys; print([w["channel"]["error_name"] for w in json.load(sys.stdin)["workloads"] if w["name"]=="hello"][0])')" \
    RolledBack "…and the follow shows the rollback"
[ -d "$T/state/bundles/$(ctl --json bundle inspect "$T/hello-8.osb" | jget id)" ]; ok $? "the unpacked version 8 survived the crash to go back to"
osm_stop_daemon TERM
is "$OSM_EXIT" 0 "the daemon stops cleanly"

done_testing
