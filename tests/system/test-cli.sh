#!/bin/bash
# test-cli.sh: osmosectl's contract against a real osmosed: usage errors exit 2, global
# options anywhere, one JSON document per command, one rule for record bodies, errors in
# words, aligned tables, relative times, status for monitoring.
. "$(dirname "$0")/../lib/common.sh"
osm_setup
osm_start_daemon
J="python3 $OSM_SOURCE_ROOT/tests/lib/jget.py"

# ---- usage errors exit 2, before anything is sent (item 4)
usage() {   # usage MESSAGE ARGS...: exit status 2 and one line on stderr
    local msg=$1; shift
    out=$(ctl "$@" 2>&1 >/dev/null); rc=$?
    is "$rc" 2 "usage error exits 2: osmosectl $* ($msg)"
}
usage "missing COLLECTION" put
usage "extra argument" status extra
usage "unknown option" status --bogus
usage "unknown option of a command with options" query x --bogus
usage "unknown global option" --bogus status
usage "unknown command" nope
usage "missing subcommand" remote
usage "unknown subcommand" object nope
usage "bad --limit" query x --limit zero
usage "bad time" query x --since yesterdayish
usage "missing --with" share x
usage "extra argument of a subcommand" remote rm a b
usage "--socket without a path" status --socket
usage "invalid hash" object rm nothex
usage "--json of object get needs -o" object get "$(printf '%064d' 0)" --json
out=$(ctl put 2>&1); like "$out" '^osmosectl: put: missing COLLECTION' "…and says what is missing"

# ---- global options anywhere (item 4)
a=$(ctl --json status | $J 'd["id"]'); b=$(ctl status --json | $J 'd["id"]')
is "$b" "$a" "status --json is --json status"
ctl ps --json | $J 'd["instances"]' >/dev/null; ok $? "ps --json"
ctl collections -j | $J 'd["collections"]' >/dev/null; ok $? "collections -j"
out=$(OSMOSE_SOCKET=$T/nowhere.sock ctl status --socket "$OSMOSE_SOCKET" --json | $J 'd["id"]'); is "$out" "$a" "status --socket PATH after the command"
out=$(OSMOSE_SOCKET=$T/nowhere.sock ctl status --socket="$OSMOSE_SOCKET" | head -1); like "$out" '^Space:' "--socket=PATH after the command"
ctl put json/x '{"a":1}' --json | $J 'd["id"]' >/dev/null; ok $? "put COLLECTION JSON --json"

# ---- one rule for put and put --batch: a record is a JSON object (item 5)
for body in null 1 '"text"' '[1,2]' true; do
    out=$(ctl put rule/one "$body" 2>&1); rc=$?
    is "$rc" 1 "put refuses $body"
    like "$out" "put: the record must be a JSON object, e.g. '\{\"t\":20.5\}'" "…saying a record is a JSON object"
    out=$(printf '{"ok":1}\n%s\n{"ok":2}\n' "$body" | ctl put rule/batch --batch 2>&1); rc=$?
    is "$rc" 1 "put --batch refuses $body"
    like "$out" "put: line 2: the record must be a JSON object.*1 records before it are stored" "…naming the line, and what is stored"
done
n=$(ctl --json query rule/batch | wc -l); is "$n" 5 "put --batch stored the lines before each bad one, nothing else"
ctl query rule/one >/dev/null 2>&1; is "$?" 1 "put stored nothing (no collection rule/one)"
out=$(ctl call io.osmose.Store.PutBatch '{"collection":"rule/raw","records":[{"a":1},null]}' 2>&1); rc=$?
is "$rc" 1 "the daemon refuses a null record in PutBatch (any client)"
like "$out" 'the record must be a JSON object' "…with the same rule"
out=$(ctl call io.osmose.Store.Put '{"collection":"rule/raw","body":"s"}' 2>&1); rc=$?
is "$rc" 1 "the daemon refuses a string body in Put (any client)"

