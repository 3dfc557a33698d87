#!/bin/bash
# test-ingest.sh: MQTT ingest against a real mosquitto broker on 127.0.0.1 (a free port, a
# config file made here, started and stopped by PID), with mosquitto_pub as the independent
# publisher: the CLI, topic → collection mapping, payload kinds, hostile payloads, 10,000
# QoS 1 messages on 50 topics while osmosed is SIGKILLed 3 times (each acknowledged message
# stored exactly once), and a broker restart.
. "$(dirname "$0")/../lib/common.sh"

if ! command -v mosquitto >/dev/null && [ ! -x /usr/sbin/mosquitto ]; then
    echo "1..0 # SKIP mosquitto is not installed"; exit 0
fi
command -v mosquitto_pub >/dev/null || { echo "1..0 # SKIP mosquitto_pub is not installed"; exit 0; }
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)
osm_setup

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
mkdir -p "$T/broker"
cat > "$T/broker/mosquitto.conf" <<CONF
listener $PORT 127.0.0.1
allow_anonymous true
persistence true
persistence_location $T/broker/
max_queued_messages 0
max_inflight_messages 100
log_dest file $T/broker/log
CONF
# Run as root, mosquitto drops to its own user: that user must be able to write its
# persistence file (the persistent session must survive the broker's restart).
if id mosquitto >/dev/null 2>&1; then chown mosquitto "$T/broker"; fi
chmod 0700 "$T/broker"
start_broker() {
    "$MOSQUITTO" -c "$T/broker/mosquitto.conf" >>"$T/broker/out" 2>&1 &
    BROKER_PID=$!
    _osm_pids+=("$BROKER_PID")
    local i
    for i in $(seq 100); do
        mosquitto_pub -p "$PORT" -t probe/x -n 2>/dev/null && return 0
        sleep 0.05
    done
    bail "mosquitto did not start"
}
stop_broker() { kill -TERM "$BROKER_PID" 2>/dev/null; wait "$BROKER_PID" 2>/dev/null; }
pub() { mosquitto_pub -p "$PORT" -q 1 "$@"; }
jq_() { python3 "$OSM_SOURCE_ROOT/tests/lib/jget.py" "$@"; }
bridge_field() {   # bridge_field NAME FIELD (dotted)
    ctl --json ingest ls | python3 -c '
import json, sys
name, path = sys.argv[1], sys.argv[2].split(".")
for b in json.load(sys.stdin)["bridges"]:
    if b["name"] == name:
        v = b
        for p in path: v = v.get(p, "") if isinstance(v, dict) else ""
        print(v)' "$1" "$2"
}
count() { ctl --json collections | python3 -c '
import json, sys
want = sys.argv[1]
d = json.load(sys.stdin)
d = d["collections"] if isinstance(d, dict) else d
n = sum(c["records"] for c in d if c["name"] == want or (want.endswith("/") and c["name"].startswith(want)))
print(n)' "$1"; }
wait_count() {   # wait_count COLLECTION|PREFIX/ N [seconds]
    local i n
    for i in $(seq $((${3:-20} * 10))); do
        n=$(count "$1")
        [ "$n" -ge "$2" ] && break
        sleep 0.1
    done
    echo "$n"
}

start_broker
osm_start_daemon

# --- the command line ---
ctl ingest --help >/dev/null; ok $? "ingest --help"
ctl ingest add --help | grep -q -- '--qos'; ok $? "ingest add --help names --qos"
ctl ingest add x 2>/dev/null; is $? 2 "ingest add without URL, topic or prefix: usage error (2)"
ctl ingest add x mqtt://127.0.0.1:$PORT --topic a --into s/ --qos 2 2>/dev/null; is $? 2 "--qos 2: usage error"
out=$(ctl ingest add x ftp://h --topic a --into s/ 2>&1); is $? 1 "a non-MQTT URL is refused"
like "$out" "mqtt://HOST" "the error says what URL is expected"
out=$(ctl ingest add x mqtt://127.0.0.1:$PORT --topic 'a/#/b' --into s/ 2>&1); is $? 1 "a bad topic filter is refused"
out=$(ctl ingest add x mqtt://127.0.0.1:$PORT --topic a --into ../ 2>&1); is $? 1 "a bad prefix is refused"
out=$(ctl ingest add 'bad name' mqtt://127.0.0.1:$PORT --topic a --into s/ 2>&1); is $? 1 "a bad bridge name is refused"
ctl ingest add z2m mqtt://127.0.0.1:$PORT --topic 'zigbee2mqtt/#' --into sensors/ >/dev/null; ok $? "ingest add z2m"
out=$(ctl ingest add z2m mqtt://127.0.0.1:$PORT --topic a --into s/ 2>&1); is $? 1 "the same name twice is refused"
like "$out" "Exists" "… as io.osmose.Ingest.Exists"
ctl --json ingest ls | python3 -c 'import json,sys; json.load(sys.stdin)'; ok $? "ingest ls --json is one JSON document"
for i in $(seq 50); do [ "$(bridge_field z2m state)" = connected ] && break; sleep 0.1; done
is "$(bridge_field z2m state)" connected "the bridge connects"
like "$(ctl status)" "ingest +ok +1 of 1 bridge connected" "status shows the ingest subsystem"
out=$(ctl ingest ls --discovered 2>&1); like "$out" "Disabled|NAME" "ingest ls --discovered answers (discovery is not running here)"

# --- payload kinds and topic mapping ---
pub -t zigbee2mqtt/kitchen -m '{"temperature":21.5,"humidity":40}'
pub -t zigbee2mqtt/hall -m '22.5'
pub -t zigbee2mqtt/door -m 'open'
printf '\x00\x01\x02\xff' > "$T/small.bin"; pub -t zigbee2mqtt/raw -f "$T/small.bin"
head -c 5000 /dev/urandom > "$T/big.bin"; pub -t zigbee2mqtt/camera -f "$T/big.bin"
is "$(wait_count sensors/zigbee2mqtt/camera 1)" 1 "a binary payload over 64 bytes is stored"
body() { ctl --json query "$1" | python3 -c 'import json,sys; print(json.dumps([json.loads(l) for l in sys.stdin if l.strip()][-1]["body"], sort_keys=True))'; }
is "$(body sensors/zigbee2mqtt/kitchen)" '{"humidity": 40, "temperature": 21.5}' "a JSON object is the record body (zigbee2mqtt/kitchen → sensors/zigbee2mqtt/kitchen)"
is "$(body sensors/zigbee2mqtt/hall)" '{"value": 22.5}' "a number becomes {\"value\": N}"
is "$(body sensors/zigbee2mqtt/door)" '{"value": "open"}' "text becomes {\"value\": TEXT}"
is "$(body sensors/zigbee2mqtt/raw)" '{"hex": "000102ff"}' "short binary becomes {\"hex\"}"
h=$(ctl --json query sensors/zigbee2mqtt/camera | python3 -c 'import json,sys; print([json.loads(l) for l in sys.stdin if l.strip()][-1]["body"]["object"])')
ctl object get "$h" -o "$T/got.bin" >/dev/null 2>&1
cmp -s "$T/big.bin" "$T/got.bin"; ok $? "longer binary is stored as an object, byte for byte"
w=$(ctl --json query sensors/zigbee2mqtt/kitchen | python3 -c 'import json,sys; print([json.loads(l) for l in sys.stdin if l.strip()][-1]["writer"])')
is "$w" "ingest:z2m" "the writer is ingest:NAME"

# --- hostile payloads and topics ---
head -c $((10 * 1024 * 1024)) /dev/urandom > "$T/10m.bin"
pub -t zigbee2mqtt/huge -f "$T/10m.bin"
python3 -c 'print("[" * 200 + "]" * 200)' > "$T/deep.json"; pub -t zigbee2mqtt/deep -f "$T/deep.json"
pub -t 'zigbee2mqtt/../etc' -m '{"x":1}'
pub -t 'zigbee2mqtt//x' -m '{"x":1}'
pub -t 'zigbee2mqtt/with space' -m '{"x":1}'
pub -t 'zigbee2mqtt/.' -m '{"x":1}'
pub -t zigbee2mqtt/after -m '{"ok":true}'
is "$(wait_count sensors/zigbee2mqtt/after 1)" 1 "a message after the hostile ones is stored"
is "$(bridge_field z2m refused.too_large)" 1 "the 10 MiB payload is refused and counted (too_large)"
is "$(bridge_field z2m refused.too_deep)" 1 "JSON nested 200 deep is refused and counted (too_deep)"
is "$(bridge_field z2m refused.invalid_topic)" 4 "'..', empty, '.' and space levels are refused and counted"
is "$(count sensors/zigbee2mqtt/huge)$(count sensors/zigbee2mqtt/deep)" "00" "nothing stored for them"
ctl collections | grep -q 'etc'; is $? 1 "no collection outside the prefix"
is "$(bridge_field z2m state)" connected "the bridge is still connected"
like "$(bridge_field z2m last_error)" "topic|payload|JSON" "ingest ls shows the last error"
grep -c "refused a message" "$T/daemon.log" | { read n; [ "$n" -le 2 ]; }; ok $? "refusals are logged rate-limited"

# --- 10,000 QoS 1 messages on 50 topics, osmosed SIGKILLed 3 times mid-stream ---
ctl ingest add load mqtt://127.0.0.1:$PORT --topic 'load/#' --into bulk/ --qos 1 >/dev/null; ok $? "ingest add load"
for i in $(seq 50); do [ "$(bridge_field load state)" = connected ] && break; sleep 0.1; done
(
    for t in $(seq 1 50); do
        seq 1 200 | sed "s/.*/{\"t\":$t,\"n\":&}/" | mosquitto_pub -p "$PORT" -q 1 -t "load/room$t" -l || echo "topic $t failed" >> "$T/pub.err"
    done
    touch "$T/pub.done"
) &
PUB=$!
_osm_pids+=("$PUB")
for k in 1 2 3; do
    sleep 0.$((3 + RANDOM % 5))
    n=$(count bulk/)
    osm_stop_daemon KILL
    diag "kill $k: $n records stored when osmosed was killed"
    osm_start_daemon
done
wait "$PUB"
[ -e "$T/pub.done" ] && [ ! -e "$T/pub.err" ]; ok $? "mosquitto_pub had all 10,000 messages acknowledged by the broker"
is "$(wait_count bulk/ 10000 60)" 10000 "10,000 records stored after 3 SIGKILLs"
ctl --json collections | python3 -c '
import json, sys
d = json.load(sys.stdin)
d = d["collections"] if isinstance(d, dict) else d
c = {x["name"]: x["records"] for x in d if x["name"].startswith("bulk/")}
bad = [k for k, v in c.items() if v != 200]
sys.exit(1 if len(c) != 50 or bad else 0)'; ok $? "50 collections bulk/load/roomN, 200 records each"
dups=0
for t in $(seq 1 50); do
    ctl --json query "bulk/load/room$t" --limit 1000 | python3 -c '
import json, sys
t = int(sys.argv[1])
ns = [r["body"]["n"] for r in map(json.loads, filter(str.strip, sys.stdin)) if r["body"]["t"] == t]
sys.exit(0 if sorted(ns) == list(range(1, 201)) else 1)' "$t" || dups=$((dups + 1))
done
is "$dups" 0 "every message stored exactly once (each n 1..200 once on each topic)"
diag "duplicates recognised after redelivery: $(bridge_field load duplicates)"
is "$(stat -c %a "$T/state/ingest.json")" 600 "bridges are kept in STATE/ingest.json (0600)"
is "$(bridge_field z2m source)" cli "the bridges came back after the restarts"

# --- broker restart ---
stop_broker
for i in $(seq 50); do [ "$(bridge_field load state)" != connected ] && break; sleep 0.1; done
isnt_connected=$(bridge_field load state)
[ "$isnt_connected" != connected ]; ok $? "the bridge notices the broker going away ($isnt_connected)"
start_broker
seq 1 100 | sed 's/.*/{"after":&}/' | mosquitto_pub -p "$PORT" -q 1 -t load/restart -l
is "$(wait_count bulk/load/restart 100 30)" 100 "after a broker restart the bridge reconnects and stores again"
like "$(bridge_field load reconnects)" "^[1-9]" "reconnects are counted"

# --- remove ---
ctl ingest rm load >/dev/null; ok $? "ingest rm load"
ctl ingest rm load 2>/dev/null; is $? 1 "removing it again fails"
osm_stop_daemon TERM
osm_start_daemon
names=$(ctl --json ingest ls | python3 -c 'import json,sys; print(" ".join(sorted(b["name"] for b in json.load(sys.stdin)["bridges"])))')
is "$names" "z2m" "ingest rm is persisted"

# --- [ingest.NAME] in osmosed.conf ---
cat > "$T/state/osmosed.conf" <<CONF
[ingest.conf1]
broker = mqtt://127.0.0.1:$PORT
topic = conf/+/state
into = fromconf/
qos = 0
CONF
"$OSMOSED" --check-config --config "$T/state/osmosed.conf" >/dev/null 2>&1; ok $? "an [ingest.NAME] section passes --check-config"
printf '[ingest.bad]\nbroker = http://x\ntopic = a\ninto = b/\nwhat = 1\n' > "$T/bad.conf"
out=$("$OSMOSED" --check-config --config "$T/bad.conf" 2>&1); like "$out" "what|unknown key" "an unknown key in [ingest.NAME] is reported"
like "$out" "broker" "a bad broker URL in [ingest.NAME] is reported"
osm_stop_daemon TERM
osm_start_daemon
for i in $(seq 50); do [ "$(bridge_field conf1 state)" = connected ] && break; sleep 0.1; done
is "$(bridge_field conf1 source)" config "the config file's bridge runs"
pub -q 0 -t conf/lamp/state -m '{"on":true}'
is "$(wait_count fromconf/conf/lamp/state 1)" 1 "its messages are stored (QoS 0)"
ctl ingest rm conf1 2>&1 | grep -q InConfig; ok $? "ingest rm of a config bridge is refused (InConfig)"

# --- TLS and credentials (a second broker: CA and server certificate made here) ---
if command -v openssl >/dev/null && command -v mosquitto_passwd >/dev/null; then
    tls=$T/tls; mkdir -p "$tls"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tls/ca.key" -out "$tls/ca.crt" -days 2 -subj /CN=test-ca 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout "$tls/srv.key" -out "$tls/srv.csr" -subj /CN=localhost 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > "$tls/ext"
    openssl x509 -req -in "$tls/srv.csr" -CA "$tls/ca.crt" -CAkey "$tls/ca.key" -CAcreateserial -out "$tls/srv.crt" \
        -days 2 -extfile "$tls/ext" 2>/dev/null
    touch "$tls/pw"; mosquitto_passwd -b "$tls/pw" sensor s3cret
    chmod 0644 "$tls"/*; chmod 0755 "$tls"
    TPORT=$(free_port)
    printf 'listener %s 127.0.0.1\nallow_anonymous false\npassword_file %s\ncafile %s\ncertfile %s\nkeyfile %s\n' \
        "$TPORT" "$tls/pw" "$tls/ca.crt" "$tls/srv.crt" "$tls/srv.key" > "$tls/mosquitto.conf"
    "$MOSQUITTO" -c "$tls/mosquitto.conf" >"$tls/log" 2>&1 &
    TLS_PID=$!; _osm_pids+=("$TLS_PID")
    sleep 0.5
    printf 's3cret\n' > "$T/pass"; chmod 0644 "$T/pass"
    out=$(ctl ingest add sec mqtts://localhost:$TPORT --topic 'dev/#' --into secure/ --username sensor \
          --password-file "$T/pass" --ca-file "$tls/ca.crt" 2>&1)
    like "$out" "readable by others" "a password file readable by others is refused"
    chmod 0600 "$T/pass"
    ctl ingest add sec mqtts://localhost:$TPORT --topic 'dev/#' --into secure/ --username sensor \
        --password-file "$T/pass" --ca-file "$tls/ca.crt" >/dev/null; ok $? "ingest add over TLS with a CA file and a password file"
    printf 'wrong\n' > "$T/wrong"; chmod 0600 "$T/wrong"
    ctl ingest add badpw mqtts://localhost:$TPORT --topic 'dev/#' --into bad/ --username sensor \
        --password-file "$T/wrong" --ca-file "$tls/ca.crt" >/dev/null
    ctl ingest add noca mqtts://localhost:$TPORT --topic 'dev/#' --into noca/ >/dev/null
    for i in $(seq 50); do [ "$(bridge_field sec state)" = connected ] && break; sleep 0.1; done
    is "$(bridge_field sec state)" connected "the TLS bridge connects"
    mosquitto_pub -p "$TPORT" -h localhost --cafile "$tls/ca.crt" -u sensor -P s3cret -q 1 -t dev/lock -m '{"locked":true}'
    is "$(wait_count secure/dev/lock 1)" 1 "a message over TLS is stored"
    like "$(bridge_field badpw last_error)" "refused|authori" "a wrong password: refused, and said so"
    like "$(bridge_field noca last_error)" "TLS|certificate" "a certificate no CA vouches for: a TLS error"
    is "$(count bad/)$(count noca/)" "00" "nothing stored through them"
    kill "$TLS_PID"; wait "$TLS_PID" 2>/dev/null
else
    skip "TLS" "openssl or mosquitto_passwd missing"
fi

osm_stop_daemon TERM
stop_broker
done_testing
