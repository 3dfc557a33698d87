#!/bin/bash
# test-channels-remote.sh: a paired remote as a channel's source. Two real osmosed on
# loopback with federation on: "hq" imports a channel (a publisher's directory) and shares
# it with "room" (share --channel); room follows it with the source remote:hq and
# upgrades over the signed, encrypted federation protocol. Only what is shared is served;
# the follower checks the signature and the bundle's id exactly as for any source; both
# audits account for what left.
. "$(dirname "$0")/../lib/common.sh"
osm_setup
command -v jq >/dev/null || { echo "1..0 # SKIP jq is not installed"; exit 0; }
[ "$(id -u)" = 0 ] || { echo "1..0 # SKIP needs root (sandboxes)"; exit 0; }

start_space() {   # start_space NAME [ARGS…]
    OSM_STATE=$T/$1 OSM_NAME=$1 osm_start_daemon "${@:2}"
    eval "PID_$1=$OSM_PID"
}
on() { local s=$1; shift; OSMOSE_SOCKET=$T/$s/osmosed.sock "$OSMOSECTL" "$@"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
installed() { on room --json workloads | jq -r --arg n "$1" '[.workloads[] | select(.name == $n) | .version][0] // "none"'; }
make_bundle() {   # make_bundle VERSION KEY OUT
    local d=$T/src-$1; rm -rf "$d"; mkdir -p "$d"
    printf '{"name":"tool","version":%s,"entrypoint":["/bin/sleep","1000"],"restart":"never"}\n' "$1" > "$d/manifest.json"
    ctl bundle build "$d" -o "$3" --key "$2" >/dev/null || bail "bundle build $1"
}

printf '[channels]\ncheck-interval = 0\nhealth-grace = 1s\n' > "$T/osmosed.conf"
start_space hq --config "$T/osmosed.conf"
start_space room --config "$T/osmosed.conf"
KH=$(on hq --json federation status | jq -r .key); KR=$(on room --json federation status | jq -r .key)
PH=$(free_port); PR=$(free_port)
on hq federation enable --listen "127.0.0.1:$PH" >/dev/null || bail "federation enable hq"
on room federation enable --listen "127.0.0.1:$PR" >/dev/null || bail "federation enable room"
on hq remote add room "http://127.0.0.1:$PR" --key "$KR" >/dev/null || bail "pair hq → room"
on room remote add hq "http://127.0.0.1:$PH" --key "$KH" >/dev/null || bail "pair room → hq"

pub=$(ctl keygen -o "$T/key")
for v in 1 2; do
    make_bundle $v "$T/key" "$T/tool-$v.osb"
    ctl channel publish "$T/tool-$v.osb" --channel tool --key "$T/key" -o "$T/pub" >/dev/null || bail "publish $v"
done
id2=$(ctl --json bundle inspect "$T/tool-2.osb" | jq -r .id)
on hq trust add "$pub" >/dev/null
on hq import "$T/pub" >/dev/null; ok $? "hq imports the publisher's directory (the list and its bundles)"
on room trust add "$pub" >/dev/null

out=$(on room follow tool remote:hq 2>&1); ok $((! $?)) "following a channel the remote does not share is refused"
like "$out" 'the remote does not share it.*io.osmose.Channel.FetchFailed' "…as a fetch failure, saying why (NotFound there)"
out=$(on room follow tool remote:nobody 2>&1); ok $((! $?)) "following from a remote that is not paired is refused"
like "$out" 'no paired remote of that name' "…saying so"
on room follow tool remote:bad/name >/dev/null 2>&1; ok $((! $?)) "a remote:NAME source with a bad name is refused"

out=$(on hq share --channel tool --with room); ok $? "share --channel tool --with room"
like "$out" 'room may follow channel tool from here' "…says what it did"
on hq share --channel tool --with room >/dev/null 2>&1; is $? 1 "…sharing it twice is an error"
out=$(on room follow tool remote:hq); ok $? "room follows tool from remote:hq"
like "$out" 'follows channel tool from remote:hq .*sequence 2, newest version 2' "…reads the list over federation at once"
out=$(on room upgrade tool); ok $? "upgrade tool from the remote"
like "$out" 'tool: upgraded to version 2' "…to version 2"
is "$(installed tool)" 2 "…version 2 is installed"
[ -f "$T/room/channels/bundles/$id2" ]; ok $? "…its bundle is kept in room, verified by its id"

n=$(on hq --json audit | jq -s --arg b "$id2" '[.[] | select(.remote == "room" and .direction == "response" and .kind == "channel-bundle" and .object == $b and .bytes > 0)] | length')
is "$n" 1 "hq's audit has the bundle it served room, with its bytes"
n=$(on hq --json audit | jq -s '[.[] | select(.remote == "room" and .kind == "channel" and .collection == "tool")] | length')
ok $(( n >= 1 ? 0 : 1 )) "…and the lists it served ($n)"
n=$(on room --json audit | jq -s '[.[] | select(.remote == "hq" and .direction == "request" and (.kind == "channel" or .kind == "channel-bundle") and .status == "sent")] | length')
ok $(( n >= 2 ? 0 : 1 )) "room's audit has its requests to hq ($n)"

# The follower judges what the remote serves as from any source.
on room trust rm "$pub" >/dev/null
out=$(on room upgrade tool 2>&1); ok $((! $?)) "a list from the remote signed by a key room does not trust is refused"
like "$out" 'not a trusted key.*io.osmose.Channel.Untrusted' "…as untrusted"
on room trust add "$pub" >/dev/null
make_bundle 3 "$T/key" "$T/tool-3.osb"
ctl channel publish "$T/tool-3.osb" --channel tool --key "$T/key" -o "$T/pub" >/dev/null
id3=$(ctl --json bundle inspect "$T/tool-3.osb" | jq -r .id)
on hq import "$T/pub" >/dev/null
cp "$T/tool-1.osb" "$T/hq/channels/bundles/$id3"   # hq's kept copy of version 3 is not what the list names
out=$(on room upgrade tool 2>&1); ok $((! $?)) "a bundle from the remote that does not match its id is refused"
like "$out" "names bundle $id3, but what arrived is bundle .*io.osmose.Channel.HashMismatch" "…as a hash mismatch"
is "$(installed tool)" 2 "…version 2 stays installed"
[ -f "$T/room/channels/bundles/$id3" ]; ok $((! $?)) "…and the wrong bytes were not kept"
cp "$T/tool-3.osb" "$T/hq/channels/bundles/$id3"
out=$(on room upgrade tool); ok $? "with the right bytes at hq, the upgrade goes through"
is "$(installed tool)" 3 "…version 3 is installed"

# Only what is shared is served.
mkdir -p "$T/src-other"
printf '{"name":"other","version":1,"entrypoint":["/bin/sleep","1000"],"restart":"never"}\n' > "$T/src-other/manifest.json"
ctl bundle build "$T/src-other" -o "$T/other-1.osb" --key "$T/key" >/dev/null || bail "bundle build other"
ctl channel publish "$T/other-1.osb" --channel other --key "$T/key" -o "$T/pub2" >/dev/null
on hq import "$T/pub2" >/dev/null
out=$(on room follow other remote:hq 2>&1); ok $((! $?)) "a channel hq has but did not share with room is not served"
like "$out" 'does not share it' "…NotFound, as one that does not exist"
on hq unshare --channel tool --with room >/dev/null; ok $? "unshare --channel tool --with room"
out=$(on room upgrade tool 2>&1); ok $((! $?)) "…then room cannot read the list any more"
like "$out" 'does not share it.*FetchFailed' "…FetchFailed, NotFound at hq"
is "$(installed tool)" 3 "…and what is installed stays"
on hq unshare --channel tool --with room >/dev/null 2>&1; is $? 1 "unsharing what is not shared fails"
on hq share --channel 'bad/name' --with room >/dev/null 2>&1; ok $((! $?)) "share --channel with a bad name is refused"
on hq share --channel tool >/dev/null 2>&1; is $? 2 "share --channel without --with is a usage error"

OSM_PID=$PID_room; osm_stop_daemon TERM; is "$OSM_EXIT" 0 "room stops cleanly"
OSM_PID=$PID_hq; osm_stop_daemon TERM; is "$OSM_EXIT" 0 "hq stops cleanly"
done_testing
