#!/usr/bin/env python3
"""varlink-gen.py: compile Varlink interface definition files into a C table.

The .varlink files are the one source of truth for the control protocol. This
generator emits, for each interface, its description text (served by
org.varlink.service.GetInterfaceDescription) and, for each method, the
top-level input fields with their JSON kind, optionality and enum values, so
that the server checks every call's parameters before a handler runs.

With --header OUT.h it emits instead the names both sides use, so that daemon and
CLI cannot drift from the interfaces: OSM_I_<IFACE> (interface), OSM_M_<IFACE>_<METHOD>
(method) and OSM_E_<IFACE>_<ERROR> (error) string constants, where IFACE is the last
part of io.osmose.X ("" for io.osmose itself, VARLINK for org.varlink.service); for
every error a constructor osm_error_<iface>_<error>(fields...) taking exactly its
declared fields; and for errors that carry a message and nothing else required, a
OSM_E_..._M token that osm_call_errorf() demands (so that it cannot send {message} with
an error that declares other fields).

Usage: varlink-gen.py -o OUT.c FILE.varlink...
       varlink-gen.py --header OUT.h FILE.varlink...
"""
import re
import sys

KINDS = {"string": "s", "int": "i", "float": "f", "bool": "b", "object": "x"}


def strip_comments(text):
    return "\n".join(line.split("#", 1)[0] for line in text.splitlines())


def split_top(s, sep=","):
    """Split s at sep characters that are not nested inside () or []."""
    out, depth, cur = [], 0, ""
    for ch in s:
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        if ch == sep and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur)
    return [x.strip() for x in out if x.strip()]


def matching_paren(s, i):
    depth = 0
    for j in range(i, len(s)):
        if s[j] == "(":
            depth += 1
        elif s[j] == ")":
            depth -= 1
            if depth == 0:
                return j
    raise SystemExit("unbalanced parentheses")


def classify(t, typedefs):
    """Return (kind, optional, enum_values) of a Varlink type expression."""
    t = t.strip()
    optional = t.startswith("?")
    if optional:
        t = t[1:].strip()
    if t.startswith("[]"):
        return "a", optional, None
    if t.startswith("[string]"):
        return "m", optional, None
    if t in KINDS:
        return KINDS[t], optional, None
    if t.startswith("("):
        inner = t[1:-1]
        if ":" in inner or not inner.strip():
            return "o", optional, None
        return "s", optional, split_top(inner)
    if t in typedefs:
        kind, _, values = classify(typedefs[t], typedefs)
        return kind, optional, values
    raise SystemExit("unknown type %r" % t)


def parse(path):
    text = open(path, encoding="utf-8").read()
    body = strip_comments(text)
    m = re.search(r"\binterface\s+([A-Za-z0-9.-]+)", body)
    if not m:
        raise SystemExit("%s: no interface line" % path)
    name = m.group(1)
    typedefs, methods, errors = {}, [], []
    pos = 0
    decl = re.compile(r"\b(type|method|error)\s+([A-Za-z0-9_]+)\s*\(")
    while True:
        m = decl.search(body, pos)
        if not m:
            break
        start = m.end() - 1
        end = matching_paren(body, start)
        args = body[start + 1:end]
        if m.group(1) == "type":
            typedefs[m.group(2)] = "(" + args + ")"
        elif m.group(1) == "method":
            methods.append((m.group(2), args))
        else:
            errors.append((m.group(2), args))
        pos = end + 1
    def with_fields(decls):
        out = []
        for dname, args in decls:
            fields = [tuple(x.strip() for x in f.split(":", 1)) for f in split_top(args)]
            out.append((dname, fields))
        return out
    return name, text, typedefs, with_fields(methods), with_fields(errors)


def c_string(s):
    out = []
    for line in s.splitlines(True):
        esc = line.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        out.append('        "%s"' % esc)
    return "\n".join(out) if out else '""'


def snake(camel):
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", camel)
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", s)
    return s.upper()


def iface_part(name):
    if name == "io.osmose":
        return ""
    if name == "org.varlink.service":
        return "VARLINK_"
    return snake(name.rsplit(".", 1)[1]) + "_"


# C parameter of a declared error field: required scalars by value, strings as
# const char * (NULL only where optional), everything else as json_t * (stolen).
def c_param(ftype, typedefs):
    kind, opt, _ = classify(ftype, typedefs)
    if kind == "s":
        return "const char *", "json_string(%s)"
    if opt:
        return "json_t *", "%s"
    if kind == "i":
        return "int64_t ", "json_integer((json_int_t) %s)"
    if kind == "f":
        return "double ", "json_real(%s)"
    if kind == "b":
        return "bool ", "json_boolean(%s)"
    return "json_t *", "%s"


