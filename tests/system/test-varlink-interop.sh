#!/bin/bash
# test-varlink-interop.sh: the .varlink interface files and a running osmosed, seen by an
# independent Varlink implementation: varlink/go (Debian's golang-github-varlink-go-dev)
# parses every interface file and every description the daemon serves, and talks to the
# daemon (GetInfo, GetInterfaceDescription, io.osmose calls, error replies); Debian's
# varlink-go-interface-generator turns every file into Go.
. "$(dirname "$0")/../lib/common.sh"
osm_setup
GOSRC=/usr/share/gocode/src/github.com/varlink/go/varlink
if ! command -v go >/dev/null || [ ! -d "$GOSRC" ]; then
    echo "1..0 # SKIP needs golang-go and golang-github-varlink-go-dev (tools/install-deps)"
    exit 0
fi
IFACES=$OSM_SOURCE_ROOT/src/lib/interfaces

# Build the client with Debian's packaged library, offline (GOPATH mode, no module download).
cache=$(cd "${OSM_BUILD_ROOT:-$T}" && pwd)/go-cache
GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE=$cache GOFLAGS= \
    go build -o "$T/varlink-interop" "$OSM_SOURCE_ROOT/tests/system/varlink-interop.go" 2> "$T/go-build.log"
rc=$?
ok $rc "the varlink/go client builds"
[ $rc = 0 ] || { sed 's/^/# /' "$T/go-build.log"; bail "cannot build the varlink/go client"; }

# The interface files, parsed by varlink/go (TAP lines of its own, renumbered here).
tap_from() {   # tap_from COMMAND…: run a TAP-printing helper, fold its lines into ours
    local line
    "$@" > "$T/sub.tap" 2>&1
    local rc=$?
    while IFS= read -r line; do
        case $line in
        "ok "*) ok 0 "${line#ok * - }" ;;
        "not ok "*) ok 1 "${line#not ok * - }" ;;
        *) echo "$line" ;;
        esac
    done < "$T/sub.tap"
    return $rc
}
tap_from "$T/varlink-interop" parse "$IFACES"/*.varlink
ok $? "varlink/go accepts every interface file"

# varlink-go-interface-generator (Debian's varlink-go) writes Go for each file; it too
# reads only lower-case interface names (see varlink-interop.go), so it gets copies so named.
if command -v varlink-go-interface-generator >/dev/null; then
    mkdir -p "$T/gen"
    for f in "$IFACES"/*.varlink; do
        b=$(basename "$f" .varlink | tr 'A-Z' 'a-z')
        sed -E 's/^interface +(.*)$/interface \L\1/' "$f" > "$T/gen/$b.varlink"
        (cd "$T/gen" && varlink-go-interface-generator "$b.varlink" >"$T/gen/$b.log" 2>&1)
        rc=$?
        ok $rc "varlink-go-interface-generator turns $(basename "$f") into Go"
        [ $rc = 0 ] || sed 's/^/# /' "$T/gen/$b.log"
    done
else
    skip "varlink-go-interface-generator" "varlink-go is not installed"
fi

# The daemon, as varlink/go talks to it.
osm_start_daemon
tap_from "$T/varlink-interop" client "unix:$OSMOSE_SOCKET"
ok $? "varlink/go talks to osmosed"
is "$(ctl --json query interop/go | python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["body"]["from"])')" \
    "varlink/go" "what varlink/go stored, osmosectl reads"
done_testing
