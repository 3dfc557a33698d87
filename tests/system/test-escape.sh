#!/bin/bash
# test-escape.sh: the escape probe installed as a bundle with nothing granted, run by a real
# osmosed through osmosectl: every attempt must fail, one assertion each; the fork bomb and
# the memory hog are bounded and leave the daemon serving.
. "$(dirname "$0")/../lib/common.sh"
osm_setup

if [ "$(id -u)" != 0 ]; then
    echo "1..0 # SKIP needs root (sandboxes map a uid range and use cgroups)"
    exit 0
fi
PROBE=${OSM_PROBE:-${OSM_BUILD_ROOT:-$OSM_SOURCE_ROOT/build}/tests/sandbox/probe}
[ -x "$PROBE" ] || bail "no probe at $PROBE"

# The attempts the probe must report, all held (the unit test checks the same list).
EXPECTED="read-host-file read-host-file-via-proc1-root read-host-file-via-dotdot read-host-shadow
read-host-ssh-dir chroot open-by-handle write-root-create write-root-mkdir write-usr write-etc write-dev
write-proc-sys write-sysrq-trigger tmp-writable data-writable exec-from-tmp see-host-processes
see-host-pid signal-host-pid pid-namespace network-interfaces reach-1.1.1.1 reach-10.0.0.1
reach-192.168.1.1 reach-169.254.169.254 reach-ipv6 reach-host-loopback reach-host-abstract-socket
raw-socket socket-alg socket-netlink-audit socket-netlink-route-allowed ptrace-attach-init ptrace-traceme process-vm-readv mount-tmpfs remount-root-rw umount-proc
pivot-root fsopen open-tree init-module finit-module delete-module bpf keyctl add-key request-key
perf-event-open userfaultfd io-uring-setup kexec-load reboot mknod-device clock-settime syslog swapon
personality open-dev-mem open-dev-sda tiocsti-stdin tiocsti-stdin-high-bits tioclinux tiocsti-own-pty
tiocsti-own-pty-high-bits open-controlling-tty new-session write-proc-self-exe write-proc-1-exe
read-proc-1-exe read-proc-1-environ read-proc-1-mem no-capabilities capset-raise bounding-set-empty
ambient-raise no-new-privs no-new-privs-clear unshare-user unshare-mount clone-newuser setns uid
inherited-fds inherited-fds-usable sethostname setdomainname hostname-unchanged alive-after-denials"

# mk NAME JSON: a bundle whose rootfs holds only the (static) probe
mk() {
    mkdir -p "$T/$1/rootfs/bin"
    cp "$PROBE" "$T/$1/rootfs/bin/probe"
    printf '%s\n' "$2" > "$T/$1/manifest.json"
    ctl bundle build "$T/$1" -o "$T/$1.osb" >/dev/null || bail "bundle build $1"
}
mk escape '{"name":"escape","version":1,"entrypoint":["/bin/probe"]}'
mk forkbomb '{"name":"forkbomb","version":1,"entrypoint":["/bin/probe","forkbomb","32"],"resources":{"pids":32}}'
mk memhog '{"name":"memhog","version":1,"entrypoint":["/bin/probe","memhog","512"],"resources":{"memory":"32M"}}'

# id_of NAME: the latest instance of workload NAME
id_of() {
    ctl --json ps --all | python3 -c "import json,sys; ids=[i['id'] for i in json.load(sys.stdin)['instances'] if i['id'].rsplit('-',1)[0]=='$1']; print(ids[-1] if ids else '$1-none')"
}

# A uid range of its own: rlimits such as RLIMIT_NPROC count per host uid. Each of the
# three workloads gets its own 65536 ids inside it.
UIDBASE=$(( 1100000 + ($$ % 1000) * 270000 ))
printf '[sandbox]\nuid-base = %s\nuid-count = 262144\nuid-range-size = 65536\n' "$UIDBASE" > "$T/osmosed.conf"
osm_start_daemon --config "$T/osmosed.conf"
sb=$(ctl --json status | python3 -c "import json,sys; s=next(s for s in json.load(sys.stdin)['subsystems'] if s['name']=='sandbox'); print(s['health'], json.dumps(s))")
diag "sandbox: $sb"
if [ "${sb%% *}" = failed ]; then
    echo "1..0 # SKIP the sandbox cannot run on this host"
    exit 0
fi
for w in escape forkbomb memhog; do
    ctl install "$T/$w.osb" --allow-unsigned >/dev/null || bail "install $w"
done
like "$(ctl --json workloads)" '"escape"' "the probe is installed with nothing granted"

# Host-side bait: a world-readable secret, a TCP listener and an abstract socket on the host.
echo "host secret" > "$T/secret"
chmod 644 "$T/secret"
python3 - "$T/port" <<'PY' &
import socket, sys, time
t = socket.socket(); t.bind(("127.0.0.1", 0)); t.listen(4)
u = socket.socket(socket.AF_UNIX); u.bind("\0osmose-escape-test"); u.listen(4)
open(sys.argv[1], "w").write(str(t.getsockname()[1]))
time.sleep(120)
PY
BAIT=$!
_osm_pids+=("$BAIT")
for _ in $(seq 50); do [ -s "$T/port" ] && break; sleep 0.1; done
port=$(cat "$T/port")
hostname_before=$(hostname)

