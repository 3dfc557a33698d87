#!/bin/bash
# test-voice.sh: the voice-commands example workload end to end: the signed bundle the build
# made is trusted, installed with only store:write:rooms/commands and run in its sandbox on
# speech synthesised with espeak-ng and converted with sox to 16 kHz mono: the right
# intents are stored, unrelated speech stores none, and its network namespace has only
# loopback (seen from the host while it runs).
. "$(dirname "$0")/../lib/common.sh"
BUILD_ROOT=${OSM_BUILD_ROOT:-$OSM_SOURCE_ROOT/build}
osb=$BUILD_ROOT/examples/voice-commands/voice-commands.osb
pub=$BUILD_ROOT/examples/voice-commands/dev.key.pub
[ -f "$osb" ] && [ -f "$pub" ] || { echo "1..0 # SKIP the voice-commands bundle was not built"; exit 0; }
for p in espeak-ng sox nsenter ip; do
    command -v $p >/dev/null || { echo "1..0 # SKIP $p is not installed"; exit 0; }
done
osm_setup
osm_start_daemon
health=$(ctl --json status | python3 -c "import json,sys; print(next(s['health'] for s in json.load(sys.stdin)['subsystems'] if s['name']=='sandbox'))")
if [ "$health" = failed ]; then
    echo "1..0 # SKIP the sandbox cannot run on this host"; exit 0
fi

ctl trust add "$(cat "$pub")" >/dev/null; ok $? "trust the example's development key"
ctl install "$osb" --grant store:write:rooms/commands >/dev/null; ok $? "install voice-commands, granting store:write:rooms/commands only"
granted=$(ctl --json workloads | python3 -c '
import json, sys
d = json.load(sys.stdin); d = d["workloads"] if isinstance(d, dict) else d
print(" ".join(next(w for w in d if w["name"] == "voice-commands")["granted"]))')
is "$granted" "store:write:rooms/commands" "it holds no network grant"

data=$T/state/data/voice-commands
[ -d "$data" ] || ctl run voice-commands --wait -- --help >/dev/null 2>&1
inbox=$data/inbox
mkdir -p "$inbox"
chown --reference="$data" "$inbox"
say() {   # say NAME TEXT: synthesised speech, 16 kHz mono 16-bit
    espeak-ng -w "$T/$1.22k.wav" "$2" && sox "$T/$1.22k.wav" -r 16000 -c 1 -b 16 "$inbox/$1.wav"
    chown --reference="$data" "$inbox/$1.wav"
}
say 1-lights-on "turn the lights on"
say 2-lights-off "lights off"
say 3-temperature "set temperature to twenty"
say 4-weather "the weather is nice today and I like coffee"
say 5-time "what time is it now"
say 6-kitchen "I am going to the kitchen to make some tea"
ok $? "speech synthesised (espeak-ng) and converted to 16 kHz mono (sox)"
# More unrelated speech, so that the instance runs long enough to be looked at.
for i in $(seq 1 12); do cp "$inbox/4-weather.wav" "$inbox/7-more-$i.wav"; chown --reference="$data" "$inbox/7-more-$i.wav"; done

inst=$(ctl run voice-commands) ; ok $? "run voice-commands ($inst)"
pid=
for i in $(seq 100); do
    pid=$(ctl --json ps | python3 -c '
import json, sys
d = json.load(sys.stdin); d = d["instances"] if isinstance(d, dict) else d
print(next((str(p.get("pid") or "") for p in d if p["id"] == sys.argv[1] and p["state"] == "running"), ""))' "$inst")
    [ -n "$pid" ] && [ "$pid" != 0 ] && break
    sleep 0.05
done
if [ -n "$pid" ] && [ "$pid" != 0 ]; then
    links=$(nsenter -t "$pid" -n ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | tr '\n' ' ' | sed 's/ $//')
    is "$links" "lo" "its network namespace has only loopback (nsenter -t PID -n ip link, from the host)"
    [ "$(readlink /proc/$pid/ns/net)" != "$(readlink /proc/self/ns/net)" ]; ok $? "…and it is not the host's"
else
    skip "network namespace seen from the host" "the instance ended before it could be looked at"
    skip "not the host's namespace" "the instance ended"
fi
for i in $(seq 600); do
    st=$(ctl --json ps | python3 -c '
import json, sys
d = json.load(sys.stdin); d = d["instances"] if isinstance(d, dict) else d
print(next((p["state"] for p in d if p["id"] == sys.argv[1]), "gone"))' "$inst")
    [ "$st" = running ] || [ "$st" = starting ] || break
    sleep 0.1
done
logs=$(ctl logs "$inst" 2>&1)
like "$logs" "network interfaces: lo$" "inside, it sees only lo as well"
like "$logs" "3 command\(s\) stored, 0 file\(s\) failed" "it stored 3 commands"
intents=$(ctl --json query rooms/commands | python3 -c '
import json, sys
for l in sys.stdin:
    if l.strip():
        r = json.loads(l)
        print(r["body"]["source"], r["body"]["command"], r["body"]["value"], r["writer"])')
is "$(echo "$intents" | grep -c .)" 3 "three intents in rooms/commands, none for the unrelated speech"
like "$intents" "1-lights-on.wav lights on workload:voice-commands" "\"turn the lights on\" → lights on"
like "$intents" "2-lights-off.wav lights off" "\"lights off\" → lights off"
like "$intents" "3-temperature.wav temperature 20" "\"set temperature to twenty\" → temperature 20"
conf=$(ctl --json query rooms/commands | python3 -c '
import json, sys
print(all(0 < json.loads(l)["body"]["confidence"] <= 1 for l in sys.stdin if l.strip()))')
is "$conf" True "each intent has a confidence in (0, 1]"
[ -z "$(ls "$inbox" | grep '\.wav$')" ] && [ -f "$inbox/done/1-lights-on.wav" ]; ok $? "the audio files were moved to inbox/done"
osm_stop_daemon
done_testing
