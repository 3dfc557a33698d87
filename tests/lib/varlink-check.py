#!/usr/bin/env python3
"""varlink-check.py: call a running osmosed over its socket and check every reply and
error against the .varlink files: each field declared, of its declared type, none
missing, none extra; each error declared by the method's interface, io.osmose or
org.varlink.service. An independent reading of the interface files (it shares no code
with tools/varlink-gen.py or the daemon's checker) and its own Varlink client.

Usage: varlink-check.py SOCKET INTERFACE_DIR CALLS.json
CALLS.json: [{"method": M, "parameters": {...}, "want": "reply" | ERROR_NAME}, ...]
Prints one line per call: "PASS what" or "FAIL what: why".
"""
import glob
import json
import os
import re
import socket
import sys


# ---- the interface files ------------------------------------------------------------

def tokens(text):
    text = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    return re.findall(r"->|\?|\[\]|\[string\]|[A-Za-z_][A-Za-z0-9_.]*|[():,]", text)


class Parser:
    def __init__(self, toks):
        self.t, self.i = toks, 0

    def peek(self):
        return self.t[self.i] if self.i < len(self.t) else None

    def take(self, want=None):
        tok = self.peek()
        if want is not None and tok != want:
            raise SystemExit("varlink-check: expected %r, got %r" % (want, tok))
        self.i += 1
        return tok

    def type(self):
        tok = self.peek()
        if tok == "?":
            self.take()
            return ("maybe", self.type())
        if tok == "[]":
            self.take()
            return ("array", self.type())
        if tok == "[string]":
            self.take()
            return ("map", self.type())
        if tok == "(":
            return self.struct_or_enum()
        self.take()
        return ("name", tok)

    def struct_or_enum(self):
        self.take("(")
        fields, names = [], []
        while self.peek() != ")":
            name = self.take()
            if self.peek() == ":":
                self.take()
                fields.append((name, self.type()))
            else:
                names.append(name)
            if self.peek() == ",":
                self.take()
        self.take(")")
        if names and not fields:
            return ("enum", names)
        return ("struct", fields)


def load(dirname):
    """{interface: {"types": {}, "methods": {name: (in, out)}, "errors": {name: type}}}"""
    out = {}
    for path in sorted(glob.glob(os.path.join(dirname, "*.varlink"))):
        p = Parser(tokens(open(path, encoding="utf-8").read()))
        p.take("interface")
        iface = {"types": {}, "methods": {}, "errors": {}}
        out[p.take()] = iface
        while p.peek() is not None:
            kw = p.take()
            name = p.take()
            if kw == "type":
                iface["types"][name] = p.type()
            elif kw == "error":
                iface["errors"][name] = p.struct_or_enum()
            elif kw == "method":
                tin = p.struct_or_enum()
                p.take("->")
                iface["methods"][name] = (tin, p.struct_or_enum())
            else:
                raise SystemExit("varlink-check: unknown keyword %r" % kw)
    return out


# ---- checking a value against a type --------------------------------------------------

def check(value, t, types, where):
    """A list of problems (empty when value has type t)."""
    kind = t[0]
    if kind == "maybe":
        return [] if value is None else check(value, t[1], types, where)
    if value is None:
        return ["%s: null where %s is required" % (where, show(t))]
    if kind == "name":
        n = t[1]
        simple = {"string": str, "bool": bool, "object": (dict, list, str, int, float, bool)}
        if n == "int":
            ok = isinstance(value, int) and not isinstance(value, bool)
            return [] if ok else ["%s: %r is not an int" % (where, value)]
        if n == "float":
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            return [] if ok else ["%s: %r is not a float" % (where, value)]
        if n in simple:
            return [] if isinstance(value, simple[n]) else ["%s: %r is not a %s" % (where, value, n)]
        if n not in types:
            return ["%s: the interface has no type %s" % (where, n)]
        return check(value, types[n], types, where)
    if kind == "array":
        if not isinstance(value, list):
            return ["%s: not an array" % where]
        probs = []
        for k, v in enumerate(value):
            probs += check(v, t[1], types, "%s[%d]" % (where, k))
        return probs
    if kind == "map":
        if not isinstance(value, dict):
            return ["%s: not a map" % where]
        probs = []
        for k, v in value.items():
            probs += check(v, t[1], types, "%s[%s]" % (where, k))
        return probs
    if kind == "enum":
        return [] if value in t[1] else ["%s: %r is none of %s" % (where, value, "|".join(t[1]))]
    if kind == "struct":
        if not isinstance(value, dict):
            return ["%s: not an object" % where]
        probs = []
        declared = dict(t[1])
        for k in value:
            if k not in declared:
                probs.append("%s.%s: not declared" % (where, k))
        for k, ft in t[1]:
            if k not in value:
                if ft[0] != "maybe":
                    probs.append("%s.%s: missing" % (where, k))
                continue
            probs += check(value[k], ft, types, "%s.%s" % (where, k))
        return probs
    return ["%s: unknown type %r" % (where, t)]


def show(t):
    return t[1] if t[0] == "name" else t[0]


# ---- a Varlink client --------------------------------------------------------------

def call(sock_path, method, params):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(sock_path)
    s.sendall(json.dumps({"method": method, "parameters": params}).encode() + b"\0")
    buf = b""
    while b"\0" not in buf:
        d = s.recv(65536)
        if not d:
            break
        buf += d
    s.close()
    return json.loads(buf.split(b"\0", 1)[0])


def main():
    sock_path, idir, calls_path = sys.argv[1:4]
    ifaces = load(idir)
    for c in json.load(open(calls_path)):
        method, params, want = c["method"], c.get("parameters", {}), c.get("want", "reply")
        what = "%s %s" % (method, json.dumps(params, separators=(",", ":")))
        iname, mname = method.rsplit(".", 1)
        iface = ifaces.get(iname)
        if not iface or mname not in iface["methods"]:
            print("FAIL %s: not declared in the interface files" % what)
            continue
        try:
            r = call(sock_path, method, params)
        except (OSError, ValueError) as e:
            print("FAIL %s: %s" % (what, e))
            continue
        probs = []
        if "error" in r:
            ename = r["error"]
            einame, eshort = ename.rsplit(".", 1)
            decl = ifaces.get(einame, {}).get("errors", {}).get(eshort)
            if einame not in (iname, "io.osmose", "org.varlink.service"):
                probs.append("error %s is not of %s, io.osmose or org.varlink.service" % (ename, iname))
            elif decl is None:
                probs.append("error %s is not declared" % ename)
            else:
                probs += check(r.get("parameters", {}), decl, ifaces[einame]["types"], ename)
            if want != ename:
                probs.append("got error %s, wanted %s" % (ename, want))
        else:
            tout = iface["methods"][mname][1]
            probs += check(r.get("parameters", {}), tout, iface["types"], "reply")
            if want != "reply":
                probs.append("got a reply, wanted %s" % want)
        what += " -> " + (r.get("error") or "reply")
        print(("FAIL %s: %s" % (what, "; ".join(probs))) if probs else "PASS %s" % what)


if __name__ == "__main__":
    main()
