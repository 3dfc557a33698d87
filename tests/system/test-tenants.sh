#!/bin/bash
# test-tenants.sh: two tenants with their own Unix groups and users (made by the test) on
# one real osmosed: each sees and controls only its own workloads, instances and
# collections; a reader sees status and lists but no data; quotas (instances, store,
# memory in the tenant's cgroup) and leases are enforced; every workload has its own host
# uid range; usage is accounted from the cgroups and survives a SIGKILL of the daemon.
. "$(dirname "$0")/../lib/common.sh"
osm_setup

if [ "$(id -u)" != 0 ] || ! command -v useradd >/dev/null || ! command -v setpriv >/dev/null; then
    echo "1..0 # SKIP needs root, useradd and setpriv (the test makes users and groups)"
    exit 0
fi

# Users and groups of this run only (names unique per run; removed at exit).
S=$$
GA=osmta$S GB=osmtb$S GR=osmtr$S
UA=osmua$S UB=osmub$S UR=osmur$S UN=osmun$S
cleanup_users() {
    for u in $UA $UB $UR $UN; do userdel "$u" 2>/dev/null; done
    for g in $GA $GB $GR; do groupdel "$g" 2>/dev/null; done
    osm_cleanup
}
trap cleanup_users EXIT
for g in $GA $GB $GR; do groupadd "$g" || bail "groupadd $g"; done
useradd -M -N -g nogroup -G "$GA" -s /usr/sbin/nologin "$UA" || bail "useradd"
useradd -M -N -g nogroup -G "$GB" -s /usr/sbin/nologin "$UB" || bail "useradd"
useradd -M -N -g nogroup -G "$GR" -s /usr/sbin/nologin "$UR" || bail "useradd"
useradd -M -N -g nogroup -s /usr/sbin/nologin "$UN" || bail "useradd"
as() { local u=$1; shift; setpriv --reuid="$u" --regid=nogroup --init-groups "$OSMOSECTL" "$@"; }
jf() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }

# Signed bundles: a tenant installs only what a trusted key signed.
ctl keygen -o "$T/pub.key" >/dev/null || bail keygen
mk() {   # mk NAME MANIFEST [--unsigned]
    mkdir -p "$T/$1"
    printf '%s' "$2" > "$T/$1/manifest.json"
    if [ "${3:-}" = --unsigned ]; then ctl bundle build "$T/$1" -o "$T/$1.osb" >/dev/null
    else ctl bundle build "$T/$1" -o "$T/$1.osb" --key "$T/pub.key" >/dev/null; fi || bail "bundle $1"
}
mk wa '{"name":"wa","version":1,"entrypoint":["/bin/sh","-c","umask 077; echo secret-of-a > /data/secret; sleep 60"],"capabilities":["store:read:tenants/a'"$S"'/*","store:write:sensors/*","network"]}'
mk wb '{"name":"wb","version":1,"entrypoint":["/bin/sh","-c","cat /data/secret-link 2>&1; echo b-ran; sleep 60"]}'
mk sleeper '{"name":"sleeper","version":1,"entrypoint":["/bin/sleep","60"]}'
mk hog '{"name":"hog","version":1,"entrypoint":["/usr/bin/python3","-c","s = b\"x\" * (200 << 20); import time; time.sleep(30)"]}'
mk burn '{"name":"burn","version":1,"entrypoint":["/usr/bin/timeout","2","/bin/sh","-c","while :; do :; done"]}'
mk unsigned '{"name":"unsigned","version":1,"entrypoint":["/bin/true"]}' --unsigned

cat > "$T/osmosed.conf" <<EOF
[control]
socket-mode = 0666
readers = $GR
[tenants]
usage-sample = 200ms
usage-flush = 500ms
[sandbox]
stop-timeout = 1s
EOF
export OSM_SOCKET=$T/osmosed.sock
osm_start_daemon --config "$T/osmosed.conf"
sbh=$(ctl --json status | jf "next(s['health'] for s in d['subsystems'] if s['name']=='sandbox')")
ctl trust add "$(cat "$T/pub.key.pub")" >/dev/null || bail "trust add"

