#!/bin/bash
# test-optional-libs.sh: libcurl, libmicrohttpd and libnl are opened when first needed. An
# idle daemon maps none of them (nor curl's TLS, SSH, LDAP and Kerberos stacks); federation enable and install from a URL
# load them; with a library hidden (a private mount namespace bind-mounts /dev/null over
# it), the feature fails with an error naming the package and the daemon keeps serving.
# libavahi-client (with libdbus and what that links) once discovery first runs.
# OpenSSL and libdqlite (with libraft) likewise: mapped only once the room is in a building
# (building create here; at start when its state says it is a member); libmosquitto, which
# links OpenSSL too, once the first MQTT bridge starts.
. "$(dirname "$0")/../lib/common.sh"
osm_setup

# discovery's entry of status, on one line.
disc_status() { ctl --json status 2>/dev/null | jq -c '.subsystems[] | select(.name == "discovery")'; }
# The libraries the daemon has mapped, by file name.
mapped() { awk '$6 ~ /\.so/ { print $6 }' "/proc/$OSM_PID/maps" | xargs -rn1 basename | sort -u; }
maps_lib() { mapped | grep -q "^$1\.so"; }

osm_start_daemon
for l in libcurl libmicrohttpd libnl-3 libnl-route-3 libgnutls libgssapi_krb5 libp11-kit libssh2 libldap \
         libssl libcrypto libdqlite libraft libmosquitto; do
    maps_lib "$l"
    ok $((! $?)) "an idle daemon does not map $l"
done

have_fed=0
ctl federation status >/dev/null 2>&1 && have_fed=1
if [ $have_fed = 1 ]; then
    out=$(ctl federation enable --listen 127.0.0.1:0 2>&1); ok $? "federation enable ($out)"
    maps_lib libcurl; ok $? "federation enabled: libcurl is mapped"
    maps_lib libmicrohttpd; ok $? "federation enabled: libmicrohttpd is mapped"
    ctl federation disable >/dev/null; ok $? "federation disable"
else
    skip "federation loads libcurl and libmicrohttpd" "built without federation"
