#!/bin/bash
# test-protocol.sh: the replies and errors a real osmosed sends, checked field by field
# against their declarations in the .varlink files (tests/lib/varlink-check.py, which
# reads the interface files and speaks Varlink on its own): every read-only method of
# the control socket, and the errors of calls that must fail.
. "$(dirname "$0")/../lib/common.sh"
osm_setup
osm_start_daemon
IFACES=$OSM_SOURCE_ROOT/src/lib/interfaces

# Something to list: a record, an object, a trusted key.
ctl put sensors/temp '{"celsius": 21.5}' >/dev/null; ok $? "a record to query"
printf 'blob' > "$T/blob"; hash=$(ctl --json object put "$T/blob" | python3 -c 'import json,sys; print(json.load(sys.stdin)["hash"])')
like "$hash" '^[0-9a-f]{64}$' "an object to list"
pub=$(ctl keygen -o "$T/key"); ctl trust add "$pub" >/dev/null; ok $? "a trusted key to list"

zero=0000000000000000000000000000000000000000000000000000000000000000
cat > "$T/calls.json" <<JSON
[
 {"method": "org.varlink.service.GetInfo"},
 {"method": "org.varlink.service.GetInterfaceDescription", "parameters": {"interface": "io.osmose.Store"}},
 {"method": "io.osmose.Daemon.GetStatus"},
 {"method": "io.osmose.Daemon.GetStatus", "parameters": {"details": true}},
 {"method": "io.osmose.Store.Collections"},
 {"method": "io.osmose.Store.Query", "parameters": {"collection": "sensors/temp"}},
 {"method": "io.osmose.Store.Query", "parameters": {"collection": "sensors/temp", "limit": 1, "reverse": true}},
 {"method": "io.osmose.Store.ObjectList"},
 {"method": "io.osmose.Workload.TrustList"},
 {"method": "io.osmose.Workload.List"},
 {"method": "io.osmose.Workload.Instances"},
 {"method": "io.osmose.Federation.GetStatus"},
 {"method": "io.osmose.Federation.ListRemotes"},
 {"method": "io.osmose.Federation.Audit", "parameters": {"limit": 10}},
 {"method": "io.osmose.Discovery.Peers"},
 {"method": "io.osmose.Discovery.Services"},
 {"method": "io.osmose.Channel.List"},

 {"method": "org.varlink.service.GetInterfaceDescription", "parameters": {"interface": "com.example.Nope"},
  "want": "org.varlink.service.InterfaceNotFound"},
 {"method": "io.osmose.Daemon.GetStatus", "parameters": {"evil": true}, "want": "org.varlink.service.InvalidParameter"},
 {"method": "io.osmose.Store.Query", "parameters": {"collection": "sensors/temp", "since": 10, "until": 5},
  "want": "org.varlink.service.InvalidParameter"},
 {"method": "io.osmose.Store.Query", "parameters": {"collection": "no/such"}, "want": "io.osmose.Store.NoSuchCollection"},
 {"method": "io.osmose.Store.Watch", "parameters": {"pattern": "sensors/*"}, "want": "org.varlink.service.InvalidParameter"},
 {"method": "io.osmose.Store.ObjectGet", "parameters": {"hash": "nope"}, "want": "io.osmose.Store.InvalidHash"},
 {"method": "io.osmose.Store.ObjectGet", "parameters": {"hash": "$zero"}, "want": "io.osmose.Store.NoSuchObject"},
 {"method": "io.osmose.Store.ObjectPut", "want": "io.osmose.InvalidMessage"},
 {"method": "io.osmose.Workload.TrustAdd", "parameters": {"public_key": "not-a-key"},
  "want": "org.varlink.service.InvalidParameter"},
 {"method": "io.osmose.Workload.TrustRemove", "parameters": {"public_key": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
  "want": "io.osmose.NotFound"},
 {"method": "io.osmose.Workload.Logs", "parameters": {"instance": "none-1"}, "want": "io.osmose.NotFound"},
 {"method": "io.osmose.Workload.Stats", "parameters": {"instance": "none-1"}, "want": "io.osmose.NotFound"},
 {"method": "io.osmose.Workload.Run", "parameters": {"name": "none"}, "want": "io.osmose.NotFound"},
 {"method": "io.osmose.Workload.Grant", "parameters": {"name": "none", "capability": "network"}, "want": "io.osmose.NotFound"},
 {"method": "io.osmose.Workload.Install", "want": "io.osmose.InvalidMessage"},
 {"method": "io.osmose.Workload.Install", "parameters": {"url": "ftp://x"}, "want": "org.varlink.service.InvalidParameter"},
 {"method": "io.osmose.Federation.RemoveRemote", "parameters": {"name": "nobody"},
  "want": "io.osmose.Federation.RemoteNotFound"},
 {"method": "io.osmose.Federation.FetchObject", "parameters": {"remote": "nobody", "hash": "$zero"},
  "want": "io.osmose.Federation.RemoteNotFound"},
 {"method": "io.osmose.Discovery.Trust", "parameters": {"id": "x"}, "want": "org.varlink.service.InvalidParameter"},
 {"method": "io.osmose.Channel.Unfollow", "parameters": {"name": "none"}, "want": "io.osmose.NotFound"}
]
JSON
python3 "$OSM_SOURCE_ROOT/tests/lib/varlink-check.py" "$OSMOSE_SOCKET" "$IFACES" "$T/calls.json" > "$T/check.out" 2>&1
ok $? "the checker ran"
n=0
while IFS= read -r line; do
    n=$((n + 1))
    case "$line" in
        PASS\ *) ok 0 "${line#PASS }" ;;
        FAIL\ *) ok 1 "${line#FAIL }" ;;
        *) ok 1 "checker: $line" ;;
    esac
done < "$T/check.out"
is "$n" "$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$T/calls.json")" "every call was checked"

# The checker itself must catch a wrong reply: feed it a declaration the daemon does not meet.
mkdir -p "$T/ifaces" && cp "$IFACES"/*.varlink "$T/ifaces/"
sed -i 's/^method ObjectList() -> (objects: \[\]Object)/method ObjectList() -> (objects: []Object, total: int)/' "$T/ifaces/io.osmose.Store.varlink"
echo '[{"method": "io.osmose.Store.ObjectList"}]' > "$T/one.json"
out=$(python3 "$OSM_SOURCE_ROOT/tests/lib/varlink-check.py" "$OSMOSE_SOCKET" "$T/ifaces" "$T/one.json")
like "$out" '^FAIL .*reply.total: missing' "a reply missing a declared field is caught"

done_testing
