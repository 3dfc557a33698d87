#!/bin/bash
# test-erase.sh: delete COLLECTION erases records for good: all of them, those before a time,
# those of one writer; their bytes are gone from the database file and its WAL (checked by
# grepping the files), the rest stays, and the erasure is recorded.
. "$(dirname "$0")/../lib/common.sh"
osm_setup
osm_start_daemon

# Records with markers that occur nowhere else, so a grep over the files finds exactly them.
old_marker="OLDSECRET$$x$RANDOM"
new_marker="NEWKEEP$$y$RANDOM"
ctl put people/visits "{\"who\":\"$old_marker-0\"}" >/dev/null
for i in $(seq 50); do echo "{\"who\":\"$old_marker-$i\",\"pad\":\"$(head -c 200 /dev/zero | tr '\0' x)\"}"; done |
    ctl put people/visits --batch >/dev/null
sleep 0.1
cut=$(date +%s%6N)
sleep 0.1
for i in $(seq 20); do echo "{\"who\":\"$new_marker-$i\"}"; done | ctl put people/visits --batch >/dev/null
db="$T/state/store.db"
[ -f "$db" ] || db=$(ls "$T"/state/*.db | grep -v workloads | head -1)
in_files() { cat "$db" "$db-wal" 2>/dev/null | grep -c -a "$1"; }
[ "$(in_files "$old_marker")" -gt 0 ]; ok $? "before: the old records' bytes are in the database files"

out=$(ctl delete people/visits --until "$cut"); ok $? "delete --until T"
like "$out" "people/visits: erased 51 records" "…says how many it erased"
is "$(in_files "$old_marker")" 0 "…and their bytes are gone from the database and its WAL"
[ "$(in_files "$new_marker")" -gt 0 ]; ok $? "…while the newer records' are still there"
is "$(ctl --json query people/visits | grep -c "$new_marker")" 20 "…and query returns the 20 newer ones"
is "$(ctl --json query people/visits | grep -c "$old_marker")" 0 "…and none of the erased"
n=$(ctl --json collections | python3 -c 'import json,sys; print([c["records"] for c in json.load(sys.stdin)["collections"] if c["name"]=="people/visits"][0])')
is "$n" 20 "collections counts what is left"
wal=$(stat -c %s "$db-wal" 2>/dev/null || echo 0)
[ "$wal" -lt 100000 ]; ok $? "the WAL was truncated after the erasure ($wal bytes)"

# --where-writer: records of one writer only (a remote, a peer, a workload: here users)
ctl put people/badges '{"b":"mine"}' >/dev/null
me=$(ctl --json query people/badges | python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["writer"])')
out=$(ctl delete people/badges --where-writer "someone:else"); like "$out" "erased 0 records" "delete --where-writer of another writer erases nothing"
out=$(ctl delete people/badges --where-writer "$me"); like "$out" "erased 1 records" "delete --where-writer $me erases that writer's records"

# everything
out=$(ctl delete people/visits); like "$out" "erased 20 records" "delete COLLECTION erases every record"
is "$(in_files "$new_marker")" 0 "…their bytes too"
like "$(ctl collections)" "people/visits" "…the collection stays (with its retention)"

# errors
out=$(ctl delete nope/x 2>&1); is "$?" 1 "delete of a collection that does not exist fails"
like "$out" "nope/x" "…naming it"
ctl delete >/dev/null 2>&1; is "$?" 2 "delete without a collection: usage error"
ctl delete people/visits --until someday >/dev/null 2>&1; is "$?" 2 "delete --until with a bad time: usage error"
like "$(ctl --json delete people/visits)" '"deleted": 0' "delete --json prints what it erased"

# object rm: the file and every trace of it in the database files
printf 'OBJSECRET%s\n' "$$" > "$T/secret.txt"
H=$(ctl object put "$T/secret.txt" | grep -Eo '[0-9a-f]{64}' | head -1)
like "$H" '^[0-9a-f]{64}$' "object put"
[ "$(in_files "$H")" -gt 0 ]; ok $? "…its row is in the database files"
ctl object rm "$H" >/dev/null; ok $? "object rm"
is "$(find "$T/state/objects" -type f -name "*${H:2}*" | wc -l)" 0 "…its file is unlinked"
is "$(in_files "$H")" 0 "…and its hash is gone from the database and its WAL"
is "$(grep -rl -a "OBJSECRET$$" "$T/state" 2>/dev/null | wc -l)" 0 "…and its content from the whole state directory"

# recorded
if command -v sqlite3 >/dev/null; then
    is "$(sqlite3 "$db" 'select count(*) from erasures')" 5 "every erasure is recorded in the erasures table"
    is "$(sqlite3 "$db" "select records from erasures where collection='people/visits' order by time limit 1")" 51 "…with its count"
    is "$(sqlite3 "$db" "select count(*) from erasures where until is not null")" 1 "…and its bound"
fi
like "$(cat "$T/daemon.log")" "erased 20 records of people/visits on request" "…and in the daemon's log"
done_testing
