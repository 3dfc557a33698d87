#!/bin/bash
# test-store-crash.sh: durability. Writers stream records through osmosectl (single puts and
# put --batch) while the daemon is killed with SIGKILL at random moments, 20 times; after
# each restart every acknowledged record must be there and SQLite must find the database sound.
. "$(dirname "$0")/../lib/common.sh"
osm_setup

KILLS=${OSM_CRASH_KILLS:-20}
st=$T/state
: > "$T/acked.single"
: > "$T/acked.batch"

integrity() {
    python3 - "$1" <<'PY'
import sqlite3, sys
c = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True)
print(c.execute("PRAGMA integrity_check").fetchone()[0])
PY
}

# One record per call: a line in acked.single for each put that returned success.
single_writer() {
    local n=1
    while [ ! -e "$T/stop" ]; do
        if "$OSMOSECTL" put crash/single "{\"n\":$n}" >/dev/null 2>&1; then
            echo "$n" >> "$T/acked.single"
            n=$((n + 1))
        else
            sleep 0.02
        fi
    done
}

# Streams of JSON Lines: each run's values start at run*10^6; on success all of them are
# acknowledged, on failure (the daemon died) the count the error reports.
batch_writer() {
    local run=1 out base stored
    while [ ! -e "$T/stop" ]; do
        base=$((run * 1000000))
        out=$(seq $((base + 1)) $((base + 20000)) | sed 's/.*/{"b":&}/' |
              "$OSMOSECTL" put crash/batch --batch 2>&1)
        if [ $? -eq 0 ]; then
            stored=20000
        else
            stored=$(printf '%s' "$out" | sed -n 's/.* \([0-9][0-9]*\) records before .*/\1/p')
            stored=${stored:-0}
        fi
        [ "$stored" -gt 0 ] && seq $((base + 1)) $((base + stored)) >> "$T/acked.batch"
        run=$((run + 1))
        [ "$stored" -eq 0 ] && sleep 0.05
        # Paced: a quiet machine otherwise acknowledges millions of records in the 10 s of
        # kills, and checking them all took five minutes; this still puts a batch in
        # flight at most kills.
        sleep 0.15
    done
}

# Objects: a random 200 KiB file each time; acked.objects lists the hashes put returned.
object_writer() {
    : > "$T/acked.objects"
    while [ ! -e "$T/stop" ]; do
        head -c 204800 /dev/urandom > "$T/obj.in"
        if h=$("$OSMOSECTL" object put "$T/obj.in" 2>/dev/null); then
            echo "$h" >> "$T/acked.objects"
        else
            sleep 0.02
        fi
    done
}

osm_start_daemon
object_writer &
w3=$!
single_writer &
w1=$!
batch_writer &
w2=$!

start=$(date +%s)
kills=0
for i in $(seq "$KILLS"); do
    # a random moment: 0.1–0.8 s into this life of the daemon
    sleep "0.$((RANDOM % 8 + 1))"
    kill -KILL "$OSM_PID" 2>/dev/null && kills=$((kills + 1))
    wait "$OSM_PID" 2>/dev/null
    osm_start_daemon
done
touch "$T/stop"
wait "$w1" "$w2" "$w3" 2>/dev/null
elapsed=$(( $(date +%s) - start ))
is "$kills" "$KILLS" "the daemon was killed with SIGKILL $KILLS times while writers streamed ($elapsed s)"

n_single=$(wc -l < "$T/acked.single" | tr -d ' ')
n_batch=$(wc -l < "$T/acked.batch" | tr -d ' ')
ok $(( n_single > 0 && n_batch > 0 ? 0 : 1 )) "writes were acknowledged in between ($n_single single, $n_batch batched)"

ctl --json query crash/single | python3 -c 'import json,sys; [print(json.loads(l)["body"]["n"]) for l in sys.stdin]' |
    sort > "$T/have.single"
ctl --json query crash/batch | python3 -c 'import json,sys; [print(json.loads(l)["body"]["b"]) for l in sys.stdin]' |
    sort > "$T/have.batch"
missing=$(sort "$T/acked.single" | comm -23 - "$T/have.single" | wc -l | tr -d ' ')
is "$missing" 0 "every acknowledged single put survived the kills"
missing=$(sort "$T/acked.batch" | comm -23 - "$T/have.batch" | wc -l | tr -d ' ')
is "$missing" 0 "every acknowledged batched record survived the kills"
dups=$(uniq -d "$T/have.batch" | wc -l | tr -d ' ')
is "$dups" 0 "no batched record was stored twice"

# ids stay unique and increasing across restarts
ctl --json query crash/single | python3 -c '
import json, sys
seqs = [int(json.loads(l)["id"].rsplit("-", 1)[1]) for l in sys.stdin]
sys.exit(0 if len(seqs) == len(set(seqs)) else 1)'
ok $? "record ids are unique across crashes"

n=$(ctl --json collections | python3 -c '
import json,sys
print(sum(c["records"] for c in json.load(sys.stdin)["collections"] if c["name"].startswith("crash/")))')
is "$n" "$(( $(wc -l < "$T/have.single") + $(wc -l < "$T/have.batch") ))" "collection counts match the rows after the crashes"

n_obj=$(wc -l < "$T/acked.objects" | tr -d ' ')
bad=0
while read -r h; do
    got=$(ctl object get "$h" 2>/dev/null | b2sum -l 256 | cut -d' ' -f1)
    [ "$got" = "$h" ] || bad=$((bad + 1))
done < "$T/acked.objects"
ok $(( n_obj > 0 && bad == 0 ? 0 : 1 )) "every acknowledged object is there and intact ($n_obj objects, $bad bad)"
ctl object gc >/dev/null
is "$(ls "$st/objects/tmp" | wc -l | tr -d ' ')" 0 "no temp files are left after the crashes"
files=$(find "$st/objects" -mindepth 2 -type f -not -path "$st/objects/tmp/*" | wc -l | tr -d ' ')
rows=$(ctl --json object ls | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["objects"]))')
is "$files" "$rows" "after gc every object file has its row and every row its file"

osm_stop_daemon TERM
is "$(integrity "$st/store.db")" ok "PRAGMA integrity_check is ok"
ls "$st/objects/tmp" >/dev/null 2>&1; ok $? "the object directory is intact"

done_testing
