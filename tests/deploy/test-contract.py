#!/usr/bin/env python3
"""test-contract.py: the bash completion, the manual pages and the example configuration
match the real programs: every command and option `osmosectl --help` lists, every option
of `osmosed --help`, and every key `osmosed --dump-config` prints (with its default)."""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

SRC = os.environ["OSM_SOURCE_ROOT"]
BUILD = os.environ["OSM_BUILD_ROOT"]
OSMOSED = os.environ["OSMOSED"]
OSMOSECTL = os.environ["OSMOSECTL"]
COMPLETION = os.path.join(SRC, "completion", "osmosectl.bash")

n = 0
failed = 0


def ok(cond, msg, diag=None):
    global n, failed
    n += 1
    print("%s %d - %s" % ("ok" if cond else "not ok", n, msg))
    if not cond:
        failed += 1
        if diag:
            for line in str(diag).splitlines():
                print("#   " + line)
    return cond


def skip(msg, why):
    global n
    n += 1
    print("ok %d - %s # SKIP %s" % (n, msg, why))


def note(msg):
    print("# " + msg)


def run(*argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, **kw)


def same(a, b, what):
    a, b = set(a), set(b)
    ok(a == b, what, "only in the first: %s\nonly in the second: %s" % (sorted(a - b), sorted(b - a)))


# ---------------------------------------------------------------- the real programs
def ctl_help_commands():
    """Commands of `osmosectl --help` as "cmd" or "group sub" (a lowercase second word
    is a subcommand, "a|b|c" several; arguments are upper case or bracketed)."""
    out = run(OSMOSECTL, "--help").stdout
    cmds = set()
    in_cmds = False
    for line in out.splitlines():
        if line.startswith("Commands:"):
            in_cmds = True
            continue
        if in_cmds:
            m = re.match(r"^  (\S+)(?: ([a-z][a-z-]*(?:\|[a-z][a-z-]*)*)(?=\s|$))?", line)
            if m and m.group(2):
                cmds |= {m.group(1) + " " + sub for sub in m.group(2).split("|")}
            elif m:
                cmds.add(m.group(1))
            elif line.strip() and not line.startswith("   "):
                in_cmds = False
    return cmds, out


def long_options(text):
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", text))


def short_options(text):
    return set(re.findall(r"(?<![\w-])(-[a-zA-Z])\b", text))


# ---------------------------------------------------------------- the completion
def completion_tables():
    script = r'''
source "$1"
for c in $_osmosectl_commands; do echo "cmd $c"; done
for k in "${!_osmosectl_subcommands[@]}"; do for s in ${_osmosectl_subcommands[$k]}; do echo "sub $k $s"; done; done
for k in "${!_osmosectl_options[@]}"; do echo "opt $k|${_osmosectl_options[$k]}"; done
echo "global $_osmosectl_global_options"
echo "osmosed $_osmosed_options"
'''
    r = run("bash", "-c", script, "bash", COMPLETION)
    cmds, subs, opts, glob, daemon = set(), {}, {}, set(), set()
    for line in r.stdout.splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "cmd":
            cmds.add(rest)
        elif kind == "sub":
            g, s = rest.split(" ", 1)
            subs.setdefault(g, set()).add(s)
        elif kind == "opt":
            k, v = rest.split("|", 1)
            opts[k] = set(v.split())
        elif kind == "global":
            glob = set(rest.split())
        elif kind == "osmosed":
            daemon = set(rest.split())
    full = set()
    for c in cmds:
        if c in subs:
            full |= {c + " " + s for s in subs[c]}
        else:
            full.add(c)
    return full, cmds, opts, glob, daemon


# ---------------------------------------------------------------- the manual pages
def scd_section(path, title):
    text = open(path).read()
    m = re.search(r"^# %s\n(.*?)(?=^# |\Z)" % re.escape(title), text, re.M | re.S)
    return m.group(1) if m else ""


def man_commands(path):
    """Command entries of osmosectl.1's COMMANDS, {"cmd" or "group sub": entry text}: an
    entry is a line starting with *cmd* (several separated by ", ") and its indented body."""
    entries = {}
    current = []
    for line in scd_section(path, "COMMANDS").splitlines():
        if line.startswith("*"):
            current = [m.group(1) for m in
                       re.finditer(r"(?:^|, )\*([a-z][a-z-]*(?: [a-z][a-z-]*)?)\*", line)]
            for c in current:
                entries[c] = entries.get(c, "") + line + "\n"
        elif line.startswith("\t"):
            for c in current:
                entries[c] += line + "\n"
        elif line.strip():
            current = []
    return entries


