#!/usr/bin/env python3
"""check-typed-calls.py SRC_ROOT PROTOCOL_DIR CC...: the generated builders of osmose/protocol.h
hold (TAP). A misspelt optional parameter, a required one of the wrong type, a missing one and
an error with a field it does not declare must each fail to compile, and the right forms must
compile; osmosectl names no method itself (only osm_req_…() builders, or the user's method
in `osmosectl call`)."""
import os
import re
import subprocess
import sys
import tempfile

src, proto_dir, cc = sys.argv[1], sys.argv[2], sys.argv[3:]
n = 0
failed = 0


def ok(cond, what):
    global n, failed
    n += 1
    failed += not cond
    print("%sok %d - %s" % ("" if cond else "not ", n, what))


def compiles(body):
    text = "#include \"osmose/protocol.h\"\nint f(void);\nint f(void) {\n%s\nreturn 0;\n}\n" % body
    with tempfile.TemporaryDirectory() as d:
        c = os.path.join(d, "t.c")
        with open(c, "w") as f:
            f.write(text)
        r = subprocess.run(cc + ["-std=gnu11", "-Wall", "-Wextra", "-Werror", "-fsyntax-only",
                                 "-I", os.path.dirname(os.path.dirname(proto_dir)), "-I", os.path.join(src, "include"), c],
                           capture_output=True, text=True)
        return r.returncode == 0


GOOD = ('osm_vl_request r = osm_req_store_query("c", &(osm_req_store_query_opt){ .limit = OSM_SOME(5) });'
        ' json_decref(r.params);')
ok(compiles(GOOD), "a call with its declared parameters compiles")
ok(not compiles(GOOD.replace(".limit", ".limt")), "a misspelt optional parameter does not compile")
ok(not compiles('osm_vl_request r = osm_req_channel_pin("c", "3"); json_decref(r.params);'),
   "a required int given a string does not compile")
ok(not compiles('osm_vl_request r = osm_req_federation_add_remote("n", "u"); json_decref(r.params);'),
   "a missing required parameter does not compile")
ok(not compiles('osm_vl_request r = osm_req_store_delete(NULL, NULL); json_decref(r.params);'),
   "NULL for a required string does not compile")
ok(not compiles('osm_vl_request r = osm_req_store_qeury("c", NULL); json_decref(r.params);'),
   "a misspelt method does not compile")
ok(compiles('osm_vl_error e = osm_error_workload_downgrade("m", 1, 2); json_decref(e.params);'),
   "an error with its declared fields compiles")
ok(not compiles('osm_vl_error e = osm_error_workload_downgrade("m", 1); json_decref(e.params);'),
   "an error missing a declared field does not compile")
ok(compiles('json_t *r = osm_reply_store_put("id", 5); json_decref(r);'), "a reply with its declared fields compiles")
ok(not compiles('json_t *r = osm_reply_store_put("id"); json_decref(r);'),
   "a reply missing a declared field does not compile")

# osmosectl's calls: only through builders (their .method), but for `osmosectl call`.
calls = re.compile(r"\b(osm_ctl_call|osm_ctl_call_fds|osm_client_call|osm_client_call_more|"
                   r"osm_client_start_more)\(\s*[^,]+,\s*([^,]+),")
bad = []
for name in sorted(os.listdir(os.path.join(src, "src", "cli"))):
    if not name.endswith(".c"):
        continue
    text = open(os.path.join(src, "src", "cli", name), encoding="utf-8").read()
    for m in re.finditer(r'"(io\.osmose\.|org\.varlink\.)[^"]*"', text):
        bad.append("%s: %s" % (name, m.group(0)))
    if name in ("output.c", "cmd-status.c"):   # the definitions; `call` sends the user's method
        continue
    for m in calls.finditer(text):
        if not m.group(2).strip().endswith(".method"):
            bad.append("%s: %s(…, %s, …)" % (name, m.group(1), m.group(2).strip()))
ok(not bad, "src/cli names no method or error itself and calls only through the builders%s" %
   (": " + "; ".join(bad) if bad else ""))
print("1..%d" % n)
sys.exit(1 if failed else 0)
