#!/bin/bash
# test-bundle.sh: keygen, bundle build, trust, install (file and URL) against a real osmosed:
# signatures (tampered manifest, tampered rootfs file, wrong key, unsigned), rollback,
# --allow-unsigned recorded, grants, remove, persistence across a restart.
. "$(dirname "$0")/../lib/common.sh"
osm_setup

# flip_at FILE NEEDLE: flip one bit of the first byte of NEEDLE in FILE (in place)
flip_at() {
    python3 - "$1" "$2" <<'PY'
import sys
p, needle = sys.argv[1], sys.argv[2].encode()
b = bytearray(open(p, 'rb').read())
i = b.find(needle)
assert i >= 0, "needle not found"
b[i] ^= 0x01
open(p, 'wb').write(bytes(b))
PY
}
bundles_in_state() { ls -A "$T/state/bundles" | grep -v '^\.' | sort | tr '\n' ' '; }

mkdir -p "$T/app/rootfs/bin" "$T/app/rootfs/etc"
cat > "$T/app/manifest.json" <<'EOF'
{"name":"hello","version":2,"entrypoint":["/bin/sh","-c","cat /etc/greeting"],
 "capabilities":["network","store:read:sensors/*"],"restart":"never"}
EOF
echo "bonjour" > "$T/app/rootfs/etc/greeting"

# --- keys and bundles
pub=$(ctl keygen -o "$T/key"); ok $? "keygen"
like "$pub" '^[A-Za-z0-9_-]{43}$' "…prints the public key"
is "$(stat -c %a "$T/key")" 600 "…the secret key file is 0600"
is "$(cat "$T/key.pub")" "$pub" "…the public key is in KEY.pub"
ctl keygen -o "$T/key" >/dev/null 2>&1; ok $((! $?)) "keygen refuses to replace a key"
pub2=$(ctl keygen -o "$T/key2")