# ---- tenants ----
TA=a$S TB=b$S
ctl tenant add "$TA" --group "$GA" --instances 2 --memory 64M --store 2K --network denied >/dev/null
ok $? "tenant add $TA (instances 2, memory 64M, store 2K, no network)"
ctl tenant add "$TB" --group "$GB" >/dev/null; ok $? "tenant add $TB"
out=$(ctl tenant add "$TB" --group "$GB" 2>&1); rc=$?
ok $(( rc == 1 ? 0 : 1 )) "a second tenant of the same name is refused"
like "$out" "exists already" "... saying it exists"
out=$(ctl tenant add c$S --group no-such-group-$S 2>&1)
like "$out" "no Unix group named" "a tenant whose group does not exist is refused"
out=$(ctl tenant add operator --group "$GA" 2>&1); rc=$?
ok $(( rc != 0 ? 0 : 1 )) "the name 'operator' is refused"
out=$(ctl tenant add "$TA" 2>&1); rc=$?
is "$rc" 2 "tenant add without --group is a usage error (exit 2)"
is "$(ctl --json tenant ls | jf "sorted(t['name'] for t in d['tenants'])")" "['$TA', '$TB']" "tenant ls lists both"
is "$(ctl --json tenant ls | jf "[t for t in d['tenants'] if t['name']=='$TA'][0]['memory']")" "67108864" "tenant ls shows the memory quota"

# ---- access: each sees only its own ----
out=$(as "$UA" install "$T/wa.osb" 2>&1); ok $? "a member of $GA installs wa (signed by a trusted key)"
is "$(ctl --json workloads | jf "[w['tenant'] for w in d['workloads'] if w['name']=='wa'][0]")" "$TA" "wa belongs to $TA"
as "$UB" install "$T/wb.osb" >/dev/null 2>&1; ok $? "a member of $GB installs wb"
as "$UA" install "$T/sleeper.osb" >/dev/null 2>&1; ok $? "$TA installs sleeper"
as "$UA" install "$T/hog.osb" >/dev/null 2>&1; ok $? "$TA installs hog"
as "$UB" install "$T/burn.osb" >/dev/null 2>&1; ok $? "$TB installs burn"
out=$(as "$UA" install --allow-unsigned "$T/unsigned.osb" 2>&1); rc=$?
ok $(( rc != 0 ? 0 : 1 )) "a tenant may not install an unsigned bundle, even with --allow-unsigned"
like "$out" "signed by a trusted key" "... saying why"
is "$(as "$UA" --json workloads | jf "sorted(w['name'] for w in d['workloads'])")" "['hog', 'sleeper', 'wa']" "$TA sees only its own workloads"
is "$(as "$UB" --json workloads | jf "sorted(w['name'] for w in d['workloads'])")" "['burn', 'wb']" "$TB sees only its own workloads"
is "$(ctl --json workloads | jf "len(d['workloads'])")" "5" "the operator sees all five"
out=$(as "$UB" run wa 2>&1); rc=$?
ok $(( rc != 0 ? 0 : 1 )) "$TB cannot run $TA's workload"
like "$out" "no workload named wa" "... which it is told does not exist (nothing confirms it)"
out=$(as "$UB" remove wa 2>&1); ok $(( $? != 0 ? 0 : 1 )) "$TB cannot remove $TA's workload"
out=$(as "$UB" grant wa store:write:sensors/x 2>&1); ok $(( $? != 0 ? 0 : 1 )) "$TB cannot grant to $TA's workload"
out=$(as "$UA" grant wa 'store:write:sensors/*' 2>&1); rc=$?
ok $(( rc != 0 ? 0 : 1 )) "$TA may not grant a store scope outside tenants/$TA/"
like "$out" "only an operator may grant it" "... saying who may"
out=$(as "$UA" grant wa network 2>&1); ok $(( $? != 0 ? 0 : 1 )) "$TA (network denied) may not grant network"
as "$UA" grant wa "store:read:tenants/$TA/*" >/dev/null 2>&1; ok $? "$TA may grant a store scope inside tenants/$TA/"
out=$(as "$UA" trust add "$(cat "$T/pub.key.pub")" 2>&1); rc=$?
ok $(( rc != 0 ? 0 : 1 )) "a tenant may not change the trusted keys"
like "$out" "operators|only root" "... it is for operators"
out=$(as "$UN" workloads 2>&1); ok $(( $? != 0 ? 0 : 1 )) "a user in no tenant's group sees no workloads"

