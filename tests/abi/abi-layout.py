#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The layout of the vmhost plugin ABI, as text, and the rules it may change by.

  abi-layout.py dump --cc CC --minor M -I DIR... > layout.txt
      Compile a probe that includes <vmhost/vmhost-plugin.h> built against
      ABI minor M (-DVMH_ABI_TARGET_MINOR=M), with debug info for every type
      (-fno-eliminate-unused-debug-types), read its DWARF with abidw
      (abigail-tools, --load-all-types) and print one line per fact:
        struct NAME size BYTES | struct NAME opaque
        struct NAME member OFFSET FIELD : TYPE
        enum NAME underlying N-bit
        enum NAME ENUMERATOR = VALUE
        typedef NAME = TYPE
        macro NAME = VALUE            (integer object-like VMH_* macros)
      and check the header rules that need no baseline (docs/design.md,
      rule 4): every public name carries the vmh_/VMH_ prefix, no struct
      crosses by value, no other library's type appears.

  abi-layout.py compare --mode append|frozen BASELINE CURRENT
      Exit 1, naming each problem, when CURRENT is not a compatible successor
      of BASELINE:
        - nothing in BASELINE may disappear or change: a struct member keeps
          its name, offset and type; an enumerator, a typedef, a macro keep
          their value; a struct never shrinks;
        - append: a struct may gain members, only after its old end (offset
          >= old size, so the old size never covers a new field), and only
          if it starts with struct_size (a struct without one, such as
          vmh_keyval, can never grow: arrays of it have no stride to read);
        - frozen (a released minor): no struct may gain a member or bytes;
        - new structs, enums, enumerators, typedefs and macros are always
          fine.
      What was added is printed as "note:" lines.

Why not plain abidiff: with the suppression that lets structs grow at the end
(has_data_member_inserted_at = end), libabigail 2.2 also suppresses in-place
changes of the same struct (a member's type, a callback's parameter), and
without it every append is reported like a break; it also never sees macros
or the "offset >= old size" and struct_size rules.  abidw is used only to
read the DWARF; the rules are here, small and explicit.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

# Types from outside the headers that may appear in the ABI.
# va_list (vmh_host.verror) is the compiler's: on x86-64 an array of this.
ALLOWED_FOREIGN_STRUCTS = {"__va_list_tag"}
ALLOWED_FOREIGN = {
    "va_list", "__gnuc_va_list",
    "void", "char", "signed char", "unsigned char", "short int",
    "short unsigned int", "int", "unsigned int", "long int",
    "long unsigned int", "long long int", "long long unsigned int", "_Bool",
    "bool", "double", "float", "size_t",
    "int8_t", "int16_t", "int32_t", "int64_t",
    "uint8_t", "uint16_t", "uint32_t", "uint64_t",
    "__int8_t", "__int16_t", "__int32_t", "__int64_t",
    "__uint8_t", "__uint16_t", "__uint32_t", "__uint64_t",
    "__builtin_va_list", "__va_list_tag",
}

# Macros that change on purpose with every minor (the file name says it).
MACROS_IGNORED = {"VMH_ABI_MINOR", "VMH_ABI_TARGET_MINOR"}


def die(msg):
    print("abi-layout: " + msg, file=sys.stderr)
    sys.exit(2)


def run(cmd, **kw):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, **kw)
    if r.returncode != 0:
        die("command failed (%d): %s\n%s%s" % (r.returncode, " ".join(cmd),
                                              r.stdout, r.stderr))
    return r.stdout


# ---- dump ---------------------------------------------------------------

