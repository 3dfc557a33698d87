#!/bin/bash
# test-store-objects.sh: object put and get across the sizes where the daemon's pipeline
# changes step (a 64 KiB encryption block, a 256 KiB read slot, a ring of four slots, the
# 8 MiB write-back step), from a file and from a pipe, plain and encrypted at rest. The
# encrypted files are read by an independent reader (libsodium's secretstream called from
# Python, one 64 KiB block at a time as the format says), and a file written that way by
# hand (as objects were written before the pipeline) reads back through the daemon.
. "$(dirname "$0")/../lib/common.sh"
osm_setup

sizes="0 1 65535 65536 65537 262143 262144 262145 1048576 1310721 9437187"
for n in $sizes; do head -c "$n" /dev/urandom > "$T/blob$n"; done

# ss.py decrypt KEY FILE OUT | encrypt KEY IN FILE: the secretstream format by itself:
# a header, then blocks of 64 KiB (+17), every one full but the last, which is tagged final.
cat > "$T/ss.py" <<'PY'
import ctypes, sys
na = ctypes.CDLL("libsodium.so.23")
assert na.sodium_init() >= 0
CHUNK, A, H = 65536, 17, 24
FINAL = 3
state = ctypes.create_string_buffer(na.crypto_secretstream_xchacha20poly1305_statebytes())
key = open(sys.argv[2], "rb").read()
assert len(key) == 32
if sys.argv[1] == "decrypt":
    data = open(sys.argv[3], "rb").read()
    assert na.crypto_secretstream_xchacha20poly1305_init_pull(state, data[:H], key) == 0, "header"
    out, pos, tag = bytearray(), H, ctypes.c_ubyte(0)
    while True:
        block = data[pos:pos + CHUNK + A]
        pos += len(block)
        m = ctypes.create_string_buffer(max(len(block), 1))
        mlen = ctypes.c_ulonglong(0)
        assert na.crypto_secretstream_xchacha20poly1305_pull(state, m, ctypes.byref(mlen), ctypes.byref(tag),
                                                              block, ctypes.c_ulonglong(len(block)), None,
                                                              ctypes.c_ulonglong(0)) == 0, "block at %d" % pos
        out += m.raw[:mlen.value]
        if tag.value == FINAL:
            break
        assert len(block) == CHUNK + A, "a short block that is not final"
    assert pos == len(data), "bytes after the final block"
    open(sys.argv[4], "wb").write(out)
else:
    plain = open(sys.argv[3], "rb").read()
    header = ctypes.create_string_buffer(H)
    assert na.crypto_secretstream_xchacha20poly1305_init_push(state, header, key) == 0
    out, pos = bytearray(header.raw), 0
    while True:
        part = plain[pos:pos + CHUNK]
        pos += len(part)
        last = len(part) < CHUNK
        c = ctypes.create_string_buffer(len(part) + A)
        clen = ctypes.c_ulonglong(0)
        na.crypto_secretstream_xchacha20poly1305_push(state, c, ctypes.byref(clen), part,
                                                      ctypes.c_ulonglong(len(part)), None, ctypes.c_ulonglong(0),
                                                      ctypes.c_ubyte(FINAL if last else 0))
        out += c.raw[:clen.value]
        if last:
            break
    open(sys.argv[4], "wb").write(out)
PY

for mode in plain encrypted; do
    OSM_STATE=$T/$mode
    mkdir -p "$OSM_STATE"
    [ "$mode" = encrypted ] && printf '[store]\nencrypt-objects = yes\n' > "$OSM_STATE/osmosed.conf"
    osm_start_daemon
    bad=""; badpipe=""; badget=""; badfile=""
    for n in $sizes; do
        want=$(b2sum -l 256 "$T/blob$n" | cut -d' ' -f1)
        h=$(ctl object put "$T/blob$n") && [ "$h" = "$want" ] || bad="$bad $n"
        h2=$(cat "$T/blob$n" | ctl object put -) && [ "$h2" = "$want" ] || badpipe="$badpipe $n"
        ctl object get "$want" | cmp -s - "$T/blob$n" || badget="$badget $n"
        f=$OSM_STATE/objects/${want:0:2}/${want:2}
        if [ "$mode" = encrypted ]; then
            python3 "$T/ss.py" decrypt "$OSM_STATE/object.key" "$f" "$T/dec" 2>"$T/ss.err" &&
                cmp -s "$T/dec" "$T/blob$n" || badfile="$badfile $n"
        else
            cmp -s "$f" "$T/blob$n" || badfile="$badfile $n"
        fi
    done
    is "$bad" "" "$mode: object put FILE gives b2sum's hash at every size (${sizes// /, } bytes)"
    is "$badpipe" "" "$mode: object put - from a pipe gives the same hash at every size"
    is "$badget" "" "$mode: object get gives back the same bytes at every size"
    if [ "$mode" = encrypted ]; then
        is "$badfile" "" "encrypted: an independent secretstream reader decrypts every stored file (64 KiB blocks, the last final)"
        [ -n "$badfile" ] && sed 's/^/# /' "$T/ss.err"
    else
        is "$badfile" "" "plain: every stored file is the content itself"
    fi
    is "$(ls "$OSM_STATE/objects/tmp" | wc -l | tr -d ' ')" 0 "$mode: no temp files are left behind"
    osm_stop_daemon TERM
done

# An encrypted object written by hand in 64 KiB steps (the format as it was, block by block)
# reads back through the daemon.
OSM_STATE=$T/encrypted
osm_start_daemon
for n in 0 65536 1310721; do
    h=$(b2sum -l 256 "$T/blob$n" | cut -d' ' -f1)
    f=$OSM_STATE/objects/${h:0:2}/${h:2}
    python3 "$T/ss.py" encrypt "$OSM_STATE/object.key" "$T/blob$n" "$T/old"
    cmp -s "$T/old" "$f"; is "$?" 1 "a fresh nonce: the hand-written file of $n bytes differs from the daemon's"
    cp "$T/old" "$f"
    ctl object get "$h" | cmp -s - "$T/blob$n"; ok $? "…and the daemon reads the hand-written one back ($n bytes)"
done

# Damage past the first read (the reader takes four blocks at a time): get fails, and what
# it wrote before is not taken for the object.
h=$(b2sum -l 256 "$T/blob1310721" | cut -d' ' -f1)
f=$OSM_STATE/objects/${h:0:2}/${h:2}
cp "$f" "$T/saved"
printf 'X' | dd of="$f" bs=1 seek=$((24 + 6 * 65553 + 100)) conv=notrunc 2>/dev/null
out=$(ctl object get "$h" -o "$T/out" 2>&1); rc=$?
is "$rc" 1 "a block tampered with past the first read fails the get"
like "$out" 'shorter or longer|does not match' "…clearly"
test ! -e "$T/out"; ok $? "…and leaves no output file"
# Truncated: the final block cut off.
head -c $((24 + 20 * 65553)) "$T/saved" > "$f"
out=$(ctl object get "$h" 2>&1 >/dev/null); rc=$?
is "$rc" 1 "an encrypted object without its final block fails the get"
like "$out" 'shorter or longer' "…as short"
cp "$T/saved" "$f"
ctl object get "$h" | cmp -s - "$T/blob1310721"; ok $? "restored, it reads back again"
out=$(ctl call org.varlink.service.GetInfo); ok $? "the daemon still answers"
osm_stop_daemon TERM
is "$OSM_EXIT" 0 "daemon stops cleanly"

done_testing