# ---- --json of changes prints one document (item 3)
js() { ctl --json "$@" | python3 -c 'import json,sys; d=json.load(sys.stdin); assert isinstance(d, dict); print(json.dumps(d, sort_keys=True))'; }
out=$(js federation disable); ok $? "federation disable --json is one object"; like "$out" '"enabled": false' "…saying it is off"
ctl --json collections | python3 -c 'import json,sys; d=json.load(sys.stdin); assert [c for c in d["collections"] if c["name"]=="json/x"]'
ok $? "collections --json is {\"collections\": [...]}"

# ---- readings print as they were written: 18.01, not jansson's 18.010000000000002
ctl put json/reals '{"celsius":18.01,"rh":0.1}' >/dev/null
out=$(ctl --json query json/reals); like "$out" '"celsius":18.01,"rh":0.1}' "query --json prints 18.01 and 0.1 as written"
out=$(ctl call io.osmose.Store.Query '{"collection":"json/reals"}'); like "$out" '"celsius": 18.01,' "…and so does call, laid out"

# ---- a publisher key is base64url: one in 64 starts with '-', and is still a key, not options
dkey=$(python3 -c "import base64; print(base64.urlsafe_b64encode(b'\xf8' + bytes(range(31))).rstrip(b'=').decode())")
out=$(ctl building trust add "$dkey" --comment x 2>&1); rc=$?
is "$rc" 1 "building trust add of a key starting with '-' reaches the daemon"
like "$out" 'not in a building' "…which answers for the key (this room is in no building), not getopt"
out=$(ctl building trust add --comment "$dkey" 2>&1); rc=$?
is "$rc" 2 "…while such a key given as --comment's value stays that value (no PUBKEY: usage)"

# ---- errors in words (item 8)
out=$(ctl remote rm nosuch 2>&1); rc=$?
is "$rc" 1 "remote rm of an unknown remote fails"
is "$out" "osmosectl: remote rm: no remote named 'nosuch' (see 'osmosectl remote ls')" "…and says so in words"
out=$(ctl share c --with nosuch 2>&1)
is "$out" "osmosectl: share: no remote named 'nosuch' (see 'osmosectl remote ls')" "share with an unknown remote names it"
out=$(ctl call io.osmose.Store.Nope 2>&1)
like "$out" "does not know io.osmose.Store.Nope: is osmosed older than osmosectl" "MethodNotFound names the method"
out=$(ctl call io.osmose.Store.Put '{"collection":"x","body":null}' 2>&1)
like "$out" "the record must be a JSON object" "InvalidParameter 'body' of Put in words"
out=$(ctl call io.osmose.Store.Query '{"collection":7}' 2>&1)
like "$out" "refused the value of 'collection' given to io.osmose.Store.Query" "InvalidParameter names the parameter"
out=$(ctl stop nosuch 2>&1)
like "$out" "^osmosectl: stop: no instance nosuch \(see 'osmosectl ps'\)" "NotFound of an instance points at ps"
out=$(ctl query nosuch/coll 2>&1)
like "$out" "no collection named 'nosuch/coll' \(see 'osmosectl collections'\)" "NoSuchCollection names it"
if [ "$(printf '%s' "$out" | grep -c 'io\.osmose\|org\.varlink')" = 0 ]; then ok 0 "…without a raw Varlink name"; else ok 1 "…without a raw Varlink name"; fi

# reload with a bad file prints the problems, FILE:LINE
st=$T/state
printf '[daemon]\nname = t\nnope = 1\n[store]\nmax-record-size = lots\n' > "$st/osmosed.conf"
out=$(ctl reload 2>&1); rc=$?
is "$rc" 1 "reload of a bad file fails"
like "$out" "2 problem\(s\)" "…counts the problems"
like "$out" "osmosed.conf:3: .*nope" "…names FILE:LINE of the unknown key"
like "$out" "osmosed.conf:5: .*max-record-size" "…and of the bad value"
rm -f "$st/osmosed.conf"

