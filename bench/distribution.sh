#!/bin/bash
# distribution.sh: N osmosed (separate state directories, on loopback) take a 50 MiB bundle
# from one HTTP origin: through a followed channel (osmosectl upgrade: the signed list, the
# bundle fetched by its id, verified on arrival, kept, installed) beside a plain
# `osmosectl install URL` of the same bundle by each, in the same run. Prints the time to
# all done and the bytes the origin served for both. Bundles are not yet fetched from
# building members (peer-to-peer), so the origin serves N copies either way; the figure
# that matters here is what the channel path costs over a bare install.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
BUILD=${BUILD:-$here/../build}
N=${BENCH_ROOMS:-3}
MIB=${BENCH_MIB:-50}
OSMOSED=$BUILD/src/daemon/osmosed
CTL=$BUILD/src/cli/osmosectl
T=$(mktemp -d /tmp/osm-bench.XXXXXX)
pids=()
trap 'for p in "${pids[@]}"; do kill $p 2>/dev/null; wait $p 2>/dev/null; done; rm -rf "$T"' EXIT
now() { date +%s.%N; }
on() { local s=$1; shift; OSMOSE_SOCKET=$T/$s/osmosed.sock "$CTL" "$@"; }

# The bundle: a workload with MIB MiB of random data in its tree.
mkdir -p "$T/app/rootfs/data-blob"
head -c $((MIB * 1024 * 1024)) /dev/urandom > "$T/app/rootfs/data-blob/blob"
printf '{"name":"big","version":1,"entrypoint":["/bin/true"],"restart":"never"}\n' > "$T/app/manifest.json"
pub=$("$CTL" keygen -o "$T/key")
"$CTL" bundle build "$T/app" -o "$T/big.osb" --key "$T/key" >/dev/null
"$CTL" channel publish "$T/big.osb" --channel big --key "$T/key" -o "$T/www" >/dev/null
cp "$T/big.osb" "$T/www/big.osb"
size=$(stat -c %s "$T/big.osb")

# The origin: a static HTTP server that counts the bytes it sends.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$T/origin.py" <<'PY'
import functools, http.server, sys, threading
count = [0]
lock = threading.Lock()
class H(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        if self.path == "/__bytes":
            body = str(count[0]).encode()
            self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
            self.wfile.write(body); return
        super().do_GET()
    def copyfile(self, src, dst):
        while True:
            b = src.read(1 << 16)
            if not b: break
            dst.write(b)
            with lock: count[0] += len(b)
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])),
    functools.partial(H, directory=sys.argv[2])).serve_forever()
PY
python3 "$T/origin.py" "$port" "$T/www" &
pids+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/__bytes" >/dev/null && break; sleep 0.05; done
served() { curl -sf "http://127.0.0.1:$port/__bytes"; }

start_rooms() {
    local i
    for i in $(seq "$N"); do
        mkdir -p "$T/$1-$i"
        printf '[channels]\ncheck-interval = 0\nhealth-grace = 0\n[workloads]\nmax-bundle-size = 1G\n' > "$T/$1-$i.conf"
        DBUS_SYSTEM_BUS_ADDRESS=unix:path=$T/no-bus "$OSMOSED" --state-dir "$T/$1-$i" --name "$1-$i" \
            --config "$T/$1-$i.conf" >"$T/$1-$i.log" 2>&1 &
        pids+=($!)
    done
    for i in $(seq "$N"); do
        for _ in $(seq 200); do on "$1-$i" status >/dev/null 2>&1 && break; sleep 0.05; done
        on "$1-$i" trust add "$pub" >/dev/null
    done
}

# Baseline: each room installs the bundle from its URL, all at once.
start_rooms plain
b0=$(served); t0=$(now)
for i in $(seq "$N"); do on "plain-$i" install "http://127.0.0.1:$port/big.osb" >/dev/null & done
for j in $(jobs -rp); do case " ${pids[*]} " in *" $j "*) ;; *) wait "$j";; esac; done
t1=$(now); b1=$(served)

# Channels: each room follows the channel and upgrades, all at once.
start_rooms chan
for i in $(seq "$N"); do on "chan-$i" follow big "http://127.0.0.1:$port" >/dev/null; done
c0=$(served); t2=$(now)
for i in $(seq "$N"); do on "chan-$i" upgrade big >/dev/null & done
for j in $(jobs -rp); do case " ${pids[*]} " in *" $j "*) ;; *) wait "$j";; esac; done
t3=$(now); c1=$(served)
for i in $(seq "$N"); do
    [ "$(on "chan-$i" --json workloads | jq -r '.workloads[0].version')" = 1 ] || { echo "distribution: chan-$i did not upgrade"; exit 1; }
    [ "$(on "plain-$i" --json workloads | jq -r '.workloads[0].version')" = 1 ] || { echo "distribution: plain-$i did not install"; exit 1; }
done

awk -v n="$N" -v mib="$MIB" -v size="$size" -v pt="$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')" \
    -v ct="$(awk -v a="$t2" -v b="$t3" 'BEGIN{print b-a}')" -v pb="$((b1 - b0))" -v cb="$((c1 - c0))" 'BEGIN {
    printf "%d rooms, one %d MiB bundle (%d bytes) from one HTTP origin on loopback\n", n, mib, size
    printf "  install URL (baseline): %6.2f s to all installed, origin served %6.1f MiB (%.2f copies)\n", pt, pb / 1048576, pb / size
    printf "  channel upgrade:        %6.2f s to all upgraded,  origin served %6.1f MiB (%.2f copies)\n", ct, cb / 1048576, cb / size
    printf "  ratio channel/baseline: %.2f (time)\n", ct / pt
}'
echo "  (no peer-to-peer fetching yet: every room takes its copy from the origin)"
echo "  load: $(uptime | sed 's/.*load average/load average/')"
