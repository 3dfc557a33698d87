#!/usr/bin/env python3
"""summary.py: count test results from meson's testlog.json, each TAP subtest on its
own, and print 'N passed, N failed, N skipped'. Exit 1 if anything failed."""
import json
import re
import sys

passed = failed = skipped = 0
failures = []
with open(sys.argv[1], encoding="utf-8") as f:
    for line in f:
        t = json.loads(line)
        out = t.get("stdout") or ""
        taps = re.findall(r"^(not ok|ok)\b[^\n]*", out, re.M)
        plan_skip = re.search(r"^1\.\.0\s*#\s*SKIP", out, re.M)
        if t.get("protocol") == "tap" or taps or plan_skip:
            for m in re.finditer(r"^(not ok|ok)\b([^\n]*)", out, re.M):
                if m.group(1) == "not ok":
                    if re.search(r"#\s*TODO", m.group(2), re.I):
                        skipped += 1
                    else:
                        failed += 1
                        failures.append("%s:%s" % (t["name"], m.group(2)))
                elif re.search(r"#\s*SKIP", m.group(2), re.I):
                    skipped += 1
                else:
                    passed += 1
            if plan_skip and not taps:
                skipped += 1
            # a TAP program that crashed or bailed out counts as one more failure
            if t["result"] not in ("OK", "SKIP", "EXPECTEDFAIL") and not any(x.startswith("not ok") for x in taps):
                failed += 1
                failures.append("%s: %s" % (t["name"], t["result"]))
        else:
            if t["result"] == "OK":
                passed += 1
            elif t["result"] == "SKIP":
                skipped += 1
            else:
                failed += 1
                failures.append("%s: %s" % (t["name"], t["result"]))
for f_ in failures[:50]:
    print("FAILED", f_)
print("%d passed, %d failed, %d skipped" % (passed, failed, skipped))
sys.exit(1 if failed else 0)
