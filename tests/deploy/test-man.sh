#!/usr/bin/env bash
# test-man.sh: the manual pages built from scdoc render with man(1) without warnings and
# carry their name, synopsis and sections.
. "$OSM_SOURCE_ROOT/tests/lib/common.sh"
osm_setup

dir=$OSM_BUILD_ROOT/doc
if [ ! -f "$dir/osmosed.8" ]; then
    skip "manual pages render" "not built (scdoc is not installed)"
    done_testing; exit
fi
command -v man >/dev/null || { skip "manual pages render" "man is not installed"; done_testing; exit; }

for page in osmosed.8 osmosectl.1 osmosed.conf.5 osmose-manifest.5; do
    name=${page%.*}
    text=$(MANWIDTH=80 man -l "$dir/$page" 2>"$T/err")
    ok $? "man -l $page"
    is "$(cat "$T/err")" "" "$page: man prints no warning"
    like "$text" "^$name\\($(echo "${page##*.}")\\)" "$page: header names $name(${page##*.})"
    like "$text" "NAME
 +$name - " "$page: NAME section"
    for section in SYNOPSIS DESCRIPTION "SEE ALSO"; do
        printf '%s\n' "$text" | grep -qx "$section"
        ok $? "$page: has $section"
    done
    # groff's own warnings (bad escapes, unknown macros) with every warning enabled.
    warn=$(groff -man -Tutf8 -ww -z "$dir/$page" 2>&1)
    is "$warn" "" "$page: groff -ww finds nothing"
    # scdoc markup that leaked through unrendered.
    leaks=$(printf '%s\n' "$text" | grep -nE '(^|[ (])\*[a-z-]+\*|(^|[ (])_[A-Z]+_' | head -3)
    is "$leaks" "" "$page: no unrendered scdoc markup"
done
done_testing
