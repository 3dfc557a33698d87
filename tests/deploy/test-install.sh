#!/usr/bin/env bash
# test-install.sh: `meson install` into a DESTDIR puts the programs, units, sysusers
# snippet, configuration, manual pages and completion under the configured prefix.
. "$OSM_SOURCE_ROOT/tests/lib/common.sh"
osm_setup

D=$T/dest
out=$(meson install -C "$OSM_BUILD_ROOT" --destdir "$D" --no-rebuild 2>&1)
ok $? "meson install --destdir"
[ $? -eq 0 ] || printf '%s\n' "$out" | tail -20 | sed 's/^/# /'

# The configured directories, as meson resolves them (absolute, prefix applied).
eval "$(meson introspect --buildoptions "$OSM_BUILD_ROOT" | python3 -c '
import json, sys, os.path
o = {x["name"]: x["value"] for x in json.load(sys.stdin)}
p = o["prefix"]
for k in ("bindir", "sbindir", "sysconfdir", "mandir", "datadir", "localstatedir"):
    print("%s=%s" % (k, os.path.join(p, o[k])))
print("prefix=%s" % p)
print("unitdir=%s" % (o["systemdsystemunitdir"] or os.path.join(p, "lib/systemd/system")))
print("sysusersdir=%s" % (o["sysusersdir"] or os.path.join(p, "lib/sysusers.d")))
print("compdir=%s" % (o["bashcompletiondir"] or os.path.join(p, o["datadir"], "bash-completion/completions")))
')"
diag "prefix $prefix"

expect() {   # expect PATH TEST-OP DESCRIPTION
    test "$2" "$D$1"
    ok $? "$3: $1"
}
expect "$sbindir/osmosed" -x "daemon"
expect "$bindir/osmosectl" -x "tool"
expect "$unitdir/osmosed.service" -f "service unit"
expect "$unitdir/osmosed.socket" -f "socket unit"
expect "$sysusersdir/osmose.conf" -f "sysusers.d snippet"
expect "$sysconfdir/osmose/osmosed.conf" -f "configuration file"
expect "$compdir/osmosectl" -f "bash completion"
expect "$compdir/osmosed" -L "bash completion (osmosed, a link)"
if [ -f "$OSM_BUILD_ROOT/doc/osmosed.8" ]; then
    expect "$mandir/man8/osmosed.8" -f "manual page"
    expect "$mandir/man1/osmosectl.1" -f "manual page"
    expect "$mandir/man5/osmosed.conf.5" -f "manual page"
    expect "$mandir/man5/osmose-manifest.5" -f "manual page"
else
    skip "manual pages installed" "scdoc is not installed, so no manual pages were built"
fi

# The installed unit starts the installed daemon; the installed configuration names the
# state directory the daemon defaults to.
is "$(sed -n 's/^ExecStart=//p' "$D$unitdir/osmosed.service")" "$sbindir/osmosed" "ExecStart= points at the installed osmosed"
is "$(sed -n 's/^#state-dir = //p' "$D$sysconfdir/osmose/osmosed.conf")" \
   "$("$OSMOSED" --config /dev/null --dump-config | sed -n 's/^state-dir = //p')" \
   "the installed configuration shows the daemon's default state directory"

# Everything is under the prefix, except the configuration (sysconfdir) and units given
# explicit directories.
outside=$(cd "$D" && find . ! -type d | sed 's|^\.||' | grep -v "^$prefix/" | grep -v "^$sysconfdir/" | grep -v "^$unitdir/" | grep -v "^$sysusersdir/" | grep -v "^$compdir/")
is "$outside" "" "nothing installed outside the prefix and the configured directories"
# and nothing that is not ours (a test binary, a fuzzer, a static library).
strays=$(cd "$D" && find . -type f | grep -E '/(test-|fuzz-)|\.a$' || true)
is "$strays" "" "no test, fuzz or library files installed"

done_testing