fi
out=$(ctl install "http://127.0.0.1:1/none.osb" 2>&1)
like "$out" "127.0.0.1:1" "install URL reaches libcurl (the fetch itself fails: nothing listens)"
maps_lib libcurl; ok $? "install URL: libcurl is mapped"
have_ingest=0
ctl ingest ls >/dev/null 2>&1 && have_ingest=1
if [ $have_ingest = 1 ]; then
    out=$(ctl ingest add opt mqtt://127.0.0.1:1 --topic a --into s/ 2>&1); ok $? "ingest add ($out)"
    maps_lib libmosquitto; ok $? "a bridge: libmosquitto is mapped"
fi
osm_stop_daemon

# Discovery: libavahi-client and the D-Bus stack under it (libdbus, and Debian's libdbus
# links libsystemd, gcrypt, lz4, zstd, lzma) are mapped once discovery first runs with a
# system bus to reach avahi-daemon on (a private bus of this run here: no avahi-daemon on
# it, so discovery waits for one, degraded).
have_disc=0
ldd "$OSMOSED" | grep -q libavahi-common && have_disc=1
bus_pid=
if [ $have_disc = 1 ] && command -v dbus-daemon >/dev/null; then
    dbus-daemon --session --address="unix:path=$T/bus" --nopidfile --fork --print-pid=3 3>"$T/bus.pid"
    bus_pid=$(cat "$T/bus.pid")
    _osm_pids+=("$bus_pid")
fi
if [ $have_disc = 1 ]; then
    mkdir -p "$T/state-nodisc"
    printf '[discovery]\nenabled = no\n' >"$T/state-nodisc/osmosed.conf"
    OSM_TEST_BUS=unix:path=$T/bus OSM_STATE=$T/state-nodisc osm_start_daemon
    for l in libavahi-client libdbus-1 libsystemd libgcrypt liblz4; do
        maps_lib "$l"
        ok $((! $?)) "discovery off: the daemon does not map $l"
    done
    maps_lib libavahi-common; ok $? "discovery off: libavahi-common (name checks) is linked"
    osm_stop_daemon
    # discovery on (the default) without a system bus: nothing to talk to, nothing mapped
    osm_start_daemon
    maps_lib libavahi-client; ok $((! $?)) "discovery on, no system bus: libavahi-client is not mapped"
    out=$(disc_status)
    like "$out" '"health":"degraded","detail":"no system bus at ' \
        "... and discovery is degraded, naming the missing bus"
    osm_stop_daemon
else
    skip "discovery loads libavahi-client" "built without discovery"
fi
if [ -n "$bus_pid" ]; then
    OSM_TEST_BUS=unix:path=$T/bus OSM_STATE=$T/state-nodisc osm_start_daemon
    printf '[discovery]\nenabled = yes\n' >"$T/state-nodisc/osmosed.conf"
    out=$(ctl reload 2>&1); ok $? "reload switching discovery on ($out)"
    maps_lib libavahi-client; ok $? "discovery switched on, with a bus: libavahi-client is mapped"
    maps_lib libdbus-1; ok $? "discovery switched on, with a bus: libdbus-1 is mapped"
    out=$(disc_status)
    like "$out" '"health":"degraded","detail":"avahi-daemon is not running' \
        "... and discovery runs on the bus, waiting for avahi-daemon"
    osm_stop_daemon
elif [ $have_disc = 1 ]; then
    skip "discovery with a bus loads libavahi-client" "no dbus-daemon"
fi

# A building of one on loopback, on a port of this run (the building tests use rooms).
have_building=0
"$OSMOSECTL" building --help >/dev/null 2>&1 && have_building=1
bport=$(( 20000 + $$ % 20000 ))
building_conf() { printf '[building]\nport = %s\naddress = 127.0.0.1\n' "$bport" >"$1/osmosed.conf"; }
if [ $have_building = 1 ]; then
    mkdir -p "$T/state-building"; building_conf "$T/state-building"
    OSM_STATE=$T/state-building osm_start_daemon
    maps_lib libssl; ok $((! $?)) "outside a building: libssl is not mapped"
    maps_lib libdqlite; ok $((! $?)) "outside a building: libdqlite is not mapped"
    out=$(ctl building create --name "opt-$$" --address "127.0.0.1:$bport" 2>&1); ok $? "building create ($out)"
    for l in libssl libcrypto libdqlite libraft; do
        maps_lib $l; ok $? "in a building: $l is mapped"
    done
    osm_stop_daemon
    OSM_STATE=$T/state-building osm_start_daemon
    maps_lib libdqlite; ok $? "restarted as a member: libdqlite is mapped at start"
    osm_stop_daemon
else
    skip "building create loads OpenSSL and libdqlite" "built without the building"
fi

# hide LIB: start the daemon in a private mount namespace where LIB (a soname) is /dev/null.
libdir=$(dirname "$(ldd "$OSMOSED" | awk '$1 == "libc.so.6" { print $3 }')")
hide() {
    local real
    real=$(readlink -f "$libdir/$1")
    cat >"$T/osmosed-without-$1" <<SH
#!/bin/sh
exec unshare -m --propagation private sh -c 'mount --bind /dev/null "\$0" && exec "\$@"' "$real" "$OSMOSED" "\$@"
SH
    chmod +x "$T/osmosed-without-$1"
    OSMOSED="$T/osmosed-without-$1" OSM_STATE=$T/state-$1 osm_start_daemon
}
# refused SONAME PACKAGE WHAT CMD...: with SONAME hidden, CMD fails naming it and PACKAGE.
refused() {
    local so=$1 pkg=$2 what=$3 out st
    shift 3
    out=$("$@" 2>&1); st=$?
    ok $((st == 0)) "$what without $so fails"
    like "$out" "$so.*package $pkg" "... naming the library and its package ($out)"
}
if [ "$(id -u)" != 0 ] || ! unshare -m --propagation private true 2>/dev/null; then
    skip "hidden libraries" "needs root and mount namespaces"
else
    hide libcurl.so.4
    out=$(ctl install "http://127.0.0.1:1/none.osb" 2>&1); st=$?
    ok $((st == 0)) "install URL without libcurl fails"
    like "$out" "libcurl.so.4.*package libcurl4" "... naming the library and its package ($out)"
    if [ $have_fed = 1 ]; then
        out=$(ctl federation enable --listen 127.0.0.1:0 2>&1); st=$?
        ok $((st == 0)) "federation enable without libcurl fails"
        like "$out" "package libcurl4" "... naming the package ($out)"
        out=$(ctl --json federation status 2>&1)
        like "$out" '"enabled": *false' "federation stays off"
    fi
    ctl call org.varlink.service.GetInfo >/dev/null; ok $? "the daemon keeps serving"
    osm_stop_daemon
    if [ -n "$bus_pid" ]; then
        OSM_TEST_BUS=unix:path=$T/bus hide libavahi-client.so.3
        out=$(disc_status)
        like "$out" '"health":"degraded","detail":"libavahi-client.so.3[^"]*package libavahi-client3' \
            "without libavahi-client discovery is degraded, naming the library and its package"
        ctl call org.varlink.service.GetInfo >/dev/null; ok $? "the daemon keeps serving"
        osm_stop_daemon
    fi
    if [ $have_fed = 1 ]; then
        hide libmicrohttpd.so.12
        refused libmicrohttpd.so.12 libmicrohttpd12 "federation enable" ctl federation enable --listen 127.0.0.1:0
        ctl call org.varlink.service.GetInfo >/dev/null; ok $? "the daemon keeps serving"
        osm_stop_daemon
    fi
    if [ $have_ingest = 1 ]; then
        hide libmosquitto.so.1
        refused libmosquitto.so.1 libmosquitto1 "ingest add" ctl ingest add opt mqtt://127.0.0.1:1 --topic a --into s/
        ctl call org.varlink.service.GetInfo >/dev/null; ok $? "the daemon keeps serving"
        osm_stop_daemon
    fi
    if [ $have_building = 1 ]; then
        for lib in libssl.so.3:libssl3 libdqlite.so.0:libdqlite0; do
            so=${lib%%:*} pkg=${lib#*:}
            mkdir -p "$T/state-$so"; building_conf "$T/state-$so"
            hide "$so"
            refused "$so" "$pkg" "building create" ctl building create --name "opt-$$" --address "127.0.0.1:$bport"
            out=$(ctl --json building status 2>&1)
            like "$out" '"in_building": *false' "... and the room is not in a building"
            ctl call org.varlink.service.GetInfo >/dev/null; ok $? "the daemon keeps serving"
            osm_stop_daemon
        done
    fi
fi
done_testing