out=$(ctl bundle build "$T/app" -o "$T/hello.osb" --key "$T/key"); ok $? "bundle build --key"
like "$out" "signed by $pub" "…names the signer"
id=$(ctl --json bundle inspect "$T/hello.osb" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
like "$id" '^[0-9a-f]{64}$' "bundle inspect gives the id"
ctl bundle build "$T/app" -o "$T/again.osb" --key "$T/key" >/dev/null
cmp -s "$T/hello.osb" "$T/again.osb"; ok $? "building the same directory twice gives the same bytes"
ctl bundle build "$T/app" -o "$T/hello-unsigned.osb" >/dev/null; ok $? "bundle build without a key (unsigned)"
ctl bundle build "$T/app" -o "$T/hello-wrongkey.osb" --key "$T/key2" >/dev/null; ok $? "bundle build with another key"

cp "$T/hello.osb" "$T/tampered-manifest.osb"; flip_at "$T/tampered-manifest.osb" 'cat /etc'
cp "$T/hello.osb" "$T/tampered-rootfs.osb"; flip_at "$T/tampered-rootfs.osb" 'bonjour'
out=$(ctl bundle inspect "$T/tampered-rootfs.osb" 2>&1); ok $((! $?)) "bundle inspect spots a tampered file"

mkdir -p "$T/bad/rootfs"
echo '{"name":"bad","version":1,"entrypoint":["/x"],"resources":{"memory":"lots"}}' > "$T/bad/manifest.json"
out=$(ctl bundle build "$T/bad" -o "$T/bad.osb" 2>&1); ok $((! $?)) "bundle build refuses a bad manifest"
like "$out" 'resources.memory: expected a size like "64M"' "…naming the field"
mkfifo "$T/app2fifo"; mkdir -p "$T/app2/rootfs"; cp "$T/app/manifest.json" "$T/app2/"; mv "$T/app2fifo" "$T/app2/rootfs/fifo"
out=$(ctl bundle build "$T/app2" -o "$T/app2.osb" 2>&1); ok $((! $?)) "bundle build refuses a fifo in rootfs"

# --- the daemon
osm_start_daemon
out=$(ctl install "$T/hello.osb" 2>&1); ok $((! $?)) "install of a bundle signed by an unknown key is refused"
like "$out" "signed by $pub, which is not a trusted key" "…with the reason"
is "$(bundles_in_state)" "" "…and nothing was unpacked"

ctl trust add "$pub" >/dev/null; ok $? "trust add"
ctl trust add "not-a-key" >/dev/null 2>&1; ok $((! $?)) "trust add refuses a malformed key"
like "$(ctl trust ls)" "$pub" "trust ls shows it"

for f in tampered-manifest tampered-rootfs; do
    out=$(ctl install "$T/$f.osb" 2>&1); ok $((! $?)) "install refuses a bundle with a $f"
    like "$out" "does not match the bundle's contents: it was tampered with" "…saying it was tampered with"
done
out=$(ctl install "$T/hello-wrongkey.osb" 2>&1); ok $((! $?)) "install refuses a bundle signed by the wrong key"
like "$out" "signed by $pub2, which is not a trusted key" "…naming that key"
out=$(ctl install "$T/hello-unsigned.osb" 2>&1); ok $((! $?)) "install refuses an unsigned bundle"
like "$out" "not signed" "…saying so"
out=$(ctl install "$T/tampered-manifest.osb" --allow-unsigned 2>&1); ok $((! $?)) "--allow-unsigned does not let a tampered bundle in"
is "$(bundles_in_state)" "" "after all the refusals nothing was unpacked"
is "$(ctl --json workloads | tr -d ' \n')" '{"workloads":[]}' "…and nothing is installed"

out=$(ctl install "$T/hello.osb" --grant store:write:x 2>&1); ok $((! $?)) "install refuses a grant the manifest does not request"
like "$out" "does not request store:write:x" "…saying so"
out=$(ctl install "$T/hello.osb" --grant nonsense 2>&1); ok $((! $?)) "install refuses a malformed grant"

out=$(ctl install "$T/hello.osb" --grant network); ok $? "install of a trusted, signed bundle"
like "$out" "installed hello version 2" "…names workload and version"
like "$out" "requests:  network, store:read:sensors/\*" "…shows the requested capabilities"
like "$out" "granted:   network" "…and what was granted"
like "$out" "not granted: store:read:sensors/\*" "…and what was not"
is "$(bundles_in_state)" "$id " "the bundle is unpacked under its id"
is "$(cat "$T/state/bundles/$id/rootfs/etc/greeting")" "bonjour" "…with its files"
js=$(ctl --json workloads)
like "$js" '"verified": true' "workloads: verified"
like "$js" '"allow_unsigned": false' "workloads: not allow-unsigned"

# grants
ctl grant hello store:read:sensors/x >/dev/null 2>&1; ok $((! $?)) "grant of something not requested is refused"
out=$(ctl grant hello 'store:read:sensors/*'); ok $? "grant of a requested capability"
like "$out" 'granted: network, store:read:sensors/\*' "…now holds both"
out=$(ctl revoke hello network); ok $? "revoke"
is "$out" 'granted: store:read:sensors/*' "…leaves the other"
ctl revoke hello network >/dev/null 2>&1; ok $((! $?)) "revoking what is not held fails"
ctl grant nobody network >/dev/null 2>&1; ok $((! $?)) "grant to an unknown workload fails"

# rollback protection
sed -i 's/"version":2/"version":1/' "$T/app/manifest.json"
ctl bundle build "$T/app" -o "$T/hello-v1.osb" --key "$T/key" >/dev/null
out=$(ctl install "$T/hello-v1.osb" 2>&1); ok $((! $?)) "installing an older version is refused"
like "$out" "version 2 is installed; refusing the older version 1" "…saying so"
like "$out" "version 2 is installed; refusing the older version 1" "…as a downgrade"
sed -i 's/"version":1/"version":2/; s/cat \/etc/cat  \/etc/' "$T/app/manifest.json"
ctl bundle build "$T/app" -o "$T/hello-v2b.osb" --key "$T/key" >/dev/null
out=$(ctl install "$T/hello-v2b.osb" 2>&1); ok $((! $?)) "another build of the same version is refused"
out=$(ctl install "$T/hello-v1.osb" --allow-downgrade); ok $? "--allow-downgrade installs the older version"
like "$out" "installed hello version 1 \(was version 2\)" "…and says what it replaced"
is "$(ctl --json workloads | python3 -c 'import json,sys; print(",".join(json.load(sys.stdin)["workloads"][0]["granted"]))')" \
    "store:read:sensors/*" "grants still requested carry over"
is "$(bundles_in_state)" "$(ctl --json workloads | python3 -c 'import json,sys; print(json.load(sys.stdin)["workloads"][0]["id"])') " "the replaced bundle was removed"

# --allow-unsigned is recorded
out=$(ctl install "$T/hello-unsigned.osb" --allow-unsigned --allow-downgrade); ok $? "--allow-unsigned installs an unsigned bundle"
like "$out" "NOT VERIFIED" "…and says it is not verified"
js=$(ctl --json workloads)
like "$js" '"allow_unsigned": true' "workloads records allow_unsigned"
like "$js" '"verified": false' "…and verified false"
like "$(cat "$T/daemon.log")" "installed WITHOUT a trusted signature" "the daemon logs it"
if command -v sqlite3 >/dev/null; then
    like "$(sqlite3 "$T/state/workloads.db" "select detail from history where event='install' order by seq desc limit 1")" \
        "unverified, allow-unsigned" "the history table records it"
else
    skip "history table records allow-unsigned" "no sqlite3 tool"
fi

# install URL (the daemon fetches with libcurl from a server on 127.0.0.1)
ctl install "$T/hello.osb" >/dev/null; ok $? "reinstall the signed version 2"
mkdir -p "$T/www"; cp "$T/hello.osb" "$T/tampered-rootfs.osb" "$T/www/"
cat > "$T/serve.py" <<'PY'
import functools, http.server, sys, threading
h = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), h)
open(sys.argv[2], "w").write(str(s.server_address[1]))
threading.Timer(120, s.shutdown).start()   # stops by itself
s.serve_forever()
PY
# in a subshell, so that its end is not reported as a killed job
(python3 "$T/serve.py" "$T/www" "$T/port" >/dev/null 2>&1 & echo $! > "$T/www.pid")
_osm_pids+=("$(cat "$T/www.pid")")
for i in $(seq 100); do [ -s "$T/port" ] && break; sleep 0.05; done
port=$(cat "$T/port")
out=$(ctl install "http://127.0.0.1:$port/hello.osb" --allow-downgrade); ok $? "install URL"
like "$out" "installed hello version 2" "…installs it"
out=$(ctl install "http://127.0.0.1:$port/tampered-rootfs.osb" 2>&1); ok $((! $?)) "install URL of a tampered bundle is refused"
like "$out" "tampered" "…verified the same way"
out=$(ctl install "http://127.0.0.1:$port/missing.osb" 2>&1); ok $((! $?)) "install URL of a missing file fails"
like "$out" "FetchFailed" "…as FetchFailed"
out=$(ctl install "ftp://127.0.0.1/x.osb" 2>&1); ok $((! $?)) "install of an ftp URL is refused"

