#!/bin/bash
# test-building.sh: three rooms in network namespaces of their own make a building:
# nothing listens before create/join; create, invite, join over mutual TLS; every room
# lists every member; hostile joins and a non-member on the building port are refused
# and counted; replicated writes (trust, shares) are seen everywhere; status shows the
# building; leave and remove.
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/rooms.sh"
. "$(dirname "$0")/../lib/building.sh"
osm_setup
PORT=7444
ROOMS=(A B C D)
building_rooms 'status-interval = 1s\nquery-timeout = 2s' "${ROOMS[@]}"
ip_of() { local i; for i in "${!ROOMS[@]}"; do [ "${ROOMS[$i]}" = "$1" ] && echo "$ROOMS_NET.$((i + 1))"; done; }
listening() { room_exec "$1" ss -Hltn "sport = :$PORT" | grep -q .; }

# --- nothing listens before create/join
listening A; is $? 1 "no building port open before building create"
is "$(jb A .in_building)" "false" "status: not in a building"
out=$(rctl A building invite 2>&1); rc=$?
is "$rc" 1 "invite outside a building fails"
like "$out" "not in a building" "... and says so"

# --- create
out=$(rctl A building create --name HQ --address "$(ip_of A)" 2>&1); rc=$?
is "$rc" 0 "building create"
like "$out" "HQ" "... names the building"
listening A; ok $? "the building port opens after create"
wait_for 5 sh -c "[ \"\$(OSMOSE_SOCKET=$ROOMS_DIR/A/osm/osmosed.sock $OSMOSECTL --json building status | jq -r '.members | length')\" = 1 ]"
is "$(jb A '.members | length')" "1" "one member after create"
is "$(jb A .role)" "voter" "the creator is a voter"
is "$(jb A .leader)" "room-A" "the creator leads"
out=$(rctl A building create 2>&1); rc=$?
is "$rc" 1 "a second create is refused"
like "$out" "AlreadyInBuilding|in a building already" "... as already in a building"

# --- join B and C
TOK=$(rctl A building invite --expires 10m 2>/dev/null)
like "$TOK" '^[A-Za-z0-9_-]{100,}$' "invite prints a token"
out=$(rctl B building join "$TOK" 2>&1); rc=$?
is "$rc" 0 "B joins"
like "$out" "HQ" "... the building HQ"
listening B; ok $? "B listens on the building port after join"

# the same token again: single use
out=$(rctl C building join "$TOK" 2>&1); rc=$?
is "$rc" 1 "a used token is refused"
like "$out" "used already" "... as used"
# an expired token
TOKX=$(rctl A building invite --expires 1s 2>/dev/null); sleep 1.5
out=$(rctl C building join "$TOKX" 2>&1); rc=$?
is "$rc" 1 "an expired token is refused"
like "$out" "expired" "... as expired"
# a wrong secret: the token's secret replaced
TOKW=$(rctl A building invite 2>/dev/null)
BAD=$(printf '%s' "$TOKW" | python3 -c '
import sys, json, base64
t = sys.stdin.read().strip(); o = json.loads(base64.urlsafe_b64decode(t + "=" * (-len(t) % 4)))
o["secret"] = base64.urlsafe_b64encode(bytes(32)).decode().rstrip("=")
print(base64.urlsafe_b64encode(json.dumps(o).encode()).decode().rstrip("="))')
out=$(rctl C building join "$BAD" 2>&1); rc=$?
is "$rc" 1 "a token with a wrong secret is refused"
like "$out" "secret matches no invitation" "... for its secret"
# the inviter's key does not match the token (a token pointing at B's address with A's key)
BADK=$(printf '%s' "$TOKW" | python3 -c "
import sys, json, base64
t = sys.stdin.read().strip(); o = json.loads(base64.urlsafe_b64decode(t + '=' * (-len(t) % 4)))
o['addresses'] = ['$(ip_of B):$PORT']
print(base64.urlsafe_b64encode(json.dumps(o).encode()).decode().rstrip('='))")
out=$(rctl C building join "$BADK" 2>&1); rc=$?
is "$rc" 1 "an inviter whose key does not match the token is refused"
like "$out" "key does not match" "... as a key mismatch"
is "$(jb C .in_building)" "false" "C is still on its own after the refusals"

out=$(rctl C building join "$TOKW" 2>&1); rc=$?
is "$rc" 0 "C joins with a fresh token (the refused attempts did not spend it)"

# --- every room lists every member
for r in A B C; do
    wait_for 10 sh -c "[ \"\$(OSMOSE_SOCKET=$ROOMS_DIR/$r/osm/osmosed.sock $OSMOSECTL --json building status | jq -r '.members | length')\" = 3 ]"
    is "$(jb "$r" '[.members[].name] | sort | join(",")')" "room-A,room-B,room-C" "$r lists all three rooms"
done
wait_for 10 sh -c "[ \"\$(OSMOSE_SOCKET=$ROOMS_DIR/A/osm/osmosed.sock $OSMOSECTL --json building status | jq -r '[.members[] | select(.role == \"voter\")] | length')\" = 3 ]"
is "$(jb A '[.members[] | select(.role == "voter")] | length')" "3" "three voters"
wait_for 10 sh -c "[ \"\$(OSMOSE_SOCKET=$ROOMS_DIR/C/osm/osmosed.sock $OSMOSECTL --json building status | jq -r '.reachable')\" = 3 ]"
is "$(jb C .reachable)" "3" "C sees all three reachable"
is "$(jb B .leader)" "room-A" "B knows the leader"
KEYS_OK=$(jb B '[.members[] | select(.key | test("^[A-Za-z0-9_-]{43}$"))] | length')
is "$KEYS_OK" "3" "every member's key is replicated"
like "$(rctl A building status)" "room-C" "building status prints a table"
bline() { rctl B status | grep "^building"; }
wait_for 10 sh -c "OSMOSE_SOCKET=$ROOMS_DIR/B/osm/osmosed.sock $OSMOSECTL status | grep -q '3/3 members reachable'"
st=$(bline)
like "$st" "building +ok +\"HQ\": voter, leader room-A, 3/3 members reachable" "status shows the building: name, role, leader, reachable/total"

# --- hostile: a non-member at the building port
out=$(room_exec D python3 - "$(ip_of A)" "$PORT" <<'PY'
import socket, ssl, sys, subprocess, tempfile, os
d = tempfile.mkdtemp()
subprocess.run(["openssl", "req", "-x509", "-newkey", "ed25519", "-nodes", "-keyout", d + "/k", "-out", d + "/c",
                "-subj", "/CN=stranger", "-days", "1"], check=True, capture_output=True)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
ctx.load_cert_chain(d + "/c", d + "/k")
try:
    s = ctx.wrap_socket(socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5))
    s.sendall(b'{"op":"dqlite"}\n')
    print("got:", s.recv(100))
except Exception as e:
    print("refused:", type(e).__name__, e)
PY
)
# While invitations are outstanding a stranger completes TLS, but only a join request with
# a token's secret goes further; anything else is refused.
like "$out" "refused|got: b''|NotMember" "a non-member with a certificate gets nothing from the building port"
like "$out" "NotMember|refused" "... and is told it is not a member, or refused at the handshake"
out=$(room_exec D python3 - "$(ip_of A)" "$PORT" <<'PY'
import socket, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
try:
    s = ctx.wrap_socket(socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5))
    s.sendall(b'{"op":"dqlite"}\n'); print("got:", s.recv(100))
except Exception as e:
    print("refused:", type(e).__name__, e)
PY
)
like "$out" "refused|got: b''" "a client without a certificate is refused"
sleep 0.3
is "$(jb A '.counters.connections_refused_handshake >= 1 and (.counters.connections_refused_handshake + .counters.connections_refused_non_member) >= 2')" "true" "refused connections are counted"
is "$(jb A '.counters.joins_refused_used >= 1 and .counters.joins_refused_expired >= 1 and .counters.joins_refused_secret >= 1')" \
   "true" "refused joins are counted by reason"