class Types:
    def __init__(self, root, ours):
        self.by_id = {}
        self.ours = ours  # predicate on a filepath
        for el in root.iter():
            tid = el.get("id")
            if tid is not None:
                self.by_id[tid] = el
        self.problems = []

    def is_ours(self, el):
        fp = el.get("filepath")
        return fp is not None and self.ours(fp)

    def name(self, tid, seen=()):
        el = self.by_id.get(tid)
        if el is None:
            die("abidw output: unknown type id " + tid)
        tag = el.tag
        if tag == "type-decl":
            n = el.get("name")
            if n not in ALLOWED_FOREIGN:
                self.problems.append("foreign type '%s' in the ABI" % n)
            return n
        if tag == "typedef-decl":
            n = el.get("name")
            if not self.is_ours(el) and n not in ALLOWED_FOREIGN:
                self.problems.append(
                    "foreign type '%s' (%s) in the ABI" % (n, el.get("filepath")))
            return n
        if tag in ("class-decl", "union-decl"):
            kw = "union" if tag == "union-decl" else "struct"
            n = el.get("name")
            if not n or el.get("is-anonymous") == "yes":
                self.problems.append("anonymous %s in the ABI" % kw)
                return kw + " <anonymous>"
            if not n.startswith("vmh_") and n not in ALLOWED_FOREIGN_STRUCTS:
                self.problems.append("foreign type '%s %s' in the ABI" % (kw, n))
            return kw + " " + n
        if tag == "enum-decl":
            return "enum " + el.get("name")
        if tag == "qualified-type-def":
            inner_el = self.by_id.get(el.get("type-id"))
            inner = self.name(el.get("type-id"))
            quals = [q for q in ("const", "volatile", "restrict")
                     if el.get(q) == "yes"]
            if inner_el is not None and inner_el.tag == "pointer-type-def":
                return inner + " " + " ".join(quals)
            return " ".join(quals + [inner])
        if tag == "pointer-type-def":
            return self.name(el.get("type-id")) + "*"
        if tag == "function-type":
            ret = None
            params = []
            for ch in el:
                if ch.tag == "return":
                    ret = self.name(ch.get("type-id"))
                elif ch.tag == "parameter":
                    if ch.get("is-variadic") == "yes":
                        params.append("...")
                    else:
                        params.append(self.name(ch.get("type-id")))
                        self.check_by_value(ch.get("type-id"), "parameter")
            if ret is not None:
                self.check_by_value(el.find("return").get("type-id"), "return")
            return "%s(%s)" % (ret, ", ".join(params))
        if tag == "array-type-def":
            dims = "".join("[%s]" % (s.get("length") or "")
                           for s in el.findall("subrange"))
            return self.name(el.get("element-type-id")) + dims
        die("abidw output: unhandled type element <%s>" % tag)

    def strip(self, tid):
        """Follow typedefs and qualifiers."""
        el = self.by_id.get(tid)
        while el is not None and el.tag in ("typedef-decl", "qualified-type-def"):
            el = self.by_id.get(el.get("type-id"))
        return el

    def check_by_value(self, tid, what):
        el = self.strip(tid)
        if el is not None and el.tag in ("class-decl", "union-decl"):
            self.problems.append("a struct crosses by value (%s of type %s)"
                                 % (what, self.name(tid)))


