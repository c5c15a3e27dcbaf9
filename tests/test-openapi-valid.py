#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""openapi.yaml as a document client generators can take: the structural
rules of OpenAPI 3.1 that a generator trips on, checked here since Debian
12 packages no OpenAPI validator (python3-openapi-spec-validator is not in
bookworm):

- openapi 3.1.x, info.title and info.version, paths and components;
- every operation has a unique operationId (lowerCamelCase), a summary,
  responses keyed by status codes or "default", each with a description,
  and an x-role (none only with `security: []`);
- every {param} of a path template is declared (in: path, required) and
  every declared path parameter is in the template;
- every $ref resolves inside the document;
- every schema is a valid JSON Schema (draft 2020-12, OpenAPI 3.1's)."""
import re

import jsonschema

from resttest import openapi
from vmhtest import check

doc = openapi()
errors = []


def err(*msg):
    errors.append(" ".join(str(m) for m in msg))


check(re.match(r"^3\.1\.\d+$", str(doc.get("openapi", ""))), doc.get("openapi"))
check(doc.get("info", {}).get("title") and doc["info"].get("version"),
      "info.title and info.version")
check(doc.get("paths") and doc.get("components"), "paths and components")


def resolve(ref):
    if not ref.startswith("#/"):
        return None
    node = doc
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def walk_refs(node, where):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref":
                if not isinstance(v, str) or resolve(v) is None:
                    err(where, "$ref does not resolve:", v)
            else:
                walk_refs(v, f"{where}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            walk_refs(v, f"{where}[{i}]")


walk_refs(doc, "#")


def params(lst):
    out = []
    for p in lst or []:
        p = resolve(p["$ref"]) if "$ref" in p else p
        if p:
            out.append(p)
    return out


METHODS = ("get", "put", "post", "delete", "options", "head", "patch",
           "trace")
ids = {}
n_ops = 0
for path, item in doc["paths"].items():
    template = set(re.findall(r"\{([^}]+)\}", path))
    common = params(item.get("parameters"))
    for method, op in item.items():
        if method not in METHODS:
            continue
        n_ops += 1
        where = f"{method.upper()} {path}"
        opid = op.get("operationId")
        if not opid or not re.match(r"^[a-z][A-Za-z0-9]*$", opid):
            err(where, "operationId missing or not lowerCamelCase:", opid)
        elif opid in ids:
            err(where, "operationId", opid, "is also", ids[opid])
        else:
            ids[opid] = where
        if not isinstance(op.get("summary"), str) or not op["summary"].strip():
            err(where, "has no summary")
        # The first word ("reader (none with auth.open_metrics)").
        role = (str(op.get("x-role") or "").split() or [None])[0]
        if role not in ("none", "reader", "operator", "admin"):
            err(where, "x-role is", role)
        if (role == "none") != (op.get("security") == []):
            err(where, "x-role none goes with security: [] and only with it")
        responses = op.get("responses") or {}
        if not responses:
            err(where, "has no responses")
        for code, r in responses.items():
            if code != "default" and not re.match(r"^[1-5]([0-9]{2}|XX)$",
                                                  str(code)):
                err(where, "response key", code, "is not a status")
            r = resolve(r["$ref"]) if "$ref" in r else r
            if not r or not r.get("description"):
                err(where, code, "has no description")
        declared = {}
        for p in common + params(op.get("parameters")):
            if p.get("in") not in ("path", "query", "header", "cookie"):
                err(where, "parameter", p.get("name"), "in", p.get("in"))
            declared[(p.get("name"), p.get("in"))] = p
        in_path = {n for (n, i) in declared if i == "path"}
        if in_path != template:
            err(where, "path parameters", sorted(in_path), "template",
                sorted(template))
        for (name, i), p in declared.items():
            if i == "path" and p.get("required") is not True:
                err(where, "path parameter", name, "is not required: true")

# Every schema (components and inline) against draft 2020-12.
meta = jsonschema.Draft202012Validator
for name, schema in doc["components"]["schemas"].items():
    try:
        meta.check_schema(schema)
    except jsonschema.SchemaError as e:
        err("schema", name, ":", e.message)

check(n_ops >= 40, "too few operations found:", n_ops)
for e in errors:
    print("FAIL:", e)
check(not errors, len(errors), "problems in openapi.yaml")
print(f"ok: {n_ops} operations")