# ---- tables: columns aligned by display width, wide cells cut (item 10)
aligned() {   # stdin: a table; every row's cells start at the display column of the header's
    python3 -c '
import sys, unicodedata
def width(c): return 2 if unicodedata.east_asian_width(c) in "WF" else 0 if unicodedata.combining(c) else 1
def starts(line):   # display columns where a cell begins: the start, and after 2+ spaces
    cols, col, spaces = [0], 0, 0
    for c in line:
        if c == " ":
            spaces += 1
        else:
            if spaces >= 2: cols.append(col)
            spaces = 0
        col += width(c)
    return cols
lines = sys.stdin.read().rstrip("\n").split("\n")
head = starts(lines[0])
bad = [(l, starts(l), head) for l in lines[1:] if starts(l) != head[:len(starts(l))]]
print("ok" if not bad and len(lines) > 1 else "bad %r" % bad)'
}
mkdir -p "$T/app"
printf '{"name":"wide","version":1,"entrypoint":["/bin/true"],"restart":"never"}' > "$T/app/manifest.json"
pub=$(ctl keygen -o "$T/key")
ctl trust add "$pub" >/dev/null
ctl bundle build "$T/app" -o "$T/wide.osb" --key "$T/key" >/dev/null
ctl install "$T/wide.osb" >/dev/null; ok $? "a signed workload is installed"
out=$(ctl workloads); like "$out" "${pub:0:12}…" "workloads shows the signer cut with …"
is "$(printf '%s\n' "$out" | aligned)" ok "…and the columns after it stay aligned (display width, not bytes)"
ctl --json workloads | $J 'd["workloads"][0]["signer"]' | grep -qx -- "$pub"; ok $? "--json gives the signer in full"
big=$(head -c 6000 /dev/zero | tr '\0' x)
ctl put wide/t "{\"v\":\"$big\",\"w\":\"温度…\"}" >/dev/null
ctl put wide/t '{"w":"温度…"}' >/dev/null
out=$(ctl query wide/t)
n=$(printf '%s\n' "$out" | awk '{ if (length($0) > m) m = length($0) } END { print m }')
ok $(( n < 400 ? 0 : 1 )) "query cuts a 6000-character body in the table ($n characters a line)"
like "$out" 'x…$' "…ending it with …"
is "$(printf '%s\n' "$out" | aligned)" ok "…and the table stays aligned"
ctl --json query wide/t | grep -q "$big"; ok $? "query --json prints the body in full"