# raw calls a hostile or careless client might make
out=$(ctl call io.osmose.Workload.Install '{}' 2>&1); ok $((! $?)) "Install without a bundle fd or url is refused"
like "$out" "pass the bundle as one file descriptor" "…saying how to pass it"
out=$(ctl call io.osmose.Workload.Install '{"url":"file:///etc/passwd"}' 2>&1); ok $((! $?)) "Install of a file:// url is refused"
out=$(ctl call io.osmose.Workload.Install '{"url":"http://127.0.0.1:1/x","grants":["network","network",7]}' 2>&1)
ok $((! $?)) "Install with a malformed grant list is refused"
out=$(ctl call io.osmose.Workload.Grant '{"name":"hello"}' 2>&1); ok $((! $?)) "Grant without a capability is refused"
out=$(ctl call io.osmose.Workload.Logs '{"instance":"nosuch-1"}' 2>&1); ok $((! $?)) "Logs of an unknown instance fails"
like "$out" "NotFound" "…as NotFound"
out=$(ctl call io.osmose.Workload.TrustAdd '{"public_key":"../../etc/passwd"}' 2>&1); ok $((! $?)) "TrustAdd of a path is refused"
[ ! -e "$T/state/trust/passwd" ] && [ -z "$(ls "$T/state/trust" | grep -v "^$pub$")" ]; ok $? "…and wrote nothing"

# not a bundle at all; hostile bytes
head -c 5000 /dev/urandom > "$T/random.osb"
out=$(ctl install "$T/random.osb" 2>&1); ok $((! $?)) "install of random bytes is refused"
like "$out" "not an Osmose bundle" "…as not a bundle"
ctl call org.varlink.service.GetInfo >/dev/null; ok $? "the daemon still serves"

# persistence across a restart
osm_stop_daemon
osm_start_daemon
js=$(ctl --json workloads)
like "$js" '"name": "hello"' "after a restart the workload is still installed"
like "$js" '"store:read:sensors/\*"' "…with its grants"
like "$(ctl trust ls)" "$pub" "…and the key still trusted"

# remove and trust rm
ctl remove hello >/dev/null; ok $? "remove"
is "$(ctl --json workloads | tr -d ' \n')" '{"workloads":[]}' "…it is gone"
is "$(bundles_in_state)" "" "…and so is its bundle"
ctl remove hello >/dev/null 2>&1; ok $((! $?)) "removing it again fails"
ctl trust rm "$pub" >/dev/null; ok $? "trust rm"
out=$(ctl install "$T/hello.osb" 2>&1); ok $((! $?)) "after trust rm its bundles are refused again"

# a fetch that dribbles: the daemon's stop does not wait for it
cat > "$T/slow.py" <<'PY'
import http.server, sys, time, threading
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Length", "10000000"); self.end_headers()
        for i in range(300):
            try:
                self.wfile.write(b"x" * 10); self.wfile.flush()
            except Exception:
                return
            time.sleep(0.1)
    def log_message(self, *a): pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
open(sys.argv[1], "w").write(str(s.server_address[1]))
threading.Timer(60, s.shutdown).start()   # stops by itself
s.serve_forever()
PY
(python3 "$T/slow.py" "$T/slowport" >/dev/null 2>&1 & echo $! > "$T/slow.pid")
_osm_pids+=("$(cat "$T/slow.pid")")
for i in $(seq 100); do [ -s "$T/slowport" ] && break; sleep 0.05; done
"$OSMOSECTL" install "http://127.0.0.1:$(cat "$T/slowport")/slow.osb" >/dev/null 2>&1 &
cli=$!
for i in $(seq 100); do grep -q . <(ctl --json status 2>/dev/null) && break; sleep 0.05; done
sleep 0.5
kill -TERM "$OSM_PID"
for i in $(seq 100); do kill -0 "$OSM_PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$OSM_PID" 2>/dev/null; ok $((! $?)) "the daemon stops while a slow fetch is in progress (the fetch is aborted)"
osm_stop_daemon
is "$OSM_EXIT" 0 "the daemon exits cleanly"
wait "$cli"; ok $((! $?)) "…and the install that was in progress fails"
done_testing
