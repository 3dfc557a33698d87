#!/bin/sh
# pack.sh OSMOSECTL BINARY MANIFEST KEY OUT: stage manifest.json and rootfs/usr/bin/BINARY
# in a fresh directory and pack it into a bundle signed with KEY (made if missing).
set -eu
ctl=$1 bin=$2 manifest=$3 key=$4 out=$5
stage=$(mktemp -d "${out}.stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/rootfs/usr/bin"
cp "$manifest" "$stage/manifest.json"
cp "$bin" "$stage/rootfs/usr/bin/sensor-aggregator"
chmod 0755 "$stage/rootfs/usr/bin/sensor-aggregator"
[ -f "$key" ] || "$ctl" keygen -o "$key" >/dev/null   # also writes $key.pub
"$ctl" bundle build "$stage" -o "$out" --key "$key" >/dev/null
