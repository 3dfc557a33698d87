#!/bin/bash
# test-control.sh: a real osmosed started in a temp dir and driven by osmosectl:
# identity, status, introspection, options, socket rules, signals, permissions.
. "$(dirname "$0")/../lib/common.sh"
osm_setup

out=$("$OSMOSED" --version); like "$out" '^osmosed [0-9]+\.[0-9]+' "osmosed --version"
out=$("$OSMOSECTL" --version); like "$out" '^osmosectl [0-9]+\.[0-9]+' "osmosectl --version"
"$OSMOSED" --help | grep -q -- '--check-config'; ok $? "osmosed --help lists --check-config"
"$OSMOSECTL" --help | grep -q 'status'; ok $? "osmosectl --help lists status"
"$OSMOSECTL" status --help | grep -q 'Usage: osmosectl'; ok $? "status --help"

# no daemon yet
out=$(OSMOSE_SOCKET=$T/none.sock "$OSMOSECTL" status 2>&1); rc=$?
is "$rc" 1 "status without a daemon exits 1"
like "$out" "no osmosed is running at $T/none.sock" "…and names the socket in one line"
is "$(printf '%s\n' "$out" | wc -l)" 1 "…exactly one line"

# --check-config
printf '[daemon]\nname = lab\n[control]\nmax-connections = many\nfoo = 1\n' > "$T/bad.conf"
out=$("$OSMOSED" --check-config --config "$T/bad.conf" 2>&1); rc=$?
is "$rc" 1 "--check-config on a bad file exits 1"
like "$out" "bad.conf:4: \[control\] max-connections = many" "…names file, line and key"
like "$out" "bad.conf:5: unknown key 'foo'" "…and the unknown key"
printf '[daemon]\nname = lab\n' > "$T/good.conf"
out=$("$OSMOSED" --check-config --config "$T/good.conf" 2>&1); ok $? "--check-config on a good file"
like "$out" "configuration OK" "…says configuration OK"
"$OSMOSED" --check-config --config "$T/missing.conf" >/dev/null 2>&1; ok $((! $?)) "--check-config with a missing file fails"
out=$("$OSMOSED" --state-dir "$T/x" --dump-config); like "$out" "socket = $T/x/osmosed.sock" "--dump-config shows the one-directory layout"

# start
osm_start_daemon
ok 0 "daemon started and answers"
st=$T/state
perm=$(stat -c %a "$st/identity.key"); is "$perm" 600 "identity key is 0600"
perm=$(stat -c %a "$st/osmosed.sock"); is "$perm" 660 "socket is 0660"
perm=$(stat -c %a "$st"); is "$perm" 700 "state dir is 0700"