def man_config_keys(path):
    keys = set()
    text = open(path).read()
    for m in re.finditer(r"^# \[([a-z]+)\]\n(.*?)(?=^# |\Z)", text, re.M | re.S):
        for k in re.findall(r"^\*([a-z][a-z-]*)\* =", m.group(2), re.M):
            keys.add("%s.%s" % (m.group(1), k))
    return keys


def ini_keys(text, commented):
    keys, section = {}, None
    pat = r"^#([a-z][a-z-]*) = ?(.*)$" if commented else r"^([a-z][a-z-]*) = ?(.*)$"
    for line in text.splitlines():
        m = re.match(r"^\[([a-z]+)\]$", line)
        if m:
            section = m.group(1)
            continue
        m = re.match(pat, line)
        if m and section:
            keys["%s.%s" % (section, m.group(1))] = m.group(2)
    return keys



# ---------------------------------------------------------------- --json of every command
def man_json_shapes(path):
    """JSON OUTPUT of osmosectl.1: lines "- *cmd*: {k, k}" (one object with at least these
    keys) or "- *cmd*: lines of {k, k}" (JSON Lines, each such an object)."""
    shapes = {}
    for m in re.finditer(r"^- \*([a-z][a-z -]*?)\*(?: [^:]*)?: (lines of )?\{([^}]*)\}",
                         scd_section(path, "JSON OUTPUT"), re.M):
        keys = {k.strip().replace("\\", "") for k in m.group(3).split(",") if k.strip()}
        shapes[m.group(1)] = ("lines" if m.group(2) else "object", keys)
    return shapes


