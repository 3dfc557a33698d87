#!/bin/sh
# pack.sh OSMOSECTL BINARY MANIFEST GRAMMAR MODELDIR KEY OUT: stage manifest.json,
# rootfs/usr/bin/voice-commands and rootfs/usr/share/voice-commands (the grammar, the
# acoustic model and phone model of Debian's pocketsphinx-en-us, and a dictionary of just
# the grammar's words from its cmudict) and pack it into a bundle signed with KEY.
set -eu
ctl=$1 bin=$2 manifest=$3 gram=$4 model=$5 key=$6 out=$7
stage=$(mktemp -d "${out}.stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT
share=$stage/rootfs/usr/share/voice-commands
mkdir -p "$stage/rootfs/usr/bin" "$share"
cp "$manifest" "$stage/manifest.json"
cp "$bin" "$stage/rootfs/usr/bin/voice-commands"
chmod 0755 "$stage/rootfs/usr/bin/voice-commands"
cp "$gram" "$share/commands.gram"
cp -r "$model/en-us" "$share/en-us"
cp "$model/en-us-phone.lm.bin" "$share/"
"$(dirname "$0")/make-dict.sh" "$gram" "$model/cmudict-en-us.dict" > "$share/commands.dict"
[ -f "$key" ] || "$ctl" keygen -o "$key" >/dev/null   # also writes $key.pub
"$ctl" bundle build "$stage" -o "$out" --key "$key" >/dev/null
