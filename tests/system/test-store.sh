#!/bin/bash
# test-store.sh: the store through a real osmosed and osmosectl: record round trips, batches,
# queries by time, retention, the database budget, bad input, a full disk, and objects
# (fd passing, dedup, gc, encryption at rest).
. "$(dirname "$0")/../lib/common.sh"
osm_setup

count_lines() { wc -l | tr -d ' '; }
integrity() {   # integrity DB: prints "ok" when SQLite finds the database sound
    python3 - "$1" <<'PY'
import sqlite3, sys
c = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True)
print(c.execute("PRAGMA integrity_check").fetchone()[0])
PY
}

osm_start_daemon
st=$T/state

# ---- round trips ----
id=$(ctl put sensors/temp '{"celsius": 21.5}'); ok $? "put from an argument"
like "$id" '^[0-9a-f]{16}-[0-9]+$' "put prints the record id"
id2=$(echo '{"celsius": 22.0, "room": "A"}' | ctl put sensors/temp); ok $? "put from stdin"
out=$(ctl --json query sensors/temp)
is "$(printf '%s\n' "$out" | count_lines)" 2 "query --json: one line per record"
like "$(printf '%s\n' "$out" | head -1)" "\"id\":\"$id\".*\"writer\":\"user:root\".*\"body\":\\{\"celsius\":21.5\\}" \
    "the record comes back with id, writer and body"
# Bodies go into query replies as stored (not parsed and encoded again): what comes
# back is what was put, escapes, non-ASCII, reals and nesting included.
odd='{"x":[1,2.5e300,null,true,{"y":"\u00e9\t\u001f/\ud83d\ude00"}],"big":-12345678901234,"f":0.1,"e":{},"s":"a\"b\\c"}'
printf '%s\n' "$odd" | ctl put sensors/odd --batch >/dev/null; ok $? "put a body with escapes, non-ASCII and reals"
out=$(ctl call io.osmose.Store.Query '{"collection":"sensors/odd"}')
python3 - "$odd" "$out" <<'PY'
import json, sys
want, got = json.loads(sys.argv[1]), json.loads(sys.argv[2])
assert got["records"][0]["body"] == want and got["records"][0]["collection"] == "sensors/odd", got
PY
ok $? "…and the query reply carries the same body"
# A batch's records are stored as the text they came in when that is the text the encoder
# would write, else encoded again: either way the same bytes as records sent one by one.
# (The second set has what the quick check leaves to jansson: \u escapes, long integers.)
cat > "$T/forms1.jsonl" <<'EOF2'
{"celsius":18.10,"n":-0,"z":0.0,"e":1e5,"E":-2.5E-3,"w":19.00,"r":123456789012345.6,"small":0.00001,"f":0.0012}
{ "spaced" : [ 1 , 2 ] ,	"t" : true }
{"s":"a\/b\bc\fd\"\\\n","u":"café 😀","k":{"x":[{"y":null}]},"big":123456789012345678}
{"sensor":"room-a/t1","celsius":18.01,"seq":1}
EOF2
cat > "$T/forms2.jsonl" <<'EOF2'
{"s":"\u0041\u00e9\ud83d\ude00"}
{"big":9223372036854775807,"neg":-9223372036854775808}
EOF2
for f in forms1 forms2; do
    for i in $(seq 40); do echo "{\"pad\":$i,\"v\":\"$(printf 'x%.0s' $(seq 20))\"}"; done >> "$T/$f.jsonl"
    ctl put $f/all --batch < "$T/$f.jsonl" >/dev/null; ok $? "put a batch of records in many forms ($f)"
    while IFS= read -r line; do printf '%s\n' "$line" | ctl put $f/one --batch >/dev/null || echo fail; done \
        < "$T/$f.jsonl" > "$T/$f.out"
    is "$(cat "$T/$f.out")" "" "…and each of them alone"
    python3 - "$st/store.db" $f $(wc -l < "$T/$f.jsonl") <<'PY'
import sqlite3, sys
c = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True)
def bodies(name):
    return [r[0] for r in c.execute("SELECT body FROM records WHERE coll=(SELECT id FROM collections WHERE name=?) "
                                    "ORDER BY ts, seq", (name,))]
a, b = bodies(sys.argv[2] + "/all"), bodies(sys.argv[2] + "/one")
assert len(a) == int(sys.argv[3]) and a == b, (a, b)
PY
    ok $? "…are stored as the same bytes"