# ---- bash completion against the real daemon (item 11)
BC=/usr/share/bash-completion/bash_completion
complete_line() {   # complete_line "osmosectl WORDS…": what TAB offers, one a line
    PATH="$(dirname "$OSMOSECTL"):$PATH" bash "$OSM_SOURCE_ROOT/tests/lib/complete.sh" "$BC" \
        "$OSM_SOURCE_ROOT/completion/osmosectl.bash" "$1" | sed '/^$/d' | sort
}
if [ -r "$BC" ]; then
    mkdir -p "$T/caps"
    printf '{"name":"caps","version":1,"entrypoint":["/bin/sleep","60"],"capabilities":["network","discovery:read","store:read:sensors/*"],"restart":"never"}' > "$T/caps/manifest.json"
    ctl bundle build "$T/caps" -o "$T/caps.osb" --key "$T/key" >/dev/null
    ctl install "$T/caps.osb" --grant network >/dev/null
    is "$(complete_line 'osmosectl grant caps ' | tr '\n' ' ')" "discovery:read store:read:sensors/* " \
        "grant NAME <TAB> offers the capabilities it requests and lacks"
    is "$(complete_line 'osmosectl revoke caps ' | tr '\n' ' ')" "network " "revoke NAME <TAB> offers what it holds"
    is "$(complete_line 'osmosectl --json grant caps store:r' | tr '\n' ' ')" "store:read:sensors/* " \
        "…also after a global option and inside a word with colons"
    like "$(complete_line 'osmosectl grant ')" '^caps$' "grant <TAB> still offers workload names"
    is "$(complete_line 'osmosectl trust rm ')" "$pub" "trust rm <TAB> offers the trusted keys"
    ctl remote add lab2 http://127.0.0.1:9 --key "$(ctl keygen -o "$T/rkey")" >/dev/null
    is "$(complete_line 'osmosectl share sensors/x --with ')" "lab2" "share X --with <TAB> offers the remotes"
    sandbox=$(ctl --json status | $J '[s["health"] for s in d["subsystems"] if s["name"]=="sandbox"][0]')
    if [ "$sandbox" = ok ] && [ "$(id -u)" = 0 ]; then
        ended=$(ctl run wide); ctl run wide --wait >/dev/null 2>&1
        running=$(ctl run caps)
        for i in $(seq 50); do ctl ps | grep -q "^$running .*running" && break; sleep 0.1; done
        is "$(complete_line 'osmosectl stop ')" "$running" "stop <TAB> offers only running instances (not $ended)"
        like "$(complete_line 'osmosectl logs ')" "$ended" "logs <TAB> offers ended instances too"
        # ps: the live ones, --all also the ended, filters
        ids() { ctl --json ps "$@" | $J '" ".join(sorted(i["id"] for i in d["instances"]))'; }
        is "$(ids)" "$running" "ps lists the live instances only (as docker ps)"
        all=$(ids --all); like "$all" "$ended" "ps --all also lists the ended ones"
        like "$all" "$running" "…and the live ones"
        is "$(ids --workload caps --all)" "$running" "ps --workload NAME"
        is "$(ids -s exited -w wide)" "$(ctl --json ps --all | $J '" ".join(sorted(i["id"] for i in d["instances"] if i["workload"]=="wide" and i["state"]=="exited"))')" \
            "ps --state exited (an ended state implies --all)"
        usage "unknown state" ps --state sleeping
        ctl stop "$running" >/dev/null
    else
        skip "stop <TAB> offers only running instances" "no sandbox here ($sandbox)"
    fi
else
    skip "completion against the daemon" "bash-completion is not installed"
fi

# ---- times everywhere: -1h30m and 1h30m alike, dates, yesterday; put --time imports history
day=$(( $(date -u +%s) / 86400 * 86400 ))
ctl put hist/t '{"at":"old"}' --time 2026-01-02 >/dev/null; ok $? "put --time DATE"
ctl put hist/t '{"at":"rfc"}' -t 2026-01-02T10:00:00Z >/dev/null; ok $? "put -t RFC 3339"
ctl put hist/t '{"at":"2h ago"}' --time 2h >/dev/null; ok $? "put --time 2h (ago)"
ctl put hist/t '{"at":"now"}' >/dev/null
is "$(ctl --json query hist/t --limit 1 | $J 'd["time"]')" 1767312000000000 "put --time 2026-01-02 stores midnight UTC"
is "$(ctl --json query hist/t --until 2026-01-03 | wc -l)" 2 "query --until DATE"
is "$(ctl --json query hist/t --since -1h30m | wc -l)" 1 "query --since -1h30m"
is "$(ctl --json query hist/t --since 1h30m | wc -l)" 1 "query --since 1h30m means the same"
is "$(ctl --json query hist/t --since 3h | wc -l)" 2 "query --since 3h includes the record put 2h ago"
n=$(ctl --json query hist/t --since yesterday | wc -l)
ok $(( n >= 2 ? 0 : 1 )) "query --since yesterday ($n)"
times() { python3 -c 'import json,sys; print(" ".join(str(json.loads(l)["time"]) for l in sys.stdin))'; }
t_today=$(ctl --json query hist/t --since today | times)
python3 -c "import sys; t=[int(x) for x in sys.argv[1].split()]; sys.exit(0 if t and min(t) >= $day * 10**6 else 1)" "$t_today"
ok $? "--since today: from midnight UTC ($t_today)"
out=$(ctl query hist/t --since 1h30 2>&1); rc=$?
is "$rc" 2 "a time whose last part has no unit is a usage error"
like "$out" "expected RFC 3339 .*a date \(2026-12-02.*-1h30m or 1h30m" "…listing the forms a time takes"
printf '{"n":1}\n{"n":2}\n' | ctl put hist/b --batch --time 2026-02-01 >/dev/null
is "$(ctl --json query hist/b | times)" "1769904000000000 1769904000000000" "put --batch --time stamps every record"