# ---- the store: tenants/NAME/ only ----
as "$UA" put "tenants/$TA/notes" '{"n":1}' >/dev/null 2>&1; ok $? "$TA writes tenants/$TA/notes"
ctl put sensors/temp '{"t":20}' >/dev/null; ctl put "tenants/$TB/private" '{"secret":"b"}' >/dev/null
out=$(as "$UA" put sensors/temp '{"t":1}' 2>&1); rc=$?
ok $(( rc != 0 ? 0 : 1 )) "$TA may not write outside tenants/$TA/"
like "$out" "tenants/$TA/" "... naming its part of the store"
out=$(as "$UA" query "tenants/$TB/private" 2>&1); ok $(( $? != 0 ? 0 : 1 )) "$TA may not read $TB's collection"
out=$(as "$UA" query sensors/temp 2>&1); ok $(( $? != 0 ? 0 : 1 )) "$TA may not read the operator's collections"
is "$(as "$UA" --json collections | jf "sorted(c['name'] for c in d['collections'])")" "['tenants/$TA/notes']" "$TA lists only its own collections"
# store quota 2K: fill it, then the next write is refused with the quota named
for i in $(seq 30); do as "$UA" put "tenants/$TA/notes" "{\"pad\":\"$(printf '%0100d' 0)\"}" >/dev/null 2>&1 || break; done
out=$(as "$UA" put "tenants/$TA/notes" '{"n":2}' 2>&1); rc=$?
ok $(( rc != 0 ? 0 : 1 )) "past its store quota a tenant's write is refused"
like "$out" "store quota" "... naming the store quota"
ctl put sensors/temp '{"t":21}' >/dev/null; ok $? "the operator still writes (the quota is the tenant's)"

# ---- the reader role ----
out=$(as "$UR" status 2>&1); like "$out" "Space: " "a reader sees status"
is "$(as "$UR" --json collections 2>/dev/null | jf "'sensors/temp' in [c['name'] for c in d['collections']]")" "True" "a reader lists every collection's name"
out=$(as "$UR" query sensors/temp 2>&1); rc=$?
ok $(( rc != 0 ? 0 : 1 )) "a reader sees no record bodies"
like "$out" "operators|may not" "... a permission error"
out=$(as "$UR" put sensors/temp '{"t":0}' 2>&1); ok $(( $? != 0 ? 0 : 1 )) "a reader cannot write"
as "$UR" --json usage >/dev/null 2>&1; ok $? "a reader sees usage"
out=$(as "$UR" workloads 2>&1); ok $(( $? != 0 ? 0 : 1 )) "a reader does not list workloads"
out=$(as "$UN" collections 2>&1); ok $(( $? != 0 ? 0 : 1 )) "someone in no group does not list collections"

if [ "$sbh" = failed ]; then
    skip "instances of tenants" "the sandbox cannot run on this host"
    done_testing; exit
fi

# ---- uids: every workload its own ----
ia=$(as "$UA" --json run wa | jf "d['instance']"); ok $? "$TA runs wa"
ib=$(as "$UB" --json run wb | jf "d['instance']"); ok $? "$TB runs wb"
sleep 1
ua=$(stat -c %u "$T/state/data/wa"); ub=$(stat -c %u "$T/state/data/wb")
ok $(( ua != ub ? 0 : 1 )) "two workloads' data directories are owned by different host uids ($ua, $ub)"
# A shared path the test sets up: wa's private file, hard-linked into wb's data directory.
for i in $(seq 50); do [ -f "$T/state/data/wa/secret" ] && break; sleep 0.1; done
is "$(stat -c '%u %a' "$T/state/data/wa/secret")" "$ua 600" "wa's file is its own uid's, mode 0600"
ln "$T/state/data/wa/secret" "$T/state/data/wb/secret-link" || bail "ln"
as "$UB" stop "$ib" >/dev/null 2>&1
sleep 1.5
ib=$(as "$UB" --json run wb | jf "d['instance']")
sleep 1
logs=$(as "$UB" logs "$ib" 2>&1)
like "$logs" "Permission denied" "wb cannot read wa's file through the shared path"
ok $(printf '%s' "$logs" | grep -q secret-of-a; echo $(( $? == 0 ? 1 : 0 ))) "... and nothing of it reached wb"
out=$(as "$UB" logs "$ia" 2>&1); ok $(( $? != 0 ? 0 : 1 )) "$TB cannot read the logs of $TA's instance"
out=$(as "$UB" stop "$ia" 2>&1); ok $(( $? != 0 ? 0 : 1 )) "$TB cannot stop $TA's instance"
is "$(as "$UB" --json ps | jf "sorted(set(i['workload'] for i in d['instances']))")" "['wb']" "$TB's ps shows only its own instances"

# ---- instance quota: 2 ----
is2=$(as "$UA" --json run sleeper | jf "d['instance']"); ok $? "$TA's second instance starts"
out=$(as "$UA" run sleeper 2>&1); rc=$?
ok $(( rc != 0 ? 0 : 1 )) "a third instance of $TA is refused"
like "$out" "instances quota" "... naming the instances quota"
as "$UA" stop "$is2" >/dev/null 2>&1; as "$UA" stop "$ia" >/dev/null 2>&1
sleep 1.5

