#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The VM spec's limits are one table (plugins/common/speclimits.h):
openapi.yaml and node.proto state the same numbers, and the daemon holds
every edge of them through REST, gRPC and the core itself (the ctl
front-end passes specs through unchecked).  A field left out is "required",
not "0 out of range"; sizes in JSON take units as the config does
("16MiB"), gRPC keeps integers."""
import os
import re

from resttest import RestDaemon, openapi
from rpctest import RpcDaemon, expect_status, grpc, pb
from vmhtest import check, expect, mocks

TOP = os.environ.get("top_srcdir", os.path.join(os.path.dirname(__file__),
                                                ".."))
N = pb.node
SC = grpc.StatusCode

# ---- the table ------------------------------------------------------------
L = {}
with open(os.path.join(TOP, "plugins", "common", "speclimits.h")) as f:
    for m in re.finditer(r"^#define SPEC_(\w+)_(MIN|MAX) (?:UINT64_C\()?(\d+)",
                         f.read(), re.M):
        L[(m.group(1).lower(), m.group(2).lower())] = int(m.group(3))
for key in ("vcpus", "memory"):
    check((key, "min") in L and (key, "max") in L, "speclimits.h lacks", key)
for key in ("disks", "nics", "metadata", "vlan", "boot_order"):
    check((key, "max") in L, "speclimits.h lacks", key)

# ---- openapi.yaml ---------------------------------------------------------
S = openapi()["components"]["schemas"]
vm = S["VmSpec"]["properties"]
mem = [a for a in vm["memory"]["anyOf"] if a.get("type") == "integer"][0]
documented = {
    ("vcpus", "min"): vm["vcpus"]["minimum"],
    ("vcpus", "max"): vm["vcpus"]["maximum"],
    ("memory", "min"): mem["minimum"],
    ("memory", "max"): mem["maximum"],
    ("disks", "max"): vm["disks"]["maxItems"],
    ("nics", "max"): vm["nics"]["maxItems"],
    ("metadata", "max"): vm["metadata"]["maxProperties"],
    ("vlan", "max"): S["NicSpec"]["properties"]["vlan"]["maximum"],
    ("boot_order", "max"): S["DiskSpec"]["properties"]["boot_order"]["maximum"],
}
for k, v in documented.items():
    check(L[k] == v, f"openapi.yaml says {k} is {v}, speclimits.h {L[k]}")
# The text limit (bytes), on every text of the spec.
TEXTS = ("kernel", "initrd", "cmdline", "user_data", "meta_data",
         "network_config")
TMAX = L[("text", "max")]
check(S["SpecText"]["maxLength"] == TMAX and
      str(TMAX) in S["SpecText"]["description"], S["SpecText"])
for t in TEXTS:
    check(vm[t].get("$ref") == "#/components/schemas/SpecText",
          f"openapi.yaml VmSpec.{t} is not a SpecText", vm[t])
check(vm["metadata"]["additionalProperties"]["$ref"].endswith("/SpecText") and
      vm["metadata"]["propertyNames"]["maxLength"] == TMAX, vm["metadata"])
check(set(S["VmSpec"]["required"]) == {"name", "vcpus", "memory"},
      S["VmSpec"]["required"])

# ---- node.proto: the field comments ---------------------------------------
with open(os.path.join(TOP, "proto", "vmhost", "v1", "node.proto")) as f:
    proto = f.read()


def comment(message, field):
    body = re.search(r"^message %s \{(.*?)^\}" % message, proto, re.M | re.S)
    check(body, "node.proto has no message", message)
    m = re.search(r"^\s*[\w<>, .]+ %s = \d+;\s*//(.*)$" % field,
                  body.group(1), re.M)
    check(m, f"node.proto: {message}.{field} has no comment")
    return m.group(1)


for (msg, field, key) in (("VmSpec", "vcpus", "vcpus"),
                          ("VmSpec", "memory", "memory"),
                          ("Nic", "vlan", "vlan"),
                          ("Disk", "boot_order", "boot_order")):
    want = f"{L.get((key, 'min'), 0)}..{L[(key, 'max')]}"
    check(want in comment(msg, field),
          f"node.proto {msg}.{field} does not say {want}:",
          comment(msg, field))
for field in TEXTS + ("labels",):
    check(f"at most {TMAX} bytes" in comment("VmSpec", field),
          f"node.proto VmSpec.{field} does not say at most {TMAX} bytes")
for (field, key) in (("disks", "disks"), ("nics", "nics"),
                     ("labels", "metadata")):
    want = f"at most {L[(key, 'max')]}"
    check(want in comment("VmSpec", field),
          f"node.proto VmSpec.{field} does not say {want}")

# ---- the daemon at each edge ----------------------------------------------
VMIN, VMAX = L[("vcpus", "min")], L[("vcpus", "max")]
MMIN, MMAX = L[("memory", "min")], L[("memory", "max")]
n = 0


def name():
    global n
    n += 1
    return f"vm{n}"


# A mock hypervisor as large as the spec allows, on a simulated host with
# room for several VMs that large (admission control counts the host), so
# that only the spec's limits are tested.
BIG = mocks(hv=f", max_vcpus: {L[('vcpus', 'max')]}, "
            f"max_memory: {L[('memory', 'max')]}, "
            f"host_memory: {8 * L[('memory', 'max')]}")

with RestDaemon(body=BIG) as d:
    def refused(body, field, words=()):
        v = d.error("POST", "/api/v1/vms", 400, "INVALID_ARGUMENT", body)
        msg = v["error"]["message"]
        check(field in msg, f"{body}: the message does not name {field}:", msg)
        for w in words:
            check(w in msg, f"{body}: the message does not say {w}:", msg)
        return msg

    def made(body):
        d.ok("POST", "/api/v1/vms", dict(body, start=False), status=201)

    refused({"name": name(), "memory": MMIN}, "vcpus", ["required"])
    refused({"name": name(), "vcpus": 1}, "memory", ["required"])
    refused({"name": name(), "vcpus": VMIN - 1, "memory": MMIN}, "vcpus")
    refused({"name": name(), "vcpus": VMAX + 1, "memory": MMIN}, "vcpus",
            [str(VMAX)])
    refused({"name": name(), "vcpus": 1, "memory": MMIN - 1}, "memory",
            ["16MiB"])
    refused({"name": name(), "vcpus": 1, "memory": MMAX + 1}, "memory",
            ["64TiB"])
    for bad in ("15MiB", "2XB", "-1GiB", "0x10", "1.5GiB", "GiB", ""):
        refused({"name": name(), "vcpus": 1, "memory": bad}, "memory")
    made({"name": name(), "vcpus": VMIN, "memory": MMIN})
    made({"name": name(), "vcpus": VMAX, "memory": MMAX})
    for ok in ("16MiB", "16777216", "1 GiB", "2gib", "1GB", "1T"):
        made({"name": name(), "vcpus": 1, "memory": ok})
    vm = d.ok("GET", f"/api/v1/vms/vm{n}")
    check(vm["memory"] == 1 << 40, "1T is 2^40 bytes:", vm)
    made({"name": name(), "vcpus": 1, "memory": "64MiB",
          "disks": [{"name": "vda", "size": "10GiB"}]})
    vm = d.ok("GET", f"/api/v1/vms/vm{n}")
    check(vm["disks"][0]["size"] == 10 << 30, vm)
    refused({"name": name(), "vcpus": 1, "memory": "64MiB",
             "disks": [{"name": "vda", "size": "10 parsecs"}]},
            "disks[0].size")
    refused({"name": name(), "vcpus": 1, "memory": MMIN,
             "nics": [{"name": "net0", "vlan": L[("vlan", "max")] + 1}]},
            "vlan")
    # Texts: at most TMAX bytes, counted in bytes (é is two).
    made({"name": name(), "vcpus": 1, "memory": MMIN,
          "user_data": "#" * TMAX})
    refused({"name": name(), "vcpus": 1, "memory": MMIN,
             "user_data": "#" * (TMAX + 1)}, "user_data", [str(TMAX)])
    refused({"name": name(), "vcpus": 1, "memory": MMIN,
             "meta_data": "é" * (TMAX // 2 + 1)}, "meta_data", [str(TMAX)])
    refused({"name": name(), "vcpus": 1, "memory": MMIN,
             "disks": [{"name": f"vd{i}", "size": 1}
                       for i in range(L[("disks", "max")] + 1)]}, "disks")

    # The core itself, past a front-end that checks nothing.
    r = expect(d.call(op="vm_create", spec={"name": name(), "memory": MMIN}),
               "invalid_argument")
    check("vcpus is required" in r["message"], r)
    r = expect(d.call(op="vm_create", spec={"name": name(), "vcpus": 1}),
               "invalid_argument")
    check("memory is required" in r["message"], r)
    r = expect(d.call(op="vm_create", spec={"name": name(), "vcpus": VMAX + 1,
                                            "memory": MMIN}),
               "invalid_argument")
    check(f"1..{VMAX}" in r["message"], r)
    r = expect(d.call(op="vm_create", spec={"name": name(), "vcpus": 1,
                                            "memory": MMIN - 1}),
               "invalid_argument")
    check("16MiB..64TiB" in r["message"], r)
    check(d.stop() == 0)

with RpcDaemon(body=BIG) as d:
    node = d.node()

    def spec(**kw):
        return N.CreateVMRequest(spec=N.VmSpec(name=name(), **kw),
                                 no_start=True)

    for kw, field in (({"memory": MMIN}, "vcpus"), ({"vcpus": 1}, "memory")):
        e = expect_status(SC.INVALID_ARGUMENT, node.CreateVM, spec(**kw))
        check(f"{field}' is required" in e.details(), e.details())
    for kw in ({"vcpus": VMAX + 1, "memory": MMIN},
               {"vcpus": 1, "memory": MMIN - 1},
               {"vcpus": 1, "memory": MMAX + 1}):
        expect_status(SC.INVALID_ARGUMENT, node.CreateVM, spec(**kw))
    node.CreateVM(spec(vcpus=VMIN, memory=MMIN))
    node.CreateVM(spec(vcpus=1, memory=MMAX))
    check(d.stop() == 0)
print("ok")
