#!/bin/bash
# test-federation.sh: two real osmosed on loopback: off by default (no socket, no outbound
# connection, checked against the kernel's socket tables and a listening spy), pairing,
# signed requests (forged, replayed, stale, unsigned, misdirected ones sent with curl are
# refused), enable/disable persisted across restarts, sharing and sync through outages
# (when the store is built), object fetch, and the audit of what left.
. "$(dirname "$0")/../lib/common.sh"
osm_setup
FED_SIGN=${FED_SIGN:-$(dirname "$OSMOSED")/../../tests/system/fed-sign}
command -v curl >/dev/null || { echo "1..0 # SKIP curl is not installed"; exit 0; }
command -v jq >/dev/null || { echo "1..0 # SKIP jq is not installed"; exit 0; }

# start_space NAME: a daemon with its state in $T/NAME; sets PID_NAME.
start_space() {   # start_space NAME [ARGS…]
    OSM_STATE=$T/$1 OSM_NAME=$1 osm_start_daemon "${@:2}"
    eval "PID_$1=$OSM_PID"
}
on() { local s=$1; shift; OSMOSE_SOCKET=$T/$s/osmosed.sock "$OSMOSECTL" "$@"; }
jget() { on "$1" --json "${@:3}" | jq -r "$2"; }

# Sockets of a process that are TCP or UDP (any state): the inodes of its socket fds
# looked up in the kernel's tables.
inet_socks() {
    local pid=$1 inodes n=0
    inodes=$(ls -l /proc/"$pid"/fd 2>/dev/null | sed -n 's/.*socket:\[\([0-9]*\)\]/\1/p')
    for i in $inodes; do
        for tbl in tcp tcp6 udp udp6; do
            awk -v ino="$i" 'NR > 1 && $10 == ino { found = 1 } END { exit !found }' /proc/"$pid"/net/$tbl && n=$((n + 1))
        done
    done
    echo "$n"
}
listening() {   # listening PID: TCP sockets of PID in LISTEN state
    local pid=$1 inodes n=0
    inodes=$(ls -l /proc/"$pid"/fd 2>/dev/null | sed -n 's/.*socket:\[\([0-9]*\)\]/\1/p')
    for i in $inodes; do
        for tbl in tcp tcp6; do
            awk -v ino="$i" 'NR > 1 && $10 == ino && $4 == "0A" { found = 1 } END { exit !found }' /proc/"$pid"/net/$tbl && n=$((n + 1))
        done
    done
    echo "$n"
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start_space a
start_space b
KA=$(jget a .key federation status); KB=$(jget b .key federation status)
IDA=$(jget a .space_id federation status); IDB=$(jget b .space_id federation status)
like "$KA" '^[A-Za-z0-9_-]{43}$' "federation status prints this space's key"

# --- off by default, provably ---
is "$(jget a .enabled federation status)" false "federation is off by default"
like "$(on a status)" 'federation +disabled' "status lists federation as disabled"
is "$(inet_socks "$PID_a")" 0 "off: the daemon holds no TCP or UDP socket"

# A spy listener: any connection the daemon makes while off would land here.
SPY_PORT=$(free_port)
python3 - "$SPY_PORT" "$T/spy.count" <<'PY' &
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(16)
n = 0
open(sys.argv[2], "w").write("0")
while True:
    c, _ = s.accept(); n += 1
    open(sys.argv[2], "w").write(str(n)); c.close()
PY
SPY_PID=$!; _osm_pids+=("$SPY_PID")
wait_for 5 test -s "$T/spy.count"
on a remote add spy "http://127.0.0.1:$SPY_PORT" --key "$KB" >/dev/null; ok $? "a remote can be paired while federation is off"
like "$(on a remote ls)" 'spy +off' "remote ls shows it as off"
sleep 1.5
is "$(cat "$T/spy.count")" 0 "off: no outbound connection reached the paired address"
is "$(jget a .connections_out federation status)" 0 "off: the daemon's counter of outbound connections is 0"
is "$(inet_socks "$PID_a")" 0 "off: still no TCP or UDP socket"
if command -v strace >/dev/null; then
    strace -f -qq -e trace=connect,bind,listen -p "$PID_a" -o "$T/strace.out" & ST=$!; _osm_pids+=("$ST")
    sleep 0.5
    on a remote ls >/dev/null; on a federation status >/dev/null
    sleep 1
    kill "$ST" 2>/dev/null; wait "$ST" 2>/dev/null
    n=$(grep -c 'AF_INET' "$T/strace.out" 2>/dev/null); is "${n:-0}" 0 "off: strace sees no inet connect/bind/listen"
else
    skip "off: strace sees no inet connect/bind/listen" "strace is not installed"
fi
on a remote rm spy >/dev/null; ok $? "remote rm"

# Using it while off says so.
out=$(on a remote fetch nobody 0000000000000000000000000000000000000000000000000000000000000000 2>&1); ok $((! $?)) "fetch from an unknown remote fails"
like "$out" "no remote named '[a-z]+' \(see 'osmosectl remote ls'\)" "…saying there is no such remote"

# --- enable ---
PA=$(free_port); PB=$(free_port)
out=$(on a federation enable --listen "127.0.0.1:$PA"); like "$out" "listening on 127.0.0.1:$PA" "federation enable --listen"
on b federation enable --listen "127.0.0.1:$PB" >/dev/null
is "$(listening "$PID_a")" 1 "on: exactly one listening TCP socket"
out=$(on a federation enable --listen "not-an-address" 2>&1); ok $((! $?)) "enable with a bad address fails"
like "$out" "listen" "…naming the listen parameter"
is "$(jget a .listen federation status)" "127.0.0.1:$PA" "…and changes nothing: the listener stays"
out=$(on a federation enable --listen "127.0.0.1:$PB" 2>&1); ok $((! $?)) "enable on a port in use fails"
like "$out" "address already in use" "…saying so"
is "$(jget a .listen federation status)" "127.0.0.1:$PA" "…and a keeps listening where it did"

# --- pairing ---
out=$(on a remote add b "http://127.0.0.1:$PB" --key "$KB"); like "$out" "space $IDB" "remote add prints the remote's space id"
out=$(on a remote add b2 "http://127.0.0.1:$PB" --key "$KB" 2>&1); ok $((! $?)) "the same key cannot be paired twice"
out=$(on a remote add bad "ftp://x" --key "$KB" 2>&1); like "$out" "InvalidURL" "a non-http URL is refused"
out=$(on a remote add bad "http://127.0.0.1:1" --key "short" 2>&1); like "$out" "key must be a public key" "a malformed key is refused"
out=$(on a remote add self "http://127.0.0.1:1" --key "$KA" 2>&1); like "$out" "own key" "this space's own key is refused"
on b remote add a "http://127.0.0.1:$PA" --key "$KA" >/dev/null
paired() { [ "$(jget a '.remotes[] | select(.name=="b") | .state' remote ls)" = idle ]; }
wait_for 20 paired; ok $? "after both sides paired, a sees b idle (hello answered)"
# remote set-url: a wrong address fails the hello; the right one reaches b again
PX=$(free_port)
on a remote set-url b "http://127.0.0.1:$PX" >/dev/null; ok $? "remote set-url"
like "$(on a --json remote ls)" "127.0.0.1:$PX" "…remote ls shows the new address"
on a remote set-url b "http://127.0.0.1:$PB" >/dev/null
wait_for 20 paired; ok $? "…and back at the right one, b is reached (idle) again"
on a remote set-url nobody "http://127.0.0.1:1" >/dev/null 2>&1; is "$?" 1 "set-url of an unknown remote fails"
on a remote set-url b "ftp://x" >/dev/null 2>&1; is "$?" 1 "set-url with a non-http URL fails"
on a remote set-url b >/dev/null 2>&1; is "$?" 2 "set-url without a URL: usage error"
lc=$(jget a '.remotes[0].last_contact' remote ls); ok $(( lc > 0 ? 0 : 1 )) "remote ls shows a last contact"

# --- hand-made requests to b, as a, with curl ---
post() {   # post HEADERS_FILE BODY_FILE [PATH] → prints "STATUS BODY"
    curl -s -o "$T/resp" -w '%{http_code}' -H @"$1" --data-binary @"$2" \
        -H 'Content-Type: application/octet-stream' "http://127.0.0.1:$PB${3:-/v1/hello}"
    printf ' %s' "$(head -c 300 "$T/resp" | tr -d '\0')"
}
"$FED_SIGN" "$T/a/identity.key" "$KB" /v1/hello '{"space_id":"x"}' "$T/good.body" > "$T/good.h"
out=$(post "$T/good.h" "$T/good.body"); like "$out" '^200 ' "a correctly signed request is served"
out=$(post "$T/good.h" "$T/good.body"); like "$out" '^401 .*replayed' "the same request again is refused as replayed"
"$FED_SIGN" "$T/a/identity.key" "$KB" /v1/hello '{}' "$T/stale.body" -600 > "$T/stale.h"
out=$(post "$T/stale.h" "$T/stale.body"); like "$out" '^401 .*stale' "a request 10 minutes old is refused as stale"
"$FED_SIGN" "$T/a/identity.key" "$KB" /v1/hello '{}' "$T/future.body" 600 > "$T/future.h"
out=$(post "$T/future.h" "$T/future.body"); like "$out" '^401 .*stale' "a request 10 minutes ahead is refused as stale"
OSM_KEYGEN_DIR=$T/evil; mkdir -p "$OSM_KEYGEN_DIR"
# An unpaired space's key: start nothing, just make a key file the way the daemon does.
"$OSMOSED" --state-dir "$T/evil" --check-config >/dev/null 2>&1
OSM_STATE=$T/evil OSM_NAME=evil osm_start_daemon; PID_evil=$OSM_PID
"$FED_SIGN" "$T/a/identity.key" "$KB" /v1/hello '{}' "$T/forged.body" 0 "$T/evil/identity.key" > "$T/forged.h"
out=$(post "$T/forged.h" "$T/forged.body"); like "$out" '^401 .*bad-signature' "a request claiming a's key but signed by another is refused"
"$FED_SIGN" "$T/evil/identity.key" "$KB" /v1/hello '{}' "$T/unknown.body" > "$T/unknown.h"
out=$(post "$T/unknown.h" "$T/unknown.body"); like "$out" '^403 .*unknown-key' "a request from an unpaired key is refused"
printf 'Content-Type: application/octet-stream\n' > "$T/none.h"
out=$(post "$T/none.h" "$T/good.body"); like "$out" '^401 .*unsigned' "an unsigned request is refused"
"$FED_SIGN" "$T/a/identity.key" "$KA" /v1/hello '{}' "$T/mis.body" > "$T/mis.h"
out=$(post "$T/mis.h" "$T/mis.body"); like "$out" '^403 .*wrong-recipient' "a request signed for another space is refused"
"$FED_SIGN" "$T/a/identity.key" "$KB" /v1/hello '{}' "$T/tamper.body" > "$T/tamper.h"
printf 'x' >> "$T/tamper.body"
out=$(post "$T/tamper.h" "$T/tamper.body"); like "$out" '^401 .*bad-signature' "a request whose body changed is refused"
"$FED_SIGN" "$T/a/identity.key" "$KB" /v1/nothing '{}' "$T/nf.body" > "$T/nf.h"
out=$(post "$T/nf.h" "$T/nf.body" /v1/nothing); like "$out" '^404 ' "an unknown path is 404 (after authentication)"
sed 's/^\(X-Osmose-Time: \)\(.*\)$/\1\2x/' "$T/good.h" > "$T/bad.h"
out=$(post "$T/bad.h" "$T/good.body"); like "$out" '^400 .*malformed' "a malformed header is refused"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PB/v1/hello"); is "$code" 400 "GET is refused"
head -c 9000000 /dev/zero > "$T/big.body"
"$FED_SIGN" "$T/a/identity.key" "$KB" /v1/hello '{}' "$T/x.body" > "$T/big.h"
out=$(post "$T/big.h" "$T/big.body"); like "$out" '^413 ' "an oversized body is refused"
on b call org.varlink.service.GetInfo >/dev/null; ok $? "b keeps serving after all that"
ref=$(jget b .requests_refused federation status); ok $(( ref >= 10 ? 0 : 1 )) "b counted the refusals ($ref)"
grep -q 'refused request from 127.0.0.1:[0-9]* (a): replayed' "$T/daemon.log"; ok $? "the replay left a log line naming the sender"
grep -q 'refused request from .*unknown-key' "$T/daemon.log"; ok $? "the unknown key left a log line"

# --- audit ---
n=$(on a --json audit | jq -s '[.[] | select(.remote=="b" and .direction=="request" and .kind=="hello" and .status=="sent")] | length')
ok $(( n >= 1 ? 0 : 1 )) "a's audit lists the hello it sent to b"
bytes=$(on a --json audit | jq -s '[.[] | select(.remote=="b") | .bytes] | add')
ok $(( bytes > 0 ? 0 : 1 )) "…with the bytes that left ($bytes)"
n=$(on b --json audit | jq -s '[.[] | select(.direction=="response" and .kind=="refusal")] | length')
ok $(( n >= 8 ? 0 : 1 )) "b's audit lists the refusals it answered ($n)"
out=$(on a audit --since -1h); like "$out" 'hello' "audit --since -1h prints a table"
out=$(on a --json audit --since "$(( $(date +%s) + 3600 ))000000"); ok $? "audit --since a future time succeeds"; is "$out" "" "…and prints nothing"
out=$(on a audit --since yesterdayish 2>&1); ok $((! $?)) "audit --since with a bad time fails"
# -n/--limit N: the newest N, oldest first (as journalctl -n)
ids=$(on b --json audit | jq -s '[.[].id] | "\(min) \(max) \(length)"' -r); read -r id_min id_max n_all <<< "$ids"
one=$(on b --json audit --limit 1 | jq -s -r '[.[].id] | "\(length) \(.[0])"')
read -r n_one id_one <<< "$one"
is "$n_one" 1 "audit --limit 1 prints one entry"
ok $(( n_all > 1 && id_one > id_min && id_one >= id_max ? 0 : 1 )) "…the newest ($id_one; the log held $id_min..$id_max)"
two=$(on b --json audit -n 2 | jq -s -r '[.[].id] | "\(length) \(.[0] < .[1]) \(.[1])"')
read -r n_two asc id_two <<< "$two"
ok $(( n_two == 2 && id_two >= id_max ? 0 : 1 )) "audit -n 2 prints the newest two ($two)"
is "$asc" true "…oldest first"

# --- disable: at once, and across restarts ---
n_audit=$(on a --json audit | wc -l)
on a federation disable >/dev/null; ok $? "federation disable"
is "$(inet_socks "$PID_a")" 0 "disabled: no TCP or UDP socket left"
like "$(on a remote ls)" 'b +off' "remote ls shows b as off"
osm_stop_daemon_pid() { kill -TERM "$1"; wait "$1" 2>/dev/null; }
osm_stop_daemon_pid "$PID_a"
start_space a
is "$(jget a .enabled federation status)" false "disabled stays disabled after a restart"
is "$(inet_socks "$PID_a")" 0 "…with no TCP or UDP socket"
on a federation enable >/dev/null
is "$(jget a .listen federation status)" "127.0.0.1:$PA" "enable without --listen reuses the last address"
osm_stop_daemon_pid "$PID_a"
start_space a
is "$(jget a .enabled federation status)" true "enabled stays enabled after a restart"
is "$(listening "$PID_a")" 1 "…and listens again"
wait_for 20 paired; ok $? "…and b is reached again"
n_after=$(on a --json audit | wc -l)
ok $(( n_after >= n_audit && n_audit > 0 ? 0 : 1 )) "the audit survives restarts ($n_audit entries before, $n_after after)"

# --- the audit's own retention ---
sleep 1.2
osm_stop_daemon_pid "$PID_a"
printf '[federation]\naudit-max-age = 1s\n' > "$T/a.conf"
start_space a --config "$T/a.conf"
wait_for 5 grep -q "pruned [0-9]* audit entries past their retention" "$T/daemon.log"; ok $? "audit entries older than audit-max-age are pruned, with a log line"
old=$(on a --json audit --since 0 | jq -s "[.[] | select(.time < $(date +%s)000000 - 1000000)] | length")
is "$old" 0 "…and no entry older than the retention is left"

# Sharing and sync through outages: test-federation-sync.sh.

done_testing