done
out=$(ctl query sensors/temp)
like "$out" 'TIME +ID +WRITER +BODY' "query prints a table"
like "$out" "$id2 +user:root +\\{\"celsius\":22.0,\"room\":\"A\"\\}" "…with the body as compact JSON"

# batch: streamed JSON Lines
seq 1 25000 | sed 's/.*/{"n":&,"v":"reading"}/' > "$T/lines"
out=$(ctl put sensors/batch --batch < "$T/lines"); ok $? "put --batch of 25000 lines"
is "$out" "stored 25000 records in sensors/batch" "…reports how many were stored"
n=$(ctl --json query sensors/batch | count_lines); is "$n" 25000 "query pages through all 25000"
first=$(ctl --json query sensors/batch --limit 1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["body"]["n"])')
is "$first" 1 "records keep line order"
last=$(ctl --json query sensors/batch --limit 1 --reverse | python3 -c 'import json,sys; print(json.load(sys.stdin)["body"]["n"])')
is "$last" 25000 "--reverse: newest first"
n=$(ctl --json query sensors/batch --limit 1234 | count_lines); is "$n" 1234 "--limit across pages"

# a bad line: a clear error with its line number; the lines before it stay stored
printf '{"ok":1}\n{"ok":2}\n\n{"ok":3}\n{"broken":\n{"ok":5}\n' > "$T/bad.jsonl"
out=$(ctl put sensors/bad --batch < "$T/bad.jsonl" 2>&1); rc=$?
is "$rc" 1 "a bad line fails the batch"
like "$out" '^osmosectl: put: line 5: invalid JSON' "…naming line 5"
like "$out" '3 records before it are stored' "…and saying what was stored"
is "$(printf '%s\n' "$out" | count_lines)" 1 "…in one line"
is "$(ctl --json query sensors/bad | count_lines)" 3 "the 3 records before the bad line are there"

# time ranges
ctl put sensors/time '{"at":"past"}' >/dev/null
sleep 1.2
mark=$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)
ctl put sensors/time '{"at":"now"}' >/dev/null
out=$(ctl --json query sensors/time --since "$mark"); like "$out" '"at":"now"' "--since RFC 3339"
is "$(printf '%s\n' "$out" | count_lines)" 1 "…excludes the older record"
out=$(ctl --json query sensors/time --until "$mark"); like "$out" '"at":"past"' "--until RFC 3339"
is "$(ctl --json query sensors/time --since -1s | count_lines)" 1 "--since -1s (relative)"
is "$(ctl --json query sensors/time --since -1h | count_lines)" 2 "--since -1h"
out=$(ctl query sensors/time --since yesterday-ish 2>&1); rc=$?
is "$rc" 2 "a bad time is refused (a usage error)"; like "$out" "query: --since 'yesterday-ish': expected RFC 3339" "…clearly"
out=$(ctl query sensors/time --limit -3 2>&1); like "$out" "query: --limit '-3'" "a bad limit is refused"
out=$(ctl query no/such 2>&1); rc=$?
is "$rc" 1 "query of a missing collection fails"; like "$out" "no collection named 'no/such' \(see 'osmosectl collections'\)" "…saying so"

