#!/bin/bash
# test-federation-netns.sh: the receiver in a network namespace of its own, joined to
# the sender by a veth pair; the link is cut for real (the interface goes down, packets
# vanish, the kept-alive connection goes silent) while records keep coming, then comes
# back: the queue says so meanwhile, and everything arrives once.
. "$(dirname "$0")/../lib/common.sh"
osm_setup
command -v jq >/dev/null || { echo "1..0 # SKIP jq is not installed"; exit 0; }
[ "$(id -u)" = 0 ] || { echo "1..0 # SKIP needs root for network namespaces"; exit 0; }
command -v ip >/dev/null || { echo "1..0 # SKIP iproute2 (ip) is not installed"; exit 0; }

NS=osmfed$$
HA=vfa$$; HB=vfb$$
ip netns add "$NS" 2>/dev/null || { echo "1..0 # SKIP cannot create a network namespace"; exit 0; }
net_cleanup() { ip link del "$HA" 2>/dev/null; ip netns del "$NS" 2>/dev/null; osm_cleanup; }
trap net_cleanup EXIT
# A subnet of our own: other checkouts may run this test at the same time.
SUB=$(( $$ % 240 + 10 ))
while ip -4 addr show | grep -q "inet 10\.231\.$SUB\."; do SUB=$(( SUB % 250 + 1 )); done
A_IP=10.231.$SUB.1; B_IP=10.231.$SUB.2
ip link add "$HA" type veth peer name "$HB"
ip link set "$HB" netns "$NS"
ip addr add "$A_IP/24" dev "$HA"; ip link set "$HA" up
ip -n "$NS" addr add "$B_IP/24" dev "$HB"; ip -n "$NS" link set "$HB" up; ip -n "$NS" link set lo up

# b runs inside the namespace (its control socket is a path, reachable from here).
cat > "$T/osmosed-in-ns" <<EOS
#!/bin/sh
exec ip netns exec $NS "$OSMOSED" "\$@"
EOS
chmod +x "$T/osmosed-in-ns"

on() { local s=$1; shift; OSMOSE_SOCKET=$T/$s/osmosed.sock "$OSMOSECTL" "$@"; }
jget() { on "$1" --json "${@:3}" | jq -r "$2"; }
remote_field() { jget "$1" ".remotes[] | select(.name==\"$2\") | .$3" remote ls; }
state_is() { [ "$(remote_field "$1" "$2" state)" = "$3" ]; }
put_n() {
    local recs
    recs=$(jq -cn --argjson n "$2" --arg tag "$3" '[range($n) | {n: ., tag: $tag}]')
    on "$1" call io.osmose.Store.PutBatch "{\"collection\":\"t/x\",\"records\":$recs}" >/dev/null
}
count_b() { on b --json call io.osmose.Store.Query '{"collection":"t/x","limit":1000}' 2>/dev/null | jq '.records | length'; }
has_n() { [ "$(count_b)" = "$1" ]; }

OSM_STATE=$T/a OSM_NAME=a osm_start_daemon
OSMOSED=$T/osmosed-in-ns OSM_STATE=$T/b OSM_NAME=b osm_start_daemon
PID_b=$OSM_PID
ip netns identify "$PID_b" | grep -qx "$NS"; ok $? "b runs in its own network namespace"

KA=$(jget a .key federation status); KB=$(jget b .key federation status)
on a federation enable --listen "$A_IP:7443" >/dev/null; ok $? "a listens on its end of the link"
on b federation enable --listen "$B_IP:7443" >/dev/null; ok $? "b listens on its end, inside the namespace"
on a remote add b "http://$B_IP:7443" --key "$KB" >/dev/null
on b remote add a "http://$A_IP:7443" --key "$KA" >/dev/null
wait_for 20 state_is a b idle; ok $? "paired across the link"
on a share t/x --with b >/dev/null
put_n a 50 before
wait_for 20 has_n 50; ok $? "50 records crossed the link"

ip link set "$HA" down
put_n a 30 during
wait_for 40 state_is a b offline; ok $? "link down: a marks b offline"
is "$(remote_field a b queued)" 30 "…with the 30 new records queued"
err=$(remote_field a b last_error); like "$err" "^records: " "…and says why: $err"
is "$(count_b)" 50 "…and b has none of them"

ip link set "$HA" up
wait_for 60 has_n 80; ok $? "link up: all 80 records are on b"
ids=$(on b --json call io.osmose.Store.Query '{"collection":"t/x","limit":1000}' | jq -r '.records[].id' | sort -u | wc -l)
is "$ids" 80 "…each once"
wait_for 20 state_is a b idle; ok $? "…and b is idle again"

done_testing
