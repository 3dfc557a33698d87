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
an error that declares other fields); and for every method a typed call builder
osm_req_<iface>_<method>(required fields..., const osm_req_<iface>_<method>_opt *opt) whose
optional fields are members of the _opt struct (set with designated initializers), so that
a client cannot send a misspelt method or a parameter of the wrong name or type.

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


OUTPUTS = {}   # (interface, method) -> its reply's fields, filled by parse()


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
            out = re.match(r"\s*->\s*\(", body[end + 1:])
            if out:
                ostart = end + 1 + out.end() - 1
                oend = matching_paren(body, ostart)
                OUTPUTS[(name, m.group(2))] = [tuple(x.strip() for x in f.split(":", 1))
                                               for f in split_top(body[ostart + 1:oend])]
                end = oend
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


C_KEYWORDS = {"auto", "break", "case", "char", "const", "continue", "default", "do", "double",
              "else", "enum", "extern", "float", "for", "goto", "if", "inline", "int", "long",
              "register", "restrict", "return", "short", "signed", "sizeof", "static", "struct",
              "switch", "typedef", "union", "unsigned", "void", "volatile", "while", "bool"}


def c_name(field):
    return field + "_" if field in C_KEYWORDS else field


# C type of a method's input field, and the statement that adds it to p. Required
# scalars by value; optional scalars as osm_opt_* (OSM_SOME(v) sets them); strings as
# const char * (NULL: left out, for an optional one); everything else as a borrowed json_t *.
def req_field(fname, ftype, typedefs, src):
    kind, opt, _ = classify(ftype, typedefs)
    set_new = '        osm_bad |= json_object_set_new(osm_p, "%s", %%s) != 0;' % fname
    if kind == "s":
        return "const char *", "", set_new % ("json_string(%s)" % src), "%s" % src
    if kind in "ifb":
        conv = {"i": "json_integer((json_int_t) %s)", "f": "json_real(%s)", "b": "json_boolean(%s)"}[kind]
        if opt:
            ctype = {"i": "osm_opt_int ", "f": "osm_opt_float ", "b": "osm_opt_bool "}[kind]
            return ctype, "", set_new % (conv % (src + ".v")), src + ".set"
        ctype = {"i": "int64_t ", "f": "double ", "b": "bool "}[kind]
        return ctype, "", set_new % (conv % src), None
    return "json_t *", "", '        osm_bad |= json_object_set(osm_p, "%s", %s) != 0;' % (fname, src), src


REQ_PRELUDE = """/* A call to make: its method and its parameters (owned; NULL for none); failed if they
 * could not be built (out of memory, or NULL for a required field): send nothing then.
 * Made by the osm_req_…() builders below, one per method; _cleanup_request_ frees it. */
typedef struct osm_vl_request {
        const char *method;
        json_t *params;
        bool failed;
} osm_vl_request;
static inline void osm_vl_request_done(osm_vl_request *r) {
        json_decref(r->params);
        r->params = NULL;
}
#define _cleanup_request_ __attribute__((cleanup(osm_vl_request_done)))

/* An optional scalar parameter: left out unless set. In an _opt initializer:
 * .limit = OSM_SOME(10), or .since = OSM_IF(have_since, since). */
typedef struct osm_opt_int { bool set; int64_t v; } osm_opt_int;
typedef struct osm_opt_bool { bool set; bool v; } osm_opt_bool;
typedef struct osm_opt_float { bool set; double v; } osm_opt_float;
#define OSM_SOME(x) { true, (x) }
#define OSM_IF(cond, x) { (cond) ? true : false, (x) }
"""