def dump(args):
    cc = args.cc.split()
    inc = []
    for d in args.include:
        inc += ["-I", d]
    with tempfile.TemporaryDirectory(prefix="vmhost-abi.") as tmp:
        probe = os.path.join(tmp, "probe.c")
        with open(probe, "w") as f:
            f.write("#include <vmhost/vmhost-plugin.h>\n"
                    "int vmh_abi_probe(void);\n"
                    "int vmh_abi_probe(void) { return 0; }\n")
        so = os.path.join(tmp, "probe.so")
        minor = ["-DVMH_ABI_TARGET_MINOR=%d" % args.minor]
        run(cc + ["-std=c99", "-g", "-O0", "-fno-eliminate-unused-debug-types",
                  "-shared", "-fPIC"] + minor + inc + [probe, "-o", so])
        xml = run([args.abidw, "--load-all-types", "--no-corpus-path",
                   "--no-comp-dir-path", so])

        # Our macros: those vmhost-plugin.h defines beyond the system headers
        # it includes (stdarg.h: vmh_host.verror takes a va_list).
        base = os.path.join(tmp, "base.c")
        with open(base, "w") as f:
            f.write("#include <stdarg.h>\n#include <stddef.h>\n"
                    "#include <stdint.h>\n")
        sysm = set(re.findall(r"^#define (\w+)",
                              run(cc + ["-std=c99", "-dM", "-E", base]), re.M))
        allm = run(cc + ["-std=c99", "-dM", "-E"] + minor + inc + [probe])
        macros = []
        for m in re.finditer(r"^#define (\w+)(\(?)(.*)$", allm, re.M):
            name, fnlike, body = m.group(1), m.group(2), m.group(3).strip()
            if name in sysm or name.startswith("__"):
                continue
            if re.match(r"VMHOST_\w+_H$", name):
                continue  # include guards
            if fnlike or name in MACROS_IGNORED:
                continue
            if not name.startswith("VMH_"):
                print("problem: macro %s lacks the VMH_ prefix" % name)
                continue
            if body == "" or '"' in body or ";" in body or "__attribute__" in body:
                continue  # not an integer constant
            macros.append(name)
        values = {}
        if macros:
            prog = os.path.join(tmp, "macros.c")
            with open(prog, "w") as f:
                f.write("#include <stdio.h>\n#include <vmhost/vmhost-plugin.h>\n"
                        "int main(void) {\n")
                for n in macros:
                    f.write('  printf("%%s = %%lld\\n", "%s", (long long)(%s));\n'
                            % (n, n))
                f.write("  return 0;\n}\n")
            exe = os.path.join(tmp, "macros")
            run(cc + ["-std=c99"] + minor + inc + [prog, "-o", exe])
            for line in run([exe]).splitlines():
                n, v = line.split(" = ")
                values[n] = v

    root = ET.fromstring(xml)
    incdirs = [os.path.realpath(d) for d in args.include]

    def ours(fp):
        # abidw writes paths as the compiler saw them.
        real = os.path.realpath(fp)
        return any(real.startswith(os.path.join(d, "vmhost") + os.sep)
                   for d in incdirs)

    T = Types(root, ours)
    out = []
    for el in root.iter():
        if el.tag in ("class-decl", "union-decl", "enum-decl", "typedef-decl"):
            if not T.is_ours(el) and not (el.get("name") or "").startswith("vmh_"):
                continue
            n = el.get("name")
            if n is None or n == "":
                continue
            if not n.startswith("vmh_"):
                T.problems.append("type %s in %s lacks the vmh_ prefix"
                                  % (n, el.get("filepath")))
        if el.tag in ("class-decl", "union-decl"):
            kw = "union" if el.tag == "union-decl" else "struct"
            if el.get("is-declaration-only") == "yes":
                out.append("%s %s opaque" % (kw, n))
                continue
            bits = int(el.get("size-in-bits"))
            out.append("%s %s size %d" % (kw, n, bits // 8))
            for dm in el.findall("data-member"):
                off = int(dm.get("layout-offset-in-bits", "0"))
                vd = dm.find("var-decl")
                offs = str(off // 8) if off % 8 == 0 else "%d.%d" % (off // 8, off % 8)
                out.append("%s %s member %s %s : %s"
                           % (kw, n, offs, vd.get("name"), T.name(vd.get("type-id"))))
        elif el.tag == "enum-decl":
            # abidw names the underlying type by its size only.
            ut = T.by_id[el.find("underlying-type").get("type-id")]
            out.append("enum %s underlying %s-bit" % (n, ut.get("size-in-bits")))
            for e in el.findall("enumerator"):
                if not e.get("name").startswith("VMH_"):
                    T.problems.append("enumerator %s lacks the VMH_ prefix"
                                      % e.get("name"))
                out.append("enum %s %s = %s" % (n, e.get("name"), e.get("value")))
        elif el.tag == "typedef-decl":
            out.append("typedef %s = %s" % (n, T.name(el.get("type-id"))))
    for n in sorted(values):
        out.append("macro %s = %s" % (n, values[n]))

    # Stable order whatever abidw's: by kind, then name; members and
    # enumerators stay in declaration order.  Drop repeated lines.
    rank = {"struct": 0, "union": 0, "enum": 1, "typedef": 2, "macro": 3}
    seen = set()
    uniq = []
    for line in out:
        if line not in seen:
            seen.add(line)
            uniq.append(line)
    uniq.sort(key=lambda l: (rank[l.split()[0]], l.split()[1]))
    for line in uniq:
        print(line)
    for p in sorted(set(T.problems)):
        print("problem: " + p)


# ---- compare ------------------------------------------------------------

LINE = re.compile(r"^(struct|union) (\w+) (size (\d+)|opaque|member ([\d.]+) (\w+) : (.*))$")


def parse(path):
    d = {"structs": {}, "enums": {}, "typedefs": {}, "macros": {},
         "problems": [], "order": []}
    with open(path) as f:
        for raw in f:
            line = raw.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            m = LINE.match(line)
            if m:
                name = m.group(2)
                s = d["structs"].setdefault(
                    name, {"opaque": False, "size": None, "members": []})
                if m.group(3) == "opaque":
                    s["opaque"] = True
                elif m.group(4) is not None:
                    s["size"] = int(m.group(4))
                else:
                    off = m.group(5)
                    o = (int(off.split(".")[0]) * 8 + int(off.split(".")[1])
                         if "." in off else int(off) * 8)
                    s["members"].append((o, m.group(6), m.group(7)))
                continue
            m = re.match(r"^enum (\w+) underlying (.*)$", line)
            if m:
                d["enums"].setdefault(m.group(1), {"underlying": None, "values": {}})
                d["enums"][m.group(1)]["underlying"] = m.group(2)
                continue
            m = re.match(r"^enum (\w+) (\w+) = (-?\d+)$", line)
            if m:
                e = d["enums"].setdefault(m.group(1), {"underlying": None, "values": {}})
                e["values"][m.group(2)] = m.group(3)
                continue
            m = re.match(r"^typedef (\w+) = (.*)$", line)
            if m:
                d["typedefs"][m.group(1)] = m.group(2)
                continue
            m = re.match(r"^macro (\w+) = (.*)$", line)
            if m:
                d["macros"][m.group(1)] = m.group(2)
                continue
            m = re.match(r"^problem: (.*)$", line)
            if m:
                d["problems"].append(m.group(1))
                continue
            die("%s: cannot parse: %s" % (path, line))
    return d


def array_elements(d):
    """struct T such that some struct has a member X of type T* and n_X."""
    elems = {}
    for sname, s in d["structs"].items():
        names = {m[1] for m in s["members"]}
        for _, field, ty in s["members"]:
            m = re.match(r"^(?:const )?struct (\w+)\*$", ty)
            if m and "n_" + field in names:
                elems.setdefault(m.group(1), "%s.%s" % (sname, field))
    return elems


def compare(args):
    B = parse(args.baseline)
    C = parse(args.current)
    errors = list("header rule: " + p for p in C["problems"])
    notes = []
    frozen = args.mode == "frozen"
    elems = array_elements(B)

    for name, bs in B["structs"].items():
        cs = C["structs"].get(name)
        if cs is None:
            errors.append("struct %s was removed" % name)
            continue
        if bs["opaque"]:
            continue
        if cs["opaque"]:
            errors.append("struct %s became opaque" % name)
            continue
        cmem = {m[1]: m for m in cs["members"]}
        at = {m[0]: m for m in cs["members"]}
        for off, field, ty in bs["members"]:
            cm = cmem.get(field)
            if cm is None:
                other = at.get(off)
                if other is not None:
                    errors.append("struct %s: member '%s' at offset %d is now '%s'"
                                  % (name, field, off // 8, other[1]))
                else:
                    errors.append("struct %s: member '%s' was removed" % (name, field))
                continue
            if cm[0] != off:
                errors.append("struct %s: member '%s' moved from offset %d to %d"
                              % (name, field, off // 8, cm[0] // 8))
            if cm[2] != ty:
                errors.append("struct %s: member '%s' changed type from '%s' to '%s'"
                              % (name, field, ty, cm[2]))
        bnames = {m[1] for m in bs["members"]}
        added = [m for m in cs["members"] if m[1] not in bnames]
        if cs["size"] < bs["size"]:
            errors.append("struct %s shrank from %d to %d bytes"
                          % (name, bs["size"], cs["size"]))
        elif added or cs["size"] != bs["size"]:
            growable = (bs["members"] and bs["members"][0][1] == "struct_size"
                        and bs["members"][0][0] == 0)
            if frozen:
                errors.append(
                    "struct %s changed in a released minor (%d -> %d bytes, new: %s);"
                    " fields of a new minor go under #if VMH_ABI_TARGET_MINOR >= N"
                    % (name, bs["size"], cs["size"],
                       ", ".join(m[1] for m in added) or "none"))
            elif not growable:
                errors.append("struct %s grew (%d -> %d bytes) but does not start"
                              " with struct_size, so a reader cannot tell"
                              % (name, bs["size"], cs["size"]))
            elif not added:
                errors.append("struct %s changed size (%d -> %d bytes) with no new"
                              " member" % (name, bs["size"], cs["size"]))
            else:
                for off, field, ty in added:
                    if off < bs["size"] * 8:
                        errors.append(
                            "struct %s: new member '%s' at offset %d lies inside"
                            " the old struct (old size %d): append after the end"
                            % (name, field, off // 8, bs["size"]))
                    else:
                        notes.append("struct %s: member '%s' appended at offset %d"
                                     % (name, field, off // 8))
                if name in elems:
                    notes.append("struct %s grew and is passed in arrays (%s):"
                                 " readers must step by its struct_size"
                                 % (name, elems[name]))
    for name in C["structs"]:
        if name not in B["structs"]:
            notes.append("struct %s is new" % name)

    for name, be in B["enums"].items():
        ce = C["enums"].get(name)
        if ce is None:
            errors.append("enum %s was removed" % name)
            continue
        if be["underlying"] != ce["underlying"]:
            errors.append("enum %s: underlying type changed from %s to %s"
                          % (name, be["underlying"], ce["underlying"]))
        for en, v in be["values"].items():
            cv = ce["values"].get(en)
            if cv is None:
                errors.append("enum %s: enumerator %s was removed" % (name, en))
            elif cv != v:
                errors.append("enum %s: %s changed from %s to %s" % (name, en, v, cv))
        for en, v in ce["values"].items():
            if en not in be["values"]:
                notes.append("enum %s: %s = %s is new" % (name, en, v))
    for name in C["enums"]:
        if name not in B["enums"]:
            notes.append("enum %s is new" % name)

    for kind in ("typedefs", "macros"):
        for name, v in B[kind].items():
            cv = C[kind].get(name)
            if cv is None:
                errors.append("%s %s was removed" % (kind[:-1], name))
            elif cv != v:
                errors.append("%s %s changed from '%s' to '%s'" % (kind[:-1], name, v, cv))
        for name, v in C[kind].items():
            if name not in B[kind]:
                notes.append("%s %s = %s is new" % (kind[:-1], name, v))

    label = args.label or os.path.basename(args.current)
    for n in notes:
        print("note: %s: %s" % (label, n))
    for e in errors:
        print("ERROR: %s: %s" % (label, e))
    if errors:
        print("%s: %d incompatible change(s) against %s"
              % (label, len(errors), args.baseline))
        sys.exit(1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd")
    d = sub.add_parser("dump")
    d.add_argument("--cc", default=os.environ.get("CC", "cc"))
    d.add_argument("--abidw", default=os.environ.get("ABIDW") or "abidw")
    d.add_argument("--minor", type=int, required=True)
    d.add_argument("-I", dest="include", action="append", default=[])
    c = sub.add_parser("compare")
    c.add_argument("--mode", choices=("append", "frozen"), required=True)
    c.add_argument("--label")
    c.add_argument("baseline")
    c.add_argument("current")
    args = ap.parse_args()
    if args.cmd == "dump":
        dump(args)
    elif args.cmd == "compare":
        compare(args)
    else:
        ap.print_help()
        sys.exit(2)


if __name__ == "__main__":
    main()