# ---- query --follow: what is there, then what comes (the Store's Watch), nothing twice
ctl put follow/x '{"n":1}' >/dev/null
ctl --json query follow/x --follow > "$T/follow.out" 2>&1 &
fpid=$!
for i in $(seq 50); do [ -s "$T/follow.out" ] && break; sleep 0.05; done
for n in 2 3; do ctl put follow/x "{\"n\":$n}" >/dev/null; done
ctl put follow/other '{"n":99}' >/dev/null
for i in $(seq 50); do [ "$(wc -l < "$T/follow.out")" -ge 3 ] && break; sleep 0.05; done
kill "$fpid" 2>/dev/null; wait "$fpid" 2>/dev/null
is "$(python3 -c 'import json,sys; print(" ".join(str(json.loads(l)["body"]["n"]) for l in open(sys.argv[1])))' "$T/follow.out")" \
    "1 2 3" "query --follow --json: the record there, then the new ones in order, once each, not other collections"
ctl query follow/x -f > "$T/follow.txt" 2>&1 &
fpid=$!
for i in $(seq 50); do [ -s "$T/follow.txt" ] && break; sleep 0.05; done
ctl put follow/x '{"n":4}' >/dev/null
for i in $(seq 50); do grep -q '"n":4' "$T/follow.txt" && break; sleep 0.05; done
kill "$fpid" 2>/dev/null; wait "$fpid" 2>/dev/null
like "$(tail -1 "$T/follow.txt")" '^20[0-9-]+T[0-9:.]+Z  [0-9a-f]{16}-[0-9]+  user:root  \{"n":4\}$' "query -f prints new records as table lines"
usage "--follow with --reverse" query follow/x --follow --reverse

# ---- status for monitoring: 0 ok, 1 degraded; a warning without the group osmose
out=$(ctl status); rc=$?
is "$rc" 1 "status exits 1 while discovery is degraded (no avahi-daemon for test daemons)"
like "$out" "Degraded: discovery" "…and names what is degraded"
is "$(ctl --json status | $J 'd["state"]')" degraded "status --json says state degraded"
if getent group osmose >/dev/null; then
    ok $(printf '%s' "$out" | grep -c "no group 'osmose'") "no warning when the group osmose exists"
else
    like "$out" "Warning: there is no group 'osmose' on this machine, so only root may use osmosectl \(create it: groupadd --system osmose" \
        "status warns that the group osmose does not exist, and how to make it"
    like "$(ctl --json status | $J 'd["warnings"]')" "no group 'osmose'" "…also in --json (warnings)"
fi
osm_stop_daemon TERM
printf '[discovery]\nenabled = no\n' > "$T/state/osmosed.conf"
osm_start_daemon
others=$(ctl --json status | $J '[s["name"] for s in d["subsystems"] if s["health"] in ("degraded", "failed")]')
if [ "$others" = "[]" ]; then
    ctl status >/dev/null; is "$?" 0 "status exits 0 when every subsystem is ok or disabled"
    is "$(ctl --json status | $J 'd["state"]')" ok "…and --json says state ok"
else
    skip "status exits 0 when all is well" "this host has degraded subsystems: $others"
fi

done_testing