def builder(fn, fields, typedefs, steal):
    """The parts of a builder of fields: its C parameters (required fields, then the _opt
    struct if any), the lines of that struct, the lines of its body up to the object built
    in osm_p (osm_bad on failure), and the 1-based numbers of its pointer parameters. JSON
    values are borrowed (a call's) or stolen (steal: a reply's)."""
    params, members, nonnull = [], [], []
    body = ["        json_t *osm_p = json_object();", "        bool osm_bad = !osm_p;"]
    for fname, ftype in fields:
        optional = ftype.startswith("?")
        src = ("opt->%s" if optional else "%s") % c_name(fname)
        ctype, _, setter, present = req_field(fname, ftype, typedefs, src)
        if ctype == "json_t *" and steal:
            setter = '        osm_bad |= json_object_set_new(osm_p, "%s", %s) != 0;' % (fname, src)
        decl = "%s%s" % (ctype, c_name(fname))
        if optional:
            members.append("        %s;   /* %s */" % (decl, ftype))
            body.append("        if (opt && %s)" % present)
            body.append("        " + setter)
        else:
            params.append(decl)
            if ctype == "const char *":
                # Not json_t *: a NULL value (a failed json_pack) is a run-time failure
                # the builder reports (failed), not a contract violation.
                nonnull.append(len(params))
            body.append(setter)
    struct = []
    if members:
        sname = fn + "_opt"
        struct = ["typedef struct %s {" % sname] + members + ["} %s;" % sname]
        params.append("const %s *opt" % sname)
    body += ["        if (osm_bad) {", "                json_decref(osm_p);", "                osm_p = NULL;",
             "        }"]
    return params, struct, body, nonnull


def requests(name, part, typedefs, methods):
    """The typed call builders of one interface's methods."""
    lines = []
    for mname, fields in methods:
        fn = "osm_req_%s%s" % (part.lower(), snake(mname).lower())
        const = "OSM_M_%s%s" % (part, snake(mname))
        sig = ", ".join("%s: %s" % f for f in fields)
        lines.append("/* %s.%s(%s) */" % (name, mname, sig))
        if not fields:
            lines.append("static inline osm_vl_request %s(void) {" % fn)
            lines.append("        return (osm_vl_request) { %s, NULL, false };" % const)
            lines.append("}")
            continue
        params, struct, body, nonnull = builder(fn, fields, typedefs, False)
        lines.extend(struct)
        attr = "__attribute__((nonnull(%s))) " % ", ".join(map(str, nonnull)) if nonnull else ""
        lines.append("static inline %sosm_vl_request %s(%s) {" % (attr, fn, ", ".join(params)))
        lines.extend(body)
        lines.append("        return (osm_vl_request) { %s, osm_p, osm_bad };" % const)
        lines.append("}")
    return lines


def replies(name, part, typedefs, methods):
    """The reply builders of one interface's methods: osm_reply_<iface>_<method>(required
    fields..., const osm_reply_<iface>_<method>_opt *opt) -> json_t * (NULL on ENOMEM). As
    for the error constructors, JSON values are stolen (what they build is sent and gone)."""
    lines = []
    for mname, _ in methods:
        fields = OUTPUTS.get((name, mname), [])
        if not fields:
            continue
        fn = "osm_reply_%s%s" % (part.lower(), snake(mname).lower())
        params, struct, body, _ = builder(fn, fields, typedefs, True)
        lines.append("/* the reply of %s.%s: (%s) */" % (name, mname, ", ".join("%s: %s" % f for f in fields)))
        lines.extend(struct)
        lines.append("static inline json_t *%s(%s) {" % (fn, ", ".join(params)))
        lines.extend(body)
        lines.append("        return osm_p;")
        lines.append("}")
    return lines


def header(out_path, files):
    lines = ["/* osmose/protocol.h: the names and errors of the .varlink files, for daemon and CLI.",
             " * Generated by tools/varlink-gen.py from src/lib/interfaces/: do not edit. */",
             "#pragma once", "", "#include <jansson.h>", "#include <stdbool.h>", "#include <stdint.h>", "",
             "/* An error to send: its name and parameters (owned; NULL for none). */",
             "typedef struct osm_vl_error {", "        const char *name;", "        json_t *params;",
             "} osm_vl_error;", ""] + REQ_PRELUDE.splitlines() + [""]
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
        lines.extend(requests(name, part, typedefs, methods))
        lines.extend(replies(name, part, typedefs, methods))
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
