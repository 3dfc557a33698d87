#!/usr/bin/env bash
# test-units.sh: the systemd units pass `systemd-analyze verify`, the service's exposure
# score stays under the threshold written in the unit, the sysusers snippet makes the
# group, and the socket unit listens where osmosed's installed default says.
. "$OSM_SOURCE_ROOT/tests/lib/common.sh"
osm_setup

unit_dir=$OSM_BUILD_ROOT/systemd
src_dir=$OSM_SOURCE_ROOT/systemd
command -v systemd-analyze >/dev/null || { skip "systemd units" "systemd-analyze is not installed"; done_testing; exit; }

# verify checks that ExecStart= exists: point it at the built daemon.
mkdir -p "$T/units"
sed "s|^ExecStart=.*|ExecStart=$OSMOSED|" "$unit_dir/osmosed.service" > "$T/units/osmosed.service"
cp "$src_dir/osmosed.socket" "$T/units/"
out=$(cd "$T/units" && systemd-analyze verify --man=no ./osmosed.service ./osmosed.socket 2>&1)
ok $? "systemd-analyze verify osmosed.service osmosed.socket"
is "$out" "" "verify prints no warning"

like "$(grep -E '^(Type|WatchdogSec|StateDirectory|RuntimeDirectory|ConfigurationDirectory|Delegate)=' "$T/units/osmosed.service" | tr '\n' ' ')" \
    'Type=notify WatchdogSec=[0-9]+s .*StateDirectory=osmose .*RuntimeDirectory=osmose .*ConfigurationDirectory=osmose .*Delegate=yes' \
    "service: notify, watchdog, state/runtime/configuration directories, delegated cgroup"
is "$(sed -n 's/^ExecStart=//p' "$unit_dir/osmosed.service")" "$(meson introspect --buildoptions "$OSM_BUILD_ROOT" |
    python3 -c 'import json,sys; o={x["name"]:x["value"] for x in json.load(sys.stdin)}; print(o["prefix"].rstrip("/")+"/"+o["sbindir"] if not o["sbindir"].startswith("/") else o["sbindir"])')/osmosed" \
    "ExecStart= is the installed osmosed"

# Exposure score against the threshold the unit states and justifies.
threshold=$(sed -n 's/^# security-threshold: *\([0-9.]*\)$/\1/p' "$src_dir/osmosed.service.in")
like "$threshold" '^[0-9]+\.[0-9]$' "the unit states its exposure threshold ($threshold)"
score=$(systemd-analyze security --offline=true --no-pager "$T/units/osmosed.service" 2>/dev/null |
    sed -n 's/.*Overall exposure level for osmosed.service: \([0-9.]*\).*/\1/p')
diag "exposure score of osmosed.service: $score (threshold $threshold)"
systemd-analyze security --offline=true --no-pager --threshold="${threshold/./}" "$T/units/osmosed.service" >/dev/null 2>&1
ok $? "exposure $score is not above $threshold"
stated=$(sed -n 's/^# security-score: *\([0-9.]*\)$/\1/p' "$src_dir/osmosed.service.in")
if systemd-analyze --version | grep -q '^systemd 252 '; then
    is "$score" "$stated" "the score written in the unit is the real one (update both together)"
else
    skip "the score written in the unit is the real one" "scored with systemd 252; this is $(systemd-analyze --version | head -1)"
fi

# Each protection the sandbox allows is on (dropping one would also move the score,
# but say which).
for setting in NoNewPrivileges=yes ProtectSystem=strict ProtectHome=yes PrivateTmp=yes \
        ProtectKernelModules=yes ProtectKernelTunables=yes ProtectKernelLogs=yes \
        PrivateMounts=yes ProtectProc=invisible LockPersonality=yes MemoryDenyWriteExecute=yes \
        SystemCallArchitectures=native RestrictRealtime=yes RestrictSUIDSGID=yes \
        'RestrictAddressFamilies=AF_UNIX AF_NETLINK AF_INET AF_INET6'; do
    grep -qx "$setting" "$T/units/osmosed.service"
    ok $? "service sets $setting"
done

# The socket: where the daemon's installed default is, 0660, group osmose.
default_socket=$("$OSMOSED" --config /dev/null --dump-config | sed -n 's/^socket = //p')
is "$(sed -n 's/^ListenStream=//p' "$src_dir/osmosed.socket")" "$default_socket" \
    "osmosed.socket listens on osmosed's default socket"
is "$(sed -n 's/^SocketMode=//p' "$src_dir/osmosed.socket")" "0660" "socket mode 0660"
is "$(sed -n 's/^SocketGroup=//p' "$src_dir/osmosed.socket")" "osmose" "socket group osmose"
like "$(dirname "$default_socket")" "^/run/osmose$" "the socket lives in the unit's RuntimeDirectory"

# sysusers: the snippet creates the group in a scratch root.
if command -v systemd-sysusers >/dev/null; then
    mkdir -p "$T/root/etc"
    : > "$T/root/etc/passwd"; : > "$T/root/etc/group"
    systemd-sysusers --root="$T/root" "$src_dir/osmose.sysusers" 2>&1 | sed 's/^/# /'
    like "$(cat "$T/root/etc/group")" '^osmose:x:[0-9]+:' "systemd-sysusers creates the group osmose"
else
    skip "systemd-sysusers creates the group osmose" "systemd-sysusers is not installed"
fi

done_testing