def check_json_output(man1, real):
    """Run every command with --json against a real osmosed in a temporary directory and
    check that it prints what osmosectl(1) JSON OUTPUT says."""
    shapes = man_json_shapes(man1)
    missing = sorted(c for c in real if c not in shapes)
    ok(not missing, "osmosectl(1) JSON OUTPUT gives the shape of every command (%d)" % len(shapes),
       "no shape for: %s" % missing)
    tmp = tempfile.mkdtemp(prefix="osm-contract.")
    sock = os.path.join(tmp, "state", "osmosed.sock")
    env = dict(os.environ, OSMOSE_SOCKET=sock, DBUS_SYSTEM_BUS_ADDRESS="unix:path=%s/no-bus" % tmp)
    log = open(os.path.join(tmp, "daemon.log"), "w")
    daemon = subprocess.Popen([OSMOSED, "--state-dir", os.path.join(tmp, "state"), "--name", "contract"],
                              stdout=log, stderr=log, env=env)
    checked = set()
    try:
        for _ in range(200):
            if run(OSMOSECTL, "call", "org.varlink.service.GetInfo", env=env).returncode == 0:
                break
            time.sleep(0.05)

        def ctl(*args, stdin=None):
            return subprocess.run((OSMOSECTL,) + args, capture_output=True, text=True, timeout=60,
                                  env=env, input=stdin)

        def check(cmd, *args, stdin=None, shape=None, codes=(0,)):
            """osmosectl --json CMD ARGS: exit 0 and the documented shape (that of "CMD", or
            of shape such as "run --wait"); returns the output."""
            r = ctl("--json", *cmd.split(), *args, stdin=stdin)
            kind, keys = shapes.get(shape or cmd, ("object", set()))
            if shape:
                checked.add(shape)
            if os.environ.get("OSM_SHOW_JSON"):
                note("%s: %s" % (shape or cmd, r.stdout[:300].replace("\n", " ")))
            what = "%s --json" % " ".join([cmd] + list(args))[:60]
            if not ok(r.returncode in codes, "%s succeeds" % what, r.stderr):
                return None
            try:
                if kind == "lines":
                    docs = [json.loads(l) for l in r.stdout.splitlines()]
                    good = all(isinstance(d, dict) and keys <= set(d) for d in docs)
                else:
                    docs = [json.loads(r.stdout)]
                    good = isinstance(docs[0], dict) and keys <= set(docs[0])
            except ValueError as e:
                ok(False, "%s is %s" % (what, "JSON Lines" if kind == "lines" else "one JSON object"),
                   "%s\n%s" % (e, r.stdout[:2000]))
                return None
            ok(good, "%s prints %s with %s" % (what, "lines of objects" if kind == "lines" else "one object",
                                                sorted(keys)), r.stdout[:2000])
            checked.add(cmd)
            return docs if kind == "lines" else docs[0]

        f = os.path.join(tmp, "file")
        open(f, "w").write("content\n")
        app = os.path.join(tmp, "app")
        os.makedirs(app)
        open(os.path.join(app, "manifest.json"), "w").write(
            '{"name":"probe","version":1,"entrypoint":["/bin/echo","hello"],'
            '"capabilities":["network","discovery:read"],"restart":"never"}')
        check("status", codes=(0, 1))   # 1: a subsystem is degraded (no avahi-daemon here)
        check("reload")
        check("put", "c/x", '{"t":20.5}')
        check("put", "c/x", "--batch", stdin='{"t":1}\n{"t":2}\n', shape="put --batch")
        check("query", "c/x")
        check("collections")
        check("retention", "c/x")
        check("retention", "c/x", "--max-records", "100")
        check("delete", "c/x", "--until", "-30d")
        check("query", "c/x", "--limit", "1")
        h = (check("object put", f) or {}).get("hash", "0" * 64)
        check("object get", h, "-o", os.path.join(tmp, "got"))
        check("object ls")
        check("object rm", h)
        check("object gc")
        key = (check("keygen", "-o", os.path.join(tmp, "key")) or {}).get("public_key", "x")
        check("trust add", key)
        check("trust ls")
        check("bundle build", app, "-o", os.path.join(tmp, "probe.osb"), "--key", os.path.join(tmp, "key"))
        check("bundle inspect", os.path.join(tmp, "probe.osb"))
        chan = os.path.join(tmp, "chan")
        check("channel publish", os.path.join(tmp, "probe.osb"), "--channel", "stable", "--key",
              os.path.join(tmp, "key"), "-o", chan)
        check("channel inspect", os.path.join(chan, "stable.channel"))
        check("follow", "probe", os.path.join(chan, "stable.channel"))
        check("pin", "probe", "1")
        check("unpin", "probe")
        check("upgrade", "probe", "--check")
        check("import", chan)
        check("install", os.path.join(tmp, "probe.osb"), "--grant", "network")
        check("workloads")
        check("grant", "probe", "discovery:read")
        check("revoke", "probe", "discovery:read")
        check("enable", "probe")
        check("disable", "probe")
        sandbox = [x for x in json.loads(ctl("--json", "status").stdout)["subsystems"] if x["name"] == "sandbox"]
        if sandbox and sandbox[0]["health"] == "ok" and os.geteuid() == 0:
            # restart always: it is still alive (running or in backoff) when stopped
            inst = (check("run", "probe", "--restart", "always") or {}).get("instance", "probe")
            check("run", "probe", "--wait", shape="run --wait")
            check("ps")
            check("logs", inst)
            check("stats", inst)
            check("stop", inst)
        else:
            note("the sandbox cannot run here: run, ps, logs, stats, stop not exercised")
        check("upgrade")
        check("unfollow", "probe")
        check("remove", "probe")
        check("trust rm", key)
        check("federation enable", "--listen", "127.0.0.1:0")
        check("federation status")
        rkey = json.loads(ctl("--json", "keygen", "-o", os.path.join(tmp, "rkey")).stdout)["public_key"]
        check("remote add", "lab2", "http://127.0.0.1:9", "--key", rkey)
        check("remote ls")
        check("remote set-url", "lab2", "http://127.0.0.1:10")
        check("share", "c/x", "--with", "lab2")
        check("unshare", "c/x", "--with", "lab2")
        check("share", "--object", "1" * 64, "--with", "lab2", shape="share --object")
        check("unshare", "--object", "1" * 64, "--with", "lab2", shape="unshare --object")
        check("share", "--channel", "stable", "--with", "lab2", shape="share --channel")
        check("unshare", "--channel", "stable", "--with", "lab2", shape="unshare --channel")
        check("audit")
        check("remote rm", "lab2")
        if "io.osmose.Ingest" in ctl("call", "org.varlink.service.GetInfo").stdout:
            check("ingest add", "c1", "mqtt://127.0.0.1:9", "--topic", "a/#", "--into", "c/")
            check("ingest ls")
            check("ingest rm", "c1")
        check("federation disable")
        check("peers")
        check("services")
        check("call", "org.varlink.service.GetInfo")
        check("building status")
        import grp
        group = grp.getgrgid(os.getgid()).gr_name
        check("tenant add", "lab", "--group", group, "--memory", "64M", "--until", "+30d")
        check("tenant set", "lab", "--instances", "3")
        check("tenant ls")
        check("usage")
        check("tenant rm", "lab")
    finally:
        daemon.terminate()
        daemon.wait(timeout=20)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)
    # what needs a second room (a peer seen on the LAN, a remote that answers) is not run here
    unrun = sorted(c for c in real if c not in checked)
    note("--json checked for %d commands; not exercised here: %s" % (len(checked), " ".join(unrun)))
    ok(len(checked) >= 40, "--json is exercised for most commands (%d)" % len(checked))