ctl run escape --wait -- escape "$T/secret" "$$" "$port" osmose-escape-test --no-tty >/dev/null 2>&1
is "$?" 0 "run --wait of the probe exits 0 (every attempt held)"
out=$(ctl logs "$(id_of escape)")
for name in $EXPECTED; do
    line=$(printf '%s\n' "$out" | grep -E "^(ok|not ok) - $name: " | head -1)
    case $line in
    "ok - "*) ok 0 "escape: $name" ;;
    "not ok - "*) ok 1 "escape: $name"; diag "$line" ;;
    *) ok 1 "escape: $name (not reported)" ;;
    esac
done
like "$out" "^done 0$|
done 0" "the probe reports no attempt that succeeded"
is "$(hostname)" "$hostname_before" "the host's hostname is unchanged"
is "$(cat "$T/state/data/escape/probe" 2>/dev/null; echo -n x)" "x" "the probe's own data file landed in its data directory"

# --- fork bomb: bounded by pids, the daemon keeps serving
ctl run forkbomb --wait >/dev/null 2>&1
is "$?" 0 "the fork bomb ends"
fb=$(ctl logs "$(id_of forkbomb)")
n=$(printf '%s\n' "$fb" | sed -n 's/^forkbomb \([0-9]*\) .*/\1/p')
ok $(( ! (n >= 0 && n < 32) )) "fork bomb stopped below its pids limit of 32 (forked ${n:-?})"
like "$fb" "temporarily unavailable" "fork refused with EAGAIN"
ctl call org.varlink.service.GetInfo >/dev/null; ok $? "the daemon answers after the fork bomb"

# --- memory hog: killed at its limit, the daemon unaffected
ctl run memhog --wait >/dev/null 2>&1
is "$?" 137 "the memory hog is killed (128+SIGKILL)"
mh=$(id_of memhog)
like "$(ctl logs "$mh")" "memhog start" "it had started"
ok $(( $(ctl logs "$mh" | grep -c survived) != 0 )) "it never got its 512 MiB"
peak=$(ctl --json stats "$mh" | python3 -c "import json,sys; print(json.load(sys.stdin).get('memory_peak', -1))")
ok $(( ! (peak > 0 && peak <= 34 * 1024 * 1024) )) "its peak memory stayed at the 32 MiB limit ($peak bytes)"
ctl call org.varlink.service.GetInfo >/dev/null; ok $? "the daemon answers after the memory hog"
kill -0 "$OSM_PID"; ok $? "the daemon is alive"
like "$(ctl --json ps --all)" "\"$mh\"" "ps lists the killed instance"

kill "$BAIT" 2>/dev/null
osm_stop_daemon
is "$OSM_EXIT" 0 "osmosed stops cleanly"

# --- a host without usable cgroups: limits fall back to rlimits and status says so.
# The daemon runs in a mount namespace where /sys/fs/cgroup is an empty tmpfs.
cat > "$T/osmosed-nocg" <<EOF
#!/bin/sh
exec unshare -m --propagation private sh -c 'mount -t tmpfs tmpfs /sys/fs/cgroup && exec "\$0" "\$@"' "$OSMOSED" "\$@"
EOF
chmod +x "$T/osmosed-nocg"
REAL_OSMOSED=$OSMOSED
OSMOSED=$T/osmosed-nocg
osm_start_daemon --config "$T/osmosed.conf"
OSMOSED=$REAL_OSMOSED
st=$(ctl --json status | python3 -c "import json,sys; s=next(s for s in json.load(sys.stdin)['subsystems'] if s['name']=='sandbox'); print(s['health'] + ' | ' + s.get('detail',''))")
like "$st" "^degraded" "without cgroups the sandbox reports itself degraded"
like "$st" "memory: rlimit only" "…naming memory as rlimit-only"
like "$st" "pids: rlimit only" "…pids as rlimit-only"
like "$st" "cpu: not enforced" "…and the CPU limit as not enforced"
ctl run memhog --wait >/dev/null 2>&1
is "$?" 3 "the memory hog is still bounded (RLIMIT_AS: its allocation fails)"
like "$(ctl logs "$(id_of memhog)")" "mmap failed after [0-9]+ MiB" "…after a few MiB"
ctl run forkbomb --wait >/dev/null 2>&1
fb=$(ctl logs "$(id_of forkbomb)")
n=$(printf '%s\n' "$fb" | sed -n 's/^forkbomb \([0-9]*\) .*/\1/p')
ok $(( ! (n >= 0 && n < 32) )) "the fork bomb is still bounded (RLIMIT_NPROC; forked ${n:-?})"
ctl call org.varlink.service.GetInfo >/dev/null; ok $? "the daemon answers"
osm_stop_daemon
is "$OSM_EXIT" 0 "osmosed stops cleanly"
done_testing
