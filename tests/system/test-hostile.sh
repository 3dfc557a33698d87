#!/bin/bash
# test-hostile.sh: what hostile or broken callers send to the control socket. Each gets
# the proper Varlink error or is dropped, and the daemon keeps answering everyone else.
. "$(dirname "$0")/../lib/common.sh"
osm_setup
mkdir -p "$T/state"
cat > "$T/state/osmosed.conf" <<'CONF'
[control]
max-connections = 200
max-message-size = 64K
max-buffered = 128K
idle-timeout = 3s
partial-timeout = 1s
[store]
max-record-size = 32K
CONF
osm_start_daemon

alive() { timeout 10 "$OSMOSECTL" call org.varlink.service.GetInfo >/dev/null 2>&1; }

out=$(osm_raw 'b"this is not json\0"')
like "$out" '"error":"io.osmose.InvalidMessage"' "malformed JSON: InvalidMessage"
like "$out" '<EOF>$' "…and the connection is closed"
out=$(osm_raw 'b"[1,2,3]\0"'); like "$out" 'InvalidMessage.*not a JSON object' "a non-object: InvalidMessage"
out=$(osm_raw 'b"{\"parameters\":{}}\0"'); like "$out" 'InvalidMessage.*method' "no method: InvalidMessage"
out=$(osm_raw 'b"{\"method\":\"io.osmose.Daemon.GetStatus\",\"parameters\":7}\0"'); like "$out" 'InvalidMessage' "non-object parameters: InvalidMessage"
out=$(osm_raw 'b"{\"method\":\"a.b.C\",\"method\":\"d.e.F\"}\0"'); like "$out" 'InvalidMessage' "duplicate keys: InvalidMessage"
out=$(osm_raw 'b"{\"method\":\"io.osmose.Daemon.GetStatus\",\"parameters\":{\"x\":" + b"[" * 200000 + b"]" * 200000 + b"}}\0"')
like "$out" 'MessageTooLarge|InvalidMessage' "deep nesting (200000 levels): refused"
out=$(osm_raw 'b"{\"method\":\"io.osmose.Daemon.GetStatus\",\"parameters\":{\"x\":" + b"[" * 30000 + b"]" * 30000 + b"}}\0"')
like "$out" 'InvalidMessage' "deep nesting within the size limit: InvalidMessage (depth limit)"
out=$(osm_raw 'b"{\"method\":\"x\" " + b" " * 70000 + b"}\0"'); like "$out" '"error":"io.osmose.MessageTooLarge".*"limit":65536' "oversized message: MessageTooLarge with the limit"
like "$out" '<EOF>$' "…and the connection is closed"
out=$(osm_raw 'b"x" * 200000' 3); like "$out" 'MessageTooLarge' "a stream of bytes without NUL: MessageTooLarge"
alive; ok $? "daemon still answers"

out=$(osm_raw 'b"{\"method\":\"io.osmose.Daemon.NoSuch\"}\0"' 1); like "$out" '"error":"org.varlink.service.MethodNotFound".*NoSuch' "unknown method: MethodNotFound"
case "$out" in *'<EOF>'*) ok 1 "…and the connection stays open";; *) ok 0 "…and the connection stays open";; esac
out=$(osm_raw 'b"{\"method\":\"com.example.Nope.Call\"}\0"'); like "$out" 'InterfaceNotFound.*com.example.Nope' "unknown interface: InterfaceNotFound"
out=$(osm_raw 'b"{\"method\":\"Status\"}\0"'); like "$out" 'MethodNotFound' "unqualified method: MethodNotFound"
out=$(osm_raw 'b"{\"method\":\"org.varlink.service.GetInterfaceDescription\",\"parameters\":{\"interface\":42}}\0"')
like "$out" '"error":"org.varlink.service.InvalidParameter","parameters":\{"parameter":"interface"\}' "wrong parameter type: InvalidParameter naming it"
out=$(osm_raw 'b"{\"method\":\"org.varlink.service.GetInterfaceDescription\",\"parameters\":{}}\0"')
like "$out" 'InvalidParameter.*interface' "missing parameter: InvalidParameter naming it"
out=$(osm_raw 'b"{\"method\":\"io.osmose.Daemon.GetStatus\",\"parameters\":{\"evil\":true}}\0"')
like "$out" 'InvalidParameter.*evil' "unknown parameter: InvalidParameter naming it"
out=$(osm_raw 'b"{\"method\":\"io.osmose.Daemon.GetStatus\",\"upgrade\":true}\0"'); like "$out" 'InvalidMessage.*upgrade' "upgrade: refused"
out=$(osm_raw 'b"{\"method\":\"io.osmose.Daemon.GetStatus\",\"oneway\":true}\0{\"method\":\"org.varlink.service.GetInfo\"}\0"')
like "$out" '^\{"parameters":\{"vendor"' "oneway: no reply; the next call is answered"
out=$(osm_raw 'b"{\"method\":\"org.varlink.service.GetInfo\"}\0{\"method\":\"io.osmose.Daemon.NoSuch\"}\0{\"method\":\"io.osmose.Daemon.GetStatus\"}\0"')
like "$out" 'vendor.*MethodNotFound.*subsystems' "three pipelined calls: three replies, in order"

