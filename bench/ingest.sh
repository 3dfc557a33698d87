#!/bin/bash
# ingest.sh: MQTT ingest beside its baseline, measured in one run on one mosquitto broker
# (127.0.0.1, a free port, started and stopped here):
#   mqtt   messages/s drained from the broker into the store by an osmosed bridge
#          (QoS 1: acknowledged only once durable; QoS 0) against `mosquitto_sub > file`
#          draining the same number of queued messages for a persistent session. Each side
#          connects to a session the broker holds N messages for (published by
#          `mosquitto_pub -l` while it was away), so the publisher is not what is timed.
#   voice  per utterance: decoding latency, real-time factor and peak RSS of the
#          voice-commands example (run directly, --dry-run) against pocketsphinx_continuous
#          with the same model and command grammar (one pass; ours decodes twice).
# Target (issue 17): >= 0.5 of mosquitto_sub at QoS 1 with durable acknowledgement.
# The machine is shared: figures are noisy; the load average is printed beside them.
# Usage: bench/ingest.sh [BUILD_DIR]   (N=20000 TOPICS=10 ROUNDS=3 INFLIGHT=20 PARTS="mqtt voice")
set -u
BUILD=${1:-${BUILD:-build}}
N=${N:-20000}
TOPICS=${TOPICS:-10}
ROUNDS=${ROUNDS:-3}
INFLIGHT=${INFLIGHT:-20}
PARTS=${PARTS:-mqtt voice}
OSMOSED=$BUILD/src/daemon/osmosed
OSMOSECTL=$BUILD/src/cli/osmosectl
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)
for f in "$OSMOSED" "$OSMOSECTL" "$MOSQUITTO"; do
        [ -x "$f" ] || { echo "ingest: $f missing (build first; apt-get install mosquitto mosquitto-clients)" >&2; exit 1; }
done

