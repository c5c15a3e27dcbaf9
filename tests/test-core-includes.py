#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The core has no include cycle: with its units (x.c + x.h, in core/ and
plugins/common/) as nodes and an edge x -> y when x.c or x.h includes
"y.h", no unit reaches itself.  Each cycle found is printed."""
import os
import re
import sys

top = os.environ.get("top_srcdir", os.path.join(os.path.dirname(__file__), ".."))
edges = {}
for d in ("core", os.path.join("plugins", "common")):
    for f in sorted(os.listdir(os.path.join(top, d))):
        if not f.endswith((".c", ".h")):
            continue
        unit = edges.setdefault(f[:-2], set())
        with open(os.path.join(top, d, f)) as src:
            for line in src:
                m = re.match(r'\s*#\s*include\s+"(?:.*/)?([^"/]+)\.h"', line)
                if m and m.group(1) != f[:-2]:
                    unit.add(m.group(1))

# Tarjan's strongly connected components; one of 2+ units is a cycle.
index, low, stack, cycles = {}, {}, [], []


def visit(v):
    index[v] = low[v] = len(index)
    stack.append(v)
    for w in edges.get(v, ()):
        if w not in index:
            visit(w)
            low[v] = min(low[v], low[w])
        elif w in stack:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        scc = []
        while not scc or scc[-1] != v:
            scc.append(stack.pop())
        if len(scc) > 1:
            cycles.append(sorted(scc))


for v in sorted(edges):
    if v not in index:
        visit(v)
for c in cycles:
    print("FAIL: include cycle between", ", ".join(c))
print(f"{len(edges)} units, {sum(map(len, edges.values()))} includes,"
      f" {len(cycles)} cycles")
sys.exit(1 if cycles else 0)