# fds: more than the protocol allows in one message
out=$(python3 - "$OSMOSE_SOCKET" <<'PY'
import socket, sys, os, array
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.connect(sys.argv[1])
fds = [os.open("/dev/null", os.O_RDONLY) for _ in range(20)]
s.sendmsg([b'{"method":"io.osmose.Daemon.GetStatus"}\0'], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
s.settimeout(3); out = b""
try:
    while True:
        d = s.recv(65536)
        if not d: out += b"<EOF>"; break
        out += d
except socket.timeout: pass
print(out.replace(b"\0", b"|").decode())
PY
)
like "$out" 'too many file descriptors.*<EOF>' "20 fds in one message: refused, connection closed"

# a client that connects and sends nothing; one that stalls mid-message
out=$(osm_raw 'b""' 8); like "$out" '<EOF>$' "silent client is dropped after the idle timeout"
out=$(osm_raw 'b"{\"method\":\"io.osm"' 4); like "$out" '<EOF>$' "half a message, stalled: dropped after the partial timeout"
grep -q "half a message stalled" "$T/daemon.log"; ok $? "…and the log says why"

# a client that never reads its replies
out=$(python3 - "$OSMOSE_SOCKET" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect(sys.argv[1]); s.setblocking(False)
msg = b'{"method":"io.osmose.Daemon.GetStatus"}\0' * 100
sent = 0; deadline = time.time() + 20
while time.time() < deadline:
    try:
        sent += s.send(msg)
    except BlockingIOError:
        time.sleep(0.01)
    except (BrokenPipeError, ConnectionResetError):
        print("dropped after", sent, "bytes"); break
else:
    print("never dropped")
PY
)
like "$out" '^dropped after' "a client that never reads its replies is dropped (bounded buffer)"
alive; ok $? "daemon still answers"

# 1,000 connections at once, all holding their slots
out=$(python3 - "$OSMOSE_SOCKET" "$OSMOSECTL" "$OSM_PID" <<'PY'
import socket, sys, subprocess, resource, time, os
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
conns, refused = [], 0
for i in range(1000):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(sys.argv[1]); conns.append(s)
    except OSError:
        refused += 1
# half of them also start a message and stall
for s in conns[::2]:
    try: s.send(b'{"method":')
    except OSError: pass
r = subprocess.run([sys.argv[2], "call", "io.osmose.Daemon.GetStatus"], capture_output=True, timeout=30)
print("status_rc", r.returncode)
print("daemon_fds", len(os.listdir("/proc/%s/fd" % sys.argv[3])))
print("connected", len(conns), "refused", refused)
for s in conns: s.close()
PY
)
like "$out" 'status_rc 0' "with 1,000 clients holding connections, status still answers"
n=$(printf '%s\n' "$out" | sed -n 's/^daemon_fds //p')
[ -n "$n" ] && [ "$n" -lt 260 ]; ok $? "during the flood the daemon's open fds stay bounded by max-connections (${n:-?} ≤ 200 + a few)"
alive; ok $? "daemon answers after the flood"

# many calls from many clients at once, all correct
out=$(python3 - "$OSMOSE_SOCKET" <<'PY'
import socket, sys, threading
ok = [0]
def worker():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.connect(sys.argv[1])
    f = b""
    for i in range(50):
        s.sendall(b'{"method":"io.osmose.Daemon.GetStatus"}\0')
        while b"\0" not in f:
            f += s.recv(65536)
        m, f = f.split(b"\0", 1)
        if b'"subsystems"' in m: ok[0] += 1
    s.close()
ts = [threading.Thread(target=worker) for _ in range(50)]
[t.start() for t in ts]; [t.join() for t in ts]
print("answered", ok[0])
PY
)
is "$out" "answered 2500" "50 concurrent clients × 50 calls: every one answered"

kill -0 "$OSM_PID"; ok $? "the daemon survived everything"
osm_stop_daemon TERM
is "$OSM_EXIT" 0 "and stops cleanly"
done_testing