def header(out_path, files):
    lines = ["/* osmose/protocol.h: the names and errors of the .varlink files, for daemon and CLI.",
             " * Generated by tools/varlink-gen.py from src/lib/interfaces/: do not edit. */",
             "#pragma once", "", "#include <jansson.h>", "#include <stdbool.h>", "#include <stdint.h>", "",
             "/* An error to send: its name and parameters (owned; NULL for none). */",
             "typedef struct osm_vl_error {", "        const char *name;", "        json_t *params;",
             "} osm_vl_error;", ""]
    for path in files:
        name, _, typedefs, methods, errors = parse(path)
        part = iface_part(name)
        lines.append("/* ---- %s ---- */" % name)
        lines.append('#define OSM_I_%s "%s"' % (part.rstrip("_") or "OSMOSE", name))
        for mname, _ in methods:
            lines.append('#define OSM_M_%s%s "%s.%s"' % (part, snake(mname), name, mname))
        for ename, fields in errors:
            const = "OSM_E_%s%s" % (part, snake(ename))
            lines.append('#define %s "%s.%s"' % (const, name, ename))
            required = [f for f, t in fields if not t.startswith("?")]
            if "message" in [f for f, _ in fields] and required == ["message"]:
                lines.append("#define %s_M %s   /* osm_call_errorf() may send it */" % (const, const))
            fn = "osm_error_%s%s" % (part.lower(), snake(ename).lower())
            params = []
            body = ["        json_t *p = json_object();"]
            for fname, ftype in fields:
                ctype, conv = c_param(ftype, typedefs)
                params.append("%s%s" % (ctype, fname))
                setter = '        json_object_set_new(p, "%s", %s);' % (fname, conv % fname)
                if ftype.startswith("?"):
                    body.append("        if (%s)" % fname)
                    setter = "        " + setter
                body.append(setter)
            lines.append("static inline osm_vl_error %s(%s) {" % (fn, ", ".join(params) or "void"))
            lines.extend(body)
            lines.append("        return (osm_vl_error) { %s, p };" % const)
            lines.append("}")
        lines.append("")
    with open(out_path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def main():
    args = sys.argv[1:]
    if len(args) >= 3 and args[0] == "--header":
        header(args[1], args[2:])
        return
    if len(args) < 3 or args[0] != "-o":
        raise SystemExit(__doc__)
    out_path, files = args[1], args[2:]
    lines = ["/* Generated by tools/varlink-gen.py from the .varlink files: do not edit. */",
             "#include \"osmose/varlink.h\"", ""]
    iface_syms = []
    for n, path in enumerate(files):
        name, text, typedefs, methods, _ = parse(path)
        sym = "iface_%d" % n
        iface_syms.append(sym)
        mentries = []
        for k, (mname, fields) in enumerate(methods):
            fentries = []
            for j, (fname, ftype) in enumerate(fields):
                kind, opt, values = classify(ftype, typedefs)
                enum = "NULL"
                if values:
                    ev = "%s_m%d_f%d_enum" % (sym, k, j)
                    lines.append("static const char *const %s[] = { %s, NULL };" %
                                 (ev, ", ".join('"%s"' % v for v in values)))
                    enum = ev
                fentries.append('        { "%s", \'%s\', %s, %s },' %
                                (fname, kind, "true" if opt else "false", enum))
            fsym = "%s_m%d_in" % (sym, k)
            if fentries:
                lines.append("static const osm_vl_field %s[] = {" % fsym)
                lines.extend(fentries)
                lines.append("};")
                mentries.append('        { "%s.%s", %s, %d },' % (name, mname, fsym, len(fentries)))
            else:
                mentries.append('        { "%s.%s", NULL, 0 },' % (name, mname))
        if mentries:
            lines.append("static const osm_vl_method %s_methods[] = {" % sym)
            lines.extend(mentries)
            lines.append("};")
            msym, mcount = "%s_methods" % sym, len(mentries)
        else:
            msym, mcount = "NULL", 0
        lines.append("static const osm_vl_interface %s = {" % sym)
        lines.append('        "%s",' % name)
        lines.append(c_string(text) + ",")
        lines.append("        %s, %d," % (msym, mcount))
        lines.append("};")
        lines.append("")
    lines.append("const osm_vl_interface *const osm_vl_interfaces[] = { %s };" %
                 ", ".join("&" + s for s in iface_syms))
    lines.append("const size_t osm_vl_n_interfaces = %d;" % len(iface_syms))
    with open(out_path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