# --- replicated writes: trust and shares, seen from every room
KEY=$(bkey)
rctl B building trust add "$KEY" --comment "vendor" >/dev/null; is $? 0 "trust add on B"
wait_for 5 sh -c "OSMOSE_SOCKET=$ROOMS_DIR/C/osm/osmosed.sock $OSMOSECTL building trust ls | grep -q $KEY"
like "$(rctl C building trust ls)" "$KEY" "the key is trusted as seen from C"
rctl C building share sensors/temp >/dev/null; is $? 0 "share on C"
out=$(rctl A building trust add not-a-key 2>&1); is $? 1 "trust add of a malformed key fails"
rctl A building trust rm "$KEY" >/dev/null; is $? 0 "trust rm"
wait_for 5 sh -c "! OSMOSE_SOCKET=$ROOMS_DIR/B/osm/osmosed.sock $OSMOSECTL building trust ls | grep -q $KEY"
rctl B building trust ls | grep -q "$KEY"; is $? 1 "the key is gone everywhere"

# --- usage errors
rctl A building join >/dev/null 2>&1; is $? 2 "join without a token is a usage error"
rctl A building frobnicate >/dev/null 2>&1; is $? 2 "an unknown subcommand is a usage error"
rctl A building join 'not!a token' >/dev/null 2>&1; is $? 1 "a malformed token is refused"

# --- leave and remove
out=$(rctl C building leave 2>&1); rc=$?
is "$rc" 0 "C leaves"
[ "$rc" = 0 ] || diag "$out"
is "$(jb C .in_building)" "false" "C is on its own again"
# a room on its own reads the token: InvalidParameter {parameter: token}, in the CLI's words
out=$(rctl C building join 'not!a token' 2>&1); is $? 1 "C refuses a malformed token"
case $out in *"join token is not valid"*) ok=0 ;; *) ok=1 ;; esac
is $ok 0 "and the CLI says the join token is not valid ($out)"
wait_for 5 sh -c "! room_exec C ss -Hltn 'sport = :$PORT' 2>/dev/null | grep -q ." 2>/dev/null
listening C; is $? 1 "C's building port is closed after leaving"
wait_for 10 sh -c "[ \"\$(OSMOSE_SOCKET=$ROOMS_DIR/A/osm/osmosed.sock $OSMOSECTL --json building status | jq -r '.members | length')\" = 2 ]"
is "$(jb A '.members | length')" "2" "A lists two members after C left"
rctl A building remove room-B >/dev/null; is $? 0 "A removes B"
wait_for 10 sh -c "[ \"\$(OSMOSE_SOCKET=$ROOMS_DIR/B/osm/osmosed.sock $OSMOSECTL --json building status | jq -r .in_building)\" = false ]"
is "$(jb B .in_building)" "false" "B notices it was removed and is on its own"
is "$(jb A '.members | length')" "1" "A alone"
rctl A put sensors/temp '{"c": 20}' >/dev/null; is $? 0 "local work goes on in A"
done_testing