def main():
    man1 = os.path.join(SRC, "doc", "osmosectl.1.scd")
    man8 = os.path.join(SRC, "doc", "osmosed.8.scd")
    man5 = os.path.join(SRC, "doc", "osmosed.conf.5.scd")

    # -- osmosectl commands: the real table is covered by the completion and the manual.
    real, help_text = ctl_help_commands()
    ok(len(real) >= 1 and "status" in real, "osmosectl --help lists its commands (%d)" % len(real), help_text)
    comp_full, comp_top, comp_opts, comp_glob, comp_daemon = completion_tables()
    ok(len(comp_full) > 0, "the completion script defines its tables")
    documented = man_commands(man1)
    # A group listed whole in --help ("object") counts as covered by its subcommands.
    def covered(c, have):
        return c in have or any(h.startswith(c + " ") for h in have)
    missing = sorted(c for c in real if not covered(c, comp_full))
    ok(not missing, "every osmosectl command is completed", "not completed: %s" % missing)
    missing = sorted(c for c in real if not covered(c, documented))
    ok(not missing, "every osmosectl command is in osmosectl(1)", "not documented: %s" % missing)
    same(comp_full, documented, "completion and osmosectl(1) list the same commands")
    pending = sorted(c for c in comp_full if not covered(c.split()[0], real) and c not in real)
    if pending:
        note("in the contract (DESIGN.md section 5) but not in osmosectl yet: " + " ".join(pending))
    same(set(comp_opts), comp_full, "the completion has an option list for every command")

    # -- options of each implemented command.
    for c in sorted(real):
        if c not in comp_full:
            continue
        r = run(OSMOSECTL, *c.split(), "--help")
        text = r.stdout + r.stderr
        opts = (long_options(text) | short_options(text)) - {"--socket", "--json", "--help", "-h"}
        if not ok(r.returncode == 0, "osmosectl %s --help succeeds" % c, text):
            continue
        ok(opts <= comp_opts.get(c, set()), "completion of '%s' offers its options %s" % (c, sorted(opts)),
           "missing: %s" % sorted(opts - comp_opts.get(c, set())))
        undocumented = sorted(o for o in opts if "*%s*" % o not in documented.get(c, ""))
        ok(not undocumented, "osmosectl(1) documents the options of '%s'" % c, "missing: %s" % undocumented)

    # -- capabilities: what `install --help` lists after --grant, as name prefixes.
    ihelp = run(OSMOSECTL, "install", "--help").stdout
    m = re.search(r"--grant CAP\s+.*?:\s*(.*?)\n\s*--", ihelp, re.S)
    if m:
        caps = {re.match(r"[a-z:/]*[a-z:/]", t.strip()).group(0)
                for t in re.split(r",\s*", m.group(1).replace("\n", " ")) if t.strip()}
        r = run("bash", "-c", 'source "$1"; complete -p osmosectl >/dev/null; '
                'declare -f _osmosectl | grep -A1 -e "--grant)" | sed -n "s/.*compgen -W \\"\\([^\\"]*\\)\\".*/\\1/p"',
                "bash", COMPLETION)
        same(caps, set(r.stdout.split()), "completion of --grant offers the capabilities install --help lists")
        man_caps = re.sub(r"[*\\]|_(?=[A-Z_])|(?<=[A-Z])_", "", scd_section(man1, "CAPABILITIES"))
        missing = sorted(c for c in caps if c not in man_caps)
        ok(not missing, "osmosectl(1) CAPABILITIES documents %s" % sorted(caps), "missing: %s" % missing)
    else:
        skip("capabilities match", "install --help lists no capabilities after --grant")

    # -- global options of osmosectl.
    glob = long_options(help_text.split("Commands:")[0])
    same(glob, comp_glob, "completion offers osmosectl's global options")
    man1_opts = long_options(scd_section(man1, "OPTIONS").replace("*", " "))
    same(glob, man1_opts, "osmosectl(1) OPTIONS lists osmosectl's global options")

    # -- osmosed options.
    dhelp = run(OSMOSED, "--help").stdout
    dopts = long_options(dhelp)
    ok(len(dopts) >= 5, "osmosed --help lists its options", dhelp)
    same(dopts, comp_daemon, "completion offers osmosed's options")
    man8_opts = long_options(scd_section(man8, "OPTIONS").replace("*", " "))
    same(dopts, man8_opts, "osmosed(8) OPTIONS lists osmosed's options")
    dshort = short_options(dhelp)
    man8_short = short_options(scd_section(man8, "OPTIONS").replace("*", " "))
    same(dshort, man8_short, "osmosed(8) lists osmosed's short options")

    # -- configuration keys: dump, example, manual; and the example's values are the defaults.
    with tempfile.TemporaryDirectory() as tmp:
        dump = run(OSMOSED, "--config", "/dev/null", "--dump-config")
        ok(dump.returncode == 0, "osmosed --dump-config", dump.stderr)
        real_keys = ini_keys(dump.stdout, commented=False)
        ok(len(real_keys) >= 10, "--dump-config prints the key table (%d keys)" % len(real_keys))
        example_path = os.path.join(BUILD, "doc", "osmosed.conf")
        example = open(example_path).read()
        ex_keys = ini_keys(example, commented=True)
        same(real_keys, ex_keys, "the example configuration shows every key, in its section")
        same(real_keys, man_config_keys(man5), "osmosed.conf(5) documents every key, in its section")

        # Uncomment everything (but the computed host name) and the daemon must see
        # exactly its defaults: the example shows the true default of every key.
        uncommented = os.path.join(tmp, "all.conf")
        with open(uncommented, "w") as f:
            for line in example.splitlines():
                m = re.match(r"^#([a-z][a-z-]*) = ?(.*)$", line)
                if m and m.group(1) != "name":
                    line = line[1:]
                f.write(line + "\n")
        chk = run(OSMOSED, "--config", uncommented, "--check-config")
        ok(chk.returncode == 0, "the example, uncommented, passes --check-config", chk.stdout + chk.stderr)
        dump2 = run(OSMOSED, "--config", uncommented, "--dump-config").stdout
        diffs = [k for k in real_keys if ini_keys(dump2, False).get(k) != real_keys[k]]
        ok(not diffs, "every value in the example is the daemon's default",
           "\n".join("%s: example gives %r, default %r" % (k, ini_keys(dump2, False).get(k), real_keys[k]) for k in diffs))

        # The help text of every key appears in the example (word for word, case aside).
        helps = re.findall(r"^# (.*)\n([a-z][a-z-]*) = ", dump.stdout, re.M)
        note("%d keys with help in --dump-config" % len(helps))

    # -- the completion at work (needs bash-completion's _init_completion).
    bc = "/usr/share/bash-completion/bash_completion"
    if not os.path.exists(bc):
        skip("completion at work", "bash-completion is not installed")
    else:
        def complete(line, prog="osmosectl"):
            r = run("bash", os.path.join(SRC, "tests", "lib", "complete.sh"), bc, COMPLETION, line,
                    "osmosed" if prog == "osmosed" else "osmosectl", env=dict(os.environ, COMPLETE_PATH="/nonexistent"))
            return set(r.stdout.split())
        got = complete("osmosectl st")
        ok({"status", "stop", "stats"} <= got and "put" not in got, "completes command names", got)
        got = complete("osmosectl --json object ")
        ok(got == {"put", "get", "ls", "rm", "gc", "--help"}, "completes subcommands after a global option", got)
        got = complete("osmosectl query sensors/temp --")
        ok({"--since", "--until", "--limit", "--reverse", "--follow", "--help"} == got, "completes a command's options", got)
        got = complete("osmosectl --")
        ok(got == comp_glob, "completes global options", got)
        got = complete("osmosed --st", "osmosed")
        ok(got == {"--state-dir"}, "completes osmosed's options", got)

    check_json_output(man1, real)

    print("1..%d" % n)
    return 1 if failed else 0


sys.exit(main())