# collections
out=$(ctl collections); like "$out" 'NAME +RECORDS +BYTES +OLDEST +NEWEST +RETENTION' "collections table"
like "$out" 'sensors/batch +25000 ' "…with record counts"
c=$(ctl --json collections | python3 -c '
import json,sys
for c in json.load(sys.stdin)["collections"]:
    if c["name"] == "sensors/batch": print(c["records"], c["bytes"] > 0, c["oldest"] <= c["newest"])')
is "$c" "25000 True True" "collections --json: records, bytes, oldest/newest"

# ---- bad input ----
out=$(ctl put sensors/temp '{"celsius": }' 2>&1); rc=$?
is "$rc" 1 "invalid JSON body is refused"; like "$out" 'put: invalid JSON at line 1' "…with where"
out=$(ctl put 'a/../b' '{}' 2>&1); rc=$?; is "$rc" 2 "a name with .. is refused (a usage error)"
like "$out" "invalid collection name 'a/../b'" "…clearly"
out=$(ctl put "$(printf 'bad\tname')" '{}' 2>&1); rc=$?; is "$rc" 2 "a name with a control character is refused"
out=$(ctl put "$(head -c 200 /dev/zero | tr '\0' a)" '{}' 2>&1); rc=$?; is "$rc" 2 "an over-long name is refused"
# the same checks in the daemon, for clients other than osmosectl
out=$(ctl call io.osmose.Store.Put '{"collection":"x/../y","body":{}}' 2>&1)
like "$out" 'io.osmose.Store.InvalidName' "the daemon refuses .. too"
out=$(ctl call io.osmose.Store.Put "{\"collection\":\"x\\u0001y\",\"body\":{}}" 2>&1)
like "$out" 'io.osmose.Store.InvalidName' "…and control characters"
big=$(head -c 300000 /dev/zero | tr '\0' x)
out=$(printf '{"big":"%s"}' "$big" | ctl put sensors/temp 2>&1); rc=$?
is "$rc" 1 "a record over max-record-size is refused"
like "$out" 'over the limit of 256.0 KiB \(max-record-size\).*raise store.max-record-size' "…naming the limit and the fix"
printf '{"a":1}\n{"a":2}\n{"big":"%s"}\n{"a":4}\n' "$big" > "$T/big.jsonl"
out=$(ctl put sensors/big --batch < "$T/big.jsonl" 2>&1); rc=$?
is "$rc" 1 "a batch with a record over the limit fails"
like "$out" 'line 3: .*over the limit.*2 records before it are stored' "…at line 3, 2 stored"
is "$(ctl --json query sensors/big | count_lines)" 2 "…and they are"
out=$(ctl call io.osmose.Store.Query '{"collection":"sensors/temp","cursor":"nonsense"}' 2>&1)
like "$out" 'invalid cursor' "a bad cursor is refused"
out=$(ctl call io.osmose.Store.Query '{"collection":"sensors/temp","since":10,"until":5}' 2>&1)
like "$out" 'InvalidParameter' "since after until is refused"
out=$(ctl call io.osmose.Store.PutBatch '{"collection":"x","records":[]}' 2>&1)
like "$out" 'a batch holds 1 to 10000 records' "an empty batch is refused"
out=$(ctl object get nothex 2>&1); rc=$?; is "$rc" 2 "object get of a non-hash fails (a usage error)"
like "$out" "'nothex' is not an object hash" "…clearly"
out=$(ctl call io.osmose.Store.ObjectGet '{"hash":"../../etc/passwd"}' 2>&1)
like "$out" 'io.osmose.Store.InvalidHash' "the daemon refuses a path as a hash"
out=$(ctl object get 0000000000000000000000000000000000000000000000000000000000000000 2>&1); rc=$?
is "$rc" 1 "object get of a missing object fails"; like "$out" "no object 0{64} \(see 'osmosectl object ls'\)" "…saying so"
out=$(ctl call io.osmose.Store.ObjectPut '{}' 2>&1)
like "$out" 'pass exactly one file descriptor' "ObjectPut without an fd is refused"
ctl call org.varlink.service.GetInfo >/dev/null; ok $? "the daemon keeps serving after all that"

# ---- watch (a stream) ----
ctl call io.osmose.Store.Watch '{"pattern":"watched/*"}' --more > "$T/watch.out" 2>&1 &
wpid=$!
sleep 0.3
ctl put watched/a '{"w":1}' >/dev/null; ctl put other '{"w":2}' >/dev/null; ctl put watched/b '{"w":3}' >/dev/null
for i in $(seq 50); do [ "$(count_lines < "$T/watch.out")" -ge 2 ] && break; sleep 0.05; done
kill "$wpid" 2>/dev/null; wait "$wpid" 2>/dev/null
is "$(count_lines < "$T/watch.out")" 2 "a watch streams the matching committed records"
like "$(cat "$T/watch.out")" '"w":3' "…as they are committed"

# ---- retention ----
seq 1 3000 | sed 's/.*/{"n":&}/' | ctl put ret/count --batch >/dev/null
out=$(ctl retention ret/count --max-records 1000); is "$out" "ret/count: 1000 records" "set --max-records"
for i in $(seq 100); do
    n=$(ctl --json collections | python3 -c 'import json,sys; print([c["records"] for c in json.load(sys.stdin)["collections"] if c["name"]=="ret/count"][0])')
    [ "$n" = 1000 ] && break; sleep 0.1
done
is "$n" 1000 "retention trims to 1000 records in the background"
first=$(ctl --json query ret/count --limit 1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["body"]["n"])')
is "$first" 2001 "…dropping the oldest"
out=$(ctl retention ret/count --max-age 7d); is "$out" "ret/count: 7d, 1000 records" "limits not given stay"
out=$(ctl retention ret/count --max-records 0); is "$out" "ret/count: 7d" "0 removes a limit"
ctl put ret/age '{"old":1}' >/dev/null; sleep 1.5; ctl put ret/age '{"new":1}' >/dev/null
ctl retention ret/age --max-age 1s >/dev/null
for i in $(seq 60); do
    n=$(ctl --json query ret/age | count_lines); [ "$n" = 1 ] && break; sleep 0.1
done
like "$(ctl --json query ret/age)" '"new":1' "--max-age drops records older than the age"
seq 1 2000 | sed 's/.*/{"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx","n":&}/' |
    ctl put ret/bytes --batch >/dev/null
ctl retention ret/bytes --max-bytes 10K >/dev/null
for i in $(seq 100); do
    b=$(ctl --json collections | python3 -c 'import json,sys; print([c["bytes"] for c in json.load(sys.stdin)["collections"] if c["name"]=="ret/bytes"][0])')
    [ "$b" -le 10240 ] && break; sleep 0.1
done
ok $(( b <= 10240 && b > 9000 ? 0 : 1 )) "--max-bytes trims to just under the limit ($b bytes)"
out=$(ctl retention ret/count --max-age soon 2>&1); like "$out" "max-age 'soon'" "a bad duration is refused"
out=$(ctl retention nope/x --max-age 1d 2>&1); is "$?" 1 "retention of a collection that does not exist fails"
like "$out" "nope/x" "…naming it"
ctl --json collections | grep -q '"nope/x"'; ok $((! $?)) "…and does not make it"
out=$(ctl retention nope/x --max-age 1d --create); ok $? "retention --create makes it"
like "$(ctl --json collections)" '"nope/x"' "…as collections shows"
like "$out" "nope/x: 1d" "…with the limit"
out=$(ctl retention nope 2>&1); like "$out" "no collection 'nope'" "showing retention of a missing collection fails"

# ---- objects ----
head -c 5000000 /dev/urandom > "$T/blob"
h=$(ctl object put "$T/blob"); ok $? "object put FILE"
is "$h" "$(b2sum -l 256 "$T/blob" | cut -d' ' -f1)" "the hash is BLAKE2b-256, as b2sum -l 256 computes it"
test -f "$st/objects/${h:0:2}/${h:2}"; ok $? "stored as objects/ab/cdef…"
h2=$(ctl object put - < "$T/blob"); is "$h2" "$h" "object put - (stdin) gives the same hash"
h3=$(cat "$T/blob" | ctl object put -); is "$h3" "$h" "…also from a pipe"
is "$(find "$st/objects" -type f | wc -l | tr -d ' ')" 1 "identical content is stored once"
ctl object get "$h" -o "$T/back"; ok $? "object get -o FILE"
cmp -s "$T/blob" "$T/back"; ok $? "…round trip is byte-identical"
ctl object get "$h" | cmp -s - "$T/blob"; ok $? "object get to stdout"
out=$(ctl object ls); like "$out" "$h +4.8 MiB +0 +yes +no" "object ls"
: > "$T/empty"
he=$(ctl object put "$T/empty"); is "$he" "$(b2sum -l 256 "$T/empty" | cut -d' ' -f1)" "an empty object"
ctl object get "$he" -o "$T/empty.back" && [ ! -s "$T/empty.back" ]; ok $? "…reads back empty"
out=$(ctl object put "$T" 2>&1); like "$out" "is a directory" "object put of a directory is refused"
out=$(ctl object put "$T/missing" 2>&1); like "$out" "cannot open '$T/missing'" "object put of a missing file is refused"
# corrupt the stored file: get notices through the hash
cp "$st/objects/${h:0:2}/${h:2}" "$T/saved"
printf 'X' | dd of="$st/objects/${h:0:2}/${h:2}" bs=1 seek=100 conv=notrunc 2>/dev/null
out=$(ctl object get "$h" -o "$T/corrupt" 2>&1); rc=$?
is "$rc" 1 "object get of a corrupted object fails"
like "$out" 'does not match its hash' "…saying why"
test ! -e "$T/corrupt"; ok $? "…and leaves no output file"
cp "$T/saved" "$st/objects/${h:0:2}/${h:2}"
out=$(ctl object rm "$h"); is "$out" "deleted" "object rm deletes an unreferenced object"
test ! -e "$st/objects/${h:0:2}/${h:2}"; ok $? "…and its file"
out=$(ctl object rm "$h" 2>&1); like "$out" "no object $h" "rm twice: no such object"
mkdir -p "$st/objects/ee"; touch "$st/objects/ee/$(printf '%062d' 7)"
out=$(ctl object gc); is "$out" "removed 1" "object gc removes a stray file"
test ! -e "$st/objects/ee/$(printf '%062d' 7)"; ok $? "…it is gone"
is "$(ls "$st/objects/tmp" | wc -l | tr -d ' ')" 0 "no temp files are left behind"
# a writer that stalls does not block other calls
mkfifo "$T/fifo"
ctl object put "$T/fifo" > "$T/fifo.out" 2>&1 &
opid=$!
exec 7>"$T/fifo"
sleep 0.2
ctl call org.varlink.service.GetInfo >/dev/null; ok $? "the daemon answers while an object upload waits for data"
printf 'late data' >&7; exec 7>&-
wait "$opid"; ok $? "…and the upload completes when data comes"
is "$(cat "$T/fifo.out")" "$(printf 'late data' | b2sum -l 256 | cut -d' ' -f1)" "…with the right hash"

is "$(integrity "$st/store.db")" ok "PRAGMA integrity_check is ok"
osm_stop_daemon TERM
is "$OSM_EXIT" 0 "daemon stops cleanly"

# ---- encryption at rest ----
OSM_STATE=$T/enc
mkdir -p "$T/enc"
printf '[store]\nencrypt-objects = yes\n' > "$T/enc/osmosed.conf"
osm_start_daemon
printf 'TOPSECRET-%.0s' $(seq 1000) > "$T/secret"
h=$(ctl object put "$T/secret"); is "$h" "$(b2sum -l 256 "$T/secret" | cut -d' ' -f1)" "encrypted put: hash of the plaintext"
perm=$(stat -c %a "$T/enc/object.key"); is "$perm" 600 "object.key is 0600"
grep -q TOPSECRET "$T/enc/objects/${h:0:2}/${h:2}"; ok $((! $?)) "the stored file does not hold the plaintext"
ctl object get "$h" | cmp -s - "$T/secret"; ok $? "object get decrypts"
out=$(ctl --json object ls); like "$out" '"encrypted": true' "object ls shows it encrypted"
# tamper with the ciphertext: the reader stops, get reports it
printf 'X' | dd of="$T/enc/objects/${h:0:2}/${h:2}" bs=1 seek=200 conv=notrunc 2>/dev/null
out=$(ctl object get "$h" -o "$T/tampered" 2>&1); rc=$?
is "$rc" 1 "a tampered encrypted object fails to read"
like "$out" 'shorter or longer|does not match' "…clearly"
osm_stop_daemon TERM
unset OSM_STATE

# ---- database budget ----
OSM_STATE=$T/budget
mkdir -p "$T/budget"
printf '[store]\ndb-budget = 512K\n' > "$T/budget/osmosed.conf"
osm_start_daemon
pad=$(head -c 1000 /dev/zero | tr '\0' p)
seq 1 3000 | sed "s/.*/{\"n\":&,\"pad\":\"$pad\"}/" > "$T/fill.jsonl"
out=$(ctl put fill --batch < "$T/fill.jsonl" 2>&1); rc=$?
is "$rc" 1 "writes past the database budget fail"
like "$out" 'database budget \(512.0 KiB\) is reached; raise' "…with a clear error"
stored=$(printf '%s' "$out" | sed -n 's/.* \([0-9][0-9]*\) records before .*/\1/p')
n=$(ctl --json query fill | count_lines)
is "$n" "$stored" "every record the error called stored is there ($n)"
out=$(ctl put fill '{"one":"more"}' 2>&1); like "$out" 'database budget .* is reached' "a single put is refused too"
out=$(ctl status); like "$out" 'store +degraded +database .* of 512.0 KiB budget \(full' "status says the store is full"
ctl retention fill --max-records 100 >/dev/null
for i in $(seq 100); do ctl put fill '{"after":"retention"}' >/dev/null 2>&1 && break; sleep 0.1; done
ok $? "after retention freed space, writes work again"
is "$(integrity "$T/budget/store.db")" ok "integrity_check ok after the budget was hit"
osm_stop_daemon TERM
unset OSM_STATE

# ---- a disk that fills mid-write ----
if [ "$(id -u)" -ne 0 ] || ! mkdir -p "$T/small" || ! mount -t tmpfs -o size=4m tmpfs "$T/small" 2>/dev/null; then
    skip "disk full: records" "needs root to mount a small tmpfs"
else
    OSM_STATE=$T/small/state
    osm_start_daemon
    pad=$(head -c 2000 /dev/zero | tr '\0' q)
    seq 1 5000 | sed "s/.*/{\"n\":&,\"pad\":\"$pad\"}/" > "$T/disk.jsonl"
    out=$(ctl put disk --batch < "$T/disk.jsonl" 2>&1); rc=$?
    is "$rc" 1 "a full disk fails the batch"
    like "$out" 'no space left on the device holding the state directory' "…with a clear error"
    stored=$(printf '%s' "$out" | sed -n 's/.* \([0-9][0-9]*\) records before .*/\1/p')
    n=$(ctl --json query disk | count_lines)
    ok $(( n >= stored && stored > 0 ? 0 : 1 )) "every acknowledged record is there ($stored acknowledged, $n stored)"
    ctl call org.varlink.service.GetInfo >/dev/null; ok $? "the daemon keeps serving with a full disk"
    out=$(ctl object put "$T/blob" 2>&1); rc=$?
    is "$rc" 1 "an object put on a full disk fails"
    like "$out" 'no space left on the device|StoreError|failed' "…with an error ($out)"
    is "$(ls "$T/small/state/objects/tmp" | wc -l | tr -d ' ')" 0 "…and leaves no temp file"
    is "$(integrity "$T/small/state/store.db")" ok "integrity_check ok after the disk filled"
    osm_stop_daemon KILL
    osm_start_daemon
    n2=$(ctl --json query disk | count_lines)
    is "$n2" "$n" "after a SIGKILL and restart on the full disk, nothing is lost"
    osm_stop_daemon TERM
    umount "$T/small"
    unset OSM_STATE
fi

# objects are bounded too: a size cap per object and free space kept on the state fs
OSM_STATE=$T/objcap
mkdir -p "$OSM_STATE"
printf '[store]\nmax-object-size = 1M\n' > "$OSM_STATE/osmosed.conf"
osm_start_daemon
head -c 2000000 /dev/urandom > "$T/twomeg"
out=$(ctl object put "$T/twomeg" 2>&1); rc=$?
is "$rc" 1 "an object over max-object-size is refused"
like "$out" 'larger than max-object-size' "…saying it is larger than max-object-size"
is "$(ls "$OSM_STATE/objects/tmp" 2>/dev/null | wc -l | tr -d ' ')" 0 "…and leaves no temp file"
is "$(ctl --json object ls | tr -d ' \n')" '{"objects":[]}' "…and nothing is listed"
head -c 500000 /dev/urandom > "$T/halfmeg"
ctl object put "$T/halfmeg" >/dev/null; ok $? "an object under the cap is stored"
# min-free above what is free now, with a margin: other processes on the machine may free
# some space between this df and the put (a build directory removed) and must not make
# the refusal flaky.
avail=$(( $(df --output=avail -B1 "$OSM_STATE" | tail -1) + 1024 * 1024 * 1024 ))
osm_stop_daemon TERM
printf '[store]\nmin-free = %s\n' "$avail" > "$OSM_STATE/osmosed.conf"
osm_start_daemon
out2=$(ctl object put "$T/twomeg" 2>&1); rc2=$?
is "$rc2" 1 "an object that would eat into min-free is refused"
like "$out2" 'no space left on the device' "…as a full disk, before the disk is full"
osm_stop_daemon TERM
unset OSM_STATE

grep -E 'ERROR: AddressSanitizer|runtime error:|LeakSanitizer' "$T/daemon.log" | head -5 | sed 's/^/# /'
! grep -qE 'ERROR: AddressSanitizer|runtime error:|LeakSanitizer' "$T/daemon.log"
ok $? "no sanitizer report in the daemon's log"

done_testing