# ---- memory: the tenant's cgroup holds the sum ----
ih=$(as "$UA" --json run hog | jf "d['instance']"); ok $? "$TA runs a 200 MiB hog under a 64 MiB tenant quota (its own limit is 256 MiB)"
for i in $(seq 100); do st=$(ctl --json ps --all | jf "[i['state'] for i in d['instances'] if i['id']=='$ih'][0]"); [ "$st" = exited ] || [ "$st" = failed ] && break; sleep 0.1; done
is "$st" exited "the hog was killed by the kernel within the tenant's memory"
is "$(ctl --json ps --all | jf "[i.get('signal') for i in d['instances'] if i['id']=='$ih'][0]")" "9" "... by SIGKILL (the OOM killer)"
is "$(ctl --json ps --all | jf "[i['state'] for i in d['instances'] if i['id']=='$ib'][0]")" running "$TB's instance kept running"

# ---- accounting ----
ib2=$(as "$UB" --json run --wait burn 2>/dev/null | jf "d.get('instance','')" 2>/dev/null)
[ -n "$ib2" ] || ib2=$(ctl --json ps --all | jf "[i['id'] for i in d['instances'] if i['workload']=='burn'][-1]")
cg=$(ctl --json stats "$ib2" | jf "d.get('cpu_usec', 0)")
us=$(ctl --json usage --tenant "$TB" | jf "sum(u['cpu_usec'] for u in d['usage'] if u['workload']=='burn')")
diag "burn: cgroup cpu_usec $cg, accounted $us"
ok $(python3 -c "import sys; c,u=$cg,$us; sys.exit(0 if c > 50000 and abs(u-c) <= 0.02*c else 1)"; echo $?) "a 2 s CPU burner is accounted within 2 % of its cgroup's counter"
is "$(as "$UA" --json usage | jf "sorted(set(u['tenant'] for u in d['usage']))")" "['$TA']" "a tenant's usage shows only itself"
out=$(as "$UA" usage --tenant "$TB" 2>&1); ok $(( $? != 0 ? 0 : 1 )) "a tenant cannot ask for another's usage"
csv=$(ctl usage --csv --tenant "$TB"); like "$csv" "^hour,tenant,workload,cpu_seconds" "usage --csv has a header"
osm_stop_daemon KILL
osm_start_daemon --config "$T/osmosed.conf"
us2=$(ctl --json usage --tenant "$TB" | jf "sum(u['cpu_usec'] for u in d['usage'] if u['workload']=='burn')")
ok $(( us2 >= us ? 0 : 1 )) "usage survives a SIGKILL of the daemon ($us2 >= $us)"
is "$(ctl --json workloads | jf "[w['tenant'] for w in d['workloads'] if w['name']=='wb'][0]")" "$TB" "owners survive the restart"

# ---- lease ----
ia=$(as "$UA" --json run wa | jf "d['instance']")
ctl tenant set "$TA" --until "+1s" >/dev/null; ok $? "tenant set --until +1s"
for i in $(seq 60); do st=$(ctl --json ps --all | jf "[i['state'] for i in d['instances'] if i['id']=='$ia'][0]"); [ "$st" = exited ] && break; sleep 0.1; done
is "$st" exited "when the lease ends the tenant's instances are stopped"
out=$(as "$UA" run wa 2>&1); rc=$?
ok $(( rc != 0 ? 0 : 1 )) "after its lease a tenant's run is refused"
like "$out" "lease has ended" "... saying the lease ended"
is "$(ctl --json tenant ls | jf "[t['expired'] for t in d['tenants'] if t['name']=='$TA'][0]")" "True" "tenant ls marks it ended"

# ---- removal ----
rm_out=$(ctl --json tenant rm "$TA"); ok $? "tenant rm $TA"
is "$(printf '%s' "$rm_out" | jf "sorted(d['removed_workloads'])")" "['hog', 'sleeper', 'wa']" "its workloads were removed"
ok $([ -d "$T/state/data/wa" ]; echo $?) "their data is kept (for [tenants] keep-data)"
out=$(ctl install "$T/wa.osb" 2>&1); rc=$?
ok $(( rc != 0 ? 0 : 1 )) "its workload's name stays taken while its data is kept"
is "$(ctl --json tenant ls | jf "[t['name'] for t in d['tenants']]")" "['$TB']" "tenant ls no longer lists it"

done_testing
