#!/usr/bin/env python3
"""jget.py: print one value from JSON on stdin, for shell tests: jget.py EXPR, where
EXPR is a Python expression over `d` (the document), e.g. 'd["peers"][0]["id"]' or
'[p["id"] for p in d["peers"] if p["state"] == "present"]'. Strings print bare, other
values as JSON; a failing expression prints nothing and exits 1."""
import json
import sys

try:
    d = json.load(sys.stdin)
    v = eval(sys.argv[1], {"__builtins__": {"len": len, "any": any, "all": all, "sorted": sorted, "set": set}}, {"d": d})
except Exception:
    sys.exit(1)
print(v if isinstance(v, str) else json.dumps(v))