out=$(ctl status); like "$out" "Space: +test-room" "status shows the name"
like "$out" "control +ok" "status lists the control subsystem as ok"
json=$(ctl --json status)
id=$(printf '%s' "$json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
like "$id" '^[0-9a-f]{32}$' "space id is 32 hex characters"
pk=$(printf '%s' "$json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["public_key"])')
like "$pk" '^[A-Za-z0-9_-]{43}$' "public key is URL-safe base64"
printf '%s' "$json" | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["pid"] > 0 and d["uptime"] >= 0 and d["version"]'
ok $? "--json status is one JSON document with pid, uptime, version"

# An idle daemon sleeps: no thread polls on a short period (the writer waits for work
# while no collection has a retention policy; the API's grant re-check runs only while
# instances have sockets). Counted in wake-ups, not time: the threads' voluntary context
# switches over 5 s of quiet (a 250 ms poll and a 1 s tick made about 25).
wakeups() { cat /proc/"$OSM_PID"/task/*/status | awk '/^voluntary_ctxt_switches/ {n += $2} END {print n}'; }
sleep 1; w0=$(wakeups); sleep 5; w1=$(wakeups)
ok $(( w1 - w0 <= 8 ? 0 : 1 )) "an idle daemon wakes at most 8 times in 5 s ($((w1 - w0)))"

# GetStatus without details is written without a tree (daemon.c): it must say exactly
# what the details document says, less the info objects and the clock.
plain=$(ctl call io.osmose.Daemon.GetStatus '{}')
full=$(ctl call io.osmose.Daemon.GetStatus '{"details":true}')
out=$(python3 - "$plain" "$full" <<'PY'
import json, sys
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
for s in b["subsystems"]:
    s.pop("info", None)
for d in (a, b):
    d.pop("uptime")
print("same" if a == b else "differ:\n%s\n%s" % (json.dumps(a, sort_keys=True), json.dumps(b, sort_keys=True)))
PY
)
is "$out" "same" "GetStatus without details matches the details document (less info and uptime)"
printf '%s' "$plain" | python3 -c 'import json,sys; d=json.load(sys.stdin); assert isinstance(d["uptime"], float) and [s["name"] for s in d["subsystems"]][0] == "control" and all(s["health"] in ("ok","degraded","disabled","failed") for s in d["subsystems"])'
ok $? "GetStatus: uptime a real, control first, every health one of the four"

# introspection, as any Varlink client would do it
out=$(ctl call org.varlink.service.GetInfo); like "$out" '"io.osmose.Daemon"' "GetInfo lists io.osmose.Daemon"
out=$(ctl call org.varlink.service.GetInterfaceDescription '{"interface":"io.osmose.Daemon"}')
like "$out" 'method GetStatus' "GetInterfaceDescription serves the .varlink text"
out=$(ctl call org.varlink.service.GetInterfaceDescription '{"interface":"no.such.Iface"}' 2>&1)
like "$out" 'org.varlink.service.InterfaceNotFound' "unknown interface description: InterfaceNotFound"
if command -v varlinkctl >/dev/null 2>&1; then
    out=$(varlinkctl info "unix:$OSMOSE_SOCKET" 2>&1); like "$out" 'osmosed' "systemd's varlinkctl talks to osmosed"
else
    skip "systemd's varlinkctl talks to osmosed" "varlinkctl not installed (systemd < 255)"
fi

# a second daemon on the same socket is refused
"$OSMOSED" --state-dir "$st" >"$T/second.log" 2>&1; rc=$?
is "$rc" 1 "a second daemon on a live socket refuses to start"
grep -q "already answers" "$T/second.log"; ok $? "…and says why"
ctl call org.varlink.service.GetInfo >/dev/null; ok $? "…and the first still answers"

# reload by signal and by call (no --name now: the command line would win over the file)
osm_stop_daemon TERM
printf '[daemon]\nname = first\n' > "$st/osmosed.conf"
OSM_NAME= osm_start_daemon
out=$(ctl status); like "$out" "Space: +first" "the state dir's osmosed.conf is read"
printf '[daemon]\nname = renamed\n' > "$st/osmosed.conf"
kill -HUP "$OSM_PID"
for i in $(seq 50); do ctl status | grep -q renamed && break; sleep 0.05; done
out=$(ctl status); like "$out" "Space: +renamed" "SIGHUP reloads the configuration"
printf '[daemon]\nname = again\n[control]\nmax-connections = 100\n' > "$st/osmosed.conf"
out=$(ctl reload); like "$out" "changed: control.max-connections" "reload reports changed keys"
printf '[daemon]\nname = again\nnope = 1\n' > "$st/osmosed.conf"
out=$(ctl reload 2>&1); rc=$?
is "$rc" 1 "reload of a bad file fails"
like "$out" "osmosed.conf:3: unknown key 'nope'" "…naming FILE:LINE of the problem"
out=$(ctl status); like "$out" "Space: +again" "…and the old configuration stays in force"
# GetStatus's text is reused within a turn of the loop, never across a call that may change
# state: three calls in one write (status, reload renaming the space, status) see the rename.
printf '[daemon]\nname = piped\n' > "$st/osmosed.conf"
out=$(python3 - "$OSMOSE_SOCKET" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
st = b'{"method":"io.osmose.Daemon.GetStatus","parameters":{}}\0'
s.sendall(st + b'{"method":"io.osmose.Daemon.Reload","parameters":{}}\0' + st)
buf = b""
while buf.count(b"\0") < 3:
    d = s.recv(65536)
    if not d:
        break
    buf += d
r = [json.loads(m) for m in buf.split(b"\0")[:3]]
print(r[0]["parameters"]["name"], r[2]["parameters"]["name"])
PY
)
is "$out" "again piped" "status, reload, status in one write: the second status sees the reload"
rm -f "$st/osmosed.conf"
# A client that sends 3,000 GetStatus calls at once and reads only after a second (3 MB of
# replies, far more than the socket holds): the replies sent whole at once and those the
# socket took in part, the rest queued, arrive whole and in order.
out=$(python3 - "$OSMOSE_SOCKET" <<'PY'
import json, socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.settimeout(60)
s.sendall(b'{"method":"io.osmose.Daemon.GetStatus","parameters":{}}\0' * 3000)
time.sleep(1)
buf, n = b"", 0
while n < 3000:
    d = s.recv(1 << 20)
    if not d:
        break
    buf += d
    *msgs, buf = buf.split(b"\0")
    n += sum(json.loads(m)["parameters"]["name"] == "piped" for m in msgs)
print(n, len(buf))
PY
)
is "$out" "3000 0" "3,000 GetStatus calls in one write, read late: 3,000 whole replies"

# permissions: another user
if id nobody >/dev/null 2>&1 && command -v setpriv >/dev/null; then
    chmod 711 "$T" "$st"
    out=$(setpriv --reuid=nobody --regid=nogroup --clear-groups "$OSMOSECTL" status 2>&1); rc=$?
    is "$rc" 1 "a user outside the group cannot connect (socket 0660)"
    like "$out" "[Pp]ermission denied" "…and is told so"
    # with a world-accessible socket, the peer-credential check is what stops them
    osm_stop_daemon TERM
    printf '[control]\nsocket-mode = 0666\n' > "$st/osmosed.conf"
    osm_start_daemon
    chmod 711 "$st"
    out=$(setpriv --reuid=nobody --regid=nogroup --clear-groups "$OSMOSECTL" status 2>&1); like "$out" "Space: " "another user may read status"
    out=$(setpriv --reuid=nobody --regid=nogroup --clear-groups "$OSMOSECTL" reload 2>&1); rc=$?
    is "$rc" 1 "another user may not reload"
    like "$out" "uid [0-9]+ may not call io.osmose.Daemon.Reload" "…and is told why"
    rm -f "$st/osmosed.conf"
else
    skip "other users" "no nobody user or setpriv"
fi

# stale socket and graceful stop
osm_stop_daemon TERM
is "$OSM_EXIT" 0 "SIGTERM: clean exit status 0"
[ ! -e "$st/osmosed.sock" ]; ok $? "SIGTERM removes the socket"
grep -q "shutting down" "$T/daemon.log"; ok $? "log says it shuts down"
grep -q '^<6>' "$T/daemon.log"; ok $? "log lines carry syslog priority prefixes"

osm_start_daemon
id2=$(ctl --json status | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
is "$id2" "$id" "restart keeps the same space id"
osm_stop_daemon KILL
[ -S "$st/osmosed.sock" ]; ok $? "SIGKILL leaves a stale socket behind"
osm_start_daemon
ok 0 "a stale socket is removed and the daemon starts"
grep -q "removing stale socket" "$T/daemon.log"; ok $? "…and says so"
osm_stop_daemon TERM

# a corrupt or loose identity is a start-up error, never replaced
cp "$st/identity.key" "$T/key.bak"
chmod 644 "$st/identity.key"
"$OSMOSED" --state-dir "$st" >"$T/loose.log" 2>&1; rc=$?
is "$rc" 1 "group-readable key: refuses to start"
like "$(cat "$T/loose.log")" "must be 0600" "…and says why"
chmod 600 "$st/identity.key"
printf 'garbage' > "$st/identity.key"
"$OSMOSED" --state-dir "$st" >"$T/corrupt.log" 2>&1; rc=$?
is "$rc" 1 "corrupt key: refuses to start"
is "$(cat "$st/identity.key")" "garbage" "…and the file is left as it was"
cp "$T/key.bak" "$st/identity.key"; chmod 600 "$st/identity.key"

# sd_notify: READY=1 and STOPPING=1 reach NOTIFY_SOCKET
if python3 -c 'import socket' 2>/dev/null; then
    python3 - "$T/notify.sock" >"$T/notify.out" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1]); s.settimeout(15)
got = []
try:
    while True:
        m = s.recv(4096).decode()
        got.append(m); print(m.replace("\n", " "), flush=True)
        if "STOPPING=1" in m: break
except socket.timeout:
    pass
PY
    npid=$!
    for i in $(seq 50); do [ -S "$T/notify.sock" ] && break; sleep 0.05; done
    NOTIFY_SOCKET=$T/notify.sock WATCHDOG_USEC=200000 osm_start_daemon
    sleep 0.3
    osm_stop_daemon TERM
    wait "$npid"
    out=$(cat "$T/notify.out")
    like "$out" "READY=1" "sd_notify READY=1"
    like "$out" "WATCHDOG=1" "watchdog pings when WATCHDOG_USEC is set"
    like "$out" "STOPPING=1" "sd_notify STOPPING=1"
fi

# Socket activation: systemd's own systemd-socket-activate binds the socket and execs
# osmosed with $LISTEN_FDS and $LISTEN_PID, as osmosed.socket does. The protocols are spoken
# directly: libsystemd (with gcrypt, lz4, zstd, lzma: 1.1 MiB) is never mapped.
if command -v systemd-socket-activate >/dev/null; then
    sa=$T/activated; mkdir -p "$sa"
    DBUS_SYSTEM_BUS_ADDRESS=unix:path=$T/no-system-bus NOTIFY_SOCKET=$T/notify-none.sock \
        systemd-socket-activate -l "$sa/ctl.sock" \
        "$OSMOSED" --state-dir "$sa" --socket "$sa/ctl.sock" >"$sa/log" 2>&1 &
    sa_pid=$!; _osm_pids+=("$sa_pid")
    for i in $(seq 100); do [ -S "$sa/ctl.sock" ] && break; sleep 0.05; done
    out=$(OSMOSE_SOCKET=$sa/ctl.sock "$OSMOSECTL" call org.varlink.service.GetInfo 2>&1)
    like "$out" '"product"' "socket-activated: the daemon answers on the socket systemd passed"
    like "$(cat "$sa/log")" "using the socket passed by systemd" "... which osmosed took, not bound itself"
    grep -q 'libsystemd' "/proc/$sa_pid/maps"; ok $((! $?)) "... and libsystemd is not mapped"
    kill "$sa_pid"; wait "$sa_pid"; is "$?" 0 "... and it stops cleanly on SIGTERM"
fi
done_testing