WORK=$(mktemp -d /var/tmp/osm-bench-ingest-XXXXXX)
DAEMON_PID= BROKER_PID=
cleanup() {
        [ -n "$DAEMON_PID" ] && kill "$DAEMON_PID" 2>/dev/null && wait "$DAEMON_PID" 2>/dev/null
        [ -n "$BROKER_PID" ] && kill "$BROKER_PID" 2>/dev/null && wait "$BROKER_PID" 2>/dev/null
        rm -rf "$WORK"
}
trap cleanup EXIT
now() { date +%s.%N; }
calc() { awk "BEGIN { print $1 }"; }
median() { sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
ctl() { "$OSMOSECTL" "$@"; }
echo "load: $(uptime | sed 's/.*load average/load average/')"

mqtt() {
        PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
        mkdir -p "$WORK/broker"
        id mosquitto >/dev/null 2>&1 && chown mosquitto "$WORK/broker"
        cat > "$WORK/broker/mosquitto.conf" <<CONF
listener $PORT 127.0.0.1
allow_anonymous true
max_queued_messages 0
queue_qos0_messages true
max_inflight_messages $INFLIGHT
CONF
        "$MOSQUITTO" -c "$WORK/broker/mosquitto.conf" >"$WORK/broker/log" 2>&1 &
        BROKER_PID=$!
        for _ in $(seq 100); do mosquitto_pub -p "$PORT" -t probe -n 2>/dev/null && break; sleep 0.05; done
        mkdir -p "$WORK/state"
        "$OSMOSED" --state-dir "$WORK/state" --name bench >>"$WORK/daemon.log" 2>&1 &
        DAEMON_PID=$!
        export OSMOSE_SOCKET=$WORK/state/osmosed.sock
        for _ in $(seq 200); do ctl status >/dev/null 2>&1 && break; sleep 0.05; done

        publish() {   # publish QOS PREFIX: N messages over TOPICS topics
                local per=$((N / TOPICS)) t
                for t in $(seq 1 "$TOPICS"); do
                        seq 1 "$per" | awk -v t="$t" '{printf "{\"sensor\":%d,\"celsius\":%.2f,\"seq\":%d}\n", t, 18 + ($1 % 600) / 100, $1}' |
                                mosquitto_pub -p "$PORT" -q "$1" -t "$2/room$t" -l
                done
        }
        # Only the bridge being measured exists; awk, not python, so that polling costs
        # the daemon's two cores as little as possible.
        stored() { ctl --json ingest ls | awk -F': ' '/"stored":/ { gsub(/,/, "", $2); s += $2 } END { print s + 0 }'; }
        wait_stored() {   # wait_stored NAME N
                local s
                for _ in $(seq 3000); do s=$(stored "$1"); [ "$s" -ge "$2" ] && return 0; sleep 0.05; done
                return 1
        }
        wait_connected() {
                for _ in $(seq 200); do
                        ctl --json ingest ls | grep -q '"state": "connected"' && return 0; sleep 0.05
                done
                return 1
        }
        for q in 1 0; do
                ours=() base=()
                for r in $(seq 1 "$ROUNDS"); do
                        # baseline: a persistent mosquitto_sub session, away while N are published
                        mosquitto_sub -p "$PORT" -c -i "base-$q-$r" -q "$q" -t "b$q$r/#" -E >/dev/null
                        publish "$q" "b$q$r"
                        t0=$(now)
                        mosquitto_sub -p "$PORT" -c -i "base-$q-$r" -q "$q" -t "b$q$r/#" -C "$N" > "$WORK/sub.out"
                        t1=$(now)
                        got=$(wc -l < "$WORK/sub.out")
                        base+=("$(calc "$got / ($t1 - $t0)")")
                        # ours: a bridge, removed while N are published, added again (same session)
                        ctl ingest add "o$q$r" "mqtt://127.0.0.1:$PORT" --topic "o$q$r/#" --into "bench$q$r/" --qos "$q" >/dev/null
                        wait_connected
                        ctl ingest rm "o$q$r" >/dev/null
                        publish "$q" "o$q$r"
                        t0=$(now)
                        ctl ingest add "o$q$r" "mqtt://127.0.0.1:$PORT" --topic "o$q$r/#" --into "bench$q$r/" --qos "$q" >/dev/null
                        wait_stored "o$q$r" "$N" || echo "ingest: bridge o$q$r stored only $(stored "o$q$r") of $N" >&2
                        t1=$(now)
                        ours+=("$(calc "$(stored "o$q$r") / ($t1 - $t0)")")
                        ctl ingest rm "o$q$r" >/dev/null
                done
                o=$(printf '%s\n' "${ours[@]}" | median); b=$(printf '%s\n' "${base[@]}" | median)
                printf 'mqtt qos %d: %d messages, %d topics: osmosed bridge into the store %.0f msg/s, mosquitto_sub > file %.0f msg/s: ratio %.2f (median of %d; broker max_inflight_messages %d)\n' \
                        "$q" "$N" "$TOPICS" "$o" "$b" "$(calc "$o / $b")" "$ROUNDS" "$INFLIGHT"
        done
        kill "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null; DAEMON_PID=
        kill "$BROKER_PID"; wait "$BROKER_PID" 2>/dev/null; BROKER_PID=
}

voice() {
        local vc=$BUILD/examples/voice-commands/voice-commands src model=/usr/share/pocketsphinx/model/en-us
        src=$(cd "$(dirname "$0")/.." && pwd)/examples/voice-commands
        if [ ! -x "$vc" ] || ! command -v espeak-ng >/dev/null || ! command -v pocketsphinx_continuous >/dev/null; then
                echo "voice: skipped (needs the voice-commands example, espeak-ng, sox and pocketsphinx)"; return 0
        fi
        local m=$WORK/model; mkdir -p "$m"
        cp -r "$model/en-us" "$model/en-us-phone.lm.bin" "$m/"; cp "$src/commands.gram" "$m/"
        "$src/make-dict.sh" "$src/commands.gram" "$model/cmudict-en-us.dict" > "$m/commands.dict"
        local i=0 s files=()
        for s in "turn the lights on" "lights off" "set temperature to twenty" "open the blinds" \
                 "the weather is nice today and I like coffee" "what time is it now"; do
                i=$((i + 1)); espeak-ng -w "$WORK/v$i.22k.wav" "$s"; sox "$WORK/v$i.22k.wav" -r 16000 -c 1 -b 16 "$WORK/v$i.wav"
                files+=("$WORK/v$i.wav")
        done
        local ours=() base=() rss
        for r in $(seq 1 "$ROUNDS"); do
                /usr/bin/time -f '%M' -o "$WORK/rss" "$vc" --dry-run --model "$m" "${files[@]}" >"$WORK/vc.out" 2>"$WORK/vc.err"
                rss=$(tail -1 "$WORK/rss")
                ours+=("$(python3 -c '
import json, re, sys
a = d = 0.0
for l in open(sys.argv[1]):
    m = re.search(r"([0-9.]+)s of audio in ([0-9.]+)s", l)
    if m: a += float(m.group(1)); d += float(m.group(2))
print("%.4f %.4f" % (d / a, d / 6))' "$WORK/vc.err")")
                t0=$(now)
                for f in "${files[@]}"; do
                        pocketsphinx_continuous -infile "$f" -hmm "$m/en-us" -dict "$m/commands.dict" -jsgf "$m/commands.gram" -logfn /dev/null >/dev/null 2>&1
                done
                t1=$(now)
                base+=("$(calc "($t1 - $t0) / 6")")
        done
        local rtf lat b
        rtf=$(printf '%s\n' "${ours[@]}" | awk '{print $1}' | median)
        lat=$(printf '%s\n' "${ours[@]}" | awk '{print $2}' | median)
        b=$(printf '%s\n' "${base[@]}" | median)
        printf 'voice: 6 utterances (espeak-ng, 16 kHz): voice-commands %.0f ms per utterance (decoding, two passes), real-time factor %.2f, peak RSS %d KiB; pocketsphinx_continuous (one pass, process start included) %.0f ms per utterance: ratio %.2f (median of %d)\n' \
                "$(calc "$lat * 1000")" "$rtf" "$rss" "$(calc "$b * 1000")" "$(calc "$lat / $b")" "$ROUNDS"
        grep -c '"command"' "$WORK/vc.out" | sed 's/^/voice: intents found: /; s/$/ of 4 commands (2 unrelated utterances)/'
}

for p in $PARTS; do "$p"; done
echo "load: $(uptime | sed 's/.*load average/load average/')"
