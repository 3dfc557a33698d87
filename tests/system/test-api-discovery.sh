#!/bin/bash
# test-api-discovery.sh: the workload API's discovery calls in a small building (rooms are
# network namespaces with their own avahi-daemon): a workload reads the room's services
# with discovery:read, publishes a service of its granted type that another room sees,
# and the service goes when the instance stops or the grant is revoked.
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/rooms.sh"
JGET="python3 $(dirname "$0")/../lib/jget.py"
CLIENT_PY=$OSM_SOURCE_ROOT/tests/system/api-client.py

if ! rooms_check; then
    echo "1..0 # SKIP $ROOMS_SKIP"
    exit 0
fi
osm_setup
trap 'rooms_down; osm_cleanup' EXIT
rooms_up A B || bail "cannot build the rooms"

state_of() { rctl A --json ps --all | $JGET "[i['state'] for i in d['instances'] if i['id']=='$1'][0]"; }
has_service() {   # ROOM TYPE NAME
    rctl "$1" --json services --type "$2" | $JGET "[s for s in d['services'] if s['name'] == '$3'][0]['name']" >/dev/null
}
no_service() { ! has_service "$@"; }
last_line() { rctl A logs "$1" 2>/dev/null | grep '^{' | tail -1; }

room_osmosed_start A gw-a || bail "osmosed in A"
room_osmosed_start B gw-b || bail "osmosed in B"
if [ "$(rctl A --json status | $JGET "[s['health'] for s in d['subsystems'] if s['name']=='sandbox'][0]")" = failed ]; then
    echo "1..0 # SKIP the sandbox cannot run on this host"
    exit 0
fi
mkdir -p "$T/web"
echo '{"name":"web","version":1,"entrypoint":["/usr/bin/python3","/data/api-client.py"],"capabilities":["discovery:read","publish:_http._tcp"]}' \
    > "$T/web/manifest.json"
rctl A bundle build "$T/web" -o "$T/web.osb" >/dev/null || bail "bundle build"
rctl A install "$T/web.osb" --allow-unsigned >/dev/null; ok $? "install a workload that requests discovery grants"
D=$ROOMS_DIR/A/osm/data/web
mkdir -p "$D" && install -m 0644 "$CLIENT_PY" "$D/api-client.py"

room_spawn B "$T/publish-ipp.log" avahi-publish -s "Lab printer" _ipp._tcp 631
wait_until has_service A _ipp._tcp "Lab printer"; ok $? "A's catalog has B's printer"

# --- without the grants
id=$(rctl A run web -- calls '["io.osmose.Api.Services",{}]')
wait_until test "\$(state_of $id)" = exited
like "$(last_line "$id")" '"grant": "discovery:read"' "Services without discovery:read is denied"
id=$(rctl A run web -- publish _http._tcp 8080)
wait_until test "\$(state_of $id)" = exited
like "$(rctl A logs "$id" | grep '^{' | head -1)" '"grant": "publish:_http._tcp"' "Publish without publish:_http._tcp is denied"

# --- discovery:read
rctl A grant web discovery:read >/dev/null
id=$(rctl A run web -- calls '["io.osmose.Api.Services",{"type":"_ipp._tcp"}]')
wait_until test "\$(state_of $id)" = exited
r=$(last_line "$id")
is "$(echo "$r" | $JGET 'd["parameters"]["services"][0]["name"]')" "Lab printer" "with discovery:read the workload sees B's printer"
is "$(echo "$r" | $JGET 'd["parameters"]["services"][0]["port"]')" 631 "…with its port"

# --- publish:_http._tcp
rctl A grant web publish:_http._tcp >/dev/null
id=$(rctl A run web -- publish _http._tcp 8080)
wait_until has_service B _http._tcp web; ok $? "a service the workload publishes in A is seen from room B"
like "$(rctl A logs "$id" | grep '^{' | head -1)" '"type": "_http._tcp"' "Publish answers with the publication"
like "$(rctl A logs "$id" | grep '^{' | sed -n 2p)" '"port": 8080' "Publications lists it"
svc=$(rctl A --json services --type _http._tcp)
like "$svc" '"name": "web"' "osmosectl services in A lists what its workload publishes"
like "$svc" '"published": true' "…marked as published here"
like "$svc" '"port": 8080' "…with its port"
id2=$(rctl A run web -- publish _ssh._tcp 22)
wait_until test "\$(state_of $id2)" = exited
like "$(rctl A logs "$id2" | grep '^{' | head -1)" '"grant": "publish:_ssh._tcp"' "a type that is not granted is denied"
rctl A stop "$id" >/dev/null
wait_until no_service B _http._tcp web; ok $? "the service is withdrawn when the instance stops"

id=$(rctl A run web -- publish _http._tcp 8080)
wait_until has_service B _http._tcp web; ok $? "published again by a new instance"
rctl A revoke web publish:_http._tcp >/dev/null
wait_until no_service B _http._tcp web; ok $? "…and withdrawn when the grant is revoked, the instance still running"
is "$(state_of "$id")" running "…which keeps running"
rctl A stop "$id" >/dev/null
done_testing
