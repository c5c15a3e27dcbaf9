#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""openapi.yaml against what the daemon answers, for what the other REST
tests cannot see one answer at a time:

- the error codes: ErrorCode lists every code the core's table has (read
  from the running core through the ctl front-end's "errors" op) and every
  code the REST front-end answers by itself (read from its source), each
  with the HTTP status it is answered with, and nothing else;
- the VM create schema: what it requires is what the daemon requires."""
import os
import re

from resttest import RestDaemon, openapi
from vmhtest import check

SRCS = [os.path.join(os.environ.get("top_srcdir", ".."), "plugins",
                     "frontend", "rest", name)
        for name in ("frontend-rest.c", "agentdist.c")]

spec = openapi()
codes = spec["components"]["schemas"]["ErrorCode"]
documented = codes["x-status"]
check(sorted(codes["enum"]) == sorted(documented),
      "ErrorCode: enum and x-status differ:", codes["enum"], documented)

# The front-end's own codes: answer_error(k, STATUS, "name", …) and the
# {STATUS, "name"} table of refusals.
text = ""
for src in SRCS:
    with open(src) as f:
        text += f.read()
own = {name.upper(): int(status) for status, name in
       re.findall(r'answer_error\(k, (\d+), "([a-z_]+)"', text) +
       re.findall(r'\{(\d+), "([a-z_]+)"\}', text)}
check(len(own) >= 5, "the front-end's own codes were not found in", SRCS,
      own)

with RestDaemon() as d:
    r = d.call(op="errors")
    check(r["code"] == 0 and len(r["errors"]) >= 15, r)
    core = {e["name"].upper(): e["http"] for e in r["errors"]}
    check(len(core) == len(r["errors"]), "two codes with one name:", r)

    answered = dict(own)
    for name, status in core.items():
        check(answered.get(name, status) == status,
              f"{name} is answered with {status} and {answered.get(name)}")
        answered[name] = status
    missing = {n: s for n, s in answered.items() if n not in documented}
    extra = {n: s for n, s in documented.items() if n not in answered}
    wrong = {n: (documented[n], s) for n, s in answered.items()
             if n in documented and documented[n] != s}
    check(not missing and not extra and not wrong,
          "openapi.yaml ErrorCode differs from what the daemon answers:",
          "missing", missing, "never answered", extra,
          "(documented, answered)", wrong)

    # VM create: a spec the schema refuses is one the daemon refuses.
    import jsonschema
    schema = dict(spec["components"]["schemas"]["VmSpec"])
    schema["components"] = spec["components"]
    full = {"name": "vm1", "vcpus": 1, "memory": 1 << 30}
    for drop in ("name", "vcpus", "memory"):
        body = {k: v for k, v in full.items() if k != drop}
        try:
            jsonschema.validate(body, schema,
                                cls=jsonschema.Draft202012Validator)
            check(False, f"VmSpec accepts a spec without {drop}")
        except jsonschema.ValidationError:
            pass
        v = d.error("POST", "/api/v1/vms", 400, "INVALID_ARGUMENT", body)
        check(drop in v["error"]["message"], drop, v)
    jsonschema.validate(full, schema, cls=jsonschema.Draft202012Validator)
    st, _, v = d.request("POST", "/api/v1/vms", full)
    check(st in (200, 201), "a full spec:", st, v)
    check(d.stop() == 0)
print("ok")
