#!/usr/bin/env bash
# systemd-container.sh: install the osmose .deb on a real systemd (PID 1 of a throwaway
# container) and check what a gateway would do with it: the group, the units enabled and
# started (Type=notify), socket activation, restart and reload, the watchdog, access by
# group, the real sandbox test under osmosed.service's own hardening, a signed workload
# installed and run by the service, and purge.
#
# Usage: systemd-container.sh DEB [BUILD_DIR]   (root; prints TAP)
#   BUILD_DIR: a native build of the same tree, for tests/unit/test-sandbox.
#
# Isolation: the container's root is an overlay over / (writes go to a scratch upper
# directory), with its own /run, /tmp and /dev (tmpfs, a few device nodes bound), its own
# pid, mount, uts, ipc, network and cgroup namespaces, and a cgroup subtree of its own.
# Units that would touch the kernel's global state (sysctl, binfmt, modules, clock) or the
# outside world are masked. Everything is removed at exit.
set -u
deb=$(realpath "$1")
build=${2:+$(realpath "$2")}
[ "$(id -u)" = 0 ] || { echo "1..0 # SKIP needs root"; exit 0; }
[ -x /lib/systemd/systemd ] || { echo "1..0 # SKIP systemd is not installed"; exit 0; }

n=0 failed=0
ok() { n=$((n + 1)); if [ "$1" -eq 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=$((failed + 1)); fi; }
diag() { sed 's/^/# /'; }

S=$(mktemp -d /var/tmp/osmose-systemd-ct.XXXXXX)
# The host's mount table and top-level cgroups, to check afterwards that the container
# left them as they were.
host_mounts() { findmnt -R -n -o TARGET,FSTYPE,OPTIONS / | grep -v -e ' nsfs ' -e '/run/netns' | sort; }
host_cgroups() { ls /sys/fs/cgroup/*/ 2>/dev/null | sort; }
host_mounts > "$S.mounts.before"; host_cgroups > "$S.cgroups.before"
CG=osmose-ct-$$
pid1=
remove_cgroups() {
    local h i
    for i in 1 2 3 4 5; do   # the killed processes leave their cgroups a moment later
        for h in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do
            [ -d "$h$CG" ] && find "$h$CG" -depth -type d -exec rmdir {} \; 2>/dev/null
        done
        ls -d /sys/fs/cgroup/*/"$CG" >/dev/null 2>&1 || return 0
        sleep 0.2
    done
}
cleanup() {
    [ -n "$pid1" ] && kill -KILL "$pid1" 2>/dev/null
    remove_cgroups
    umount -R "$S/root" 2>/dev/null
    rm -rf "$S" "$S.mounts.before" "$S.cgroups.before"
}
trap cleanup EXIT

# The container's cgroups: a subtree of its own in every hierarchy (cgroup namespace root).
for h in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do
    [ -f "${h}cgroup.procs" ] && mkdir -p "$h$CG" 2>/dev/null
done

cat > "$S/boot" <<'BOOT'
#!/bin/sh
set -e
S=$1 CG=$2
for h in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do
    [ -f "$h$CG/cgroup.procs" ] && echo $$ > "$h$CG/cgroup.procs" 2>/dev/null || true
done
exec unshare --mount --pid --fork --uts --ipc --net --cgroup sh -c '
set -e
S=$0
mount --make-rprivate /
mkdir -p $S/upper $S/work $S/root
mount -t overlay overlay -o lowerdir=/,upperdir=$S/upper,workdir=$S/work $S/root
mount -t proc proc $S/root/proc
# A sysfs and cgroup mounts of its own (new superblocks, roots at the cgroup namespace):
# systemd remounts /sys/fs/cgroup read-only, which must not reach the host.
mount -t sysfs sysfs $S/root/sys
mount -t tmpfs -o mode=755 tmpfs $S/root/sys/fs/cgroup
grep -E "^cgroup2? /sys/fs/cgroup/" /proc/self/mounts | while read -r _ dir type opts _; do
    sub=${dir#/sys/fs/cgroup/}
    mkdir -p $S/root/sys/fs/cgroup/$sub
    if [ "$type" = cgroup2 ]; then
        mount -t cgroup2 cgroup2 $S/root/sys/fs/cgroup/$sub
    else
        mount -t cgroup -o "$(echo "$opts" | tr , "\n" | grep -vE "^(rw|ro|relatime|nosuid|nodev|noexec)$" | paste -sd,)" cgroup $S/root/sys/fs/cgroup/$sub
    fi
done
mount -t tmpfs -o mode=755 tmpfs $S/root/dev
for d in null zero full random urandom tty; do touch $S/root/dev/$d; mount --bind /dev/$d $S/root/dev/$d; done
mkdir -p $S/root/dev/pts $S/root/dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts $S/root/dev/pts
ln -s pts/ptmx $S/root/dev/ptmx
mount -t tmpfs -o mode=755 tmpfs $S/root/run
mount -t tmpfs -o mode=1777 tmpfs $S/root/tmp
rm -f $S/root/usr/sbin/policy-rc.d
for u in systemd-sysctl.service systemd-binfmt.service systemd-modules-load.service \
         systemd-timesyncd.service systemd-udevd.service systemd-udev-trigger.service \
         systemd-udev-settle.service proc-sys-fs-binfmt_misc.automount \
         proc-sys-fs-binfmt_misc.mount sys-kernel-config.mount sys-kernel-debug.mount \
         sys-kernel-tracing.mount sys-fs-fuse-connections.mount kmod-static-nodes.service \
         systemd-hwdb-update.service ldconfig.service getty.target console-getty.service \
         timers.target cron.service systemd-remount-fs.service avahi-daemon.service \
         avahi-daemon.socket systemd-networkd.service systemd-resolved.service \
         networking.service ssh.service postgresql.service systemd-journald-audit.socket \
         e2scrub_reap.service systemd-random-seed.service systemd-update-utmp.service; do
    ln -sf /dev/null $S/root/etc/systemd/system/$u
done
cd $S/root
mkdir -p oldroot
pivot_root . oldroot
umount -l /oldroot
export container=osmose-test
exec /lib/systemd/systemd --system --unit=multi-user.target --log-target=console --log-color=no
' "$S"
BOOT
chmod +x "$S/boot"
"$S/boot" "$S" "$CG" >"$S/console.log" 2>&1 &
launcher=$!
# PID 1 of the container is the child that the launcher's unshare forked.
for i in $(seq 100); do
    pid1=$(pgrep -P "$launcher" 2>/dev/null | head -1)
    [ -n "$pid1" ] && [ "$(cat /proc/$pid1/comm 2>/dev/null)" = systemd ] && break
    pid1=
    sleep 0.1
done
[ -n "$pid1" ] || { echo "Bail out! the container's systemd did not start"; cat "$S/console.log" | tail -20 | diag; exit 1; }
in_ct() { nsenter -t "$pid1" -m -p -u -i -n -C -r -w "$@"; }
for i in $(seq 300); do
    state=$(in_ct systemctl is-system-running 2>/dev/null)
    case $state in running|degraded) break ;; esac
    sleep 0.1
done
ok "$([[ $state == running || $state == degraded ]]; echo $?)" "systemd boots in the container ($state)"
[ "$state" = degraded ] && in_ct systemctl --failed --no-pager --plain | diag

# Install: the postinst makes the group, enables and starts both units.
in_ct sh -c "cat > /osmose.deb" < "$deb"
in_ct dpkg -i /osmose.deb >"$S/install.log" 2>&1
ok $? "dpkg -i with systemd running"
grep -i -E 'error|could not|failed' "$S/install.log" | diag
in_ct getent group osmose >/dev/null
ok $? "the group osmose exists"
in_ct systemctl is-active --quiet osmosed.socket
ok $? "osmosed.socket is active"
in_ct systemctl is-active --quiet osmosed.service
ok $? "osmosed.service is active (it sent READY=1)"
in_ct journalctl -u osmosed --no-pager -o cat | grep -q 'using the socket passed by systemd'
ok $? "osmosed took its socket from systemd"
# status exits 1 while a part is degraded (no avahi-daemon in the container): it must
# answer, with the space, and exit 0 or 1, never fail to talk to the daemon.
out=$(in_ct osmosectl status 2>&1); rc=$?
ok $(( rc <= 1 ? 0 : 1 )) "osmosectl status as root (exit $rc: 0 ok, 1 degraded)"
echo "$out" | grep -q '^Space:'
ok $? "... and it shows the space"
echo "$out" | head -3 | diag
in_ct stat -c '%a %U %G' /run/osmose/osmosed.sock | grep -qx '660 root osmose'
ok $? "the socket is 0660 root:osmose"
in_ct stat -c '%a' /var/lib/osmose | grep -qx 700
ok $? "the state directory is 0700"

# Access by group.
in_ct useradd -M -N outsider && in_ct useradd -M -N -G osmose member
in_ct runuser -u member -- osmosectl collections >/dev/null 2>&1
ok $? "a member of the group osmose may use osmosectl"
out=$(in_ct runuser -u outsider -- osmosectl status 2>&1)
[ $? -ne 0 ] && echo "$out" | grep -q 'permission denied'
ok $? "anyone else gets a permission error ($out)"

# Restart, activation on demand, reload.
in_ct systemctl restart osmosed.service && in_ct osmosectl collections >/dev/null
ok $? "after a restart the socket still answers"
in_ct systemctl stop osmosed.service 2>/dev/null
in_ct osmosectl collections >/dev/null && in_ct systemctl is-active --quiet osmosed.service
ok $? "a stopped daemon is started by the first connection"
in_ct systemctl reload osmosed.service && sleep 0.3 &&
    in_ct journalctl -u osmosed --no-pager -o cat | grep -q 'configuration reloaded'
ok $? "systemctl reload re-reads the configuration"

# The watchdog: a daemon that stops answering is restarted.
in_ct mkdir -p /run/systemd/system/osmosed.service.d
printf '[Service]\nWatchdogSec=2s\n' | in_ct tee /run/systemd/system/osmosed.service.d/wd.conf >/dev/null
in_ct systemctl daemon-reload && in_ct systemctl restart osmosed.service
before=$(in_ct systemctl show osmosed.service -p NRestarts --value)
main=$(in_ct systemctl show osmosed.service -p MainPID --value)
in_ct kill -STOP "$main"
for i in $(seq 100); do
    after=$(in_ct systemctl show osmosed.service -p NRestarts --value)
    [ "$after" != "$before" ] && break
    sleep 0.1
done
[ "$after" != "$before" ] && in_ct osmosectl collections >/dev/null
ok $? "a frozen daemon is killed by the watchdog and restarted (restarts: $before -> $after)"
in_ct rm -r /run/systemd/system/osmosed.service.d
in_ct systemctl daemon-reload

# The sandbox under the unit's own hardening: the project's sandbox test, run as a
# oneshot service with every setting of the installed osmosed.service.
if [ -n "$build" ] && [ -x "$build/tests/unit/test-sandbox" ]; then
    host_ok=$("$build/tests/unit/test-sandbox" "$build/tests/sandbox/probe" 2>&1 | grep -c '^ok')
    # Copied into the container: the unit hides /root, /home and /tmp, where builds live.
    in_ct mkdir -p /opt/osmose-test
    in_ct sh -c 'cat > /opt/osmose-test/test-sandbox' < "$build/tests/unit/test-sandbox"
    in_ct sh -c 'cat > /opt/osmose-test/probe' < "$build/tests/sandbox/probe"
    in_ct chmod 755 /opt/osmose-test/test-sandbox /opt/osmose-test/probe
    sbt="/opt/osmose-test/test-sandbox /opt/osmose-test/probe"
    mkunit() {   # mkunit NAME [EXTRA-SETTING]
        in_ct sh -c "sed -e 's/^Type=notify/Type=oneshot/; /^WatchdogSec=/d; /^NotifyAccess=/d; /^ExecReload=/d; /^Restart/d; /osmosed.socket/d; /^\\[Install\\]/,\$d; s|^ExecStart=.*|ExecStart=$sbt|' /lib/systemd/system/osmosed.service > /run/systemd/system/$1.service"
        printf '[Service]\nStandardOutput=truncate:/run/%s.out\nStandardError=append:/run/%s.out\n%s\n' "$1" "$1" "${2:-}" |
            in_ct sh -c "mkdir -p /run/systemd/system/$1.service.d && cat > /run/systemd/system/$1.service.d/out.conf"
        in_ct systemctl daemon-reload
        in_ct systemctl start "$1.service" >/dev/null 2>&1
        echo "$? $(in_ct grep -c '^ok' /run/$1.out) $(in_ct grep -c '^not ok' /run/$1.out)"
    }
    if [ "$host_ok" -gt 0 ]; then
        read -r rc oks bad <<<"$(mkunit sbtest)"
        [ "$rc" = 0 ] && [ "$oks" = "$host_ok" ] && [ "$bad" = 0 ]
        ok $? "the sandbox test passes under osmosed.service's hardening ($oks of $host_ok subtests)"
        [ "$bad" = 0 ] || in_ct grep '^not ok' /run/sbtest.out | head -5 | diag
        # A control that shows this check can fail: ProtectHostname= (left out of the unit
        # for this reason) forbids sethostname() in the instances' UTS namespaces.
        read -r rc oks bad <<<"$(mkunit sbneg ProtectHostname=yes)"
        [ "$rc" != 0 ] && [ "$bad" -gt 0 ]
        ok $? "control: with ProtectHostname=yes the sandbox test fails ($bad subtests)"
    else
        echo "ok $((n += 1)) - the sandbox test under the unit # SKIP the host cannot make sandboxes"
    fi
else
    echo "ok $((n += 1)) - the sandbox test under the unit # SKIP no native build given"
fi

# A signed workload, installed from the operator's home directory and run by the service
# in its sandbox, under the unit.
in_ct sh -c 'mkdir -p /root/hello && cat > /root/hello/manifest.json' <<'MANIFEST'
{"name":"hello","version":1,"entrypoint":["/bin/sh","-c","echo hello from $(hostname) as $(id -u); echo data > /data/written; exit 7"]}
MANIFEST
pub=$(in_ct osmosectl keygen -o /root/publisher.key 2>&1 | tail -1)
in_ct osmosectl trust add "$pub" >/dev/null 2>&1 &&
    in_ct osmosectl bundle build /root/hello -o /root/hello.osb --key /root/publisher.key >/dev/null 2>&1
ok $? "a publisher key is trusted and a signed bundle built"
out=$(in_ct osmosectl install /root/hello.osb 2>&1)
ok $? "osmosectl install of a bundle in /root (the unit has ProtectHome=yes)"
[ $? -eq 0 ] || echo "$out" | diag
in_ct osmosectl run hello --wait >/dev/null 2>"$S/run.err"
rc=$?
[ "$rc" = 7 ]
ok $? "osmosectl run --wait: the workload ran in its sandbox and exited 7 (got $rc)"
[ "$rc" = 7 ] || { cat "$S/run.err"; in_ct journalctl -u osmosed --no-pager -o cat -n 15; } | diag
out=$(in_ct osmosectl logs hello-1 2>&1)
echo "$out" | grep -q '^hello from .* as 0$'
ok $? "its output is in the logs ($out)"
in_ct grep -qx data /var/lib/osmose/data/hello/written
ok $? "it wrote to its data directory"

# Purge with systemd running: stopped, and everything it made is gone.
in_ct dpkg --purge osmose >"$S/purge.log" 2>&1
ok $? "dpkg --purge"
left=$(in_ct sh -c 'for p in /var/lib/osmose /run/osmose /etc/osmose /usr/sbin/osmosed /etc/systemd/system/multi-user.target.wants/osmosed.service /etc/systemd/system/sockets.target.wants/osmosed.socket; do [ -e "$p" ] && echo "$p"; done; getent group osmose; systemctl is-active osmosed.service osmosed.socket | grep -vx inactive')
[ -z "$left" ]
ok $? "purge stops the units and removes the state, runtime and configuration directories and the group${left:+ (left: $(echo $left))}"

# Isolation: the host's mounts and top-level cgroups are as they were.
kill -KILL "$pid1" 2>/dev/null; wait "$launcher" 2>/dev/null; pid1=
remove_cgroups
changed=$(diff "$S.mounts.before" <(host_mounts))
[ -z "$changed" ]
ok $? "the host's mount table is unchanged"
[ -z "$changed" ] || echo "$changed" | diag
changed=$(diff "$S.cgroups.before" <(host_cgroups))
[ -z "$changed" ]
ok $? "the host's top-level cgroups are unchanged"
[ -z "$changed" ] || echo "$changed" | diag

echo "1..$n"
[ "$failed" -eq 0 ]
